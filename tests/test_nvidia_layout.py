"""Replay of NVIDIA's working layout: build/logs/<timestamp>/<system>/<benchmark>/<Scenario>/.

The LoadGen logs are the published ones, laid out the way `make run_harness` leaves them. NVIDIA's
perf_harness_summary.json / accuracy_summary.json / printed blocks were not published, so the tests write
them in the documented format (scripts/print_harness_result.py and code/main.py of NVIDIA's v2.0 code).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from pytest_mlperf import catalog
from pytest_mlperf.backends import Artifacts, ResultMissing
from pytest_mlperf.backends.results import ResultsBackend
from pytest_mlperf.judge.evaluate import evaluate
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.harness import NO_ACCURACY, parse_stdout

SYSTEM = "DGX-A100_A100-SXM-80GBx8_TRT"
CUSTOM = f"{SYSTEM}-custom_k_99_MaxP-Offline"
LWIS = f"{SYSTEM}-lwis_k_99_MaxP-Offline"


def _stamp(logs: Path, stamp: str, src: Path, perf: dict | None, acc: dict | None) -> Path:
    folder = logs / stamp / SYSTEM / "bert-99" / "Offline"
    folder.mkdir(parents=True)
    for item in src.iterdir():
        shutil.copy(item, folder / item.name)
    if perf is not None:
        (logs / stamp / "perf_harness_summary.json").write_text(json.dumps(perf))
    if acc is not None:
        (logs / stamp / "accuracy_summary.json").write_text(json.dumps(acc))
    return folder


@pytest.fixture
def build_logs(inference_fixtures, tmp_path) -> Path:
    logs = tmp_path / "build" / "logs"
    base = inference_fixtures / SYSTEM / "bert-99" / "Offline"
    _stamp(
        logs,
        "2022.02.13-11.54.08",
        base / "performance" / "run_1",
        {CUSTOM: {"bert-99": "result_samples_per_second: 27971.4, Result is VALID"}},
        {CUSTOM: {"bert-99": NO_ACCURACY}},
    )
    _stamp(
        logs,
        "2022.02.13-13.02.51",
        base / "accuracy",
        None,
        {CUSTOM: {"bert-99": "Accuracy = 90.381, Threshold = 89.965. Accuracy test PASSED."}},
    )
    _stamp(
        logs,
        "2022.02.14-08.00.00",
        base / "performance" / "run_1",
        {LWIS: {"bert-99": "result_samples_per_second: 27971.4, Result is VALID"}},
        None,
    )
    return tmp_path


def _case(harness: str, mode: str) -> catalog.InferenceCase:
    cat = catalog.load()
    return next(
        c
        for c in cat.inference_cases("A100-SXM-80GBx8")
        if c.benchmark.name == "bert-99" and c.scenario.name == "Offline" and c.harness == "custom" and c.mode == mode
    ).with_(harness=harness)  # NVIDIA registers no LWIS BERT; a build/logs tree may still hold one (a site's own)


def test_cases_are_found_by_config_name(build_logs):
    backend = ResultsBackend(build_logs, catalog.load())
    perf = backend.run(_case("custom", "PerformanceOnly"), build_logs)
    assert perf.path.parts[-4] == "2022.02.13-11.54.08" and perf.harness_perf.validity == "VALID"
    lwis = backend.run(_case("lwis", "PerformanceOnly"), build_logs)
    assert lwis.path.parts[-4] == "2022.02.14-08.00.00"
    acc = backend.run(_case("custom", "AccuracyOnly"), build_logs)
    assert acc.path.parts[-4] == "2022.02.13-13.02.51" and acc.harness_accuracy.passed is True
    result = evaluate(_case("custom", "AccuracyOnly"), acc)
    assert result.verdict.ok and result.verdict.label == "PASS"
    with pytest.raises(ResultMissing, match=r"no AccuracyOnly result for .*lwis_k_99_MaxP-Offline; looked for"):
        backend.run(_case("lwis", "AccuracyOnly"), build_logs)


def test_harness_and_loadgen_disagreeing_fails(build_logs):
    stamp = build_logs / "build" / "logs" / "2022.02.13-11.54.08"
    (stamp / "perf_harness_summary.json").write_text(
        json.dumps({CUSTOM: {"bert-99": "result_samples_per_second: 27971.4, Result is INVALID"}})
    )
    backend = ResultsBackend(build_logs, catalog.load())
    case = _case("custom", "PerformanceOnly")
    verdict = evaluate(case, backend.run(case, build_logs)).verdict
    assert not verdict.ok and "but NVIDIA's harness printed Result is INVALID" in verdict.reason


def test_discovery_reads_harness_from_the_summary_json(build_logs):
    cases = ResultsBackend(build_logs, catalog.load()).cases("inference", None)
    ids = sorted(c.id for c in cases)
    assert ids == [
        f"{SYSTEM}/bert-99-Offline-AccuracyOnly-custom",
        f"{SYSTEM}/bert-99-Offline-PerformanceOnly-custom",
        f"{SYSTEM}/bert-99-Offline-PerformanceOnly-lwis",
    ]


def test_suite_over_build_logs(pytester, build_logs):
    (pytester.path / "test_inference.py").write_text((ROOT / "suites" / "test_inference.py").read_text())
    result = pytester.runpytest(
        "-m",
        "bert and offline",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={build_logs / 'build' / 'logs'}",
        "-p",
        "no:cacheprovider",
    )
    # custom perf + acc pass; the triton and bert-99.9 cases have no run there (and NVIDIA registers no LWIS
    # BERT, so the lwis run in the tree is not a case of the SKU)
    result.assert_outcomes(passed=2, skipped=6)


def test_printed_blocks(tmp_path):
    stdout = tmp_path / "stdout.txt"
    stdout.write_text(
        "\n".join(
            [
                "[I] Finished running actions",
                "",
                "======================= Perf harness results: =======================",
                "",
                f"{CUSTOM}:",
                "    bert-99: result_samples_per_second: 27971.4, Result is VALID",
                "",
                f"{SYSTEM}-custom_k_99_MaxP-Server:",
                "    bert-99: result_scheduled_samples_per_sec: 25792.11, Result is INVALID",
                "",
                "======================= Accuracy results: =======================",
                "",
                f"{CUSTOM}:",
                f"    bert-99: {NO_ACCURACY}",
                "",
                "make[1]: Leaving directory '/work'",
            ]
        )
        + "\n"
    )
    summary = parse_stdout(stdout)
    assert summary.perf[CUSTOM]["bert-99"].value == 27971.4
    server = summary.perf[f"{SYSTEM}-custom_k_99_MaxP-Server"]["bert-99"]
    assert (server.key, server.validity) == ("result_scheduled_samples_per_sec", "INVALID")
    assert summary.accuracy[CUSTOM]["bert-99"].passed is None


def test_nvidias_raised_accuracy_failure_is_its_message(inference_fixtures):
    """main.py's check_accuracy raises "Accuracy = v, Threshold = t. Accuracy test FAILED!": read back as the
    message NVIDIA would have written, it holds the verdict to NVIDIA's own: a passing accuracy.txt beside a FAILED
    check of another figure is no verdict at all, naming both."""
    from pytest_mlperf.logs.harness import raised_accuracy_failure

    output = (
        'Traceback (most recent call last):\n  File "code/main.py", line 497, in check_accuracy\n'
        "RuntimeError: Accuracy = 87.555, Threshold = 91.622. Accuracy test FAILED!\n"
        "make: *** [Makefile:699: run_harness] Error 1\n"
    )
    message = raised_accuracy_failure(output)
    assert (message.value, message.threshold, message.passed) == (87.555, 91.622, False)
    assert raised_accuracy_failure("RuntimeError: Run harness failed!\n") is None
    assert raised_accuracy_failure("Accuracy = 92.1, Threshold = 91.6. Accuracy test PASSED.") is None
    case = next(
        c for c in catalog.load().inference_cases("A100-SXM-80GBx8") if c.id == "rnnt-Offline-AccuracyOnly-custom"
    )
    folder = inference_fixtures / "DGX-A100_A100-SXM-80GBx8_TRT" / "rnnt" / "Offline" / "accuracy"
    with pytest.raises(ParseError, match=r"says Accuracy = 87.555, .*accuracy.txt scores 100-WER 92.555: they are not"):
        evaluate(case, Artifacts(folder, harness_accuracy=message))
