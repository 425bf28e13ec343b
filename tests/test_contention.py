"""The contention watcher on this machine's real /proc: an idle run, a run the harness keeps busy itself, a run
next to busy neighbours; a /proc that is absent or garbled; and the GPU branch through a stand-in for pynvml
(the fake libnvidia-ml in tests/fake_nvml answers no process-list calls, so NVML's process lists cannot come
from it)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_mlperf.machine import contention
from pytest_mlperf.machine.contention import Watcher, describe, reasons

CORES = len(os.sched_getaffinity(0))
BUSY = "while True: pass"
ONE_CPU_SECOND = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1: pass"
NUMBERS = (
    "wall_s",
    "cpu_s",
    "cpu_share",
    "host_busy_cores",
    "others_cores",
    "others_runnable_mean",
    "cpu_pressure",
    "cgroup_cpu_pressure",
    "steal",
)


def _watch(seconds: float, **kwargs) -> dict:
    watcher = Watcher(interval=0.1, **kwargs).start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # a light harness: a little work, mostly waiting
        sum(range(2000))
        time.sleep(0.01)
    return watcher.stop()


def _finite(summary: dict) -> None:
    for key in NUMBERS:
        value = summary[key]
        assert value is None or (isinstance(value, float | int) and math.isfinite(value)), (key, value)


def _quiet(summary: dict) -> bool:
    """Nobody else on the machine during the window (other sessions may share it)."""
    return (summary["others_cores"] or 0) < 0.3 and (summary["others_runnable_mean"] or 0) < 0.5


def _idle_window(seconds: float, tries: int = 12, **kwargs) -> dict:
    summary = {}
    for _ in range(tries):
        summary = _watch(seconds, **kwargs)
        if _quiet(summary):
            return summary
        time.sleep(2)
    pytest.skip(f"the machine never went idle: other processes used {summary['others_cores']} cores")


def _detached_busy_loop() -> int:
    """A neighbour: a busy loop that is not this process's descendant (its shell parent exits at once)."""
    out = subprocess.run(
        ["sh", "-c", f"'{sys.executable}' -c '{BUSY}' >/dev/null 2>&1 </dev/null & echo $!"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(out.stdout.strip())


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.alone
def test_an_idle_run_is_not_contended():
    summary = _idle_window(2.0)
    _finite(summary)
    assert summary["contended"] is False and summary["reasons"] == [] and describe(summary) == ""
    assert 1.5 < summary["wall_s"] < 10 and summary["cores"] == CORES and summary["samples"] >= 5
    assert summary["cpu_share"] < 0.5 and summary["others_runnable_max"] is not None
    assert summary["cpu_pressure"] is not None and 0 <= summary["cpu_pressure"] <= 1  # PSI is there on this host


@pytest.mark.alone
def test_a_harness_that_queues_behind_itself_is_not_contended():
    """Its children are its own: one busy loop more than it has cores keeps them full and its tasks waiting
    (high CPU pressure), and still no other process took anything from it."""
    children = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(CORES + 1)]
    try:
        time.sleep(0.3)
        summary = {}
        for _ in range(12):
            summary = _watch(2.0)
            if summary["others_cores"] < 0.3:
                break
            time.sleep(2)
        else:
            pytest.skip(f"the machine never went idle: other processes used {summary['others_cores']} cores")
    finally:
        for child in children:
            child.kill()
            child.wait()
    _finite(summary)
    assert summary["cpu_share"] > 0.8 * CORES, summary
    assert summary["cpu_pressure"] is None or summary["cpu_pressure"] > 0.3, summary
    assert summary["contended"] is False, summary


@pytest.mark.alone
def test_busy_neighbours_on_every_core_make_a_run_contended():
    pids: list[int] = []
    try:
        for _ in range(CORES):
            pids.append(_detached_busy_loop())
        time.sleep(0.3)
        summary = _watch(3.0)
    finally:
        for pid in pids:
            _kill(pid)
    _finite(summary)
    assert summary["contended"] is True, summary
    assert summary["others_cores"] > 0.8 * CORES
    assert summary["reasons"][0] == f"other processes used {summary['others_cores']:.1f} of {CORES} cores"
    assert summary["others_runnable_mean"] >= CORES - 0.5  # the others kept every CPU's queue taken
    assert describe(summary).startswith("other processes used ")


@pytest.mark.alone
def test_children_count_once_and_the_run_s_own_processes_are_not_others():
    """A child that ends and is reaped inside the window counts once (its time is in the parent's count of reaped
    children); processes marked as the run's own (own_cgroups, asked anew: here a mark every process carries)
    are not neighbours, and keep the time they had used when last seen after they end unreaped by the harness."""
    watcher = Watcher(interval=0.1).start()
    subprocess.run([sys.executable, "-c", ONE_CPU_SECOND], check=True)
    summary = watcher.stop()
    assert 0.9 < summary["cpu_s"] < 1.6, summary

    every = Path(f"/proc/{os.getpid()}/cgroup").read_text().splitlines()[0]
    pids: list[int] = []
    try:
        for _ in range(CORES):
            pids.append(_detached_busy_loop())
        time.sleep(0.3)
        watcher = Watcher(interval=0.1, own_cgroups=lambda: [every]).start()
        time.sleep(contention.TREE_EVERY + 0.5)
    finally:
        for pid in pids:
            _kill(pid)
    time.sleep(0.5)
    summary = watcher.stop()
    _finite(summary)
    assert summary["contended"] is False, summary
    assert summary["cpu_s"] > 0.7 * CORES * contention.TREE_EVERY, summary


def test_no_proc_gives_none_and_no_verdict(tmp_path):
    summary = _watch(0.5, proc=tmp_path / "absent", cgroup_root=tmp_path / "no-cgroup")
    _finite(summary)
    for key in ("host_busy_cores", "others_cores", "others_runnable_mean", "others_runnable_max", "cpu_pressure"):
        assert summary[key] is None, key
    assert summary["steal"] is None and summary["cgroup_cpu_pressure"] is None and summary["samples"] == 0
    assert summary["contended"] is False and summary["reasons"] == []
    assert summary["wall_s"] > 0.4 and summary["cpu_s"] is not None  # this process's own count still says


def test_garbled_and_unreadable_proc_files_give_none(tmp_path):
    proc, pid = tmp_path / "proc", str(os.getpid())
    (proc / pid / "task" / "1" / "stat").mkdir(parents=True)  # a folder where a file should be: unreadable
    (proc / "stat").write_text("cpu  a b c\nprocs_running x\n")
    (proc / "pressure").mkdir()
    (proc / "pressure" / "cpu").write_bytes(b"\xff\xfe some total=\n")
    (proc / pid / "stat").write_text("no parenthesis here\n")
    (proc / pid / "cgroup").write_text("0::/mine\n")
    (tmp_path / "cg" / "mine" / "cpu.pressure").mkdir(parents=True)
    summary = _watch(0.5, proc=proc, cgroup_root=tmp_path / "cg")
    _finite(summary)
    assert summary["others_cores"] is None and summary["cpu_pressure"] is None
    assert summary["cgroup_cpu_pressure"] is None and summary["contended"] is False


def _proc_stat(busy: int, idle: int, steal: bool) -> str:
    cpus = sorted(os.sched_getaffinity(0))
    tail = " 0 0 0 0 0 0" if steal else ""
    lines = [f"cpu  {busy * len(cpus)} 0 0 {idle * len(cpus)}{tail}"]
    lines += [f"cpu{i} {busy} 0 0 {idle}{tail}" for i in cpus]
    return "\n".join(lines) + "\nprocs_running 3\n"


def test_the_figures_from_counters_that_move(tmp_path):
    """A fake /proc whose counters move between start and stop: others are the host's busy share of the run's
    cores less the harness's own (here none); a /proc/stat without the steal column says nothing of steal."""
    proc, pid = tmp_path / "proc", str(os.getpid())
    (proc / pid / "task" / "1").mkdir(parents=True)
    (proc / pid / "stat").write_text("1 (py (x)) S 1 0 0 0 0 0 0 0 0 0 50 10 0 0 20 0 1 0 100 0 0\n")
    (proc / pid / "task" / "1" / "stat").write_text("1 (py) R 1\n")
    (proc / "stat").write_text(_proc_stat(0, 0, steal=False))
    (proc / "pressure").mkdir()
    (proc / "pressure" / "cpu").write_text("some avg10=0 avg60=0 avg300=0 total=0\nfull total=0\n")
    watcher = Watcher(interval=0.05, proc=proc).start()
    time.sleep(0.3)
    (proc / "stat").write_text(_proc_stat(95, 5, steal=False))
    (proc / "pressure" / "cpu").write_text("some avg10=0 avg60=0 avg300=0 total=99000000000\n")
    summary = watcher.stop()
    _finite(summary)
    assert summary["cpu_s"] == 0 and summary["host_busy_cores"] == pytest.approx(0.95 * CORES)
    assert summary["others_cores"] == pytest.approx(0.95 * CORES) and summary["steal"] is None
    assert summary["others_runnable_mean"] == 2 and summary["cpu_pressure"] == 1.0  # clamped to the wall time
    assert summary["contended"] and summary["reasons"][0] == f"other processes used {0.95 * CORES:.1f} of {CORES} cores"


# Measured on this 2-core machine around each of the local Server cases at smoke length (the numbers of one case
# each; the ranges over 6 to 14 cases a setting are in contention.py's docstring), and the rule's other branches.
@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        # no neighbour (bert-99)
        ({"others_cores": 0.02, "cpu_share": 0.46, "others_runnable_mean": 0.52, "cpu_pressure": 0.038}, []),
        # one neighbour: the harness had the other core (rnnt: one whole core itself; bert-99: half of one)
        ({"others_cores": 0.99, "cpu_share": 0.99, "others_runnable_mean": 1.05, "cpu_pressure": 0.131}, []),
        ({"others_cores": 1.01, "cpu_share": 0.5, "others_runnable_mean": 1.33, "cpu_pressure": 0.018}, []),
        # two neighbours: bert-99 (light: little waiting, the queues taken), ssd-resnet34 (heavier: much waiting)
        (
            {"others_cores": 1.73, "cpu_share": 0.28, "others_runnable_mean": 2.18, "cpu_pressure": 0.21},
            ["other processes used 1.7 of 2 cores", "CPU pressure 21%"],
        ),
        (
            {"others_cores": 1.38, "cpu_share": 0.61, "others_runnable_mean": 1.91, "cpu_pressure": 0.52},
            ["other processes used 1.4 of 2 cores", "CPU pressure 52%"],
        ),
        (
            {"others_cores": 1.7, "cpu_share": 0.3, "others_runnable_mean": 2.11, "cpu_pressure": None},
            ["other processes used 1.7 of 2 cores", "2.1 other tasks runnable for 2 CPUs"],
        ),
        # the harness queueing behind its own threads: pressure, nobody else
        ({"others_cores": 0.03, "cpu_share": 1.95, "others_runnable_mean": 0.1, "cpu_pressure": 0.45}, []),
        # neither PSI nor samples: the cores were full, mostly with others' work
        (
            {"others_cores": 1.5, "cpu_share": 0.45, "others_runnable_mean": None, "cpu_pressure": None},
            ["other processes used 1.5 of 2 cores"],
        ),
        ({"others_cores": None, "cpu_share": None, "others_runnable_mean": None, "cpu_pressure": None}, []),
        ({"others_cores": 0.0, "cpu_share": 0.1, "others_runnable_mean": 0.0, "steal": 0.12}, ["steal 12%"]),
    ],
)
def test_the_rule(figures, expected):
    summary = {"cores": 2, "host_cpus": 2, "steal": None, "cpu_pressure": None, "gpu_processes": None, **figures}
    assert reasons(summary) == expected


