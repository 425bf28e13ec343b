"""What the system under test really got during a performance run, on a machine it may share: the harness's CPU
time against wall time, the CPU the host's other processes used on the cores it may run on, the tasks queued for
those cores, CPU pressure (PSI) and steal; on GPU machines the other processes on the measured GPUs (NVML's process
lists) with their memory and, where NVML keeps it, their utilization. A Watcher samples on a background thread
from start() to stop() and never raises into the test; stop() returns the summary, with `contended` and its
reasons decided by the thresholds below.

The rule (`reasons`): a run is contended when other processes used at least OTHERS_MIN_CORES of its cores (and
OTHERS_MIN_SHARE of them) and, beside that, either some task waited for a CPU at least PRESSURE of the run (PSI
`some`) or other processes alone kept every CPU's run queue taken (their runnable tasks at least the host's CPUs
less QUEUE_SLACK, on average); or when a hypervisor's steal took STEAL_SHARE of its cores' time; or when another
process sat on a measured GPU. Neither pressure nor the others' CPU decides alone: a harness with more threads
than cores queues behind itself (pressure, nobody else), and a neighbour on a core the harness did not need takes
nothing from it (others' CPU, no waiting). The two signals complete each other: a light harness next to busy
neighbours waits little (pressure near 20%) but finds every queue taken; a heavier one finds the queues less
taken (its own threads hold some) and waits much.

Measured on a 2-core Linux VM (PSI on, schedstats off), per case, a Watcher around each of the local backend's
Server cases (bert-99, bert-99.9, rnnt, ssd-resnet34) and Offline cases at smoke length, next to 0-3 neighbour
processes each spinning one core (`while True: pass`); runs where other work on the machine took more than
0.15 core are left out (they were flagged when that work and the neighbours together filled the machine):

    neighbours  cases  harness cores  others' cores  others runnable  CPU pressure  flagged
    Server
    0           6      0.46-1.07      0.00-0.03      0.32-0.52        0.6-3.8%      0
    1           10     0.45-1.01      0.96-1.01      0.80-1.33        1.5-13.1%     0
    2           12     0.26-0.66      1.33-1.74      1.91-2.56        21-56%        12
    3           14     0.22-0.52      1.48-1.78      2.89-3.46        67-99%        14
    Offline
    0           9      1.01           0.01-0.13      0.13-0.44        0.1-1.4%      0
    1           6      0.99-1.00      1.00           0.97-1.04        1.4-1.7%      0
    2           8      0.67-0.73      1.27-1.33      1.82-2.06        51-52%        8

PRESSURE and QUEUE_SLACK sit midway between one neighbour and two (13% / 21%; 1.33 / 1.91 runnable). One busy
neighbour on two cores is not contention: it took one core, the harness (at most one core's worth here) had the
other, nothing waited long and every verdict held. A harness that wanted both cores would be contended by it (the
others' core and the waiting together), as a harness that queues behind itself next to it was when measured.
Every verdict in these runs was VALID (the local backend retries a Server run at a lower load when LoadGen finds
the bound broken); with two neighbours every case was flagged, so a failure there would be too.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

OTHERS_MIN_CORES = 0.5  # other processes used at least this many of the run's cores ...
OTHERS_MIN_SHARE = 0.1  # ... and this share of them
PRESSURE = 0.17  # ... and some task waited for a CPU this share of the wall time (PSI `some`) ...
QUEUE_SLACK = 0.4  # ... or other processes kept at least (host CPUs - this) tasks runnable, on average
OCCUPIED_SHARE = 0.95  # without PSI or samples: the others and the harness kept its cores this busy
STEAL_SHARE = 0.05  # a hypervisor gave this share of the cores' time to other guests
TREE_EVERY = 2.0  # seconds between re-reads of the run's process tree (its children, its containers)
GPU_EVERY = 5.0  # seconds between NVML process lists
MIB = 1024 * 1024


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK")) or 100
    except (ValueError, OSError, AttributeError):
        return 100


def _boot_ticks() -> int:
    """Now, in clock ticks since boot: the unit of a process's start time in /proc/<pid>/stat."""
    try:
        return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _clock_ticks())
    except (AttributeError, OSError):
        return 0


