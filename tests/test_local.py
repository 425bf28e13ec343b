"""The local backend: the real MLPerf LoadGen (mlcommons-loadgen) in process, over stand-in models.

Runs are kept short with --mlperf-duration (seconds); everything else is what `pytest suites` does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from pytest_mlperf import catalog
from pytest_mlperf.backends.local import (
    EARLY_STOPPING_MIN_QUERIES,
    GENERATION_BUDGET_BYTES,
    OFFLINE_PEAK_SHARE,
    QUERY_BYTES,
    SERVER_BACKOFF,
    SERVER_LOAD,
    SERVER_RETRIES,
    SIZING_RERUNS,
    Calibration,
    LocalBackend,
    user_conf,
    write_accuracy,
)
from pytest_mlperf.backends.standin import LocalModel, stand_in_for
from pytest_mlperf.judge.evaluate import evaluate
from pytest_mlperf.logs.loadgen import parse_detail
from pytest_mlperf.options import Duration
from pytest_mlperf.options import duration as parse_duration


def _props(xml: Path) -> dict[str, dict[str, str]]:
    root = ET.parse(xml).getroot()
    return {
        tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")} for tc in root.iter("testcase")
    }


@pytest.mark.timing
def test_every_edge_scenario_runs_under_loadgen(suites, tmp_path):
    out = tmp_path / "out"
    result = suites.runpytest(
        "-m",
        "inference and ssd_mobilenet",
        "--mlperf-duration=2",
        f"--mlperf-output={out}",
        "--junitxml=r.xml",
        "--mlperf-json=r.json",
    )
    result.assert_outcomes(passed=6)
    props = _props(suites.path / "r.xml")
    offline = props["test_inference[ssd-mobilenet-Offline-PerformanceOnly-local]"]
    assert offline["mlperf:verdict"] == "VALID" and float(offline["result_samples_per_second"]) > 100
    single = props["test_inference[ssd-mobilenet-SingleStream-PerformanceOnly-local]"]
    assert (
        0 < float(single["result_90.00_percentile_latency_ns"]) <= float(single["result_99.00_percentile_latency_ns"])
    )
    assert float(single["result_qps_with_loadgen_overhead"]) > 0 and float(single["early_stopping_latency_ss"]) > 0
    multi = props["test_inference[ssd-mobilenet-MultiStream-PerformanceOnly-local]"]
    assert float(multi["result_99.00_percentile_per_query_latency_ns"]) > 0
    accuracy = props["test_inference[ssd-mobilenet-Offline-AccuracyOnly-local]"]
    assert accuracy["mlperf:verdict"] == "PASS" and float(accuracy["AccuracyValue"]) >= 21.78

    folder = out / "Local-CPU_Local" / "ssd-mobilenet" / "Offline"
    conf = (folder / "performance" / "run_1" / "user.conf").read_text()
    assert "*.Offline.min_duration = 2000" in conf and "performance_sample_count_override = 1024" in conf
    summary = (folder / "performance" / "run_1" / "mlperf_log_summary.txt").read_text()
    assert "Scenario : Offline" in summary and "Result is : VALID" in summary
    text = (folder / "accuracy" / "accuracy.txt").read_text()
    assert text.startswith("stand-in model, not the MLPerf model") and re.search(r"^mAP=\d+\.\d+%$", text, re.M)
    assert re.search(r"^hash=[0-9a-f]{64}$", text, re.M)

    data = json.loads((suites.path / "r.json").read_text())
    assert data["backend"] == "local" and "stand-in models" in data["backend_reason"]
    record = next(r for r in data["results"] if r["id"] == "ssd-mobilenet-Offline-PerformanceOnly-local")
    assert record["info"]["stand_in"] is True and record["info"]["duration"] == "2"
    assert str(folder / "performance" / "run_1" / "mlperf_log_detail.txt") in record["artifacts"]

    # the tree the local backend wrote replays through the results backend to the same verdicts
    replay = suites.runpytest("-m", "inference", f"--mlperf-results={out}")
    replay.assert_outcomes(passed=6)


@pytest.mark.timing
def test_server_runs_valid_and_an_impossible_target_fails_with_loadgens_reason(suites):
    ok = suites.runpytest("-k", "bert-99-Server-PerformanceOnly", "--mlperf-duration=2", "--junitxml=ok.xml")
    ok.assert_outcomes(passed=1)
    props = _props(suites.path / "ok.xml")["test_inference[bert-99-Server-PerformanceOnly-local]"]
    assert float(props["result_scheduled_samples_per_sec"]) > 0
    assert float(props["result_99.00_percentile_latency_ns"]) < 130e6

    bad = suites.runpytest(
        "-k", "bert-99-Server-PerformanceOnly", "--mlperf-duration=1", "--mlperf-server-target-qps=40000"
    )
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(
        [
            "*AssertionError: INVALID: performance constraints not satisfied (p99 latency * ms > "
            "target 130 ms)*LoadGen recommends: Reduce target QPS to improve latency.*"
        ]
    )


def test_training_converges_and_a_step_cap_aborts(suites):
    pytest.importorskip("torch", reason="the local training run needs PyTorch (pytest-mlperf[train])")
    # PyTorch cannot be imported twice in one process, which in-process pytester would do: subprocesses.
    one = ("--mlperf-nexp=1",)  # one trial a run here; the default's ten trials are the main job's (.ci/run)
    good = suites.runpytest_subprocess("-m", "training", *one, "--mlperf-partial-scores", "--junitxml=t.xml")
    good.assert_outcomes(passed=2)  # the trial and its score, partial and accepted as such
    props = _props(suites.path / "t.xml")["test_training[bert-local-mlm-trial_1]"]
    assert float(props["eval_mlm_accuracy"]) >= 0.72
    for key in ("e2e_time", "training_sequences_per_second", "final_loss", "raw_train_time", "time_to_train"):
        assert key in props
    assert float(props["e2e_time"]) > float(props["raw_train_time"]) > 0

    score = _props(suites.path / "t.xml")["test_training_score[bert-local-mlm]"]
    assert "mlperf_score" not in score  # one run is not an MLPerf score, whatever was accepted
    assert float(score["partial_score"]) == pytest.approx(float(props["time_to_train"]) / 60)
    good.stdout.fnmatch_lines(["*SCORED*SCORE * min (partial: 1 of the 10 runs an MLPerf BERT score needs, accepted*"])

    # the score alone: it runs its deselected trial itself, on the same backend set-up as a trial test; not asked
    # to accept a partial score, it fails saying what would make it one
    alone = suites.runpytest_subprocess("-m", "score", *one, "--junitxml=s.xml")
    alone.assert_outcomes(failed=1)
    assert float(_props(suites.path / "s.xml")["test_training_score[bert-local-mlm]"]["converged_runs"]) == 1
    alone.stdout.fnmatch_lines(
        [
            "*AssertionError: PARTIAL: 1 of the 10 runs an MLPerf BERT score needs, so * min (mean of 1 run*"
            "run --mlperf-nexp 10, or accept a partial score with --mlperf-partial-scores"
        ]
    )

    capped = suites.runpytest_subprocess("-m", "training", *one, "--mlperf-train-max-steps=10")
    capped.assert_outcomes(failed=2)
    capped.stdout.fnmatch_lines(
        [
            "*AssertionError: NOT CONVERGED: run_stop status 'aborted', last eval_accuracy 0.* < 0.720 after 640 "
            "samples",
            "*AssertionError: INVALID: not converged: bert-local-mlm-trial_1 (NOT CONVERGED)",
        ]
    )


def test_the_local_default_is_the_ten_trials_of_an_mlperf_score(suites):
    """With no --mlperf-nexp the local backend runs the ten trials an MLPerf BERT score needs (its trials take
    seconds); the score test scores all ten."""
    result = suites.runpytest_subprocess("-m", "training", "--collect-only", "-q")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if line.startswith("test_training")]
    assert ids == [f"bert-local-mlm-trial_{i}" for i in range(1, 11)] + ["bert-local-mlm"]


def test_training_without_torch_skips_with_the_install_hint(suites):
    suites.makeconftest("import sys\nsys.modules['torch'] = None  # as if PyTorch were not installed\n")
    result = suites.runpytest_subprocess("-m", "training", "--mlperf-nexp=1", "-rs")
    result.assert_outcomes(skipped=2)  # the trial, and so its score
    result.stdout.fnmatch_lines(["*needs PyTorch: pip install 'pytest-mlperf[[]train[]]' torch==2.13.0*"])


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- byo-sut-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its bring-your-own-SUT example"
    return match.group(1)


@pytest.mark.timing
def test_readme_bring_your_own_sut_example(suites):
    suites.makeconftest(_readme_example())
    result = suites.runpytest("-m", "rnnt and offline", "--mlperf-duration=1", "--mlperf-json=byo.json")
    result.assert_outcomes(passed=2)
    records = json.loads((suites.path / "byo.json").read_text())["results"]
    assert {r["info"]["model"] for r in records} == {"my-rnnt"}
    assert {r["info"]["stand_in"] for r in records} == {False}


def test_a_failing_model_fails_the_case_without_hanging(suites):
    suites.makeconftest("""
        from pytest_mlperf.backends.standin import LocalModel
        import numpy as np
        class Broken(LocalModel):
            name = "broken"
            def predict(self, indices):  # the probe uses the first samples; LoadGen reaches the others
                if indices.max() >= 512:
                    raise RuntimeError("model exploded")
                return [np.zeros(1, dtype=np.int32) for _ in indices]
        def pytest_mlperf_make_sut(config, case):
            return Broken()
    """)
    result = suites.runpytest("-k", "ssd-resnet34-Offline-PerformanceOnly", "--mlperf-duration=1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the model failed during the LoadGen run: RuntimeError('model exploded')*"])


def test_bad_duration_is_a_usage_error(suites):
    result = suites.runpytest("--mlperf-duration=forever")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*argument --mlperf-duration: 'forever': expected smoke, full or a number of seconds*"]
    )
    with pytest.raises(argparse.ArgumentTypeError, match="must be positive"):
        parse_duration("0")
    assert parse_duration("smoke").seconds == 8 and parse_duration("full").seconds is None
    assert parse_duration("30") == Duration("30", 30)


def test_full_duration_writes_the_rounds_rules():
    cat = catalog.load()
    case = next(c for c in cat.local_cases("Local-CPU") if c.benchmark.name == "rnnt" and c.scenario.name == "Server")
    model = stand_in_for(case.benchmark)
    cal = Calibration(throughput=4000.0, latency_single=0.001, latency_multi=0.004)
    conf = user_conf(case, model, cal, None, None)
    assert "*.Server.min_duration = 600000" in conf and "*.Server.min_query_count = 270336" in conf
    offline = next(
        c for c in cat.local_cases("Local-CPU") if c.benchmark.name == "rnnt" and c.scenario.name == "Offline"
    )
    assert "*.Offline.min_query_count = 24576" in user_conf(offline, model, cal, None, None)  # mlperf.conf's, not 1
    assert f"*.Server.target_qps = {4000 * SERVER_LOAD:.3f}" in conf and "*.Server.target_latency = 1000" in conf
    smoke = user_conf(case, model, cal, 8, 123.0)
    assert "*.Server.min_duration = 8000" in smoke and "*.Server.target_qps = 123.000" in smoke
    offline = next(c for c in cat.local_cases("Local-CPU") if c.scenario.name == "Offline")
    # full rules: at least 24576 samples in the Offline query, whatever the probe said
    assert "*.Offline.target_qps = 5400.000" in user_conf(offline, model, cal, None, None)  # 1.35 x the probe
    slow = Calibration(throughput=10.0, latency_single=0.1, latency_multi=0.5)
    assert f"*.Offline.target_qps = {24576 / 600:.3f}" in user_conf(offline, model, slow, None, None)


def test_stand_in_accuracy_reflects_disagreement(tmp_path):
    """Corrupt 2 % of a stand-in's answers: 99 % level fails, as it would for a real accuracy drop."""
    cat = catalog.load()
    model = stand_in_for(cat.benchmark("bert-99"))
    indices = np.arange(500)
    answers = {int(i): a.tobytes() for i, a in zip(indices, model.predict(indices), strict=True)}
    for i in range(10):
        answers[i] = (
            np.array([0, 0], dtype=np.int32).tobytes()
            if answers[i] != bytes(8)
            else np.array([5, 5], dtype=np.int32).tobytes()
        )
    report = model.score(answers)
    assert report.value < cat.benchmark("bert-99").threshold
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(
        json.dumps([{"seq_id": n, "qsl_idx": i, "data": d.hex()} for n, (i, d) in enumerate(answers.items())])
    )
    text = write_accuracy(tmp_path, model).read_text()
    assert f'"f1": {report.value:.10f}' in text


