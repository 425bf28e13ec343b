"""Slurm, the engine multi-node training runs on: sbatch with argument lists, a job followed with squeue and
sacct (or scontrol where accounting is off), scancel on interrupt or timeout; never a job left behind."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Pending reasons that will never clear by waiting: fail at once instead of pending forever.
HOPELESS = {
    "PartitionNodeLimit",
    "PartitionConfig",
    "PartitionDown",
    "PartitionInactive",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxNodePerJobLimit",
    "AssocMaxNodesPerJobLimit",
    "ReqNodeNotAvail",
    "NodeDown",
}
ENDED_WELL = "COMPLETED"
# What squeue --states=all may still show of a job that has ended (until MinJobAge passes).
ENDED_STATES = {
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "SPECIAL_EXIT",
    "REVOKED",
}
WHY = {
    "NODE_FAIL": "a node of the job was lost",
    "CANCELLED": "the job was cancelled",
    "TIMEOUT": "the job ran past its walltime",
    "FAILED": "the job script exited with an error",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "PREEMPTED": "the job was preempted",
    "BOOT_FAIL": "a node failed to boot",
    "DEADLINE": "the job missed its deadline",
}


# How long a job followed may go unanswered by squeue (a busy or restarting slurmctld) before that is an error.
SQUEUE_PATIENCE = 120.0
# How long a cancelled job is given to leave the queue, once after scancel (more than Slurm's default KillWait of
# 30 s, after which Slurm kills what ignored SIGTERM) and once more after scancel --signal=KILL.
CANCEL_WAIT = 45.0


class SlurmError(RuntimeError):
    """Slurm refused, lost or ended a job badly; the message says which job and why."""


@dataclass(frozen=True)
class JobEnd:
    job_id: str
    state: str
    exit_code: str


def _run(argv: list[str], timeout: float = 60, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def available() -> str | None:
    """Why Slurm cannot be used here, or None when its client commands are installed."""
    missing = [tool for tool in ("sbatch", "squeue", "scancel", "sinfo", "scontrol") if shutil.which(tool) is None]
    return f"Slurm client commands missing: {', '.join(missing)} (Debian: slurm-client)" if missing else None


class SlurmLauncher:
    def __init__(self, partition: str | None = None, poll: float = 1.0, echo: Callable[[str], None] | None = None):
        self.partition = partition
        self.poll = poll
        self.echo = echo
        self.active: set[str] = set()

    def nodes_available(self) -> int:
        argv = ["sinfo", "--noheader", "--format=%D|%P"]
        if self.partition:
            argv += ["--partition", self.partition]
        proc = _run(argv)
        if proc.returncode != 0:
            raise SlurmError(f"sinfo failed (exit {proc.returncode}): {proc.stderr.strip()}")
        total = 0
        for line in proc.stdout.splitlines():
            count, _, part = line.strip().partition("|")
            if self.partition or part.endswith("*"):  # the default partition carries a '*'
                total += int(count)
        return total

    def require_nodes(self, nodes: int, what: str) -> None:
        """A job the partition can never run fails here, before it is submitted (it would pend forever)."""
        have = self.nodes_available()
        if nodes > have:
            where = f"partition {self.partition}" if self.partition else "the default partition"
            raise SlurmError(f"{what} needs {nodes} nodes; {where} has {have} (sinfo): not submitted")

    def submit(
        self,
        script: Path,
        *,
        nodes: int,
        tasks_per_node: int,
        walltime: str | None,
        job_name: str,
        output: Path,
        env: dict[str, str],
        cwd: Path,
        nodelist: list[str] | None = None,
        exclusive: bool = False,
        args: list[str] | None = None,
    ) -> str:
        """sbatch -N nodes --ntasks-per-node=tasks --time=walltime script [args]; returns the job id. (Callers
        check require_nodes() first; sbatch's own refusal, e.g. under EnforcePartLimits, is reported as it says
        it.) The script's arguments go as sbatch's own trailing arguments, never through a shell."""
        argv = [
            "sbatch",
            "--parsable",
            f"--nodes={nodes}",
            f"--ntasks-per-node={tasks_per_node}",
            f"--job-name={job_name}",
            f"--output={output}",
            "--no-requeue",
            "--export=ALL",
        ]
        if walltime:
            argv.append(f"--time={walltime}")
        if nodelist:
            argv.append(f"--nodelist={','.join(nodelist)}")
        if exclusive:
            argv.append("--exclusive")
        if self.partition:
            argv.append(f"--partition={self.partition}")
        argv += [str(script), *(args or [])]
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = _run(argv, env={**os.environ, **env}, cwd=cwd)
        except BaseException:  # interrupted while sbatch ran: it may have queued the job before we read its id
            _run(["scancel", f"--name={job_name}", f"--user={getpass.getuser()}"])
            raise
        if proc.returncode != 0:
            raise SlurmError(f"sbatch refused {job_name}: {proc.stderr.strip() or proc.stdout.strip()}")
        job_id = proc.stdout.strip().split(";")[0]
        self.active.add(job_id)
        return job_id

    def queue_state(self, job_id: str) -> tuple[str, str] | None:
        """(state, reason) while the job has not ended; None once it has (or has left the queue). A failing squeue
        (a busy slurmctld times out) raises SlurmError: it says nothing of the job."""
        return self.queue_states([job_id]).get(job_id)

    def _queue_state_patiently(self, job_id: str) -> tuple[str, str] | None:
        """queue_state, asked again while squeue fails, for SQUEUE_PATIENCE seconds at most."""
        deadline = time.monotonic() + SQUEUE_PATIENCE
        while True:
            try:
                return self.queue_state(job_id)
            except (SlurmError, subprocess.TimeoutExpired) as exc:
                if time.monotonic() >= deadline:
                    why = f"squeue could not say how job {job_id} stands for {SQUEUE_PATIENCE:.0f} s: {exc}"
                    raise SlurmError(why) from None
                time.sleep(self.poll)

    def queue_states(self, job_ids: list[str]) -> dict[str, tuple[str, str]]:
        """(state, reason) of each of the jobs that has not ended, in one squeue call; a job that ended or left the
        queue is absent. Raises SlurmError when squeue itself failed (the caller asks again rather than take every
        job as ended)."""
        if not job_ids:
            return {}
        proc = _run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", "--format=%i|%T|%r"])
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise SlurmError(f"squeue failed (exit {proc.returncode}): {proc.stderr.strip()}")
        found = {}
        for line in proc.stdout.splitlines():
            job, _, rest = line.strip().partition("|")
            state, _, reason = rest.partition("|")
            if job in job_ids and state not in ENDED_STATES:
                found[job] = (state, reason)
        return found

    def final_state(self, job_id: str) -> JobEnd:
        proc = _run(
            ["sacct", "--jobs", job_id, "--allocations", "--noheader", "--parsable2", "--format=State,ExitCode"]
        )
        if proc.returncode == 0 and proc.stdout.strip():
            state, _, code = proc.stdout.strip().splitlines()[0].partition("|")
            return JobEnd(job_id, state.split()[0], code)
        deadline = time.monotonic() + SQUEUE_PATIENCE
        while True:  # no accounting: the controller's record, asked again while slurmctld does not answer
            proc = _run(["scontrol", "show", "job", "--oneliner", job_id])
            fields = dict(word.split("=", 1) for word in proc.stdout.split() if "=" in word)
            if proc.returncode == 0 and "JobState" in fields:
                return JobEnd(job_id, fields["JobState"], fields.get("ExitCode", ""))
            if "Invalid job id" in proc.stderr or time.monotonic() >= deadline:
                raise SlurmError(f"job {job_id} left the queue and neither sacct nor scontrol knows how it ended")
            time.sleep(self.poll)

    def follow(self, job_id: str, *, timeout: float, progress: Callable[[], str | None] | None = None) -> JobEnd:
        """Wait for the job to end. A hopeless pending reason or the timeout cancels it; so does Ctrl-C."""
        started = time.monotonic()
        last_note = started
        try:
            while True:
                queued = self._queue_state_patiently(job_id)
                if queued is None:
                    break
                state, reason = queued
                if state == "PENDING" and reason in HOPELESS:
                    self.cancel(job_id)
                    raise SlurmError(f"job {job_id} can never start ({reason}); cancelled it")
                elapsed = time.monotonic() - started
                if elapsed > timeout:
                    self.cancel(job_id)
                    raise SlurmError(f"job {job_id} ran past {timeout:.0f} s; cancelled it")
                news = progress() if progress else None
                if self.echo and (news or time.monotonic() - last_note > 30):
                    self.echo(f"[pytest-mlperf] slurm job {job_id} {state}: {elapsed:.0f} s elapsed{news or ''}\n")
                    last_note = time.monotonic()
                time.sleep(self.poll)
        except BaseException:
            if job_id in self.active:
                self.cancel(job_id)
            raise
        self.active.discard(job_id)
        return self.final_state(job_id)

    def cancel(self, job_id: str) -> None:
        self.cancel_all([job_id])

    def close(self) -> None:
        self.cancel_all(list(self.active))

    def cancel_all(self, job_ids: list[str]) -> list[str]:
        """scancel the jobs at once, then wait for them to leave the queue. Slurm sends SIGTERM, and SIGKILL after
        its KillWait (30 s by default); a job still there after CANCEL_WAIT seconds gets SIGKILL from here, and as
        long again. Returns (and says, through echo) the jobs still in the queue after that."""
        jobs = [job for job in dict.fromkeys(job_ids) if job]
        left = jobs
        for argv in (["scancel"], ["scancel", "--signal=KILL", "--full"]):
            if not left:
                break
            try:
                _run([*argv, *left])
            except subprocess.TimeoutExpired:
                pass  # slurmctld busy: the wait below asks again
            left = self._wait_gone(left, CANCEL_WAIT)
        self.active.difference_update(jobs)
        if left and self.echo:
            self.echo(
                f"[pytest-mlperf] slurm job(s) {', '.join(left)} still in the queue {2 * CANCEL_WAIT:.0f} s "
                "after scancel and scancel --signal=KILL; see squeue\n"
            )
        return left

    def _wait_gone(self, jobs: list[str], seconds: float) -> list[str]:
        """The jobs still in the queue once they have all left it or `seconds` have passed (a failing squeue
        counts none as gone)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                left = [job for job in jobs if job in self.queue_states(jobs)]
            except (SlurmError, subprocess.TimeoutExpired):
                left = jobs
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.2)


