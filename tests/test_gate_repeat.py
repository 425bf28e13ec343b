"""--mlperf-repeat and the gate's decision, end to end: the local backend with the real LoadGen and a user's model
(pytest_mlperf_make_sut) whose service time is a sleep until a deadline on its own timeline (tests/paced.py), so
its speed is what the test sets, not how busy the two cores here are: 1 ms a sample
on one thread, times a drift that takes it 5 % slower over 3 s and back over the next 3 s (a triangle wave), times
GATE_SLOWER (a slower build). GATE_PERIOD sets the cycle: 6 s in benchmarks/gate_drift.py (the 5 % every 3 s a
user asked about, runs of 6 s), 2 s here with runs of 2 s (a whole cycle a run, a third of the time).

The model is the stand-in at the outermost boundary (no GPU here); LoadGen, the backend, the baseline files and
the gate are the real ones."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from paced import IMPORT

from conftest import run_pytest_child, suite_project
from pytest_mlperf.catalog import load
from pytest_mlperf.gate.baseline import compare_records, parse_fail_on
from pytest_mlperf.gate.baseline import load as load_baseline
from pytest_mlperf.gate.stats import POOLED
from pytest_mlperf.judge.evaluate import CaseResult, combine_runs
from pytest_mlperf.judge.metrics import Metric
from pytest_mlperf.judge.verdict import Verdict

CONFTEST = (
    IMPORT
    + '''
import os
import threading
import time

import numpy as np

from pytest_mlperf.backends.standin import LocalModel

LOCK = threading.Lock()
SLOWER = float(os.environ.get("GATE_SLOWER", "1"))
PERIOD = float(os.environ.get("GATE_PERIOD", "6"))  # s: one drift cycle
TIMELINE = Timeline()


def speed(now):
    """1.0, down to 0.95 over half a period, back to 1.0 over the other half (3 s and 3 s by default)."""
    phase = (now % PERIOD) / (PERIOD / 2)
    return 1.0 - 0.05 * (phase if phase <= 1.0 else 2.0 - phase)


class Drifting(LocalModel):
    name = "drifting"

    def load(self, indices):
        TIMELINE.begin_run()  # LoadGen loads the samples before each run

    def predict(self, indices):
        """Busy until the batch's end on the model's own timeline (tests/paced.py)."""
        with LOCK:
            TIMELINE.book(0.001 * len(indices) * SLOWER / speed(time.time()))
            TIMELINE.wait()
        return [np.zeros(1, dtype=np.float32) for _ in indices]


def pytest_mlperf_make_sut(config, case):
    return Drifting()
'''
)
CASE = "bert-99-Offline-PerformanceOnly-local"
FIGURE = "result_samples_per_second"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return suite_project(tmp_path, CONFTEST)


def _run(project: Path, name: str, *args: str, slower: float = 1.0):
    # each run's logs in a folder of its own in the project: the default, pytest's basetemp, is removed by
    # pytest once three later pytest runs (other tests' child runs) have made theirs
    out = f"--mlperf-output=out-{Path(name).stem}"
    cmd = [sys.executable, "-m", "pytest", "-k", CASE, f"--mlperf-json={name}", out, *args]
    env = {**os.environ, "GATE_SLOWER": str(slower), "GATE_PERIOD": "2"}
    result = run_pytest_child(cmd, project, env, timeout=900)
    path = project / name
    records = json.loads(path.read_text())["results"] if path.exists() else []
    return result, records


def _said(result, pattern: str) -> None:
    """A line of the run's output matches the fnmatch pattern."""
    lines = result.stdout.splitlines()
    assert any(fnmatch.fnmatch(line, pattern) for line in lines), f"{pattern!r} not in:\n{result.stdout[-3000:]}"


def _decision(record: dict) -> dict:
    return record["info"]["baseline"]["decisions"][0]


def _save(project: Path, *args: str) -> Path:
    saved, records = _run(project, "base.json", "--mlperf-save=base", *args)
    assert saved.returncode == 0, saved.stdout[-3000:]
    return project / ".mlperf-baselines" / "base.json"


GATE = ("--mlperf-baseline=base", "--mlperf-fail-on=throughput:5%")