def test_backend_result_is_judged_by_the_shared_evaluator(tmp_path):
    cat = catalog.load()
    backend = LocalBackend(cat, output=tmp_path, duration="1")
    case = next(
        c
        for c in cat.local_cases("Local-CPU")
        if c.benchmark.name == "ssd-resnet34" and c.scenario.name == "SingleStream" and c.mode == "PerformanceOnly"
    )
    artifacts = backend.run(case, tmp_path)
    result = evaluate(case, artifacts)
    assert result.verdict.label == "VALID", result.verdict.reason
    assert artifacts.path == tmp_path / "Local-CPU_Local" / "ssd-resnet34" / "SingleStream" / "performance" / "run_1"
    assert sys.modules.get("mlperf_loadgen") is not None


def _perf_case(cat, benchmark: str, scenario: str):
    return next(
        c
        for c in cat.local_cases("Local-CPU")
        if c.benchmark.name == benchmark and c.scenario.name == scenario and c.mode == "PerformanceOnly"
    )


class _Quick(LocalModel):
    """A performance-only SUT that answers in 0.1 ms a sample (a sleep; empty answers), the sizes of the stand-in."""

    name = "quick"

    def __init__(self, case):
        inner = stand_in_for(case.benchmark)
        self.total_samples, self.performance_samples = inner.total_samples, inner.performance_samples
        self.batch_size = inner.batch_size

    def predict(self, indices):
        time.sleep(0.0001 * len(indices))
        return [np.zeros(1, dtype=np.float32) for _ in indices]