# A node in one of these states (sinfo's long form, its flags removed) takes no new job: its tests fail at once.
UNUSABLE = {"down", "drained", "draining", "drain", "fail", "failing", "future", "inval", "unknown", "maint"}


def expand_hostlist(expression: str) -> list[str]:
    """gpu[001-003],dgx7 -> [gpu001, gpu002, gpu003, dgx7], as Slurm expands it (scontrol show hostnames)."""
    proc = _run(["scontrol", "show", "hostnames", expression])
    names = proc.stdout.split()
    if proc.returncode != 0 or not names:
        raise SlurmError(f"Slurm cannot read the host list {expression!r}: {proc.stderr.strip() or 'no hosts'}")
    return list(dict.fromkeys(names))


def node_states(names: list[str]) -> dict[str, str]:
    """Each node's state as sinfo reports it (idle, mixed, allocated, down*, drained, ...), from one call; a
    node the cluster does not know is absent."""
    proc = _run(["sinfo", "--Node", "--noheader", "--all", f"--nodes={','.join(names)}", "--format=%N|%T"])
    if proc.returncode != 0:
        raise SlurmError(f"sinfo failed (exit {proc.returncode}): {proc.stderr.strip()}")
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, _, state = line.strip().partition("|")
        if name in names and state:
            states.setdefault(name, state)
    return states


