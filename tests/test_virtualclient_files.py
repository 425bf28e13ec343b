"""Microsoft VirtualClient's own MLPerf output through `pytest-mlperf metrics`, read as VirtualClient reads it.

NVIDIA's v2.0 harness JSON (perf_harness_summary.json, accuracy_summary.json: {config name: {benchmark: message}})
was not published, so these files are written in code/main.py's format from the published runs' own figures: the
perf key's value and validity from each run's LoadGen detail log, the accuracy from its accuracy.txt and the
threshold from the catalog, printed to 3 decimals as main.py prints them. The multi-run console captures are
published training logs laid end to end, as VirtualClient keeps a config's trials in one file.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from pytest_mlperf import catalog
from pytest_mlperf.cli import main
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.harness import NO_ACCURACY, NO_PERFORMANCE
from pytest_mlperf.logs.loadgen import parse_detail
from pytest_mlperf.logs.mllog import parse_training_log, parse_training_runs

DGX = "DGX-A100_A100-SXM-80GBx8_TRT"
DGX1 = "DGX-A100_A100-SXM-80GBx1_TRT"
TRITON = "DGX-A100_A100-SXM-80GBx8_TRT_Triton"
MAXQ = "DGX-A100_A100-SXM-80GBx8_TRT_MaxQ"
KEYS = {  # NVIDIA's v2.0 code/common/result_parser.py scenario_loadgen_log_keys
    "Offline": "result_samples_per_second",
    "Server": "result_scheduled_samples_per_sec",
    "SingleStream": "result_90.00_percentile_latency_ns",
    "MultiStream": "result_99.00_percentile_per_query_latency_ns",
}


def metrics(capsys, *paths: Path) -> tuple[int, list[dict], str]:
    """The CLI in this process: exit code, its JSON lines, its stderr. main() sets SIGPIPE for a shell pipeline;
    the test process gets its own handler back."""
    before = signal.getsignal(signal.SIGPIPE)
    try:
        code = main(["metrics", *map(str, paths)])
    finally:
        signal.signal(signal.SIGPIPE, before)
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=4))
    return path


# ---- perf_harness_summary.json --------------------------------------------------------------------------------------
# (results folder, workload, benchmark as main.py keys it): one run of each scenario, a Triton one, an INVALID one
PERF_RUNS = [
    (f"{DGX}/bert-99/Offline/performance/run_1", "custom_k_99_MaxP", "bert"),
    (f"{DGX}/bert-99.9/Server/performance/run_1", "custom_k_99_9_MaxP", "bert"),
    (f"{TRITON}/bert-99/Server/performance/run_1", "triton_k_99_MaxP", "bert"),
    (f"{DGX1}/ssd-mobilenet/SingleStream/performance/run_1", "lwis_k_99_MaxP", "ssd-mobilenet"),
    (f"{DGX1}/ssd-mobilenet/MultiStream/performance/run_1", "lwis_k_99_MaxP", "ssd-mobilenet"),
    (f"{MAXQ}/bert-99/Server/performance/ranging", "custom_k_99_MaxQ", "bert"),
]


def perf_entries(inference: Path) -> dict[str, dict[str, str]]:
    """{config name: {benchmark: message}} of PERF_RUNS as main.py writes them, plus an AccuracyOnly rnnt run under
    the first config."""
    out: dict[str, dict[str, str]] = {}
    for folder, workload, bench in PERF_RUNS:
        system, _, scenario = folder.split("/")[:3]
        detail = parse_detail(inference / folder / "mlperf_log_detail.txt")
        key = KEYS[scenario]
        out.setdefault(f"{system}-{workload}-{scenario}", {})[bench] = (
            f"{key}: {detail.get(key)}, Result is {detail.validity}"
        )
    out[f"{DGX}-custom_k_99_MaxP-Offline"]["rnnt"] = NO_PERFORMANCE
    return out


def test_perf_summary_gives_the_mode_and_the_figure_of_every_config(inference_fixtures, tmp_path, capsys):
    path = write_json(tmp_path / "perf_harness_summary.json", perf_entries(inference_fixtures))
    code, rows, err = metrics(capsys, path)
    assert code == 0, err
    expected = []
    for config, benches in perf_entries(inference_fixtures).items():
        for bench, message in benches.items():
            if message == NO_PERFORMANCE:  # AccuracyOnly: nothing measured, no rows
                continue
            key, _, rest = message.partition(": ")
            value, _, validity = rest.partition(", Result is ")
            fields = {"config": config, "benchmark": bench, "source": str(path)}
            expected += [
                {"name": f"{config}-PerformanceMode", "value": float(validity == "VALID"), "unit": "VALID/INVALID"}
                | fields,
                {"name": key, "value": float(value), "unit": "ns" if key.endswith("_ns") else ""} | fields,
            ]
    assert rows == expected
    by_name = {row["name"]: row["value"] for row in rows}
    # the published figures, and the ranging run LoadGen called INVALID
    assert by_name[f"{DGX}-custom_k_99_MaxP-Offline-PerformanceMode"] == 1.0
    assert by_name[f"{MAXQ}-custom_k_99_MaxQ-Server-PerformanceMode"] == 0.0
    assert by_name[f"{TRITON}-triton_k_99_MaxP-Server-PerformanceMode"] == 1.0
    assert [(r["name"], r["value"], r["unit"]) for r in rows if r["config"].endswith("Stream")] == [
        (f"{DGX1}-lwis_k_99_MaxP-SingleStream-PerformanceMode", 1.0, "VALID/INVALID"),
        ("result_90.00_percentile_latency_ns", 289704.0, "ns"),
        (f"{DGX1}-lwis_k_99_MaxP-MultiStream-PerformanceMode", 1.0, "VALID/INVALID"),
        ("result_99.00_percentile_per_query_latency_ns", 458950.0, "ns"),
    ]
    assert {r["benchmark"] for r in rows} == {"bert", "ssd-mobilenet"}  # the AccuracyOnly rnnt entry gave none
    assert len(rows) == 2 * len(PERF_RUNS)


# ---- accuracy_summary.json ------------------------------------------------------------------------------------------
def accuracy_message(value: float, threshold: float) -> str:
    verdict = "PASSED" if value >= threshold else "FAILED"
    return f"Accuracy = {value:.3f}, Threshold = {threshold:.3f}. Accuracy test {verdict}."


def accuracy_entries(inference: Path) -> dict[str, dict[str, str]]:
    cat = catalog.load()

    def scored(folder: str) -> float:
        return parse_accuracy(inference / folder / "accuracy" / "accuracy.txt").value

    bert99, bert999 = cat.benchmark("bert-99").threshold, cat.benchmark("bert-99.9").threshold
    return {
        f"{DGX}-custom_k_99_MaxP-Offline": {
            "bert": accuracy_message(scored(f"{DGX}/bert-99/Offline"), bert99),
            "rnnt": accuracy_message(scored(f"{DGX}/rnnt/Offline"), cat.benchmark("rnnt").threshold),
        },
        # No published run failed: a 99.9% config that scored what the 99% engine scored fails, as main.py says.
        f"{DGX}-custom_k_99_9_MaxP-Offline": {"bert": accuracy_message(scored(f"{DGX}/bert-99/Offline"), bert999)},
        f"{TRITON}-triton_k_99_MaxP-Server": {"bert": accuracy_message(scored(f"{TRITON}/bert-99/Server"), bert99)},
        f"{DGX}-custom_k_99_MaxP-Server": {"bert": NO_ACCURACY},
    }


def test_accuracy_summary_gives_the_mode_value_threshold_and_ratio(inference_fixtures, tmp_path, capsys):
    entries = accuracy_entries(inference_fixtures)
    assert entries[f"{DGX}-custom_k_99_9_MaxP-Offline"]["bert"] == (
        "Accuracy = 90.381, Threshold = 90.783. Accuracy test FAILED."
    )
    path = write_json(tmp_path / "accuracy_summary.json", entries)
    code, rows, err = metrics(capsys, path)
    assert code == 0, err
    table = {(r["config"], r["benchmark"], r["name"]): (r["value"], r["unit"]) for r in rows}
    assert all(r["source"] == str(path) for r in rows)
    offline, strict = f"{DGX}-custom_k_99_MaxP-Offline", f"{DGX}-custom_k_99_9_MaxP-Offline"
    triton = f"{TRITON}-triton_k_99_MaxP-Server"
    assert table == {
        (offline, "bert", f"{offline}-AccuracyMode"): (1.0, "PASS/FAIL"),
        (offline, "bert", "AccuracyValue"): (90.381, "F1"),
        (offline, "bert", "ThresholdValue"): (89.965, "F1"),
        (offline, "bert", "AccuracyThresholdRatio"): (90.381 / 89.965, "ratio"),
        (offline, "rnnt", f"{offline}-AccuracyMode"): (1.0, "PASS/FAIL"),
        (offline, "rnnt", "AccuracyValue"): (92.555, "100-WER"),
        (offline, "rnnt", "ThresholdValue"): (91.622, "100-WER"),
        (offline, "rnnt", "AccuracyThresholdRatio"): (92.555 / 91.622, "ratio"),
        (strict, "bert", f"{strict}-AccuracyMode"): (0.0, "PASS/FAIL"),
        (strict, "bert", "AccuracyValue"): (90.381, "F1"),
        (strict, "bert", "ThresholdValue"): (90.783, "F1"),
        (strict, "bert", "AccuracyThresholdRatio"): (90.381 / 90.783, "ratio"),
        (triton, "bert", f"{triton}-AccuracyMode"): (1.0, "PASS/FAIL"),
        (triton, "bert", "AccuracyValue"): (90.376, "F1"),
        (triton, "bert", "ThresholdValue"): (89.965, "F1"),
        (triton, "bert", "AccuracyThresholdRatio"): (90.376 / 89.965, "ratio"),
    }
    assert len(rows) == len(table)  # the PerformanceOnly entry gave no rows, and none came twice
    assert [r["name"] for r in rows[:4]] == [
        f"{offline}-AccuracyMode",
        "AccuracyValue",
        "ThresholdValue",
        "AccuracyThresholdRatio",
    ]


def test_a_failed_value_printed_equal_to_its_threshold_is_no_contradiction(tmp_path, capsys):
    """main.py compares unrounded figures and prints 3 decimals: 90.7826 < 90.7831 prints as 90.783 both."""
    config = f"{DGX}-custom_k_99_9_MaxP-Server"
    message = "Accuracy = 90.783, Threshold = 90.783. Accuracy test FAILED."
    path = write_json(tmp_path / "accuracy_summary.json", {config: {"bert": message}})
    code, rows, err = metrics(capsys, path)
    assert code == 0, err
    assert [(r["name"], r["value"]) for r in rows] == [
        (f"{config}-AccuracyMode", 0.0),
        ("AccuracyValue", 90.783),
        ("ThresholdValue", 90.783),
        ("AccuracyThresholdRatio", 1.0),
    ]


# ---- NVIDIA's printed blocks give the same metrics through the same builder ----------------------------------------
def test_printed_blocks_give_what_the_two_json_files_give(inference_fixtures, tmp_path, capsys):
    perf, acc = perf_entries(inference_fixtures), accuracy_entries(inference_fixtures)
    lines = ["[I] Finished running actions", ""]
    for banner, entries in (("Perf harness results:", perf), ("Accuracy results:", acc)):
        lines += [f"======================= {banner} =======================", ""]
        for config, benches in entries.items():
            lines += [f"{config}:", *(f"    {bench}: {message}" for bench, message in benches.items()), ""]
    stdout = tmp_path / "stdout.txt"
    stdout.write_text("\n".join(lines) + "\n")
    perf_path = write_json(tmp_path / "perf_harness_summary.json", perf)
    acc_path = write_json(tmp_path / "accuracy_summary.json", acc)
    code, printed, err = metrics(capsys, stdout)
    assert code == 0, err
    code, from_json, err = metrics(capsys, perf_path, acc_path)
    assert code == 0, err

    def unsourced(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "source"} for row in rows]

    assert unsourced(printed) == unsourced(from_json)
    assert {r["source"] for r in printed} == {str(stdout)}
    assert sum(r["name"].endswith("-PerformanceMode") for r in printed) == len(PERF_RUNS)
    assert sum(r["name"].endswith("-AccuracyMode") for r in printed) == 4


# ---- what contradicts itself is refused, naming the file ------------------------------------------------------------
SERVER = f"{DGX}-custom_k_99_MaxP-Server"
REFUSED = [
    pytest.param(
        "perf_harness_summary.json",
        {SERVER: {"bert": "result_samples_per_second: 25792.1, Result is VALID"}},
        f"[{SERVER}/bert]: perf key 'result_samples_per_second' is not LoadGen's result key for a Server config",
        id="offline-key-in-a-server-config",
    ),
    pytest.param(
        "perf_harness_summary.json",
        {f"{DGX1}-lwis_k_99_MaxP-SingleStream": {"ssd-mobilenet": f"{KEYS['SingleStream']}: nan, Result is VALID"}},
        "'nan' is not a finite number",
        id="nan-latency",
    ),
    pytest.param(
        "accuracy_summary.json",
        {SERVER: {"bert": "Accuracy = 89.000, Threshold = 89.965. Accuracy test PASSED."}},
        f"[{SERVER}/bert]: says PASSED but accuracy 89 < threshold 89.965: it contradicts itself",
        id="passed-below-threshold",
    ),
    pytest.param(
        "accuracy_summary.json",
        {SERVER: {"bert": "Accuracy = 90.381, Threshold = 89.965. Accuracy test FAILED."}},
        "says FAILED but accuracy 90.381 > threshold 89.965: it contradicts itself",
        id="failed-above-threshold",
    ),
    pytest.param(
        "accuracy_summary.json",
        {SERVER: {"bert": "Accuracy = NaN, Threshold = 89.965. Accuracy test FAILED."}},
        "'NaN' is not a finite number",
        id="nan-accuracy",
    ),
    pytest.param(
        "accuracy_summary.json",
        {SERVER: {"bert": "Accuracy = 0.000, Threshold = 0.000. Accuracy test PASSED."}},
        "threshold 0 is not above 0",
        id="zero-threshold",
    ),
    pytest.param(
        "perf_harness_summary.json",
        {f"{DGX}-Server": {"bert": "result_scheduled_samples_per_sec: 25792.1, Result is VALID"}},
        f"config name '{DGX}-Server' is not '<system name>-<harness>_<k_99|k_99_9>_<MaxP|MaxQ>-<Offline|Server|",
        id="config-without-workload",
    ),
    pytest.param(
        "accuracy_summary.json",
        {f"{DGX}-custom_k_99_MaxP-Batch": {"bert": NO_ACCURACY}},
        f"config name '{DGX}-custom_k_99_MaxP-Batch' is not",
        id="config-with-unknown-scenario",
    ),
    pytest.param(
        "perf_harness_summary.json",
        {SERVER: {"bert-99.9": "result_scheduled_samples_per_sec: 13089, Result is VALID"}},
        "benchmark 'bert-99.9' has accuracy target 99.9, its config 99",
        id="benchmark-of-another-accuracy-target",
    ),
]


@pytest.mark.parametrize(("name", "data", "says"), REFUSED)
def test_a_contradiction_is_refused_naming_the_file(tmp_path, capsys, name, data, says):
    path = write_json(tmp_path / name, data)
    code, rows, err = metrics(capsys, path)
    assert code == 2 and rows == []
    assert f"pytest-mlperf metrics: {path}" in err
    assert says in err


def test_a_contradiction_in_the_printed_blocks_names_the_file_and_line(tmp_path, capsys):
    stdout = tmp_path / "stdout.txt"
    stdout.write_text(
        "======================= Perf harness results: =======================\n\n"
        f"{SERVER}:\n    bert: result_samples_per_second: 25792.1, Result is VALID\n\n"
    )
    code, rows, err = metrics(capsys, stdout)
    assert code == 2 and rows == []
    assert f"pytest-mlperf metrics: {stdout}:4: perf key 'result_samples_per_second' is not LoadGen's" in err


# ---- a console capture of several training runs ---------------------------------------------------------------------
FUJITSU = "gx_A100-SXMx8_pytorch_NGC_22.09/bert"  # full console logs, each with its {'e2e_time': ...} line
DELL_ABORTED = "16xXE8545x4A100-SXM-40GB/bert/result_5.txt"  # aborted at 0.71967; ' N: ' rank prefixes; summary line
NVIDIA = "dgxa100_ngc22.09_pytorch/bert/result_0.txt"  # MLLOG lines only, no summary line


def capture(folder: Path, parts: list[str], path: Path) -> Path:
    path.write_text("".join((folder / part).read_text() for part in parts))
    return path


def test_each_run_of_a_capture_and_the_means_over_them(training_fixtures, tmp_path, capsys):
    parts = [f"{FUJITSU}/result_0.txt", DELL_ABORTED, f"{FUJITSU}/result_1.txt"]
    path = capture(training_fixtures, parts, tmp_path / "mlperf_training.log")
    alone = [parse_training_log(training_fixtures / part) for part in parts]
    code, rows, err = metrics(capsys, path)
    assert code == 0, err
    runs = [r for r in rows if "run" in r]
    means = [r for r in rows if "aggregate" in r]
    assert len(runs) + len(means) == len(rows)
    assert [(r["run"], r["status"], r["verdict"], r["value"]) for r in runs if r["name"] == "converged"] == [
        (1, "success", "CONVERGED", 1.0),
        (2, "aborted", "NOT CONVERGED", 0.0),
        (3, "success", "CONVERGED", 1.0),
    ]
    for number, run in enumerate(alone, start=1):
        own = {r["name"]: r["value"] for r in runs if r["run"] == number}
        assert own["eval_mlm_accuracy"] == run.last_accuracy
        assert own["time_to_train"] == run.time_to_train_s
        assert {k: own[k] for k in run.summary} == run.summary  # its own summary line, not a neighbour's
    assert [r["name"] for r in runs if r["run"] == 2 and r["name"].startswith("samples_")] == ["samples_seen"]
    figures = {
        "eval_mlm_accuracy": [run.last_accuracy for run in alone],
        **{key: [run.summary[key] for run in alone] for key in alone[0].summary},
    }
    assert [(r["name"], r["aggregate"], r["runs"]) for r in means] == [(name, "mean", 3) for name in figures]
    for row in means:
        values = figures[row["name"]]
        assert row["value"] == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert "run" not in row and row["source"] == str(path)
    mean = {r["name"]: r for r in means}
    assert mean["e2e_time"]["value"] == pytest.approx((1063.4499187469482 + 248.7845733165741 + 999.1349744796753) / 3)
    assert (mean["e2e_time"]["unit"], mean["training_sequences_per_second"]["unit"]) == ("s", "sequences/s")


def test_means_are_over_the_runs_that_have_the_figure(training_fixtures, tmp_path, capsys):
    """NVIDIA's own logs print no summary line: the e2e_time mean is the one run's that did."""
    path = capture(training_fixtures, [NVIDIA, f"{FUJITSU}/result_1.txt"], tmp_path / "capture.txt")
    code, rows, err = metrics(capsys, path)
    assert code == 0, err
    assert not any(r["name"] == "e2e_time" and r.get("run") == 1 for r in rows)
    means = {r["name"]: (r["value"], r["runs"]) for r in rows if r.get("aggregate") == "mean"}
    second = parse_training_log(training_fixtures / FUJITSU / "result_1.txt")
    first = parse_training_log(training_fixtures / NVIDIA)
    assert means["e2e_time"] == (second.summary["e2e_time"], 1)
    assert means["eval_mlm_accuracy"][1] == 2
    assert means["eval_mlm_accuracy"][0] == pytest.approx((first.last_accuracy + second.last_accuracy) / 2)


def test_a_file_of_one_run_gives_what_it_gave(training_fixtures, tmp_path, capsys):
    """Every published trial is one run, exactly as parse_training_log reads it, and its rows carry no run index."""
    for log in sorted(training_fixtures.glob("*/bert/result_*.txt")):
        assert parse_training_runs(log) == [parse_training_log(log)], log
    code, rows, err = metrics(capsys, training_fixtures / DELL_ABORTED)
    assert code == 0, err
    assert {r["name"]: r["value"] for r in rows}["converged"] == 0.0
    assert all(set(r) == {"name", "value", "unit", "source"} for r in rows)


def _cut_before_run_stop(folder: Path, part: str) -> str:
    lines = (folder / part).read_text().splitlines(keepends=True)
    stop = next(i for i, line in enumerate(lines) if '"key": "run_stop"' in line)
    return "".join(lines[:stop])


@pytest.mark.parametrize(
    ("crashed", "then", "opener"),
    [
        (f"{FUJITSU}/result_0.txt", f"{FUJITSU}/result_1.txt", "cache_clear"),  # the next trial's clock is later
        (DELL_ABORTED, f"{FUJITSU}/result_0.txt", "run_start"),  # an earlier clock: its run_start after evaluations
    ],
)
def test_a_run_without_run_stop_before_the_next_is_named(training_fixtures, tmp_path, capsys, crashed, then, opener):
    head = _cut_before_run_stop(training_fixtures, crashed)
    path = tmp_path / "capture.log"
    path.write_text(head + (training_fixtures / then).read_text())
    start = 1 + next(i for i, line in enumerate(head.splitlines()) if '"key": "run_start"' in line)
    code, rows, err = metrics(capsys, path)
    assert code == 2 and rows == []
    assert f"{path}:" in err
    assert f"run 1 (run_start at line {start}) has no run_stop before the next run begins with {opener}" in err
    assert "a crashed or cut-off trial" in err


def test_a_summary_line_belongs_to_the_run_before_it(training_fixtures, tmp_path):
    """A summary line above its own run_stop belongs to no run; a second one after a run is refused too."""
    lines = (training_fixtures / FUJITSU / "result_0.txt").read_text().splitlines(keepends=True)
    stop = next(i for i, line in enumerate(lines) if '"key": "run_stop"' in line)
    summary = next(i for i, line in enumerate(lines) if line.startswith("{'e2e_time'"))
    early = lines[:stop] + [lines[summary]] + lines[stop:summary] + lines[summary + 1 :]
    second = (training_fixtures / FUJITSU / "result_1.txt").read_text()
    path = tmp_path / "capture.log"
    path.write_text("".join(early) + second)
    with pytest.raises(ParseError, match=rf"capture.log:{stop + 1}: run summary line before any run's run_stop"):
        parse_training_runs(path)
    twice = lines + [lines[summary]]
    path.write_text("".join(twice) + second)
    with pytest.raises(ParseError, match=rf"capture.log:{len(lines) + 1}: a second run summary line for run 1 of 2"):
        parse_training_runs(path)


def test_a_broken_run_in_a_capture_is_named_by_its_number(training_fixtures, tmp_path):
    path = tmp_path / "capture.log"
    first = (training_fixtures / FUJITSU / "result_0.txt").read_text()
    path.write_text(first + _cut_before_run_stop(training_fixtures, f"{FUJITSU}/result_1.txt"))
    second = path.read_text().splitlines()[first.count("\n") :]
    opens = first.count("\n") + 1 + next(i for i, line in enumerate(second) if '"key": "cache_clear"' in line)
    with pytest.raises(ParseError, match=rf"capture.log: run 2 of 2 \(from line {opens}\): no run_stop event"):
        parse_training_runs(path)