@pytest.mark.parametrize(
    ("benchmark", "scenario", "slow"),
    [
        ("ssd-mobilenet", "Offline", Calibration(500.0, 0.05, 0.05, 500.0)),
        ("ssd-mobilenet", "SingleStream", Calibration(500.0, 0.05, 0.05)),
        ("ssd-resnet34", "MultiStream", Calibration(500.0, 0.05, 0.05)),
    ],
)
@pytest.mark.timing
def test_a_run_that_outruns_its_sizing_is_kept_and_rerun_from_loadgens_own_measure(tmp_path, benchmark, scenario, slow):
    """A probe that says the SUT is far slower than it is (as one taken while the machine was busy does) makes
    LoadGen run out of the work it pre-generated before min_duration: INVALID by our sizing, not the SUT's.
    The backend keeps that attempt beside the probes and reruns, sized from what LoadGen measured; the verdict
    is LoadGen's on the rerun."""
    cat = catalog.load()
    # LoadGen makes at least min_query_count queries (662 for MultiStream, early stopping's least), so a 5 s run
    # runs out only if a query takes under 7.5 ms. The stand-in's 8-sample MultiStream query of ssd-resnet34 took
    # more than that beside busy test workers; the SUT here is one that is fast whatever the machine's load
    # (0.1 ms a sample, a sleep: about 1 ms a MultiStream query with LoadGen's own work).
    backend = LocalBackend(cat, output=tmp_path, duration="5", make_model=_Quick)
    case = _perf_case(cat, benchmark, scenario)
    backend._calibrations[benchmark] = slow
    artifacts = backend.run(case, tmp_path)
    assert evaluate(case, artifacts).verdict.label == "VALID"
    kept = tmp_path / "_probes" / benchmark / f"{scenario.lower()}-short-run-1"
    # One rerun, sized from what LoadGen measured; on a crowded machine that measure can itself be low and the
    # rerun run out too (a clean-clone CI run kept short-run-2 once): the backend allows SIZING_RERUNS, in order.
    reruns = artifacts.info["sizing_reruns_kept"]
    assert 1 <= len(reruns) <= SIZING_RERUNS
    assert reruns == [str(kept.with_name(f"{scenario.lower()}-short-run-{i}")) for i in range(1, len(reruns) + 1)]
    assert "Min duration satisfied : NO" in (kept / "mlperf_log_summary.txt").read_text()
    first = parse_detail(kept / "mlperf_log_detail.txt")
    if scenario != "Offline":  # LoadGen names the cause itself for the stream scenarios
        assert any("Ran out of generated queries" in e for e in first.errors), first.errors
    now = backend._calibrations[benchmark]
    assert now.offline > slow.offline if scenario == "Offline" else min(now.latency_single, now.latency_multi) < 0.05


