"""Judging a case, the same way for a trial test and a score test: execute it on its backend, evaluate its logs,
hold it to the gate, and record it for every report."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

from . import catalog
from .backends import BackendUnavailable, ResultMissing, RunFailed
from .fleet import FleetCase, NodeCase
from .gate import compliance
from .gate.fleet import Incomparable, compare_peers
from .judge.evaluate import CaseResult, combine_runs, evaluate, evaluate_score, trial_outcome
from .judge.metrics import Metric, headline
from .judge.verdict import TrialOutcome, Verdict, record_problem
from .logs import ParseError, clean
from .machine import contention, telemetry
from .machine.containers import ContainerError
from .machine.native import gpu_locks
from .report.junit import case_properties, peer_properties
from .report.records import TEXT_LIMIT, CaseRecord
from .session import MlperfSession

RECORD_KEY = pytest.StashKey[CaseRecord]()
PEER_KEY = pytest.StashKey[dict]()  # a node test's node and job, for its record when it fails without one
REASON_KEY = pytest.StashKey[str]()  # the line its record gives as the reason (the message goes on with logs)
REFERENCES = ("published_pct", "tuned_target_pct")  # a node's references to NVIDIA's figures, recomputed here
FAILURE_LIMIT = 4000  # characters of a failure message (a step's last lines, say) a test report carries
# --mlperf-repeat auto: at least AUTO_MIN_RUNS runs (a spread to measure), at most AUTO_MAX_RUNS; with nothing to
# decide against (saving a baseline, a case the baseline lacks) AUTO_BASELINE_RUNS, so a later gate has a spread.
AUTO_MIN_RUNS, AUTO_MAX_RUNS, AUTO_BASELINE_RUNS = 3, 20, 5


class Runner:
    def __init__(self, session: MlperfSession, request: pytest.FixtureRequest):
        self.session = session
        self.request = request

    # ---- a trial or inference test ---------------------------------------------------------------------
    def judge(self, case) -> CaseResult:
        """Run (or replay) a case, judge it, attach its metrics to the reports, and return the CaseResult."""
        if isinstance(case, NodeCase | FleetCase):
            return self.from_fleet(case)
        session = self.session
        interval = session.options.telemetry_interval
        pinned = getattr(case, "gpu", None)
        # A case pinned to one GPU leases it for the whole test: no other worker's case runs on it meanwhile (a
        # lock the operating system drops if this process dies), and only it is sampled.
        lease = gpu_locks(session.gpu_keys((pinned,)), exclusive=True) if pinned is not None else nullcontext()
        with lease:
            indices = (pinned,) if pinned is not None else None
            sampler = telemetry.Sampler(interval, indices=indices).start() if session.telemetry_on else None
            watcher = self._watcher(case, indices)
            repeated = self._repeats(case)
            try:
                if repeated:
                    result, why = self._repeated(case)
                else:
                    artifacts, failure = self.execute(case)
            except Exception as exc:  # pytest's skip and fail are not Exceptions: they pass through unrecorded
                self.trial(case, None, f"{type(exc).__name__}: {exc}")
                raise
            finally:
                watched = sampler.stop().summary() if sampler is not None else None
                room = watcher.stop() if watcher is not None else None
        if not repeated:
            result, why = self._settle(case, artifacts, failure)
        if result is not None and pinned is not None:
            device = session.pinned_gpu(pinned)
            result.info["gpu"] = {"index": pinned, "name": device.name, "uuid": device.uuid, "serial": device.serial}
        if why is not None:  # said outside any except block: the message alone, no chained traceback
            pytest.fail(why, pytrace=False)
        extras = {}
        if isinstance(case, catalog.TrainingCase) and session.compliance:
            out = self.request.getfixturevalue("tmp_path_factory").getbasetemp() / "mlperf-compliance"
            extras["compliance"] = compliance.check(artifacts.path, out / case.id.replace("/", "_")).to_dict()
        if watched is not None:
            extras["telemetry"] = watched
            if getattr(case, "mode", "") == "PerformanceOnly" and watched.get("throttle"):
                extras["throttled"] = list(watched["throttle"])
        if room is not None:
            extras["contention"] = room
            if room.get("contended"):
                extras["contended"] = list(room.get("reasons") or [])
        self.record(case, result, **extras)
        return result

    # ---- repeated runs (--mlperf-repeat) ------------------------------------------------------------------
    def _repeats(self, case) -> bool:
        """A performance case run more than once: asked for, and on a backend that runs (a replay judges the run
        its tree holds)."""
        plan = self.session.options.repeat
        if not isinstance(case, catalog.InferenceCase) or case.mode != "PerformanceOnly":
            return False
        if self.session.backend_for(case).name in ("results", "none"):
            return False
        return plan.auto or (plan.runs or 1) > 1

    def _repeated(self, case) -> tuple[CaseResult | None, str | None]:
        """Run a performance case N times, or (auto) until the gate decides every gated figure against the
        baseline, the case's budget would be spent by one more run, or AUTO_MAX_RUNS; each run in its own
        performance/run_<k> folder, judged on its own. An INVALID run ends the repeats: the case is INVALID
        whatever the others say. (result, None), or (None, why there is no verdict)."""
        options, gate = self.session.options, self.session.reporter.gate
        plan, budget = options.repeat, options.gate_budget * 60.0
        started = time.monotonic()
        runs: list[CaseResult] = []
        stopped = ""
        while True:
            number = len(runs) + 1
            run_case = case if number == 1 else case.with_(run=f"run_{number}")
            artifacts, failure = self.execute(run_case)
            if failure is not None:
                return None, failure if number == 1 else f"run {number}: {failure}"
            try:
                runs.append(evaluate(run_case, artifacts))
            except ParseError as exc:
                return None, f"cannot judge {case.id} (run {number}): {exc}"
            elapsed = time.monotonic() - started
            if not runs[-1].verdict.ok:
                stopped = f"run {number} was {runs[-1].verdict.label}"
                break
            if not plan.auto:
                if number >= (plan.runs or 1):
                    stopped = f"{number} runs asked"
                    break
                continue
            if number >= AUTO_MAX_RUNS:
                stopped = f"at most {AUTO_MAX_RUNS} runs"
                break
            if elapsed + elapsed / number > budget:
                stopped = f"the budget ({options.gate_budget:g} min) would be spent by one more run"
                break
            if number < AUTO_MIN_RUNS:
                continue
            try:
                open_metrics = gate.undecided(case.id, combine_runs(case.id, runs))
            except ParseError as exc:
                return None, f"cannot judge {case.id}: {exc}"
            if open_metrics is None and number >= AUTO_BASELINE_RUNS:
                stopped = f"{number} runs: nothing to decide against (no baseline record or gated figure)"
                break
            if open_metrics == []:
                stopped = "decided"
                break
        try:
            result = combine_runs(case.id, runs)
        except ParseError as exc:
            return None, f"cannot judge {case.id}: {exc}"
        result.info["repeat"] = {
            "asked": plan.text,
            "runs": len(runs),
            "stopped": stopped,
            "seconds": round(time.monotonic() - started, 1),
        }
        return result, None

    def _watcher(self, case, indices):
        """What the run really got, watched during every performance run the backend makes here (a replay judges
        old logs: this machine's load now says nothing of them)."""
        backend = self.session.backend_for(case)
        if getattr(case, "mode", "") != "PerformanceOnly" or backend.name in ("results", "none"):
            return None
        return contention.Watcher(gpu_indices=indices, own_cgroups=backend.own_cgroups).start()

    def execute(self, case):
        """Run (or find) a case on its backend: (artifacts, None), or (None, how it ended without logs to
        judge). A case with nothing to judge is skipped."""
        backend = self.session.backend_for(case)
        if backend.needs_gpu:
            self.request.getfixturevalue("mlperf_system")
        try:
            return backend.run(case, self.request.getfixturevalue("tmp_path")), None
        except ResultMissing as exc:
            pytest.skip(str(exc))
        except (RunFailed, ContainerError, BackendUnavailable, ParseError) as exc:
            return None, clean(str(exc), FAILURE_LIMIT)

    def _settle(self, case, artifacts, failure: str | None) -> tuple[CaseResult | None, str | None]:
        """Evaluate what a run left and record it as a trial: (result, None), or (None, why it has no verdict)."""
        if failure is not None:
            self.trial(case, None, failure.splitlines()[0])
            return None, failure
        try:
            result = evaluate(case, artifacts)
        except ParseError as exc:
            self.trial(case, None, str(exc))
            return None, f"cannot judge {case.id}: {exc}"
        self.trial(case, result)
        return result, None

    def trial(self, case, result: CaseResult | None, failure: str = "") -> None:
        """What a training trial adds to its config's score, kept here and in the store every worker reads; a
        trial that could not be judged counts as failed."""
        if isinstance(case, catalog.TrainingCase) and case.trial is not None:
            outcome = trial_outcome(case.id, result, failure)
            self.session.trials[case.id] = outcome
            self.session.trial_store.put(outcome)

    # ---- a score test -------------------------------------------------------------------------------------
    def score(self, case: catalog.ScoreCase) -> CaseResult:
        """Score a set of trials judged earlier in this session (MLPerf's olympic mean) and attach the metrics."""
        if isinstance(case, NodeCase | FleetCase):
            return self.from_fleet(case)
        session = self.session
        by_id = {c.id: c for c in session.cases("training")}
        for trial in (t for t in case.trials if t not in session.trials):
            session.trials[trial] = self._outcome_of(by_id[trial])
        skipped = next((session.trials[t] for t in case.trials if session.trials[t].skipped), None)
        if skipped is not None:
            pytest.skip(f"trial {skipped.id} was skipped: {skipped.reason}")
        outcomes = [session.trials[trial] for trial in case.trials]
        result = evaluate_score(case, outcomes, session.options.partial_scores)
        self.record(case, result)
        return result

    def _outcome_of(self, case) -> TrialOutcome:
        """A trial this process has not judged: what its own test wrote (under pytest-xdist another worker may
        be running it: wait for it), or, when no test of this run judges it (deselected: -m score), judge it
        here as its own test would."""
        session = self.session
        found = session.trial_store.get(case.id)
        if found is None and case.id in session.selected_trials and hasattr(self.request.config, "workerinput"):
            timeout = trial_wait_seconds(case)
            found = session.trial_store.wait(case.id, timeout)
            if found is None:
                found = TrialOutcome(case.id, False, None, f"its test reported nothing within {timeout:.0f} s")
        if found is not None:
            return found
        self._settle(case, *self.execute(case))
        return session.trials[case.id]

    # ---- a fleet's node test and fleet test --------------------------------------------------------------
    def from_fleet(self, case: NodeCase | FleetCase) -> CaseResult:
        """A node test: the node's own record of the case, held to this run's gate. A fleet test: the nodes'
        headline figures against their median. The first one to ask submits the fleet's jobs."""
        fleet = self.session.fleet
        fleet.start(self.session.fleet_selection)
        if isinstance(case, FleetCase):
            return self._across_nodes(case)
        run, data, why = fleet.record(case.node, case.case.id)
        where = run.properties()
        if data is None:
            self._failed_without_record(where, f"{case.node}: {why}")
        verdict, ok, reason = data.get("verdict"), data.get("ok"), clean(str(data.get("reason") or ""), 4000)
        if verdict is None:
            if data.get("outcome") == "skipped":
                self.request.node.stash[PEER_KEY] = where
                pytest.skip(f"on {case.node}: {reason}")
            self._failed_without_record(where, f"on {case.node}: {reason or data.get('outcome')}")
        if problem := record_problem(case.case, data):
            self._failed_without_record(where, f"{case.node}'s record of {case.case.id} does not hold: {problem}")
        metrics = [
            Metric(
                m["name"],
                float(m["value"]),
                str(m.get("unit") or ""),
                m.get("higher_is_better"),
                m.get("metadata") or {},
            )
            for m in data.get("metrics") or []
            if m["name"] not in REFERENCES
        ]
        info = dict(data.get("info") or {})
        extras = {name: info.pop(name) for name in ("telemetry", "throttled", "compliance") if name in info}
        for name in ("baseline", "gate", "notes"):  # the node's gate was off: this run's gate says these
            info.pop(name, None)
        info["fleet"] = where
        kind = str(data.get("kind") or getattr(case.case, "kind", ""))
        artifacts = [Path(str(path)) for path in data.get("artifacts") or []]
        result = CaseResult(case.id, kind, Verdict(ok, reason, verdict), metrics, artifacts, info)
        self.record(case.case, result, record_id=case.id, backend=str(data.get("backend") or ""), **extras)
        if data.get("outcome") == "failed" and ok:
            pytest.fail(f"on {case.node}: its test failed with a {verdict} verdict: {reason}", pytrace=False)
        return result

    def _failed_without_record(self, where: dict, why: str):
        self.request.node.stash[PEER_KEY] = where
        self.request.node.stash[REASON_KEY] = why.splitlines()[0]
        self.request.node.user_properties.extend(peer_properties(where))
        pytest.fail(why, pytrace=False)

    def _across_nodes(self, case: FleetCase) -> CaseResult:
        fleet, spread = self.session.fleet, self.session.options.spread
        fleet.wait()
        name, higher = comparable(case.case)
        by_node, missing, odd = {}, [], []
        for node in case.nodes:
            _, data, why = fleet.record(node, case.case.id)
            problem = record_problem(case.case, data) if data is not None and data.get("verdict") else None
            if data is None or not data.get("verdict") or problem:
                said = why or problem or (data or {}).get("reason") or "no verdict"
                missing.append(f"{node} ({said.splitlines()[0][:400]})")
                continue
            metrics = [m for m in data.get("metrics") or [] if isinstance(m, dict)]
            if name is None and (first := headline(metrics)) is not None:
                name, higher = first["name"], bool(first["higher_is_better"])
            found = next((m for m in metrics if m.get("name") == name), None)
            if found is None:
                odd.append(node)
            else:  # the direction is the case's, whatever a node's file says of it
                by_node[node] = {**found, "higher_is_better": higher}
        try:
            row = compare_peers(case.case.id, by_node, spread, self.session.options.confidence)
        except Incomparable as exc:
            pytest.fail(f"INCOMPARABLE: {exc}", pytrace=False)
        unheard = f"; no figure from {', '.join(missing)}" if missing else ""
        if odd:  # a node that judged the case but lacks the figure the others are compared on: not a quiet pass
            pytest.fail(
                f"INCOMPARABLE: {', '.join(odd)} judged {case.case.id} but recorded no {name} to compare with the "
                f"other nodes{unheard}",
                pytrace=False,
            )
        if row is None:
            pytest.skip(f"fewer than two nodes have a figure for {case.case.id} to compare{unheard}")
        self.session.fleet_rows[case.case.id] = row
        unit = f" {row.unit}" if row.unit else ""
        worst = max(row.values, key=lambda n: row.worse(n))
        if row.behind:
            slow = sorted(row.behind, key=row.behind.get, reverse=True)
            reason = "SLOW NODES: " + "; ".join(
                f"{node} {row.behind[node] * 100:.1f}% behind ({row.values[node]:.6g}{unit})" for node in slow
            )
            reason += f"; the median of {len(row.values)} nodes is {row.median:.6g}{unit}, spread {spread * 100:g}%"
        else:
            behind = max(row.worse(worst), 0.0)
            furthest = f"furthest behind: {worst}, {behind * 100:.1f}%" if behind > 0 else "none behind it"
            reason = (
                f"FLEET OK: {len(row.values)} nodes within {spread * 100:g}% of the median {row.median:.6g}{unit} "
                f"({furthest})"
            )
        reason += "".join(f"; INCONCLUSIVE: {said}" for said in row.undecided.values())
        reason += unheard
        label = "SLOW NODES" if row.behind else "FLEET OK"
        metrics = [
            Metric(
                row.metric, row.median, row.unit, row.higher_is_better, {"statistic": "median", "nodes": row.values}
            ),
            Metric("fleet_nodes", float(len(row.values)), "nodes", None),
            Metric("fleet_slow_nodes", float(len(row.behind)), "nodes", None, {"nodes": sorted(row.behind)}),
            Metric("fleet_worst_behind_pct", max(row.worse(worst), 0.0) * 100.0, "%", None, {"node": worst}),
        ]
        result = CaseResult(case.id, "fleet", Verdict(not row.behind, reason, label), metrics)
        self.record(case.case, result, record_id=case.id, backend="fleet", with_references=False)
        return result

    # ---- the record and the gate -----------------------------------------------------------------------
    def record(
        self,
        case,
        result: CaseResult,
        record_id: str | None = None,
        backend: str | None = None,
        with_references: bool = True,
        **extras,
    ) -> None:
        """Hold the result to the gate, tell the users' hook, keep the record for the reports; a gate that
        fails the case fails the test that shows it. A fleet's node test records the node's result under its own
        id (`case@node`); a fleet test has no reference figures of its own."""
        gate = self.session.reporter.gate
        case_id = record_id or case.id
        published = gate.published(case, result) if with_references else None
        references = [m for m in (published, gate.tuned(case, result) if with_references else None) if m is not None]
        metrics = [m.to_dict() for m in (*result.metrics, *references)]
        check = gate.compare(case_id, result.verdict.label, metrics)
        config = self.request.config
        config.hook.pytest_mlperf_result(config=config, case=case, result=result)
        bad = [m for m in result.metrics if not isinstance(m.value, int | float) or not math.isfinite(m.value)]
        if bad:  # a parser lets none through; a hook's or a backend's own figure is held to the same rule
            pytest.fail(f"{case.id}: metric {bad[0].name} is {bad[0].value!r}, not a finite number", pytrace=False)
        backend = backend or self.session.backend_for(case).name
        record = CaseRecord.judged(case_id, result, backend, baseline=check.to_dict() if check else None, **extras)
        record.metrics += [m.to_dict() for m in references]
        record.notes = gate.reference_notes(case, published) if result.kind != "fleet" else []
        record.notes += gate.warnings(check)
        self.request.node.stash[RECORD_KEY] = record
        self.request.node.user_properties.extend(case_properties(record))
        record.gate = gate.problems(case_id, check, published)
        if record.gate and record.contended:  # a regression on a busy machine: say so beside it
            record.gate = [f"{problem} [contended: {', '.join(record.contended)}]" for problem in record.gate]
        if record.gate:
            pytest.fail("\n".join(record.gate) + f"\n(verdict: {result.verdict.reason})", pytrace=False)


def comparable(case) -> tuple[str | None, bool]:
    """The figure a fleet compares its nodes on, and its direction, from the catalog where the case says it: the
    scenario's figure of a performance run, the accuracy of an accuracy run; otherwise the first node's headline."""
    if isinstance(case, catalog.InferenceCase):
        if case.mode == "AccuracyOnly":
            return "AccuracyValue", True
        return case.scenario.perf_key, case.scenario.higher_is_better
    return None, True


def record_for_report(item: pytest.Item, report: pytest.TestReport, session: MlperfSession) -> CaseRecord | None:
    """The record of an mlperf test's report: the runner's, or, for a test that ended without a result (skipped,
    failed before judging), one saying how it ended."""
    case = case_of(item)
    names = getattr(item, "fixturenames", ())
    if case is None and "mlperf_case" not in names and "mlperf_score_case" not in names:
        return None
    record = item.stash.get(RECORD_KEY, None)
    if record is not None:
        return record.ended(item.nodeid, report.outcome)
    reason = item.stash.get(REASON_KEY, None) or why_ended(report)
    backend = session.backend_for(case) if case is not None else session.backends["inference"]
    record = CaseRecord(case.id if case is not None else item.name, item.nodeid, report.outcome, backend.name, reason)
    where = item.stash.get(PEER_KEY, None)
    if where is not None:
        record.info["fleet"] = where
    return record


def case_of(item: pytest.Item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("mlperf_case") or params.get("mlperf_score_case")


def why_ended(report: pytest.TestReport) -> str:
    if report.longrepr is None:
        return ""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr).splitlines()[-1]
    return clean(reason.removeprefix("Skipped: "), TEXT_LIMIT)


def settle_trial(item: pytest.Item, report: pytest.TestReport, session: MlperfSession) -> None:
    """A trial test that ended without judging its trial (skipped, or failed in set-up) still tells the scores
    how it ended, wherever they run."""
    case = case_of(item)
    if not isinstance(case, catalog.TrainingCase) or case.trial is None or case.id in session.trials:
        return
    if report.when == "teardown" or (report.when == "setup" and report.passed):
        return
    outcome = TrialOutcome(case.id, False, None, why_ended(report) or report.outcome, skipped=report.skipped)
    session.trials[case.id] = outcome
    session.trial_store.put(outcome)


def trial_wait_seconds(case) -> float:
    """How long a score waits for a trial another worker runs: twice the config's wall time (NVIDIA's), or ten
    minutes for a replayed or local trial."""
    walltime = case.config.walltime_min * 60 if case.config is not None else 0
    return max(600.0, 2.0 * walltime)