class StandInNVML:
    """A stand-in for the pynvml module, injected through Watcher(nvml=...): the fake libnvidia-ml in
    tests/fake_nvml implements no process-list call, so NVML's process lists cannot come from it. Each GPU is
    a list of (pid, used bytes or None); graphics lists are "Not Supported", as on a compute GPU."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[list[tuple[int, int | None]]], fail_init: bool = False):
        self.gpus, self.fail_init, self.shut = gpus, fail_init, False

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.gpus[handle[1]]]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        raise self.NVMLError("Not Supported")

    def nvmlDeviceGetProcessUtilization(self, handle, since):
        return [SimpleNamespace(pid=pid, smUtil=40, memUtil=10, timeStamp=since) for pid, _ in self.gpus[handle[1]]]


def test_other_processes_on_a_measured_gpu_make_a_run_contended():
    """The harness and its children on the GPU are its own; pid 1 (this machine's init) is another process."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gib = 1 << 30
        nvml = StandInNVML([[(os.getpid(), 2 * gib), (child.pid, gib), (1, 5 * gib)], [(1, None)]])
        time.sleep(0.2)
        summary = _watch(0.5, gpu_indices=(0,), nvml=nvml)
    finally:
        child.kill()
        child.wait()
    name = Path("/proc/1/comm").read_text().strip()
    assert summary["gpus"] == [0] and nvml.shut
    assert summary["gpu_processes"] == [
        {"gpu": 0, "pid": 1, "name": name, "used_memory_mib": 5120.0, "sm_util_pct": 40.0}
    ]
    assert summary["contended"] and "1 other process on GPU 0 (5.0 GiB)" in summary["reasons"]


def test_every_gpu_when_none_are_named_and_memory_unknown():
    summary = _watch(0.3, nvml=StandInNVML([[], [(1, None)]]))
    assert summary["gpus"] == [0, 1] and [p["gpu"] for p in summary["gpu_processes"]] == [1]
    assert summary["gpu_processes"][0]["used_memory_mib"] is None
    assert "1 other process on GPU 1" in summary["reasons"]


def test_no_nvml_no_gpu_figures():
    summary = _watch(0.3, nvml=StandInNVML([[(1, 1)]], fail_init=True))
    assert summary["gpus"] is None and summary["gpu_processes"] is None
    assert "Driver Not Loaded" in summary["gpu_error"]
    assert not any("GPU" in r for r in summary["reasons"])


def test_stop_without_start_and_twice():
    watcher = Watcher(proc=Path("/nonexistent"))
    summary = watcher.stop()
    assert summary["contended"] is False and summary["wall_s"] is None
    assert watcher.stop() is summary
    assert contention.describe({}) == ""


def test_gpu_processes_from_another_pid_namespace(tmp_path):
    """NVML names processes by their host pids: inside a container, the harness's own GPU process is a pid this
    /proc does not show. As many such pids as the harness has processes holding the GPU's device file open are
    taken for its own (the largest), the rest are others'."""
    proc, pid = tmp_path / "proc", os.getpid()
    (proc / str(pid) / "fd").mkdir(parents=True)
    (proc / str(pid) / "stat").write_text(f"{pid} (pytest) S 1 0 0 0 0 0 0 0 0 0 50 10 0 0 20 0 1 0 100 0 0\n")
    hidden = [4_100_001, 4_100_002]  # above any pid_max Linux gives, so shown by no /proc
    nvml = StandInNVML([[(hidden[0], 30 << 30), (hidden[1], 1 << 30)]])
    nvml.nvmlDeviceGetMinorNumber = lambda handle: 0

    summary = _watch(0.3, proc=proc, nvml=nvml)  # the harness holds no GPU open: both are others'
    assert [p["pid"] for p in summary["gpu_processes"]] == hidden
    assert all(p["other_pid_namespace"] and p["name"] is None for p in summary["gpu_processes"])
    assert summary["reasons"] == ["2 other processes on GPU 0 (31.0 GiB)"]

    (proc / str(pid) / "fd" / "7").symlink_to("/dev/nvidia0")
    summary = _watch(0.3, proc=proc, nvml=nvml)  # it holds GPU 0 open: the larger is taken for its own
    assert [p["pid"] for p in summary["gpu_processes"]] == [hidden[1]]
    assert summary["reasons"] == ["1 other process on GPU 0 (1.0 GiB)"]
