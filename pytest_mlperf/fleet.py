"""Fleet runs through Slurm: one exclusive job per node runs these same suites there (the same options, less the
fleet's and the gate's), each writing its JSON, JUnit and logs into a folder every node sees; the controller
follows the jobs and turns each node's records into tests of its own (`case@node`), plus one test per case that
holds the nodes to their median (`case@fleet`).

Nothing here imports pytest: the runner asks it for a node's records and the plugin for the cases to
parametrize. Every job it submits is cancelled on Ctrl-C, SIGTERM or any other way the run ends early."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .gate.baseline import BaselineError, load
from .machine import slurm
from .machine.slurm import JobEnd, SlurmError, SlurmLauncher

RESULTS, JUNIT, CASES, OUTPUT = "results.json", "junit.xml", "cases.txt", "mlperf-results"
FLEET_SUFFIX = "fleet"
SAFE_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder name and a test id; never '.' or '..'
# pytest's short options that take a value: in a cluster such as -vk EXPR or -xkEXPR the value is the rest of the
# word or the next word (-k and -m are the controller's; the others go to the node as they are)
SHORT_WITH_VALUE = set("kmpcoWrn")
# The node's own pytest exits 0 (all passed) or 1 (some failed) when it judged what it was given; the records
# then tell each case's story. Any other status means the run itself went wrong.
PYTEST_STATUS = {
    "2": "pytest was interrupted",
    "3": "pytest hit an internal error",
    "4": "pytest refused its command line (a usage error)",
    "5": "pytest collected no tests",
}
JOB_SCRIPT = """#!/bin/bash
# pytest-mlperf: one node of a fleet run. sbatch hands this script the node's pytest command as its arguments.
echo "pytest-mlperf fleet job $SLURM_JOB_ID on ${SLURMD_NODENAME:-$(hostname)}, in $(pwd)"
exec "$@"
"""
# Flags the controller keeps to itself (its own reports, the gate it holds the nodes' records to, the fleet),
# with whether each takes a value. The node gets its own report paths and its cases instead.
CONTROLLER_FLAGS = {
    "--junitxml": True,
    "--junit-xml": True,
    "--junit-prefix": True,
    "--junitprefix": True,
    "--html": True,
    "--basetemp": True,
    "-k": True,
    "-m": True,
    "--mlperf-json": True,
    "--mlperf-output": True,
    "--mlperf-cases": True,
    "--mlperf-save": True,
    "--mlperf-baseline": True,
    "--mlperf-fail-on": True,
    "--mlperf-baseline-dir": True,
    "--mlperf-expect-change": True,
    "--mlperf-min-published": True,
    "--mlperf-fleet": True,
    "--mlperf-fleet-nodes": True,
    "--mlperf-fleet-dir": True,
    "--mlperf-fleet-walltime": True,
}


# ---- the cases a fleet run's tests judge ------------------------------------------------------------------
@dataclass(frozen=True)
class NodeCase:
    """A case as one node of the fleet judged it."""

    case: object  # catalog.InferenceCase | TrainingCase | ScoreCase
    node: str

    @property
    def id(self) -> str:
        return f"{self.case.id}@{self.node}"

    @property
    def markers(self) -> tuple[str, ...]:
        return self.case.markers


@dataclass(frozen=True)
class FleetCase:
    """A case across the fleet's nodes: each node's headline figure against their median."""

    case: object
    nodes: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.case.id}@{FLEET_SUFFIX}"

    @property
    def markers(self) -> tuple[str, ...]:
        return self.case.markers


def fleet_params(cases: list, nodes: list[str]) -> list:
    """A case's node tests, then its fleet test, case by case: the first case's row waits for every node, the
    rest find their nodes done."""
    out: list = []
    for case in cases:
        out += [NodeCase(case, node) for node in nodes]
        out.append(FleetCase(case, tuple(nodes)))
    return out


# ---- the node's command line ------------------------------------------------------------------------------
def node_arguments(args: list[str], positional: set[str]) -> list[str]:
    """The controller's pytest arguments as a node runs them: without the flags the controller keeps (both the
    `--flag value` and the `--flag=value` forms; -k and -m also inside a cluster of short flags, -vk EXPR or
    -xkEXPR), and with a test id's `::` part dropped (the node's ids have no @node; its cases file selects)."""
    out: list[str] = []
    words = iter(args)
    for word in words:
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            if name in CONTROLLER_FLAGS:
                if CONTROLLER_FLAGS[name] and "=" not in word:
                    next(words, None)
                continue
        elif word.startswith("-") and len(word) > 1 and not word[1].isdigit():
            kept = _short_cluster(word, words)
            if kept is not None:
                out += kept
            continue
        if word in positional and "::" in word and out[-1:] != ["--deselect"]:
            word = word.split("::", 1)[0]
        out.append(word)
    return out


def _short_cluster(word: str, words) -> list[str] | None:
    """A cluster of short flags (-vx, -vk EXPR, -n8): as it was, or, when it holds -k or -m, without them and
    their value (read from the rest of the word or the next word)."""
    for at, letter in enumerate(word[1:], start=1):
        if letter in SHORT_WITH_VALUE:
            rest = word[at + 1 :]
            value = [] if rest else [next(words, "")]
            if letter not in "km":
                return [word, *value]
            before = word[1:at]
            return [f"-{before}"] if before else []
    return [word]


# ---- one node's job ---------------------------------------------------------------------------------------
@dataclass
class NodeRun:
    node: str
    folder: Path
    cases: list[str] = field(default_factory=list)  # the case ids this node was given
    job_id: str | None = None
    state: str = "not submitted"  # the Slurm state last seen, or why it never ran
    end: JobEnd | None = None
    problem: str | None = None  # why this node's tests fail without a record: a Slurm state, a missing file
    records: dict[str, dict] = field(default_factory=dict)
    submitted_at: float | None = None
    ended_at: float | None = None

    @property
    def done(self) -> bool:
        return self.problem is not None or self.end is not None

    @property
    def slurm_output(self) -> Path | None:
        return self.folder / f"slurm-{self.job_id}.out" if self.job_id else None

    def properties(self) -> dict:
        out = {"node": self.node, "slurm_state": self.state}
        if self.job_id:
            out["slurm_job"] = self.job_id
        if self.end is not None:
            out["slurm_exit"] = self.end.exit_code
        return out

    def to_dict(self) -> dict:
        out = {**self.properties(), "folder": str(self.folder), "cases": len(self.cases)}
        if self.problem:
            out["problem"] = self.problem
        if self.submitted_at is not None and self.ended_at is not None:
            out["seconds"] = round(self.ended_at - self.submitted_at, 3)
        return out


def _last_lines(path: Path | None, count: int = 12) -> str:
    if path is None:
        return ""
    try:
        lines = path.read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return ""
    return "\n".join(lines)


class Fleet:
    """The fleet's jobs: submitted once, followed together (one squeue call a poll, whatever the number of
    nodes), cancelled together."""

    def __init__(
        self,
        nodes: list[str],
        root: Path,
        argv: list[str],
        cwd: Path,
        *,
        walltime: int | None = None,
        partition: str | None = None,
        echo: Callable[[str], None] | None = None,
        poll: float = 2.0,
        probe_timeout: float = 600,
    ):
        self.nodes = nodes
        self.root = root
        self.argv = argv  # the node's pytest arguments, before its own report paths
        self.cwd = cwd
        self.walltime = walltime
        self.echo = echo
        self.poll = poll
        self.probe_timeout = probe_timeout
        self.launcher = SlurmLauncher(partition=partition, poll=poll)
        self.runs: dict[str, NodeRun] = {}
        self.expect: dict = {}  # header fields a node's results must share with the controller's (SKU, round)
        self.folder: Path | None = None
        self.started = False
        self.problem: str | None = None  # why the whole fleet could not start
        self.started_at: float | None = None
        # where the controller's own time goes (Slurm's commands, reading the nodes' results), not its waiting
        self.seconds = {"nodes": 0.0, "probe": 0.0, "submit": 0.0, "follow": 0.0, "read": 0.0}
        self.polls = 0

    @classmethod
    def from_hostlist(cls, expression: str, *args, **kwargs) -> Fleet:
        why = slurm.available()
        if why:
            raise SlurmError(why)
        nodes = slurm.expand_hostlist(expression)
        bad = [node for node in nodes if not SAFE_NODE.match(node) or node == FLEET_SUFFIX]
        if bad:
            raise SlurmError(
                f"node names {bad!r} cannot name a folder or a test id ('{FLEET_SUFFIX}' names the fleet's own tests)"
            )
        return cls(nodes, *args, **kwargs)

    # ---- start -------------------------------------------------------------------------------------------
    def start(self, selected: dict[str, list[str]]) -> None:
        """Submit one job per node that has selected cases. A node that cannot take one (down, drained, unknown
        to the cluster, blind to the run folder) gets its problem and no job; the others go on."""
        if self.started:
            return
        self.started = True
        self.started_at = time.monotonic()
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.folder = (self.root / run_id).resolve()
        try:
            self.folder.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            self.problem = f"cannot create the fleet's run folder {self.folder}: {exc.strerror or exc}"
            return
        for node in self.nodes:
            if selected.get(node):
                self.runs[node] = NodeRun(node, self.folder / node, list(selected[node]))
        try:
            with self._timed("nodes"):
                self._check_nodes()
            with self._timed("probe"):
                self._probe()
        except SlurmError as exc:
            self.problem = str(exc)
            return
        script = self.folder / "fleet-job.sh"
        script.write_text(JOB_SCRIPT)
        script.chmod(0o755)
        with self._timed("submit"):
            for run in self.runs.values():
                if run.problem is None:
                    self._submit(run, script)
        self._say(f"submitted {sum(1 for r in self.runs.values() if r.job_id)} of {len(self.runs)} node jobs")

    def _check_nodes(self) -> None:
        states = slurm.node_states(list(self.runs))
        for node, run in self.runs.items():
            state = states.get(node)
            if state is None:
                run.state, run.problem = "unknown", f"node {node} is not in the Slurm cluster (sinfo does not list it)"
            elif why := slurm.unusable(state):
                run.state, run.problem = state, f"node {node} is {why} (sinfo): no job submitted"

    def _probe(self) -> None:
        """Every node that will run sees the run folder as this host does, the folder the tests run from, and
        this Python."""
        up = [node for node, run in self.runs.items() if run.problem is None]
        if not up:
            return
        self._say(f"checking with srun that {len(up)} node(s) see {self.folder} (waits for them to be free)")
        package = str(Path(__file__).resolve().parent)
        paths = [str(self.cwd), sys.executable, package]
        found = slurm.probe_paths(
            len(up), self.folder, paths, partition=self.launcher.partition, timeout=self.probe_timeout, nodelist=up
        )
        for node, problems in found.by_node.items():
            if node in self.runs:
                self.runs[node].problem = f"node {node} cannot run the suites: " + "; ".join(problems)
                self.runs[node].state = "not submitted"

    def node_command(self, run: NodeRun) -> list[str]:
        folder = run.folder
        return [
            sys.executable,
            "-m",
            "pytest",
            *self.argv,
            f"--mlperf-cases={folder / CASES}",
            f"--mlperf-json={folder / RESULTS}",
            f"--junitxml={folder / JUNIT}",
            f"--mlperf-output={folder / OUTPUT}",
            f"--basetemp={folder / 'tmp'}",
            "--mlperf-fleet=off",
        ]

    def _submit(self, run: NodeRun, script: Path) -> None:
        run.folder.mkdir(parents=True, exist_ok=True)
        (run.folder / CASES).write_text("".join(f"{case}\n" for case in run.cases))
        name = f"pytest-mlperf-fleet-{run.node}-{os.getpid()}"
        try:
            run.job_id = self.launcher.submit(
                script,
                nodes=1,
                tasks_per_node=1,
                walltime=str(self.walltime) if self.walltime else None,
                job_name=name,
                output=run.folder / "slurm-%j.out",
                env={"PYTEST_MLPERF_FLEET_NODE": run.node},
                cwd=self.cwd,
                nodelist=[run.node],
                exclusive=True,
                args=self.node_command(run),
            )
        except (SlurmError, OSError) as exc:
            run.problem = f"sbatch refused the job for node {run.node}: {exc}"
            return
        run.state, run.submitted_at = "PENDING", time.monotonic()

    # ---- follow ------------------------------------------------------------------------------------------
    def wait(self, node: str | None = None) -> None:
        """Follow the jobs until `node`'s has ended (every job's when None). Ctrl-C cancels them all."""
        failures = 0
        while True:
            active = [r for r in self.runs.values() if not r.done]
            if (node is None and not active) or (node is not None and self.runs[node].done):
                return
            t0, read_before = time.monotonic(), self.seconds["read"]
            self.polls += 1
            try:
                queued = self.launcher.queue_states([r.job_id for r in active if r.job_id])
                failures = 0
            except SlurmError as exc:
                failures += 1
                if failures >= 5:  # the controller is gone for good: every active node says so
                    for run in active:
                        run.problem = f"cannot follow job {run.job_id} on {run.node}: {exc}"
                    return
                time.sleep(self.poll)
                continue
            for run in active:
                self._update(run, queued.get(run.job_id))
            self.seconds["follow"] += time.monotonic() - t0 - (self.seconds["read"] - read_before)
            time.sleep(self.poll)

    def _update(self, run: NodeRun, queued: tuple[str, str] | None) -> None:
        if queued is not None:
            state, reason = queued
            if state == "PENDING" and reason in slurm.HOPELESS:
                self.launcher.cancel(run.job_id)
                run.state = "CANCELLED"
                run.problem = f"job {run.job_id} on {run.node} can never start ({reason}); cancelled it"
                self._finished(run)
            elif state != run.state:
                run.state = state
            return
        try:
            run.end = self.launcher.final_state(run.job_id)
        except SlurmError as exc:
            run.problem = str(exc)
        else:
            run.state = run.end.state
            self.launcher.active.discard(run.job_id)
            with self._timed("read"):
                self._read(run)
        self._finished(run)

    def _finished(self, run: NodeRun) -> None:
        run.ended_at = time.monotonic()
        done = [r for r in self.runs.values() if r.done]
        bad = [r.node for r in done if r.problem]
        note = f"; {len(bad)} failed ({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''})" if bad else ""
        self._say(f"{len(done)} of {len(self.runs)} nodes done ({run.node}: {run.state}){note}")

    def _read(self, run: NodeRun) -> None:
        """The node's records, when its job ended as a pytest run that judged its cases ends."""
        end = run.end
        status = end.exit_code.split(":", 1)[0]
        tail = _last_lines(run.slurm_output)
        seen = f"\nlast lines of {run.slurm_output}:\n{tail}" if tail else ""
        if end.state not in ("COMPLETED", "FAILED") or (end.state == "FAILED" and status != "1"):
            why = PYTEST_STATUS.get(status, "") if end.state == "FAILED" else ""
            run.problem = slurm.explain(end) + (f" ({why})" if why else "") + f" on {run.node}" + seen
            return
        path = run.folder / RESULTS
        if not path.is_file():
            run.problem = f"job {run.job_id} on {run.node} ended {end.state} but wrote no {path}{seen}"
            return
        try:
            results = load(str(path), path.parent)
        except BaselineError as exc:
            run.problem = f"node {run.node}'s results are unreadable: {exc}"
            return
        stamp = results.header.get("slurm") or {}
        if stamp.get("job_id") != run.job_id or stamp.get("node") != run.node:
            run.problem = (
                f"{path} is not this run's: it says job {stamp.get('job_id')} on {stamp.get('node')}, the job "
                f"was {run.job_id} on {run.node}"
            )
            return
        differ = [
            f"{key} {results.header.get(key)!r} (here {value!r})"
            for key, value in self.expect.items()
            if results.header.get(key) != value
        ]
        if differ:
            run.problem = f"{path} is not a run of these tests: its " + ", ".join(differ)
            return
        run.records = results.records

    @contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.seconds[what] += time.monotonic() - t0

    def _say(self, text: str) -> None:
        if self.echo is not None:
            self.echo(f"[pytest-mlperf] fleet: {text}")

    # ---- what a test asks -----------------------------------------------------------------------------------
    def record(self, node: str, case_id: str) -> tuple[NodeRun, dict | None, str | None]:
        """(the node's run, its record of the case, why there is none)."""
        run = self.runs.get(node)
        if run is None:
            return NodeRun(node, Path()), None, f"node {node} was given no cases"
        if self.problem is not None:
            return run, None, self.problem
        self.wait(node)
        if run.problem is not None:
            return run, None, run.problem
        record = run.records.get(case_id)
        if record is None:
            return (
                run,
                None,
                (
                    f"node {node}'s results ({run.folder / RESULTS}) have no record of {case_id}; it judged "
                    f"{len(run.records)} case(s)"
                ),
            )
        return run, record, None

    def close(self) -> None:
        """Cancel every job this run submitted that is still queued or running."""
        self.launcher.close()

    def summary(self) -> dict:
        out: dict = {"scheduler": "slurm", "folder": str(self.folder) if self.folder else None}
        if self.problem:
            out["problem"] = self.problem
        out["nodes"] = {node: run.to_dict() for node, run in self.runs.items()}
        out["controller_seconds"] = {name: round(value, 3) for name, value in self.seconds.items()}
        out["polls"] = self.polls
        return out


def fleet_selection(cases) -> dict[str, list[str]]:
    """The case ids each node's job runs, from the tests selected (after -m and -k): a node test needs its case
    on its node, a fleet test its case on every node."""
    wanted: dict[str, dict[str, None]] = {}
    for case in cases:
        if isinstance(case, NodeCase):
            wanted.setdefault(case.node, {})[case.case.id] = None
        elif isinstance(case, FleetCase):
            for node in case.nodes:
                wanted.setdefault(node, {})[case.case.id] = None
    return {node: list(ids) for node, ids in wanted.items()}