def _finite(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _stat_fields(text: str) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses): fields[0] is the state."""
    return text[text.rindex(")") + 2 :].split()


class _Proc:
    """Reads of a /proc tree (a fake one in tests); every reader returns None when its file cannot say."""

    def __init__(self, root: Path):
        self.root = root

    def text(self, *parts: str) -> str | None:
        return _read(self.root.joinpath(*parts))

    def pids(self) -> list[int]:
        try:
            return [int(p.name) for p in self.root.iterdir() if p.name.isdigit()]
        except OSError:
            return []

    def stat(self, pid: int) -> list[str] | None:
        return self.stat_path(self.root / str(pid) / "stat")

    def running_threads(self, pid: int) -> int:
        try:
            tasks = list(self.root.joinpath(str(pid), "task").iterdir())
        except OSError:
            return 0
        count = 0
        for task in tasks:
            fields = self.stat_path(task / "stat")
            if fields and fields[0] == "R":
                count += 1
        return count

    @staticmethod
    def stat_path(path: Path) -> list[str] | None:
        try:
            return _stat_fields(path.read_text())
        except (OSError, ValueError):
            return None

    def host_cpu(self, cpus: set[int] | None) -> tuple[int, int, int | None, int, int] | None:
        """(busy, total, steal or None) jiffies from /proc/stat, summed over `cpus` when their cpuN lines are there
        (else the all-CPU line), then procs_running and how many CPUs were counted; busy counts steal, and not
        guest (already in user)."""
        text = self.text("stat")
        if not text:
            return None
        lines: dict[str, list[int]] = {}
        running = None
        try:
            for line in text.splitlines():
                words = line.split()
                if words and words[0].startswith("cpu"):
                    lines[words[0]] = [int(w) for w in words[1:]]
                elif words and words[0] == "procs_running":
                    running = int(words[1])
        except (ValueError, IndexError):
            return None
        host_cpus = sum(1 for name in lines if name[3:].isdigit()) or os.cpu_count() or 1
        chosen = [lines[f"cpu{i}"] for i in sorted(cpus or ()) if f"cpu{i}" in lines]
        counted = len(chosen)
        if not chosen or len(chosen) != len(cpus or ()):
            chosen, counted = ([lines["cpu"]] if "cpu" in lines else []), host_cpus
        if not chosen or running is None or any(len(v) < 4 for v in chosen):
            return None
        busy = total = steal_sum = 0
        steal_known = all(len(v) >= 8 for v in chosen)
        for v in chosen:
            user, nice, system, idle = v[:4]
            iowait, irq, softirq, steal = (v[4:8] + [0, 0, 0, 0])[:4]
            busy += user + nice + system + irq + softirq + steal
            total += user + nice + system + idle + iowait + irq + softirq + steal
            steal_sum += steal
        return busy, total, (steal_sum if steal_known else None), running, counted

    def host_cpu_count(self) -> int | None:
        text = self.text("stat")
        if not text:
            return None
        count = sum(1 for line in text.splitlines() if line.startswith("cpu") and line[3:4].isdigit())
        return count or None

    @staticmethod
    def psi_some_total(text: str | None) -> int | None:
        """The `some ... total=` microseconds of a PSI file."""
        for line in (text or "").splitlines():
            if line.startswith("some"):
                for word in line.split():
                    if word.startswith("total="):
                        try:
                            return int(word[6:])
                        except ValueError:
                            return None
        return None


class Watcher:
    """Watches one performance run from start() to stop(); stop() returns the summary described below.

    `interval`: seconds between run-queue samples. `gpu_indices`: the NVML indices of the measured GPUs (None:
    every GPU). `pid`: the harness process (this one by default; the benchmark watches a pytest it started).
    `own_cgroups`: substrings of /proc/<pid>/cgroup that mark processes as the run's own though they are not the
    harness's descendants (a Docker container's id: its processes, `docker exec`'s too, are children of the
    container runtime); or a callable returning them, asked again at every re-read of the process tree (every
    TREE_EVERY seconds), so a container started during the run is the run's own from then on. `proc`,
    `cgroup_root` and `nvml` are for tests: a fake /proc, a fake cgroup mount and a stand-in for pynvml.

    The summary (all numbers finite; a source this machine lacks gives None, never an exception):
    wall_s; cpu_s: the CPU time of the run's processes (every thread, its children, its containers);
    cpu_share: cpu_s / wall_s, in cores (1.0 = one core busy the whole run; up to `cores`); cores: the CPUs the
    harness may run on (its affinity); host_cpus; host_busy_cores: how busy those cores were, all processes
    (steal counted as busy); others_cores: host_busy_cores less cpu_share; others_runnable_mean/max: the host's
    runnable tasks (procs_running) less the run's own runnable threads, sampled every `interval`; cpu_pressure
    and cgroup_cpu_pressure: the share of the wall time some task waited for a CPU (PSI `some`), host-wide and
    in the harness's cgroup v2; steal: the share of its cores' time a hypervisor gave to other guests; gpus: the
    NVML indices watched (None: no NVML, `gpu_error` says why); gpu_processes: the other processes seen on them
    ({gpu, pid, name, used_memory_mib, and sm_util_pct where NVML keeps it}); samples; contended; reasons."""

    def __init__(
        self,
        interval: float = 0.2,
        gpu_indices: tuple[int, ...] | None = None,
        *,
        pid: int | None = None,
        own_cgroups: Iterable[str] | Callable[[], Iterable[str]] = (),
        proc: Path = Path("/proc"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        nvml=None,
    ):
        self.interval = max(float(interval), 0.01)
        self.gpu_indices = tuple(gpu_indices) if gpu_indices is not None else None
        self.pid = pid if pid is not None else os.getpid()
        self._own_cgroups = own_cgroups
        self._proc = _Proc(Path(proc))
        self._cgroup_root = Path(cgroup_root)
        self._nvml = nvml
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlperf-contention", daemon=True)
        self._lock = threading.Lock()
        self._own: set[int] = {self.pid}
        self._runnable: list[int] = []
        self._gpu: dict[tuple[int, int], dict] = {}
        self._gpu_ok = False
        self._gpu_handles: list[tuple[int, object]] = []
        self._gpu_since_us = 0
        self._gpu_error: str | None = None
        self._nvml_inited = False
        self._errors: list[str] = []
        self._start: dict | None = None
        self._ledger: dict[tuple[int, int], list[int]] = {}  # (pid, start time) -> [base, last, ppid] ticks
        self._alive: set[tuple[int, int]] = set()
        self._boot_ticks = 0
        self._summary: dict | None = None
        try:
            self.cpus: set[int] | None = set(os.sched_getaffinity(self.pid))
        except (OSError, AttributeError):
            self.cpus = None

    # -- the run's processes --------------------------------------------------------------------------------

    def _marks(self) -> tuple[str, ...]:
        """The own-cgroup marks now: a callable is asked at every re-read (a container may start mid-run)."""
        try:
            marks = self._own_cgroups() if callable(self._own_cgroups) else self._own_cgroups
            if isinstance(marks, str):
                marks = (marks,)
            return tuple(str(m) for m in (marks or ()) if m)
        except Exception as exc:  # noqa: BLE001 - a backend's answer must not stop the watching
            if not any(e.startswith("own_cgroups") for e in self._errors):
                self._errors.append(f"own_cgroups: {exc}")
            return ()

    def _tree(self) -> tuple[set[int], dict[int, list[str]]]:
        """The harness, its descendants, and the processes of its own cgroups (and their descendants), with
        each one's /proc/<pid>/stat fields."""
        stats: dict[int, list[str]] = {}
        parents: dict[int, int] = {}
        roots = {self.pid}
        marks = self._marks()
        for pid in self._proc.pids():
            fields = self._proc.stat(pid)
            if not fields or len(fields) < 2:
                continue
            try:
                parents[pid] = int(fields[1])
            except ValueError:
                continue
            stats[pid] = fields
            if marks:
                groups = self._proc.text(str(pid), "cgroup") or ""
                if any(mark in groups for mark in marks):
                    roots.add(pid)
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid in tree:
                continue
            tree.add(pid)
            todo.extend(children.get(pid, ()))
        return tree, {pid: stats[pid] for pid in tree if pid in stats}

    def _refresh(self, first: bool = False) -> None:
        """Re-reads the run's processes and notes each one's CPU time so far in the ledger: a process that ends
        before stop() keeps what it had used when last seen (a container's processes are reaped by the
        container runtime, not by the harness, so its count of reaped children never holds them)."""
        tree, stats = self._tree()
        with self._lock:
            self._own = tree
        for pid, fields in stats.items():
            try:
                ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
                started, ppid = int(fields[19]), int(fields[1])
            except (IndexError, ValueError):
                continue
            entry = self._ledger.get((pid, started))
            if entry is None:
                # seen first at start: counted from there; born during the run: from zero; older, and the run's
                # own only now (a container marked late): from now
                base = 0 if not first and started >= self._boot_ticks else ticks
                self._ledger[(pid, started)] = entry = [base, ticks, ppid]
            entry[1], entry[2] = max(entry[1], ticks), ppid
        self._alive = {(pid, int(f[19])) for pid, f in stats.items() if len(f) > 19 and f[19].isdigit()}

    def _own_seconds(self) -> float | None:
        """The CPU time the run's processes used since start(), from the ledger; None when the harness's own
        count cannot be read."""
        if not any(pid == self.pid for pid, _ in self._ledger):
            if self.pid == os.getpid():  # /proc cannot say: this process's own count still can
                t = os.times()
                return t.user + t.system + t.children_user + t.children_system
            return None
        own_pids = {pid for pid, _ in self._ledger}
        total = 0
        for key, (base, last, ppid) in self._ledger.items():
            if key in self._alive or ppid not in own_pids:
                total += last - base
            else:  # ended, and reaped by one of the run's own: its whole time is in that parent's cutime now
                total -= base
        return max(total, 0) / _clock_ticks()

    def _snapshot(self, first: bool = False) -> dict:
        self._refresh(first=first)
        cgroup = self._cgroup_pressure_file()
        return {
            "t": time.monotonic(),
            "own_s": self._own_seconds(),
            "host": self._proc.host_cpu(self.cpus),
            "psi": _Proc.psi_some_total(self._proc.text("pressure", "cpu")),
            "cgroup_psi": _Proc.psi_some_total(_read(cgroup)) if cgroup else None,
        }

    def _cgroup_pressure_file(self) -> Path | None:
        """The cpu.pressure of the harness's cgroup v2 (the `0::` line), on a v2 or a hybrid mount."""
        for line in (self._proc.text(str(self.pid), "cgroup") or "").splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip().lstrip("/")
                for base in (self._cgroup_root, self._cgroup_root / "unified"):
                    path = base / rel / "cpu.pressure" if rel else base / "cpu.pressure"
                    if path.is_file():
                        return path
        return None

    # -- sampling -------------------------------------------------------------------------------------------

    def start(self) -> Watcher:
        try:
            self._boot_ticks = _boot_ticks()
            self._start = self._snapshot(first=True)
            self._thread.start()
        except Exception as exc:  # noqa: BLE001 - the run goes on unwatched; the summary says so
            self._errors.append(f"start: {exc}")
        return self

    def _loop(self) -> None:
        next_tree = time.monotonic() + TREE_EVERY
        next_gpu = time.monotonic() + GPU_EVERY
        try:
            self._gpu_init()  # here, not in start(): nvmlInit can take a second on a large machine
            while not self._stop.wait(self.interval):
                self._sample_runnable()
                now = time.monotonic()
                if now >= next_tree:
                    self._refresh()
                    next_tree = now + TREE_EVERY
                if self._gpu_ok and now >= next_gpu:
                    self._refresh()  # the run's processes as they are now: a GPU process may be new
                    self._gpu_sample()
                    next_tree, next_gpu = now + TREE_EVERY, now + GPU_EVERY  # the tree was just re-read
        except Exception as exc:  # noqa: BLE001
            self._errors.append(f"sampling stopped: {exc}")

    def _sample_runnable(self) -> None:
        host = self._proc.host_cpu(self.cpus)
        if host is None:
            return
        with self._lock:
            own = set(self._own)
        ours = sum(self._proc.running_threads(pid) for pid in own)
        if os.getpid() not in own:
            ours += 1  # this sampling thread, running while it reads, watching another process
        self._runnable.append(max(host[3] - ours, 0))

    # -- GPUs -----------------------------------------------------------------------------------------------

    def _gpu_init(self) -> None:
        nvml = self._nvml
        try:
            if nvml is None:
                import pynvml as nvml  # noqa: PLC0415
            nvml.nvmlInit()
            self._nvml, self._nvml_inited = nvml, True
            indices = self.gpu_indices
            if indices is None:
                indices = tuple(range(nvml.nvmlDeviceGetCount()))
            self._gpu_handles = [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
        except Exception as exc:  # noqa: BLE001 - no NVML: no GPU figures, and the summary says why
            self._gpu_error = f"NVML unavailable: {exc}"
            return
        self._gpu_ok = True
        self._gpu_since_us = int(time.time() * 1e6)
        self._gpu_sample()

    def _gpu_sample(self) -> None:
        nvml = self._nvml
        with self._lock:
            own = set(self._own)
        for index, handle in self._gpu_handles:
            procs: list = []
            for call in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                fn = getattr(nvml, call, None)
                if fn is None:
                    continue
                try:
                    procs.extend(fn(handle) or [])
                except Exception:  # noqa: BLE001 - not supported on this GPU, or this driver
                    continue
            utils: dict[int, float] = {}
            fn = getattr(nvml, "nvmlDeviceGetProcessUtilization", None)
            if fn is not None:
                try:
                    for sample in fn(handle, self._gpu_since_us) or []:
                        utils[int(sample.pid)] = max(utils.get(int(sample.pid), 0.0), float(sample.smUtil))
                except Exception:  # noqa: BLE001 - optional: not every GPU keeps per-process samples
                    pass
            seen: dict[int, float | None] = {}
            for p in procs:
                try:
                    pid = int(p.pid)
                except (AttributeError, TypeError, ValueError):
                    continue
                memory = getattr(p, "usedGpuMemory", None)
                memory = memory / MIB if isinstance(memory, int | float) and 0 <= memory < 2**63 else None
                if pid not in seen or (memory or 0) > (seen[pid] or 0):
                    seen[pid] = memory
            for pid in own:
                self._gpu.pop((index, pid), None)  # taken for another's before the tree was re-read
            others = {pid: m for pid, m in seen.items() if pid not in own}
            # NVML names processes by their pids in the host's namespace: a pid this /proc does not show is a
            # process in another pid namespace, the harness's own when it runs in a container itself. As many
            # of those as the harness has processes holding this GPU open are taken for its own.
            hidden = [pid for pid in others if not self._proc.root.joinpath(str(pid)).exists()]
            hidden.sort(key=lambda pid: others[pid] or 0.0)
            if hidden:
                # the smallest are kept as others': the harness's own are taken to be the largest
                unknown = hidden[: max(len(hidden) - self._own_users(own, handle), 0)]
                for pid in hidden:
                    if pid not in unknown:
                        others.pop(pid)
            for pid, memory in others.items():
                entry = self._gpu.setdefault(
                    (index, pid), {"gpu": index, "pid": pid, "name": self._name(pid), "used_memory_mib": None}
                )
                if pid in hidden:
                    entry["other_pid_namespace"] = True
                if memory is not None:
                    entry["used_memory_mib"] = round(max(entry["used_memory_mib"] or 0.0, memory), 1)
                if pid in utils:
                    entry["sm_util_pct"] = max(entry.get("sm_util_pct", 0.0), utils[pid])
        self._gpu_since_us = int(time.time() * 1e6)

    def _own_users(self, own: set[int], handle) -> int:
        """How many of the run's processes hold this GPU's device file (/dev/nvidia<minor>) open."""
        try:
            wanted: set[str] | None = {f"/dev/nvidia{int(self._nvml.nvmlDeviceGetMinorNumber(handle))}"}
        except Exception:  # noqa: BLE001 - no minor number: any GPU's device file
            wanted = None
        count = 0
        for pid in own:
            try:
                links = {os.readlink(fd) for fd in self._proc.root.joinpath(str(pid), "fd").iterdir()}
            except OSError:
                continue
            if wanted is not None:
                count += bool(links & wanted)
            else:
                count += any(link[11:].isdigit() for link in links if link.startswith("/dev/nvidia"))
        return count

    def _name(self, pid: int) -> str | None:
        name = (self._proc.text(str(pid), "comm") or "").strip()
        if name:
            return name
        fn = getattr(self._nvml, "nvmlSystemGetProcessName", None)
        try:
            raw = fn(pid) if fn else None
        except Exception:  # noqa: BLE001
            return None
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        return os.path.basename(raw) if raw else None

    # -- the end --------------------------------------------------------------------------------------------

    def stop(self) -> dict:
        """Stops sampling and returns the summary; a second call returns the same summary."""
        if self._summary is not None:
            return self._summary
        self._stop.set()
        try:
            if self._thread.is_alive():
                self._thread.join(timeout=10)
            end = self._snapshot() if self._start is not None else None
            if self._gpu_ok:
                self._gpu_sample()
            self._summary = self._summarise(self._start, end)
        except Exception as exc:  # noqa: BLE001
            self._errors.append(f"stop: {exc}")
            self._summary = self._summarise(None, None)
        finally:
            if self._nvml_inited:
                try:
                    self._nvml.nvmlShutdown()
                except Exception:  # noqa: BLE001
                    pass
        return self._summary

    def _summarise(self, start: dict | None, end: dict | None) -> dict:
        host_cpus = self._proc.host_cpu_count()
        cores = len(self.cpus) if self.cpus else host_cpus
        out: dict = {
            "wall_s": None,
            "cpu_s": None,
            "cpu_share": None,
            "cores": cores,
            "host_cpus": host_cpus,
            "host_busy_cores": None,
            "others_cores": None,
            "others_runnable_mean": None,
            "others_runnable_max": None,
            "cpu_pressure": None,
            "cgroup_cpu_pressure": None,
            "steal": None,
            "gpus": [i for i, _ in self._gpu_handles] if self._gpu_ok else None,
            "gpu_processes": None,
            "samples": len(self._runnable),
        }
        if start and end:
            wall = end["t"] - start["t"]
            out["wall_s"] = _finite(wall, 3)
            if wall > 0:
                if start["own_s"] is not None and end["own_s"] is not None:
                    cpu = max(end["own_s"] - start["own_s"], 0.0)
                    out["cpu_s"] = _finite(cpu, 3)
                    out["cpu_share"] = _finite(cpu / wall, 3)
                if start["host"] and end["host"]:
                    busy = end["host"][0] - start["host"][0]
                    total = end["host"][1] - start["host"][1]
                    if total > 0 and busy >= 0:
                        host_busy = busy / total * end["host"][4]
                        out["host_busy_cores"] = _finite(host_busy, 3)
                        if out["cpu_share"] is not None:
                            out["others_cores"] = _finite(max(host_busy - out["cpu_share"], 0.0), 3)
                        if start["host"][2] is not None and end["host"][2] is not None:
                            out["steal"] = _finite(max(end["host"][2] - start["host"][2], 0) / total, 4)
                for key, name in (("psi", "cpu_pressure"), ("cgroup_psi", "cgroup_cpu_pressure")):
                    if start[key] is not None and end[key] is not None:
                        out[name] = _finite(min(max((end[key] - start[key]) / 1e6 / wall, 0.0), 1.0), 4)
        if self._runnable:
            out["others_runnable_mean"] = _finite(sum(self._runnable) / len(self._runnable), 3)
            out["others_runnable_max"] = max(self._runnable)
        if self._gpu_ok:
            out["gpu_processes"] = sorted(self._gpu.values(), key=lambda p: (p["gpu"], p["pid"]))
        if self._gpu_error:
            out["gpu_error"] = self._gpu_error
        if self._errors:
            out["errors"] = list(self._errors)
        out["reasons"] = reasons(out)
        out["contended"] = bool(out["reasons"])
        return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, ValueError):
        return None


