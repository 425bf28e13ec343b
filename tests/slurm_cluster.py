"""A real Slurm cluster on this machine for the tests: munged, slurmctld and one slurmd per node, every node
on loopback (Debian's slurmctld/slurmd/slurm-client/munge; started as root, as .ci/run runs the tests)."""

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


class SlurmCluster:
    def __init__(self, root: Path, nodes: int = 8, cpus: int = 8, base_port: int | None = None):
        self.root, self.nodes, self.cpus = root, nodes, cpus
        self.base_port = base_port or 17000 + (os.getpid() % 400) * 20
        self.conf = root / "slurm.conf"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

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
                    "ReturnToService=2",
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
        for name in self.node_names:
            self._spawn(["slurmd", "-D", "-N", name, "-f", str(self.conf)], f"slurmd-{name}.out")
        self._wait(lambda: self.idle_nodes() == self.nodes, f"{self.nodes} idle nodes")

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)

    def idle_nodes(self) -> int:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%N %t").stdout.split("\n")
        return sum(1 for line in out if line.strip().endswith(" idle"))

    def jobs(self) -> list[str]:
        return [j for j in self.run("squeue", "--noheader", "--format=%i").stdout.split() if j]

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
