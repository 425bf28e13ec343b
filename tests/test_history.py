"""pytest-mlperf history: saved baselines in time order, their fingerprints, and each case's change points
(Apache Otava's E-divisive means), on a series built from one real saved baseline (a replay of NVIDIA's published
DGX A100 results) copied with a seeded 1 % noise, a day apart, and a 7 % step down after a driver change."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pytest_mlperf.cli import main as cli

BERT = "bert-99-Offline-PerformanceOnly-custom"
FIGURE = "result_samples_per_second"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, inference_fixtures) -> dict:
    """One baseline the plugin saved from a replay of the published bert-99 and rnnt runs."""
    pytester_dir = tmp_path_factory.mktemp("saved")
    tree = pytester_dir / "tree" / "DGX-A100_A100-SXM-80GBx8_TRT"
    for bench in ("bert-99", "rnnt"):
        shutil.copytree(inference_fixtures / "DGX-A100_A100-SXM-80GBx8_TRT" / bench, tree / bench)
    import subprocess
    import sys

    from conftest import ROOT

    argv = [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={pytester_dir}", "-p", "no:cacheprovider"]
    argv += ["-m", "inference", "--sku", "A100-SXM-80GBx8", f"--mlperf-results={tree.parent}", "-k", "custom"]
    argv += ["--mlperf-save=r00", f"--mlperf-baseline-dir={pytester_dir / 'b'}", "-q"]
    done = subprocess.run(argv, cwd=pytester_dir, capture_output=True, text=True, timeout=300)
    path = pytester_dir / "b" / "r00.json"
    assert path.is_file(), done.stdout[-3000:]
    data = json.loads(path.read_text())
    assert data["started"] and data["results"]
    return data


def _series(saved: dict, folder: Path, step_at: int = 8, runs: int = 12, step: float = 0.93) -> None:
    """runs copies of the saved baseline, a day apart; bert-99 Offline's figure with 1 % noise, times `step` from
    run `step_at` on (where the fingerprint's driver changes too); every other figure unchanged."""
    rng = np.random.default_rng(11)
    start = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(runs):
        data = json.loads(json.dumps(saved))
        data["started"] = (start + datetime.timedelta(days=k)).isoformat(timespec="seconds")
        data["fingerprint"]["driver_version"] = "535.104" if k < step_at else "550.54"
        for record in data["results"]:
            if record["id"] != BERT:
                continue
            for metric in record["metrics"]:
                if metric["name"] == FIGURE:
                    factor = float(np.exp(rng.normal(0.0, 0.01))) * (step if k >= step_at else 1.0)
                    metric["value"] *= factor
                    if "samples" in metric:  # a baseline of repeated runs: each run's figure moves with it
                        metric["samples"] = [v * factor for v in metric["samples"]]
        # written in another order than their times: the listing orders by the saved start time
        (folder / f"run-{(k * 7) % runs:02d}.json").write_text(json.dumps(data))


def test_history_finds_the_injected_step_where_the_driver_changed(saved, tmp_path, capsys):
    _series(saved, tmp_path / "b")
    code = cli(["history", str(tmp_path / "b"), "--case", "bert-99-Offline-*", "--fail-on-worse"])
    out = capsys.readouterr().out
    assert code == 1, out
    lines = out.splitlines()
    assert lines[0] == f"12 saved runs in {tmp_path / 'b'}, oldest first:"
    names = [line.split()[0] for line in lines[1:] if line.startswith("  run-")]
    assert names == [f"run-{(k * 7) % 12:02d}" for k in range(12)]  # by time, not by name
    assert "      fingerprint driver_version: 535.104 -> 550.54" in lines
    changes = [line for line in lines if "CHANGE POINT" in line]
    assert len(changes) == 1, out
    assert changes[0].startswith(f"    CHANGE POINT (WORSE) at run-{(8 * 7) % 12:02d} (after run-{(7 * 7) % 12:02d})")
    assert "(-7." in changes[0] or "(-6." in changes[0], changes[0]


def test_a_steady_history_has_no_change_point(saved, tmp_path, capsys):
    _series(saved, tmp_path / "b", step=1.0)
    assert cli(["history", str(tmp_path / "b"), "--fail-on-worse"]) == 0
    out = capsys.readouterr().out
    assert "CHANGE POINT" not in out
    assert f"{BERT}  {FIGURE} samples/s: " in out  # the default figure: each case's headline
    assert "rnnt-Offline-AccuracyOnly-custom  AccuracyValue 100-WER: " in out


def test_history_of_a_folder_without_baselines_says_why(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.json").write_text("{")
    assert cli(["history", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "no saved baselines" in err and "SKIPPED broken.json" in err
    assert cli(["history", str(tmp_path / "nowhere")]) == 2
    assert "not a folder of saved baselines" in capsys.readouterr().err