def unusable(state: str) -> str | None:
    """Why a node in this sinfo state will not run a job now, or None. A trailing '*' means the controller has
    lost touch with the node's slurmd."""
    if state.endswith("*"):
        return f"{state.rstrip('*')}, not responding"
    base = state.rstrip("~#!%$@^-+").lower()
    return state if base in UNUSABLE else None


# Runs on every node of a probe step: which of the paths it cannot see, and whether the submit host's probe file in
# the log folder is there and a file can be written beside it. Paths come as arguments, never pasted in.
PROBE = r"""
token=$1 logdir=$2; shift 2
node=${SLURMD_NODENAME:-$(hostname)}
echo "probe|$SLURM_NODEID|$node"
for p in "$@"; do [ -e "$p" ] || echo "missing|$node|$p"; done
[ -r "$logdir/$token" ] || echo "missing|$node|$logdir (the submit host's file $token is not there)"
if ! ( : > "$logdir/$token.$SLURM_NODEID" ) 2>/dev/null; then echo "missing|$node|$logdir (not writable here)"; fi
"""


@dataclass(frozen=True)
class ProbeResult:
    nodes: int  # nodes that answered
    problems: list[str]  # "<path> is not visible on n3, n4", one per path
    by_node: dict[str, list[str]] = field(default_factory=dict)  # node -> what it cannot see


