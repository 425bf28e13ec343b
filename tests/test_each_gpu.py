"""--mlperf-each-gpu: a one-GPU system's cases run on every GPU of the machine as their own tests (ids @gpuN),
each under an exclusive lease of its GPU, and GPUs that fall behind the others are flagged.

The machine's GPUs come from the fake NVML library (tests/fake_nvml, eight A100-SXM4-80GB answering the real
nvidia-ml-py); the model is a user's model supplied through pytest_mlperf_make_sut that reads the GPU it was
given from CUDA_VISIBLE_DEVICES, as a CUDA model would, and takes longer per sample on GPU 3 (a card running
slow). LoadGen, pytest-xdist and the locks are real. (The nvidia backend's containers, one per GPU, are tested in
test_nvidia_backend.py.)"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from paced import IMPORT

from conftest import A100X8, fake_gpu_env, run_pytest_child, suite_project
from pytest_mlperf.gate.fleet import peer_report
from pytest_mlperf.machine.native import gpu_locks

A30X2 = "count=2;name=NVIDIA A30;memory_mib=24576;pci=0x20B710DE;power_w=165"

CONFTEST = (
    IMPORT
    + '''
import os, time
from pathlib import Path

from pytest_mlperf.backends.standin import LocalModel, stand_in_for

SEEN = Path(__file__).parent / "seen"


class OnOneGpu(LocalModel):
    """The stand-in's answers in 5 ms a sample (20 ms on GPU 3), as a GPU's work leaves the CPU free (eight workers
    share two cores here): a batch ends at a deadline on the model's own timeline (tests/paced.py), the stand-in's
    own work (under 0.1 ms a sample) inside it. Every batch notes its GPU, process and time."""

    def __init__(self, inner, gpu):
        self.inner, self.gpu = inner, gpu
        self.name = f"on-gpu-{gpu}"
        self.total_samples, self.performance_samples = inner.total_samples, inner.performance_samples
        self.batch_size = inner.batch_size
        self.timeline = Timeline()

    def load(self, indices):
        self.timeline.begin_run()  # LoadGen loads the samples before each run

    def predict(self, indices):
        assert os.environ.get("CUDA_VISIBLE_DEVICES") == self.gpu, "the model ran outside its GPU's run"
        self.timeline.book(len(indices) * (0.020 if self.gpu == "3" else 0.005))
        with (SEEN / f"gpu{self.gpu}").open("a") as fh:
            fh.write(f"{os.getpid()} {time.time():.6f}\\n")
        answers = self.inner.predict(indices)
        self.timeline.wait()
        return answers

    def score(self, responses):
        return self.inner.score(responses)


def pytest_mlperf_make_sut(config, case):
    SEEN.mkdir(exist_ok=True)
    return OnOneGpu(stand_in_for(case.benchmark), os.environ["CUDA_VISIBLE_DEVICES"])
'''
)


def _project(tmp_path: Path) -> Path:
    return suite_project(tmp_path, CONFTEST)


def _run(fake_nvml, spec: str, project: Path, *args: str, timeout: int = 600):
    cmd = [sys.executable, "-m", "pytest", "--sku", "A100-SXM-80GBx1", "--mlperf-each-gpu", *args]
    return run_pytest_child(cmd, project, fake_gpu_env(fake_nvml, spec), timeout=timeout)


@pytest.mark.timing
@pytest.mark.quiet  # beside busy test workers healthy GPUs' runs lost whole seconds: four of eight flagged, once
def test_eight_workers_eight_gpus_and_the_slow_one_flagged(fake_nvml, tmp_path):
    """-n 8 over eight GPUs: 2 cases x 8 GPUs, every test on its own GPU, no GPU ever used by two workers at once,
    and GPU 3 (a quarter as fast) flagged, which fails the run although each of its tests passed.

    The spread is 40 %: eight workers share two cores here; with six busy loops beside them the healthy GPUs
    measured up to 15 % behind their median (a 2-s run's start waits for a core) while GPU 3 measured 70 % behind.
    At 20 % a healthy GPU on a crowded CI machine was once flagged with it. Beside the other test workers, though,
    runs of healthy GPUs lost whole seconds (four of eight flagged, once): the test runs beside quiet tests only,
    which mostly sleep."""
    project = _project(tmp_path)
    result = _run(
        fake_nvml,
        A100X8,
        project,
        "-n",
        "8",
        "-m",
        "ssd_mobilenet and offline",
        "--mlperf-duration=2",
        "--mlperf-spread=0.4",
        "--mlperf-telemetry-interval=0.2",
        "--mlperf-json=each.json",
        "--junitxml=junit.xml",
        "-rA",
    )
    out = result.stdout
    assert "16 passed" in out, out[-3000:]
    assert result.returncode == 1, out[-3000:]  # every test passed; the GPU comparison failed the run
    table = out[out.find("MLPerf GPUs of this node") :]
    assert "MLPerf GPUs of this node, outliers first (spread 40%)" in out, out[-3000:]
    assert "MLPerf: GPU(s) gpu3 more than 40% behind the others on a case, so this run fails" in out, table

    records = {r["id"]: r for r in json.loads((project / "each.json").read_text())["results"]}
    assert len(records) == 16
    perf = {gpu: records[f"ssd-mobilenet-Offline-PerformanceOnly-local@gpu{gpu}"] for gpu in range(8)}
    assert {r["info"]["gpu"]["index"] for r in perf.values()} == set(range(8))
    assert len({r["info"]["gpu"]["uuid"] for r in perf.values()}) == 8
    assert perf[3]["info"]["gpu"]["serial"] == "1650121000003"
    assert all(r["info"]["telemetry"]["gpus"] == [gpu] for gpu, r in perf.items())  # the leased GPU alone
    assert {r["info"]["model"] for r in records.values()} == {f"on-gpu-{gpu}" for gpu in range(8)}
    peers = json.loads((project / "each.json").read_text())["peers"][0]
    assert peers["kind"] == "GPU" and list(peers["slow"]) == ["gpu3"] and peers["order"][0] == "gpu3"

    # each GPU's batches came from one process at a time: the runs on a GPU never interleave
    seen = project / "seen"
    workers = set()
    for gpu in range(8):
        lines = sorted(
            (float(t), pid)
            for pid, t in (line.split() for line in (seen / f"gpu{gpu}").read_text().split("\n") if line)
        )
        switches = sum(1 for (_, a), (_, b) in zip(lines, lines[1:], strict=False) if a != b)
        assert switches <= 1, f"GPU {gpu}: batches of two processes interleaved"  # two cases, one after the other
        workers |= {pid for _, pid in lines}
    assert len(workers) > 1  # the GPUs really were spread over several workers

    suite = ElementTree.parse(project / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert "gpu3" in props["mlperf:slow_gpus"]
    case = next(c for c in suite.iter("testcase") if c.get("name").endswith("PerformanceOnly-local@gpu5]"))
    mine = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert mine["mlperf:gpu_index"] == "5" and mine["mlperf:gpu_serial"] == "1650121000005"


@pytest.mark.parametrize(
    "spec, args, message",
    [
        (
            A100X8,
            ["--sku", "A100-SXM-80GBx8"],
            "runs a one-GPU system's cases on each GPU (A100-SXM-80GBx8 has 8 GPUs)",
        ),
        (A30X2, [], "GPU 0 (NVIDIA A30) is not this system's GPU"),
        (None, [], "needs the machine's GPUs through NVML"),
    ],
)
def test_each_gpu_usage_errors(fake_nvml, tmp_path, spec, args, message):
    project = _project(tmp_path)
    lib = fake_nvml if spec else None
    cmd = [sys.executable, "-m", "pytest", "--sku", "A100-SXM-80GBx1", "--mlperf-each-gpu", *args]
    result = run_pytest_child(cmd, project, fake_gpu_env(lib, spec))
    assert result.returncode == 4 and message in result.stderr, result.stderr


def test_a_lease_is_reentrant_in_its_thread_and_exclusive_across_threads(tmp_path):
    """The test's lease of its GPU, then the backend's own locks on it (shared or exclusive) inside: no wait on
    itself. Another thread (as another process would) waits until the lease ends."""
    order = []
    with gpu_locks(["gpu-a"], exclusive=True, folder=tmp_path):
        with gpu_locks(["gpu-a"], exclusive=False, folder=tmp_path), gpu_locks(["gpu-a"], True, folder=tmp_path):
            order.append("nested")

        def other():
            with gpu_locks(["gpu-a"], exclusive=False, folder=tmp_path):
                order.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        order.append("lease ends")
    thread.join(10)
    assert order == ["nested", "lease ends", "other"]
    with gpu_locks(["gpu-b"], exclusive=False, folder=tmp_path), pytest.raises(RuntimeError, match="held shared"):
        with gpu_locks(["gpu-b"], exclusive=True, folder=tmp_path):
            pass


def test_peers_outliers_first():
    metric = {"name": "result_samples_per_second", "unit": "samples/s", "higher_is_better": True}
    entries = [(f"x@gpu{i}", "passed", {**metric, "value": 100.0}) for i in range(4)]
    entries[2] = ("x@gpu2", "passed", {**metric, "value": 80.0})
    entries += [("y@gpu1", "failed", None), ("y@fleet", "passed", None)]
    report = peer_report("GPU", [f"gpu{i}" for i in range(4)], entries, 0.05)
    assert report.order() == ["gpu1", "gpu2", "gpu0", "gpu3"]  # failed, slow, then the rest
    assert list(report.slow) == ["gpu2"] and report.status["gpu1"]["failed"] == 1
    assert report.lines()[0].startswith("gpu1") and "FAILED" in report.lines()[0]
