"""A real Slurm cluster on this machine for the tests: munged, slurmctld and one slurmd per node, every node
on loopback (Debian's slurmctld/slurmd/slurm-client/munge; started as root, as .ci/run runs the tests).

All nodes are this machine, so they share its files. A test that needs a folder the nodes see differently from
the submit host (a node-local /tmp, say) names it as `private_dir`: each chosen node's slurmd then runs in a
mount namespace of its own with an empty tmpfs over that folder (util-linux unshare), so what a job writes
there stays on that node and the submit host sees the folder as it was."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NEEDED = ("slurmctld", "slurmd", "sbatch", "munged", "mungekey")


def missing_tools() -> list[str]:
    return [tool for tool in NEEDED if shutil.which(tool) is None]


_HANDED_OUT: set[int] = set()


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """The first of `count` consecutive ports that nothing on this machine is bound to, from a range of this
    pytest-xdist worker's own (so workers never race for one), never a block this process handed out before (a
    stopped cluster's daemons may linger on theirs)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw-1")[2:]
    start = 17000 + (int(worker) + 1 if worker.isdigit() else 0) * 1000
    for base in range(start, start + 1000 - count, 20):
        if base not in _HANDED_OUT and all(_free(port) for port in range(base, base + count)):
            _HANDED_OUT.add(base)
            return base
    raise RuntimeError(f"no {count} free consecutive ports in {start}..{start + 999}")