def reasons(summary: dict) -> list[str]:
    """Why a summary's run was contended, each reason a short phrase; empty when it was not (see the module's
    docstring for the rule and what it was measured on)."""
    out: list[str] = []
    cores = summary.get("cores")
    queues = summary.get("host_cpus") or cores  # procs_running counts the whole host's run queues
    others = summary.get("others_cores")
    own = summary.get("cpu_share")
    runnable = summary.get("others_runnable_mean")
    pressure = summary.get("cpu_pressure")
    steal = summary.get("steal")
    if cores and others is not None and others >= max(OTHERS_MIN_CORES, OTHERS_MIN_SHARE * cores):
        waited = pressure is not None and pressure >= PRESSURE
        queued = queues is not None and runnable is not None and runnable >= queues - QUEUE_SLACK
        full = pressure is None and runnable is None and own is not None and others + own >= OCCUPIED_SHARE * cores
        if waited or queued or full:
            out.append(f"other processes used {others:.1f} of {cores} cores")
            if queued and not waited:
                out.append(f"{runnable:.1f} other tasks runnable for {queues} CPUs")
            if pressure is not None:
                out.append(f"CPU pressure {pressure:.0%}")
    if steal is not None and steal >= STEAL_SHARE:
        out.append(f"steal {steal:.0%}")
    by_gpu: dict[int, list[dict]] = {}
    for p in summary.get("gpu_processes") or []:
        by_gpu.setdefault(p["gpu"], []).append(p)
    for gpu, procs in sorted(by_gpu.items()):
        known = [p["used_memory_mib"] for p in procs if p.get("used_memory_mib") is not None]
        memory = f" ({sum(known) / 1024:.1f} GiB)" if known else ""
        noun = "process" if len(procs) == 1 else "processes"
        out.append(f"{len(procs)} other {noun} on GPU {gpu}{memory}")
    return out


def describe(summary: dict) -> str:
    """The text after "contended: " beside a verdict; empty when the run was not contended."""
    return ", ".join(summary.get("reasons") or [])