@pytest.mark.quiet  # beside busy workers this model's runs lost whole seconds: unchanged, -18 % (CI -41..+15)
def test_a_drifting_model_unchanged_is_no_regression_and_15_percent_slower_is_one(project):
    """Five runs a side: an unchanged build is no regression, a build 15 % slower fails naming the regression and
    its interval. Every run is kept (performance/run_1 .. run_5) and in the JSON."""
    base = _save(project, "--mlperf-repeat=5", "--mlperf-duration=2")
    saved = json.loads(base.read_text())["results"][0]
    figure = next(m for m in saved["metrics"] if m["name"] == FIGURE)
    assert len(figure["samples"]) == 5 and 900 < figure["value"] < 1050, figure

    same, records = _run(project, "same.json", *GATE, "--mlperf-repeat=5", "--mlperf-duration=2")
    assert same.returncode == 0, same.stdout[-3000:]
    decision = _decision(records[0])
    assert decision["outcome"] == "no regression" and decision["runs_before"] == decision["runs_now"] == 5
    assert decision["low"] > -0.05, decision
    folder = Path(records[0]["info"]["folder"])
    assert sorted(p.name for p in folder.parent.iterdir()) == [f"run_{k}" for k in range(1, 6)]
    assert [r["run"] for r in records[0]["info"]["runs"]] == [1, 2, 3, 4, 5]
    _said(same, f"ok * {CASE}  {FIGURE}: median * -> * samples/s; mean change *: no regression (5 *")

    slow, records = _run(project, "slow.json", *GATE, "--mlperf-repeat=5", "--mlperf-duration=2", slower=1 / 0.85)
    assert slow.returncode == 1, slow.stdout[-3000:]
    decision = _decision(records[0])
    assert decision["outcome"] == "regression" and decision["high"] < -0.05
    assert decision["change"] == pytest.approx(-0.15, abs=0.04)  # beside busy test workers, a little more
    _said(slow, f"*REGRESSED vs baseline base: {FIGURE}: median * -> * samples/s; mean change -1*% (95 % CI -*")


@pytest.mark.quiet  # beside busy workers this model's runs lost whole seconds: unchanged, -18 % (CI -41..+15)
def test_auto_stops_on_a_decision_and_on_its_budget(project):
    """auto: a clear regression is decided at the third run; against a baseline whose runs spread widely, the
    interval stays wide and the budget ends the case inconclusive, which fails it (and only warns when asked)."""
    base = _save(project, "--mlperf-repeat=3", "--mlperf-duration=2")
    slow, records = _run(
        project, "auto.json", *GATE, "--mlperf-repeat=auto", "--mlperf-duration=2", "--junitxml=j.xml", slower=1.4
    )
    assert slow.returncode == 1, slow.stdout[-3000:]
    repeat = records[0]["info"]["repeat"]
    assert repeat["runs"] == 3 and repeat["stopped"] == "decided", repeat
    decision = _decision(records[0])
    assert decision["outcome"] == "regression"
    props = {p.get("name"): p.get("value") for p in ElementTree.parse(project / "j.xml").getroot().iter("property")}
    prefix = f"mlperf:gate.{FIGURE}"
    assert props[f"{prefix}.decision"] == "regression" and props[f"{prefix}.runs"] == "3 vs 3"
    assert float(props[f"{prefix}.ci_low"]) <= float(props[f"{prefix}.change"]) <= float(props[f"{prefix}.ci_high"])
    assert float(props[f"{prefix}.ci_high"]) < -0.05

    # the baseline's three runs made to spread widely (each figure, with its median, as the file keeps them)
    data = json.loads(base.read_text())
    for metric in data["results"][0]["metrics"]:
        if metric["name"] == FIGURE:
            value = metric["value"]
            metric["samples"] = [value, value * 1.4, value * 0.7]
    base.write_text(json.dumps(data))
    budget = ("--mlperf-repeat=auto", "--mlperf-duration=2", "--mlperf-gate-budget=0.12")
    undecided, records = _run(project, "budget.json", *GATE, *budget)
    assert undecided.returncode == 1, undecided.stdout[-3000:]
    repeat = records[0]["info"]["repeat"]
    assert repeat["stopped"].startswith("the budget (0.12 min)") and repeat["runs"] < 5, repeat
    assert _decision(records[0])["outcome"] == "inconclusive"
    _said(undecided, f"*INCONCLUSIVE vs baseline base: {FIGURE}: median *: inconclusive (3 *")

    warned, records = _run(project, "warn.json", *GATE, *budget, "--mlperf-inconclusive=warn")
    assert warned.returncode == 0, warned.stdout[-3000:]
    assert any("INCONCLUSIVE vs baseline base (warn only)" in note for note in records[0]["info"]["notes"])