class SlurmCluster:
    def __init__(
        self,
        root: Path,
        nodes: int = 8,
        cpus: int = 8,
        base_port: int | None = None,
        private_dir: Path | None = None,
        private_nodes: list[str] | None = None,
    ):
        """private_dir: a host folder that the nodes in private_nodes (all of them when None) see as an empty
        tmpfs of their own. It must not hold the cluster's root (spool, munge socket, config)."""
        self.root, self.nodes, self.cpus = root, nodes, cpus
        self.base_port = base_port or free_port_block(1 + nodes)
        self.conf = root / "slurm.conf"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.private_dir = Path(os.path.abspath(private_dir)) if private_dir is not None else None
        self.private_nodes = list(self.node_names if private_nodes is None else private_nodes)
        if self.private_dir is not None:
            if shutil.which("unshare") is None:
                raise RuntimeError("private_dir needs util-linux unshare")
            unknown = sorted(set(self.private_nodes) - set(self.node_names))
            if unknown:
                raise ValueError(f"private_nodes: no such node {unknown} (nodes are {self.node_names})")
            root_abs = Path(os.path.abspath(root))
            if root_abs == self.private_dir or self.private_dir in root_abs.parents:
                raise ValueError(
                    f"the cluster root {root_abs} is under private_dir {self.private_dir}: the nodes would lose "
                    "their spool, munge socket and config"
                )

    @property
    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    def write_conf(self) -> None:
        r, host, port = self.root, socket.gethostname(), self.base_port
        for sub in ("state", "spool", "log", "munge"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        for name in self.node_names:
            (r / "spool" / name).mkdir(exist_ok=True)
        (r / "munge").chmod(0o755)
        last = port + self.nodes
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=mlperftest",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={port}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={r / 'munge' / 'munge.socket'}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool' / '%n'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd-%n.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd-%n.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SchedulerType=sched/backfill",
                    "MailProg=/bin/true",
                    "EnforcePartLimits=ALL",
                    "JobCompType=jobcomp/filetxt",
                    f"JobCompLoc={r / 'log' / 'jobcomp.txt'}",
                    "MinJobAge=3600",
                    "ReturnToService=1",  # a node a test sets down stays down until reset_nodes()
                    "SlurmdTimeout=30",
                    "SlurmdParameters=config_overrides",
                    "MpiDefault=none",
                    f"NodeName=n[1-{self.nodes}] NodeHostname={host} NodeAddr=127.0.0.1 Port=[{port + 1}-{last}] "
                    f"CPUs={self.cpus} RealMemory=1000 State=UNKNOWN",
                    f"PartitionName=gpu Nodes=n[1-{self.nodes}] Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv, env=self.env, stdout=(self.root / "log" / log).open("ab"), stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.write_conf()
        key = self.root / "munge" / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
        m = self.root / "munge"
        self._spawn(
            [
                "munged",
                "-F",
                "--force",
                f"--key-file={key}",
                f"--socket={m / 'munge.socket'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
            "munged.out",
        )
        self._wait(lambda: (m / "munge.socket").exists(), "munged")
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        self._wait(lambda: self.run("sinfo").returncode == 0, "slurmctld")
        if self.private_dir is not None:
            self.private_dir.mkdir(parents=True, exist_ok=True)
        for name in self.node_names:
            self._spawn(self._slurmd_argv(name), f"slurmd-{name}.out")
        self._wait(lambda: self.idle_nodes() == self.nodes, f"{self.nodes} idle nodes")

    def _slurmd_argv(self, name: str) -> list[str]:
        argv = ["slurmd", "-D", "-N", name, "-f", str(self.conf)]
        if self.private_dir is None or name not in self.private_nodes:
            return argv
        # A mount namespace of the node's own, private propagation (nothing mounted there reaches the host or
        # another node), and a fresh tmpfs over the folder; then slurmd itself, so SIGTERM reaches it.
        mount = 'mount -t tmpfs -o mode=1777 "pytest-mlperf-$1" "$0" && shift && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(self.private_dir), name, *argv]

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)

    def idle_nodes(self) -> int:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%N %t").stdout.split("\n")
        return sum(1 for line in out if line.strip().endswith(" idle"))

    def jobs(self) -> list[str]:
        return [j for j in self.run("squeue", "--noheader", "--format=%i").stdout.split() if j]

    def jobs_left(self, settle: float = 15.0) -> list[str]:
        """The jobs still queued, running or completing once those that are only completing have had `settle`
        seconds to go: an srun that has returned leaves its job in CG for a moment on a busy machine, which is
        not a job left behind. One still there after that is, whatever its state."""
        deadline = time.monotonic() + settle
        while True:
            listed = self.run("squeue", "--noheader", "--format=%i %t").stdout.split("\n")
            jobs = dict(line.split() for line in listed if line.strip())
            if not jobs or any(state != "CG" for state in jobs.values()) or time.monotonic() > deadline:
                return sorted(f"{job} ({state})" if state == "CG" else job for job, state in jobs.items())
            time.sleep(0.5)

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0].args[0]} exited while waiting for {what}: see {self.root / 'log'}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"Slurm: no {what} after {timeout:.0f} s; see {self.root / 'log'}")

    def set_state(self, node: str, state: str, reason: str) -> None:
        """scontrol update of one node's state, checked: it answered, and sinfo shows the state (under load a
        controller can time out on the update, and the test would run against nodes that are still idle)."""
        done = self.run("scontrol", "update", f"nodename={node}", f"state={state}", f"reason={reason}")
        if done.returncode != 0:
            raise RuntimeError(f"scontrol update {node} state={state} failed: {done.stderr.strip()}")
        self._wait(
            lambda: (
                self.run("sinfo", "--noheader", "--Node", f"--nodes={node}", "--format=%T")
                .stdout.strip()
                .rstrip("*")
                .startswith(state)
            ),
            f"{node} {state} in sinfo",
        )

    def reset_nodes(self) -> None:
        """Bring nodes a test marked down back to service."""
        self.run("scontrol", "update", f"nodename=n[1-{self.nodes}]", "state=resume")
        self._wait(lambda: self.idle_nodes() == self.nodes, f"{self.nodes} idle nodes after resume")

    def stop(self) -> None:
        for job in self.jobs():
            self.run("scancel", job)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def root_cluster(name: str):
    """A test module's cluster, started as root (as .ci/run runs the tests) under /tmp/<name>-<pid>, with a
    node-local folder /tmp/<name>-local-<pid> (each node sees an empty tmpfs over it); the module is skipped
    where Debian's packages or root are missing."""
    import pytest

    if missing_tools() or os.geteuid() != 0:
        pytest.skip(f"a Slurm cluster is started as root from Debian's packages; missing: {missing_tools()}")
    pid = os.getpid()
    yield from module_cluster(Path(f"/tmp/{name}-{pid}"), Path(f"/tmp/{name}-local-{pid}"))


def module_cluster(root: Path, private_dir: Path, base_port: int | None = None):
    """A module's cluster: started (stopped again if starting fails), yielded, stopped and removed; fails the
    module if it left jobs behind."""
    cluster = SlurmCluster(root, nodes=8, base_port=base_port, private_dir=private_dir)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    left = cluster.jobs_left()
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
    shutil.rmtree(private_dir, ignore_errors=True)
    assert left == [], f"Slurm jobs left behind by this module: {left}"