def probe_paths(
    nodes: int,
    logdir: Path,
    paths: list[str],
    *,
    partition: str | None = None,
    timeout: float = 600,
    nodelist: list[str] | None = None,
) -> ProbeResult:
    """A short srun over `nodes` nodes (one task each; those of nodelist when given): every path must exist on
    every node, and the log folder must be the submit host's (a file written here is read there, a file written
    there is seen here)."""
    token = f".pytest-mlperf-probe-{os.getpid()}-{time.monotonic_ns()}"
    marker = logdir / token
    marker.write_text("written by pytest-mlperf on the submit host; removed after the probe\n")
    argv = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--time=5"]
    argv += ["--job-name=pytest-mlperf-probe", "--quiet"] + ([f"--partition={partition}"] if partition else [])
    argv += [f"--nodelist={','.join(nodelist)}"] if nodelist else []
    argv += ["bash", "-c", PROBE, "probe", token, str(logdir), *paths]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # srun cancels its step and allocation on SIGTERM
            proc.communicate(timeout=60)
            raise SlurmError(
                f"the srun probe of {nodes} node(s) did not run within {timeout:.0f} s; cancelled it"
            ) from None
        except BaseException:  # Ctrl-C or SIGTERM to this process alone: srun would wait on, its job queued
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        return _probe_result(nodes, logdir, token, out, err, proc.returncode)
    finally:
        for path in logdir.glob(f"{token}*"):
            path.unlink(missing_ok=True)


def _probe_result(nodes: int, logdir: Path, token: str, out: str, err: str, code: int) -> ProbeResult:
    answered: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    for line in out.splitlines():
        kind, _, rest = line.rstrip("\r").partition("|")
        first, _, last = rest.partition("|")  # a node's id and name, or a node's name and a path ('|' and all)
        if kind == "probe" and last:
            answered[first] = last
        elif kind == "missing" and last:
            missing.setdefault(last, []).append(first)
    if code != 0 or len(answered) < nodes:
        raise SlurmError(f"the srun probe of {nodes} node(s) failed (exit {code}): {err.strip() or out.strip()}")
    unseen = [name for nodeid, name in answered.items() if not (logdir / f"{token}.{nodeid}").exists()]
    if unseen:
        missing.setdefault(f"{logdir} (files written there do not appear on the submit host)", []).extend(unseen)
    problems = [f"{path} is not visible on {', '.join(sorted(names))}" for path, names in missing.items()]
    by_node: dict[str, list[str]] = {}
    for path, names in missing.items():
        for name in names:
            by_node.setdefault(name, []).append(f"{path} is not visible there")
    return ProbeResult(len(answered), problems, by_node)


def explain(end: JobEnd) -> str:
    why = WHY.get(end.state, "")
    return f"Slurm job {end.job_id} ended {end.state} (exit {end.exit_code})" + (f": {why}" if why else "")
