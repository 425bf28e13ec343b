"""pytest-mlperf, the console script: metrics of files and folders as JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys

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