def test_stream_and_offline_expectations_come_from_the_fastest_the_probe_saw():
    """SingleStream/MultiStream expect half the fastest latency the probe saw (LoadGen pre-generates 2 x
    min_duration of that: 4x headroom), floored so the pre-generated queries fit their memory budget; Offline
    never expects less than OFFLINE_PEAK_SHARE of the fastest batch, whatever the LoadGen probe measured."""
    cat = catalog.load()
    model = stand_in_for(cat.benchmark("ssd-resnet34"))
    cal = Calibration(1000.0, 0.0004, 0.002, offline_throughput=100.0, peak_throughput=2000.0)
    single = user_conf(_perf_case(cat, "ssd-resnet34", "SingleStream"), model, cal, 8, None)
    assert "*.SingleStream.target_latency = 0.200000" in single
    multi = user_conf(_perf_case(cat, "ssd-resnet34", "MultiStream"), model, cal, 8, None)
    assert "*.MultiStream.target_latency = 1.000000" in multi
    offline = user_conf(_perf_case(cat, "ssd-resnet34", "Offline"), model, cal, 8, None)
    assert f"*.Offline.target_qps = {2000.0 * OFFLINE_PEAK_SHARE:.3f}" in offline
    # a full-rules run of a very fast SUT: the floor keeps LoadGen's pre-generated queries within the budget
    fast = Calibration(1000.0, 1e-6, 1e-6)
    full = user_conf(_perf_case(cat, "ssd-resnet34", "SingleStream"), model, fast, None, None)
    latency_ms = float(re.search(r"SingleStream.target_latency = ([0-9.]+)", full).group(1))
    generated = 2 * 600_000 / latency_ms
    assert generated * QUERY_BYTES <= GENERATION_BUDGET_BYTES * 1.001


