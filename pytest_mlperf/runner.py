"""Judging a case, the same way for a trial test and a score test: execute it on its backend, evaluate its logs,
hold it to the gate, and record it for every report."""

from __future__ import annotations

import pytest

from . import catalog
from .backends import BackendUnavailable, ResultMissing, RunFailed
from .gate import compliance
from .judge.evaluate import CaseResult, evaluate, evaluate_score, trial_outcome
from .logs import ParseError
from .machine import telemetry
from .machine.containers import ContainerError
from .report.junit import case_properties
from .report.records import CaseRecord
from .session import MlperfSession

RECORD_KEY = pytest.StashKey[CaseRecord]()


class Runner:
    def __init__(self, session: MlperfSession, request: pytest.FixtureRequest):
        self.session = session
        self.request = request

    # ---- a trial or inference test ---------------------------------------------------------------------
    def judge(self, case) -> CaseResult:
        """Run (or replay) a case, judge it, attach its metrics to the reports, and return the CaseResult."""
        session = self.session
        interval = session.options.telemetry_interval
        sampler = telemetry.Sampler(interval).start() if session.telemetry_on else None
        try:
            artifacts, failure = self.execute(case)
        except Exception as exc:  # pytest's skip and fail are not Exceptions: they pass through unrecorded
            self.trial(case, None, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            watched = sampler.stop().summary() if sampler is not None else None
        if failure is not None:  # said outside the except block: the message alone, no chained traceback
            self.trial(case, None, failure.splitlines()[0])
            pytest.fail(failure, pytrace=False)
        try:
            result = evaluate(case, artifacts)
        except ParseError as exc:
            self.trial(case, None, str(exc))
            pytest.fail(f"cannot judge {case.id}: {exc}", pytrace=False)
        self.trial(case, result)
        extras = {}
        if isinstance(case, catalog.TrainingCase) and session.compliance:
            out = self.request.getfixturevalue("tmp_path_factory").getbasetemp() / "mlperf-compliance"
            extras["compliance"] = compliance.check(artifacts.path, out / case.id.replace("/", "_")).to_dict()
        if watched is not None:
            extras["telemetry"] = watched
            if getattr(case, "mode", "") == "PerformanceOnly" and watched.get("throttle"):
                extras["throttled"] = list(watched["throttle"])
        self.record(case, result, **extras)
        return result

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
        except (RunFailed, ContainerError, BackendUnavailable) as exc:
            return None, str(exc)

    def trial(self, case, result: CaseResult | None, failure: str = "") -> None:
        """What a training trial adds to its config's score; a trial that could not be judged counts as failed."""
        if isinstance(case, catalog.TrainingCase) and case.trial is not None:
            self.session.trials[case.id] = trial_outcome(case.id, result, failure)

    # ---- a score test -------------------------------------------------------------------------------------
    def score(self, case: catalog.ScoreCase) -> CaseResult:
        """Score a set of trials judged earlier in this session (MLPerf's olympic mean) and attach the metrics."""
        session = self.session
        missing = [trial for trial in case.trials if trial not in session.trials]
        if missing and hasattr(self.request.config, "workerinput"):
            # Another worker may be running them: judging them here too could run a trial twice.
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            pytest.skip(
                f"the score of {case.id} needs its {len(case.trials)} trial(s) judged on this xdist worker; not "
                f"here: {shown} (run with --dist loadgroup to keep a config's trials and score together)"
            )
        by_id = {c.id: c for c in session.cases("training")} if missing else {}
        for trial in missing:  # deselected (e.g. -m score): judge them now, as their own tests would have
            self.judge_quietly(by_id[trial])
        result = evaluate_score(case, [session.trials[trial] for trial in case.trials])
        self.record(case, result)
        return result

    def judge_quietly(self, case) -> None:
        artifacts, failure = self.execute(case)
        if failure is not None:
            self.trial(case, None, failure.splitlines()[0])
            return
        try:
            self.trial(case, evaluate(case, artifacts))
        except ParseError as exc:
            self.trial(case, None, str(exc))

    # ---- the record and the gate -----------------------------------------------------------------------
    def record(self, case, result: CaseResult, **extras) -> None:
        """Hold the result to the gate, tell the users' hook, keep the record for the reports; a gate that
        fails the case fails the test that shows it."""
        gate = self.session.reporter.gate
        published = gate.published(case, result)
        metrics = [m.to_dict() for m in result.metrics] + ([published.to_dict()] if published else [])
        check = gate.compare(case.id, result.verdict.label, metrics)
        config = self.request.config
        config.hook.pytest_mlperf_result(config=config, case=case, result=result)
        backend = self.session.backend_for(case).name
        record = CaseRecord.judged(case.id, result, backend, baseline=check.to_dict() if check else None, **extras)
        if published is not None:
            record.metrics.append(published.to_dict())
        self.request.node.stash[RECORD_KEY] = record
        self.request.node.user_properties.extend(case_properties(record))
        record.gate = gate.problems(case.id, check, published)
        if record.gate:
            pytest.fail("\n".join(record.gate) + f"\n(verdict: {result.verdict.reason})", pytrace=False)


def record_for_report(item: pytest.Item, report: pytest.TestReport, session: MlperfSession) -> CaseRecord | None:
    """The record of an mlperf test's report: the runner's, or, for a test that ended without a result (skipped,
    failed before judging), one saying how it ended."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    case = params.get("mlperf_case") or params.get("mlperf_score_case")
    names = getattr(item, "fixturenames", ())
    if case is None and "mlperf_case" not in names and "mlperf_score_case" not in names:
        return None
    record = item.stash.get(RECORD_KEY, None)
    if record is not None:
        return record.ended(item.nodeid, report.outcome)
    reason = ""
    if report.longrepr is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr).splitlines()[-1]
        reason = reason.removeprefix("Skipped: ")
    backend = session.backend_for(case) if case is not None else session.backends["inference"]
    return CaseRecord(case.id if case is not None else item.name, item.nodeid, report.outcome, backend.name, reason)
