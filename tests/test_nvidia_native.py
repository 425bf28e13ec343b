"""NVIDIA's make targets run natively, as on a Jetson (Orin, Xavier NX), where NVIDIA's Makefile has no
container (SUPPORT_DOCKER=0); and the GPU locks that keep a performance run alone on its GPUs.

Stand-ins, at the outermost boundary only: no Jetson exists here, so the host's L4T release file, device tree
and kernel arch come from a stand-in root (conftest.host_root, read under PYTEST_MLPERF_SYSROOT), and the
stand-in image's scripts (tests/standin_image) come first on PATH: `uname` says aarch64, `python3` plays
NVIDIA's main.py with NVIDIA's published Orin logs from ../shared/upstream's results/, and `make` plays the
targets that need the internet. NVIDIA's real Makefile runs link_dirs, generate_engines and run_harness with
this machine's GNU make, taking the Jetson path (IS_SOC=1). The plugin, the process handling, the parsers and
the verdicts are real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, host_root, nvidia_checkout
from pytest_mlperf.machine.native import gpu_locks

ORIN_DEVKIT = "NVIDIA Orin Jetson-Small Developer Kit"  # the name NVIDIA's KnownGPU.Orin matches


@pytest.fixture
def jetson(tmp_path, nvidia_tree):
    """A checkout with NVIDIA's Makefile, configs/ and code/common/, the stand-in make on PATH, and a scratch."""
    # what `uname -p` says on a Jetson, and what NVIDIA's detection calls it
    code, scratch = nvidia_checkout(nvidia_tree, tmp_path, system="Orin", arch="aarch64")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("make", "python3", "uname"):
        shutil.copy(ROOT / "tests" / "standin_image" / name, bin_dir / name)
        (bin_dir / name).chmod(0o755)
    return code, scratch, bin_dir


def _pytest(tmp_path, nvidia_tree, jetson, model: str, *args: str) -> subprocess.CompletedProcess:
    code, scratch, bin_dir = jetson
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "FAKE_NVML_SPEC")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        PYTEST_MLPERF_SYSROOT=str(host_root(tmp_path / "host", cpu="ARMv8 Processor rev 1 (v8l)", jetson=model)),
        STANDIN_FIXTURES=str(nvidia_tree / "results"),
        DOCKER_HOST=f"unix://{tmp_path}/no-docker-here.sock",  # a container would fail: there must be none
    )
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", f"--rootdir={tmp_path}"]
    cmd += ["--mlperf-backend=nvidia", "--sku=Orin", f"--mlperf-nvidia-code={code}", f"--mlperf-scratch={scratch}"]
    return subprocess.run([*cmd, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_orin_runs_nvidias_targets_natively(tmp_path, nvidia_tree, jetson):
    code, scratch, _ = jetson
    result = _pytest(tmp_path, nvidia_tree, jetson, ORIN_DEVKIT, "-k", "ssd-mobilenet-Offline", "--mlperf-json=o.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "natively (Jetson: NVIDIA's Makefile has no container there)" in result.stdout
    records = {r["id"]: r for r in json.loads((tmp_path / "o.json").read_text())["results"]}
    assert {i: r["verdict"] for i, r in records.items()} == {
        "ssd-mobilenet-Offline-AccuracyOnly-lwis": "PASS",
        "ssd-mobilenet-Offline-PerformanceOnly-lwis": "VALID",
    }
    log = Path(next(a for a in records["ssd-mobilenet-Offline-PerformanceOnly-lwis"]["artifacts"] if "harness" in a))
    text = log.read_text()
    stamp = text.split("LOG_DIR=", 1)[1].split()[0]
    assert stamp.startswith(str(code / "build" / "logs")) and Path(stamp).is_dir()  # the host's own path
    # NVIDIA's Makefile ran here: run_harness tees main.py into $(LOG_DIR)/stdout.txt; link_dirs linked the scratch
    assert "[stand-in main.py] Result: result_samples_per_second" in (Path(stamp) / "stdout.txt").read_text()
    assert (code / "build" / "data").resolve() == (scratch / "data").resolve()
    assert (code / "build" / "bin" / "harness").exists()  # make build ran in the checkout itself
    assert (scratch / "models" / "ssd-mobilenet" / "stand-in").read_text().splitlines() == ["download_model"]


def test_a_production_orin_devkit_is_refused_as_nvidias_code_would(tmp_path, nvidia_tree, jetson):
    """NVIDIA's v2.0 KnownGPU.Orin matches 'Orin' or the pre-production kit's name only: on a production
    'Jetson AGX Orin Developer Kit' its main.py finds no known system and runs nothing. Said before any step."""
    code, scratch, _ = jetson
    result = _pytest(tmp_path, nvidia_tree, jetson, "Jetson AGX Orin Developer Kit", "-k", "ssd-mobilenet-Offline")
    assert result.returncode == 1
    assert "NVIDIA's system detection will not run this host as Orin (Orin)" in result.stdout
    assert not (code / "build" / "bin").exists() and not (scratch / "models" / "ssd-mobilenet").exists()


def test_a_machine_that_is_not_a_jetson_is_told_so(tmp_path, nvidia_tree, jetson):
    code, scratch, bin_dir = jetson
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "FAKE_NVML_SPEC")}
    env["PYTEST_MLPERF_SYSROOT"] = str(host_root(tmp_path / "x86"))
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", f"--rootdir={tmp_path}"]
    cmd += ["--mlperf-backend=nvidia", "--sku=Orin", f"--mlperf-nvidia-code={code}", f"--mlperf-scratch={scratch}"]
    result = subprocess.run(
        [*cmd, "-k", "ssd-mobilenet-Offline-AccuracyOnly"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "--sku Orin: expects a Jetson (Orin), but this machine has no etc/nv_tegra_release" in result.stdout


def _hold(keys: list[str], exclusive: bool, folder: Path, events: list, name: str, seconds: float) -> None:
    with gpu_locks(keys, exclusive, folder):
        events.append(("in", name, time.monotonic()))
        time.sleep(seconds)
        events.append(("out", name, time.monotonic()))


def test_gpu_locks_share_steps_and_keep_a_measurement_alone(tmp_path):
    """Shared holders overlap each other; an exclusive holder of any of their GPUs waits for them and they for it;
    a holder of other GPUs is not held up."""
    events: list = []
    runs = [
        threading.Thread(target=_hold, args=(["gpu-a", "gpu-b"], False, tmp_path, events, "engines", 0.6)),
        threading.Thread(target=_hold, args=(["gpu-b"], False, tmp_path, events, "data", 0.6)),
    ]
    for thread in runs:
        thread.start()
    time.sleep(0.2)
    measure = threading.Thread(target=_hold, args=(["gpu-b", "gpu-a"], True, tmp_path, events, "measure", 0.4))
    other = threading.Thread(target=_hold, args=(["gpu-c"], True, tmp_path, events, "other", 0.1))
    measure.start()
    other.start()
    for thread in [*runs, measure, other]:
        thread.join(timeout=10)
    at = {(kind, name): t for kind, name, t in events}
    assert at[("in", "data")] < at[("out", "engines")]  # two shared holders at once
    assert at[("in", "measure")] >= max(at[("out", "engines")], at[("out", "data")])
    assert at[("out", "other")] < at[("in", "measure")]  # another GPU's holder ran meanwhile
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-a.lock", "gpu-b.lock", "gpu-c.lock"]