def test_an_invalid_run_among_repeats_makes_the_case_invalid_naming_it():
    def run(ok: bool, value: float) -> CaseResult:
        verdict = Verdict(
            ok, "VALID: ..." if ok else "INVALID: min duration not satisfied", "VALID" if ok else "INVALID"
        )
        return CaseResult("x", "inference", verdict, [Metric(FIGURE, value, "samples/s", True)])

    result = combine_runs("x", [run(True, 100.0), run(False, 90.0), run(True, 104.0)])
    assert not result.verdict.ok and result.verdict.label == "INVALID"
    assert result.verdict.reason == "INVALID: run 2 of 3: INVALID: min duration not satisfied"
    assert result.metrics[0].value == 100.0 and result.metrics[0].samples == (100.0, 90.0, 104.0)
    assert result.metrics[0].to_dict()["samples"] == [100.0, 90.0, 104.0]
    assert "samples" not in Metric(FIGURE, 1.0, "samples/s", True).to_dict()  # one run: the old layout


def test_a_baseline_saved_before_repeats_gates_repeated_runs_as_one_sample(tmp_path):
    """A baseline file of the old layout (one value per metric, no samples) loads, and its figure is one run
    against this run's several: the pooled interval, the spread measured on this side."""
    old = {
        "catalog": "inference-v2.0",
        "sku": "A100-SXM-80GBx8",
        "results": [
            {
                "id": CASE,
                "verdict": "VALID",
                "metrics": [{"name": FIGURE, "value": 1000.0, "unit": "samples/s", "higher_is_better": True}],
            }
        ],
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = load_baseline(str(tmp_path / "old.json"), tmp_path)
    now = {
        "id": CASE,
        "verdict": "VALID",
        "metrics": [
            {
                "name": FIGURE,
                "value": 1001.0,
                "unit": "samples/s",
                "higher_is_better": True,
                "samples": [1001.0, 996.0, 1004.0, 1000.0],
            }
        ],
    }
    comp = compare_records(loaded.record(CASE), now, parse_fail_on("throughput:5%"))
    decision = comp.decisions[0]
    assert decision["method"] == POOLED and decision["runs_before"] == 1 and decision["runs_now"] == 4
    assert decision["outcome"] == "no regression" and not comp.regressed


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([1000.0, "fast"], "samples (result_samples_per_second): 'fast' is not a number"),
        ([1000.0, 0.0, 900.0], "holds 0: it cannot gate"),
        ([], "is not a list of the runs' figures"),
        ([900.0, 950.0, 2000.0], "value (result_samples_per_second) is 1000, the median of its 3 runs is 950"),
    ],
)
def test_a_baseline_whose_runs_contradict_it_is_refused(tmp_path, samples, message):
    from pytest_mlperf.gate.baseline import BaselineError

    record = {"id": CASE, "verdict": "VALID", "metrics": [{"name": FIGURE, "value": 1000.0, "unit": "samples/s"}]}
    record["metrics"][0].update(higher_is_better=True, samples=samples)
    (tmp_path / "b.json").write_text(json.dumps({"results": [record]}))
    with pytest.raises(BaselineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_baseline(str(tmp_path / "b.json"), tmp_path)


def test_class_rules_gate_the_scenarios_headline_figure_only():
    """throughput:5% gates Offline's samples/s, not the completed-samples rate beside it; latency:5% gates
    SingleStream's 90th percentile, not its max or min; a rule naming a figure gates that figure."""
    from pytest_mlperf.gate.baseline import gated_metrics

    catalog = load()
    single = catalog.scenario("SingleStream")
    assert single.perf_key == "result_90.00_percentile_latency_ns"
    metrics = [
        {"name": "x-SingleStream-PerformanceMode", "value": 1.0, "unit": "VALID/INVALID", "higher_is_better": None},
        {"name": single.perf_key, "value": 1e6, "unit": "ns", "higher_is_better": False},
        {"name": "result_max_latency_ns", "value": 3e6, "unit": "ns", "higher_is_better": False},
        {"name": "result_min_latency_ns", "value": 0.5e6, "unit": "ns", "higher_is_better": False},
    ]
    assert list(gated_metrics(metrics, parse_fail_on("throughput:5%,latency:5%"))) == [single.perf_key]
    named = gated_metrics(metrics, parse_fail_on("latency:5%,result_max_latency_ns:50%"))
    assert {name: rule.describe() for name, rule in named.items()} == {
        single.perf_key: "latency:5%",
        "result_max_latency_ns": "result_max_latency_ns:50%",
    }


def test_a_case_no_rule_gates_says_so_beside_ok():
    """throughput:5% gates nothing of a SingleStream case: its line says "nothing gated", and the largest move of
    its figures is named as not gated (a bare "ok ... +52 %" read as a checked figure)."""
    from pytest_mlperf.gate.baseline import Comparison, Delta, format_comparison

    moved = Delta("result_max_latency_ns", "ns", "latency", False, 1e6, 1.526e6)
    lines = format_comparison([Comparison("ssd-resnet34-SingleStream-PerformanceOnly-local", [moved])], [], [])
    assert lines == [
        "ok         ssd-resnet34-SingleStream-PerformanceOnly-local  nothing gated (largest change, not gated: "
        "result_max_latency_ns +52.6%)"
    ]
    gated = Comparison("bert-99-SingleStream-PerformanceOnly-local", [moved], gated=1)
    assert format_comparison([gated], [], [])[0].endswith("  worst result_max_latency_ns +52.6%")


def test_peers_with_repeats_are_outliers_only_when_their_interval_is_beyond_the_spread():
    """A node's GPUs, each run five times: gpu3 30 % slower with tight runs is flagged; gpu2 6 % slower with runs
    that spread 20 % is inconclusive, said so and not flagged; the rest are clear."""
    from pytest_mlperf.gate.fleet import compare_peers, format_fleet

    def figure(runs):
        return {
            "name": FIGURE,
            "unit": "samples/s",
            "higher_is_better": True,
            "value": sorted(runs)[2],
            "samples": runs,
        }

    healthy = [1000.0, 1008.0, 995.0, 1003.0, 998.0]
    peers = {
        "gpu0": figure(healthy),
        "gpu1": figure([v * 1.002 for v in healthy]),
        "gpu2": figure([940.0, 1130.0, 760.0, 1010.0, 880.0]),
        "gpu3": figure([v * 0.7 for v in healthy]),
    }
    row = compare_peers(CASE, peers, 0.05)
    assert list(row.behind) == ["gpu3"]
    assert list(row.undecided) == ["gpu2"] and "inconclusive" in row.undecided["gpu2"]
    assert {peer: d["outcome"] for peer, d in row.decisions.items()} == {
        "gpu0": "no regression",
        "gpu1": "no regression",
        "gpu2": "inconclusive",
        "gpu3": "regression",
    }
    lines, slow = format_fleet(list(peers), [row], 0.05)
    assert slow == ["gpu3"] and any(line.startswith(f"INCONCLUSIVE {CASE}: gpu2 against the others:") for line in lines)
    # one run each: the point rule against the median, as before
    single = {peer: {**m, "samples": [m["value"]]} for peer, m in peers.items()}
    assert list(compare_peers(CASE, single, 0.05).behind) == ["gpu3"]


def test_the_gate_chart_draws_both_sides_and_escapes_what_it_shows():
    from pytest_mlperf.report.charts import gate_chart

    decision = {
        "metric": "<script>alert(1)</script>",
        "unit": "samples/s",
        "outcome": "regression",
        "limit": 0.05,
        "higher_is_better": True,
        "confidence": 0.95,
        "low": -0.2,
        "high": -0.1,
        "samples_before": [1000.0, 1010.0, 990.0],
        "samples_now": [850.0, 860.0, 845.0],
    }
    svg = gate_chart(decision)
    assert svg.count("<circle") == 6 and "class='interval'" in svg and "stroke-dasharray" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert gate_chart({**decision, "samples_now": []}) == ""