@pytest.mark.timing
def test_short_runs_ask_for_early_stoppings_minimum_query_count(suites):
    """LoadGen's early-stopping estimate needs 64 (SingleStream), 662 (MultiStream) or 459 (Server) queries;
    a smoke run asks for at least those, so a slow SUT runs longer rather than going INVALID for a count we
    chose. Here a Server run at 100 QPS for 1 s: 100 queries would fail early stopping, 459 pass."""
    cat = catalog.load()
    model = stand_in_for(cat.benchmark("ssd-resnet34"))
    cal = Calibration(1000.0, 0.001, 0.001)
    for scenario, count in (("SingleStream", 100), ("MultiStream", 662), ("Server", 459), ("Offline", 1)):
        conf = user_conf(_perf_case(cat, "ssd-resnet34", scenario), model, cal, 8, None)
        assert f"*.{scenario}.min_query_count = {count}" in conf
        assert count >= EARLY_STOPPING_MIN_QUERIES.get(scenario, 1)
    result = suites.runpytest(
        "-k", "bert-99-Server-PerformanceOnly", "--mlperf-duration=1", "--mlperf-server-target-qps=100"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*VALID*bert-99-Server-PerformanceOnly-local*early stopping satisfied*"])


@pytest.mark.timing
def test_a_system_that_cannot_hold_the_bound_at_any_load_stays_invalid(tmp_path):
    """A SUT that stalls 150 ms on every call breaks bert's 130 ms bound at any load: the backend's lighter
    retries cannot help it, every attempt is kept, and LoadGen's INVALID stands. (A SUT of the test's own,
    given to the backend as a user's bring-your-own model would be.)"""
    import time

    from pytest_mlperf.backends.standin import LocalModel

    class Stalling(LocalModel):
        name = "stalling"
        batch_size = 1024

        def predict(self, indices):
            time.sleep(0.15)
            return [np.zeros(2, dtype=np.int32) for _ in indices]

    cat = catalog.load()
    case = _perf_case(cat, "bert-99", "Server")
    backend = LocalBackend(cat, output=tmp_path, duration="1", make_model=lambda _case: Stalling())
    artifacts = backend.run(case, tmp_path)
    verdict = evaluate(case, artifacts).verdict
    assert verdict.label == "INVALID" and "performance constraints not satisfied" in verdict.reason
    assert len(artifacts.info["server_attempts_kept"]) == SERVER_RETRIES
    assert artifacts.info["sizing_reruns_kept"] == []
    for kept in artifacts.info["server_attempts_kept"]:
        assert parse_detail(Path(kept) / "mlperf_log_detail.txt").get("result_perf_constraints_met") is False


@pytest.mark.timing
def test_server_load_that_breaks_the_latency_bound_is_retried_lighter_and_kept(tmp_path):
    """A probe that says the SUT is far faster than it is makes the chosen Server load break the latency bound;
    the backend keeps that attempt and runs again at a quarter of the load it scheduled. A target QPS the user
    set is never lowered: that run stands as LoadGen judged it."""
    cat = catalog.load()
    case = next(
        c
        for c in cat.local_cases("Local-CPU")
        if c.benchmark.name == "bert-99" and c.scenario.name == "Server" and c.mode == "PerformanceOnly"
    )
    backend = LocalBackend(cat, output=tmp_path / "auto", duration="1")
    backend._calibrations["bert-99"] = Calibration(100000.0, 0.0001, 0.001)
    artifacts = backend.run(case, tmp_path)
    kept = artifacts.info["server_attempts_kept"]
    assert kept and kept[0] == str(tmp_path / "auto" / "_probes" / "bert-99" / "server-attempt-1")
    first = parse_detail(Path(kept[0]) / "mlperf_log_detail.txt")
    assert first.get("result_perf_constraints_met") is False
    last = parse_detail(artifacts.path / "mlperf_log_detail.txt")
    first_qps = float(first.get("result_scheduled_samples_per_sec"))
    assert float(last.get("result_scheduled_samples_per_sec")) < first_qps / SERVER_BACKOFF * 1.2
    if len(kept) == 1:
        assert f"target_qps = {first_qps / SERVER_BACKOFF:.3f}" in (artifacts.path / "user.conf").read_text()

    fixed = LocalBackend(cat, output=tmp_path / "fixed", duration="1", server_target_qps=100000.0)
    fixed._calibrations["bert-99"] = Calibration(100000.0, 0.0001, 0.001)
    artifacts = fixed.run(case, tmp_path)
    assert artifacts.info["server_attempts_kept"] == []
    assert evaluate(case, artifacts).verdict.label == "INVALID"
    assert not (tmp_path / "fixed" / "_probes").exists()
