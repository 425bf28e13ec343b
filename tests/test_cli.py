"""pytest-mlperf, the console script: metrics of files and folders as JSON lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_metadata import vc_performance, write

from pytest_mlperf.logs.loadgen import parse_detail

SCRIPT = [sys.executable, "-m", "pytest_mlperf.cli"]


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_metrics_of_a_summary_file(inference_fixtures):
    path = inference_fixtures / "DGX-A100_A100-SXM-80GBx8_TRT/bert-99/Server/performance/run_1/mlperf_log_summary.txt"
    proc = _run("metrics", path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {r["name"]: r for r in rows}
    assert by_name["result_scheduled_samples_per_sec"]["value"] == 25792.11
    assert by_name["99.00 percentile latency (ns)"] == {
        "name": "99.00 percentile latency (ns)",
        "value": 86591792.0,
        "unit": "ns",
        "source": str(path),
    }


def test_metrics_of_a_training_folder(training_fixtures):
    proc = _run("metrics", training_fixtures / "dgxh100_preview")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0
    assert {r["case"] for r in rows} == {"bert-gbs768-result_3"}
    assert {r["verdict"] for r in rows} == {"NOT CONVERGED"}
    assert {r["name"]: r["value"] for r in rows}["eval_mlm_accuracy"] == 0.7197263240814209


def test_metrics_of_the_whole_inference_tree(inference_fixtures):
    proc = _run("metrics", inference_fixtures)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len({r["case"] for r in rows}) == 59
    ranging = [r for r in rows if r["case"].endswith("-ranging")]
    assert {r["verdict"] for r in ranging} == {"INVALID"}


def test_bad_paths_and_bad_files(tmp_path):
    proc = _run("metrics", tmp_path / "absent")
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr
    broken = tmp_path / "mlperf_log_summary.txt"
    broken.write_text("MLPerf Results Summary\nScenario : Offline\n")
    proc = _run("metrics", broken)
    assert proc.returncode == 2 and f"{broken}: truncated summary" in proc.stderr


def test_systems_lists_the_catalog():
    proc = _run("systems")
    assert proc.returncode == 0
    assert "A100-SXM-80GBx4    DGX-Station-A100_A100-SXM-80GBx4 " in proc.stdout
    assert len(proc.stdout.splitlines()) == 11


# ---- files under other names, NVIDIA's other result files -----------------------------------------------------------
DGX = "DGX-A100_A100-SXM-80GBx8_TRT"
NO_PERF = "Cannot find performance result. Maybe you are running in AccuracyOnly mode."


def _rows(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_an_accuracy_only_run_in_perf_harness_summary_json(tmp_path):
    """Today's failure: the CLI stopped at NVIDIA's AccuracyOnly perf message. It has no figure: nothing to print."""
    path = tmp_path / "perf_harness_summary.json"
    offline, server = f"{DGX}-custom_k_99_MaxP-Offline", f"{DGX}-custom_k_99_MaxP-Server"
    path.write_text(
        json.dumps(
            {
                offline: {"bert-99": NO_PERF},
                server: {"bert-99": "result_scheduled_samples_per_sec: 25792.1, Result is VALID"},
            }
        )
    )
    proc = _run("metrics", path)
    assert proc.returncode == 0, proc.stderr
    assert [(r["name"], r["value"], r["config"]) for r in _rows(proc)] == [
        (f"{server}-PerformanceMode", 1.0, server),
        ("result_scheduled_samples_per_sec", 25792.1, server),
    ]


def test_renamed_files_are_read_by_what_they_hold(inference_fixtures, training_fixtures, tmp_path):
    run = inference_fixtures / DGX / "bert-99" / "Server" / "performance" / "run_1"
    accuracy = inference_fixtures / DGX / "bert-99" / "Offline" / "accuracy" / "accuracy.txt"
    copies = {
        "summary_copy.txt": run / "mlperf_log_summary.txt",
        "detail_copy.log": run / "mlperf_log_detail.txt",
        "scores.txt": accuracy,
        "trial.log": training_fixtures / "dgxh100_preview" / "bert" / "result_3.txt",
    }
    for name, source in copies.items():
        shutil.copy(source, tmp_path / name)
    (tmp_path / "node7_perf_harness_summary.json").write_text(
        json.dumps(
            {f"{DGX}-custom_k_99_MaxP-Offline": {"bert-99": "result_samples_per_second: 27971.4, Result is VALID"}}
        )
    )
    write(tmp_path, vc_performance(), "node7_metadata.json")
    names = [*copies, "node7_perf_harness_summary.json", "node7_metadata.json"]
    proc = _run("metrics", *(tmp_path / name for name in names))
    assert proc.returncode == 0, proc.stderr
    by_source = {}
    for row in _rows(proc):
        by_source.setdefault(Path(row["source"]).name, {})[row["name"]] = row["value"]
    assert by_source["summary_copy.txt"]["result_scheduled_samples_per_sec"] == 25792.11
    assert by_source["detail_copy.log"]["result_scheduled_samples_per_sec"] == 25792.1
    assert by_source["scores.txt"]["AccuracyValue"] == 90.38087866142499
    assert by_source["trial.log"]["eval_mlm_accuracy"] == 0.7197263240814209
    assert by_source["node7_perf_harness_summary.json"] == {
        f"{DGX}-custom_k_99_MaxP-Offline-PerformanceMode": 1.0,
        "result_samples_per_second": 27971.4,
    }
    assert by_source["node7_metadata.json"] == {
        "DGX-A100_A100-SXM4-40GBx8_TRT-custom_k_99_MaxP-Server-PerformanceMode": 1.0,
        "result_completed_samples_per_sec": 25405.6,
    }
    for name, kind in [
        ("summary_copy.txt", "LoadGen summary (mlperf_log_summary.txt)"),
        ("detail_copy.log", "LoadGen detail log (mlperf_log_detail.txt)"),
        ("scores.txt", "accuracy script output (accuracy.txt)"),
        ("trial.log", "MLPerf training log (MLLOG lines)"),
        ("node7_perf_harness_summary.json", "NVIDIA perf_harness_summary.json"),
        ("node7_metadata.json", "NVIDIA metadata.json"),
    ]:
        assert f"pytest-mlperf metrics: note: {tmp_path / name}: read as {kind}, chosen by content (" in proc.stderr


def test_a_file_that_is_no_known_log_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Ran bert on node7 on Tuesday.\n")
    both = tmp_path / "odd.json"  # perf and accuracy messages in one object: never guessed at
    both.write_text(
        json.dumps(
            {
                "X": {"bert": "result_samples_per_second: 1.0, Result is VALID"},
                "Y": {"bert": "Accuracy = 1.0, Threshold = 1.0. Accuracy test PASSED."},
            }
        )
    )
    proc = _run("metrics", notes, both)
    assert proc.returncode == 2 and proc.stdout == ""
    for path in (notes, both):
        assert (
            f"pytest-mlperf metrics: {path}: {path.name!r} is not a known log name and its content matches none of:"
            in proc.stderr
        )
    assert "NVIDIA metadata.json" in proc.stderr


def _metadata_beside(inference_fixtures, tmp_path, **change) -> Path:
    """A published Offline run's folder, with the metadata.json NVIDIA's later harness would write beside it."""
    folder = tmp_path / "run"
    shutil.copytree(inference_fixtures / DGX / "bert-99" / "Offline" / "performance" / "run_1", folder)
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    value = detail.get("result_samples_per_second")
    data = vc_performance() | {
        "config_name": f"{DGX}-custom_k_99_MaxP-Offline",
        "system_name": DGX,
        "scenario": "Offline",
        "scenario_key": "result_samples_per_second",
        "result_samples_per_second": value,
        "effective_min_duration_ms": detail.get("effective_min_duration_ms"),
        "effective_min_query_count": detail.get("effective_min_query_count"),
        "summary_string": f"result_samples_per_second: {value}, Result is VALID",
    }
    del data["result_completed_samples_per_sec"]
    return write(folder, data | change)


def test_metadata_json_is_held_against_the_logs_beside_it(inference_fixtures, tmp_path):
    path = _metadata_beside(inference_fixtures, tmp_path)
    proc = _run("metrics", path)
    assert proc.returncode == 0, proc.stderr
    assert {r["name"]: r["value"] for r in _rows(proc)} == {
        f"{DGX}-custom_k_99_MaxP-Offline-PerformanceMode": 1.0,
        "result_samples_per_second": 27971.4,
    }
    path = _metadata_beside(inference_fixtures, tmp_path / "2", effective_min_duration_ms=60000)
    proc = _run("metrics", path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{path}: disagrees with the logs beside it: effective_min_duration_ms: {path} says 60000, " in proc.stderr


def test_what_cannot_be_read_says_so_whatever_its_name(tmp_path):
    fifo = tmp_path / "node7_pipe"
    os.mkfifo(fifo)
    binary = tmp_path / "node7.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    proc = _run("metrics", fifo, binary)
    assert proc.returncode == 2
    assert f"{fifo}: is not a regular file (a FIFO, socket or device), so it is not read" in proc.stderr
    assert f"{binary}: 'node7.bin' is not a known log name and its content matches none of:" in proc.stderr
