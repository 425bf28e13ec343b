"""Artifacts on disk -> parsed records -> verdict -> metrics. Shared by the plugin and the CLI."""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..backends import Artifacts
from ..backends.search import SEARCH, read_search
from ..catalog import InferenceCase, ScoreCase, TrainingCase
from ..logs import ParseError, read_bytes
from ..logs.accuracy import parse_accuracy
from ..logs.loadgen import check_pair, parse_detail, parse_summary
from ..logs.metadata import FILE_NAME
from ..logs.mllog import parse_training_log
from .identity import check_accuracy_kind, check_identity, check_metadata
from .metrics import Metric, accuracy_metrics, performance_metrics, training_metrics
from .verdict import (
    EVAL_SAMPLES,
    TrialOutcome,
    Verdict,
    accuracy_verdict,
    performance_verdict,
    training_score,
    training_verdict,
)

SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
ACCURACY = "accuracy.txt"
METADATA = FILE_NAME  # NVIDIA's metadata.json (harness v3.0 on)


@dataclass
class CaseResult:
    case_id: str
    kind: str
    verdict: Verdict
    metrics: list[Metric]
    artifacts: list[Path] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"CaseResult({self.case_id!r}, {self.verdict.label})"


def _present(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # the folder itself cannot be searched
        raise ParseError(path.parent, f"cannot read the folder: {exc.strerror or exc}") from None


def evaluate_inference(case: InferenceCase, artifacts: Artifacts) -> CaseResult:
    folder = artifacts.path
    summary_path, detail_path = folder / SUMMARY, folder / DETAIL
    accuracy_alone = case.mode == "AccuracyOnly" and _present(folder / ACCURACY)
    if not _present(summary_path) and not _present(detail_path) and not accuracy_alone:
        raise ParseError(folder, f"neither {SUMMARY} nor {DETAIL} is there")
    summary = parse_summary(summary_path) if _present(summary_path) else None
    detail = parse_detail(detail_path) if _present(detail_path) else None
    files = [p for p in (summary_path, detail_path) if _present(p)]
    if summary is not None and detail is not None:
        check_pair(summary, detail)
    logged_mode = detail.mode if detail is not None else (summary.mode if summary and summary.mode else None)
    if logged_mode and logged_mode != case.mode:
        raise ParseError(folder, f"the logs are from a {logged_mode} run, the case asks for {case.mode}")
    check_identity(case, folder, summary, detail)
    info = {"system_name": case.system_name, "config_name": case.config_name, "folder": str(folder)}
    if not files:  # v4.1's published accuracy folders keep accuracy.txt alone: nothing of LoadGen's to cross-check
        info["loadgen_logs"] = f"none: {ACCURACY} alone"
    result = None
    if case.mode == "AccuracyOnly":
        accuracy_path = folder / ACCURACY
        result = parse_accuracy(accuracy_path)
        check_accuracy_kind(case, result)
        files.append(accuracy_path)
        verdict = accuracy_verdict(result, case.benchmark, artifacts.harness_accuracy)
        metrics = accuracy_metrics(case.config_name, result, case.benchmark.threshold, verdict)
    else:
        if (summary is None or not summary.is_performance) and detail is None:
            raise ParseError(summary_path, "a performance run needs a summary with results or a detail log")
        verdict = performance_verdict(
            summary if summary and summary.is_performance else None,
            detail,
            case.scenario,
            case.benchmark,
            artifacts.harness_perf,
        )
        metrics = performance_metrics(
            case.config_name,
            case.scenario.perf_key,
            case.scenario.unit,
            case.scenario.higher_is_better,
            summary,
            detail,
            verdict,
        )
        if detail is not None:
            info["warnings"] = len(detail.warnings)
            info["errors"] = len(detail.errors)
    if _present(folder / METADATA):
        check_metadata(case, folder / METADATA, summary, detail, result)
        files.append(folder / METADATA)
    info.update(artifacts.info)
    search = read_search(folder / SEARCH) if _present(folder / SEARCH) else None
    if search is not None and case.mode == "PerformanceOnly" and case.scenario.name == "Server":
        files.append(folder / SEARCH)
        info["server_search"] = search
        verdict, peak = search_verdict(verdict, search, detail)
        if peak is not None:
            metrics.insert(1, peak)
    return CaseResult(case.id, "inference", verdict, metrics, files + artifacts.files, info)


def search_verdict(verdict: Verdict, search: dict, detail) -> tuple[Verdict, Metric | None]:
    """A Server case whose load was searched: its figure is the peak the search found, when the run that confirms
    it at that load (these logs) is VALID and ran at that load; otherwise it is INVALID, saying why."""
    peak = search.get("confirmed_qps")
    said = str(search.get("description") or "")
    if search.get("confirm_runs", 1) > 1 and peak is not None:
        said += f"; held at {peak:.6g} QPS in the confirming run, after {search['confirm_runs'] - 1} back-off(s)"
    if peak is None:
        return replace(verdict, ok=False, label="INVALID", reason=f"INVALID: the Server search found {said}"), None
    ran_at = detail.get("effective_target_qps") if detail is not None else None
    # NVIDIA's harness runs whole QPS and the detail log keeps six digits: the load logged is the one recorded
    # within half a query a second (and those six digits), never a percent off.
    if not isinstance(ran_at, int | float) or isinstance(ran_at, bool) or abs(ran_at - peak) > 0.5 + 5e-6 * peak:
        reason = f"INVALID: the confirming run ran at {ran_at!r} QPS, not at the searched peak {peak:.6g}"
        return replace(verdict, ok=False, label="INVALID", reason=reason), None
    if not verdict.ok:
        reason = f"{verdict.reason}; the searched peak {peak:.6g} QPS did not hold in the confirming run ({said})"
        return replace(verdict, reason=reason), None
    meta = {k: search.get(k) for k in ("peak_qps", "upper_qps", "bracket", "stopped_by", "method", "confirm_runs")}
    metric = Metric("peak_server_qps", float(peak), "queries/s", True, {**meta, "runs": len(search.get("steps", []))})
    return replace(verdict, reason=f"{verdict.reason}; peak Server load {said}"), metric


def evaluate_training(case: TrainingCase, artifacts: Artifacts) -> CaseResult:
    run = parse_training_log(artifacts.path)
    # the local backend's stand-in evaluates on its own small set (its info says it is a stand-in)
    verdict = training_verdict(run, case.target, None if artifacts.info.get("stand_in") else EVAL_SAMPLES)
    seed, start = run.params.get("seed"), run.run_start_ms
    digest = hashlib.sha256(read_bytes(Path(artifacts.path))).hexdigest()
    info = {
        "trial_identity": "|".join(
            part
            for part in (
                f"same seed {seed} and run_start {start:.0f}" if seed is not None and start else "",
                f"same log sha256 {digest[:16]}",
            )
            if part
        ),
        "config": case.config_label,
        "platform": run.platform,
        "org": run.org,
        "global_batch_size": run.params.get("global_batch_size"),
        **artifacts.info,
    }
    return CaseResult(case.id, "training", verdict, training_metrics(run, verdict), [artifacts.path], info)


def evaluate(case: InferenceCase | TrainingCase, artifacts: Artifacts) -> CaseResult:
    if isinstance(case, TrainingCase):
        return evaluate_training(case, artifacts)
    return evaluate_inference(case, artifacts)


def trial_outcome(case_id: str, result: CaseResult | None, failure: str = "") -> TrialOutcome:
    """A trial test's result as the score sees it; a trial that could not be judged did not converge."""
    if result is None:
        return TrialOutcome(case_id, False, None, failure or "no result")
    seconds = next((m.value for m in result.metrics if m.name == "time_to_train"), None)
    return TrialOutcome(
        case_id,
        result.verdict.ok,
        seconds / 60.0 if seconds is not None else None,
        result.verdict.label,
        identity=str(result.info.get("trial_identity") or ""),
    )


def evaluate_score(case: ScoreCase, outcomes: list[TrialOutcome], partial_ok: bool = False) -> CaseResult:
    """The trials' score. A score of fewer runs than MLPerf needs is named partial_score, never mlperf_score, so
    that no report, baseline or fleet takes it for one."""
    verdict, score = training_score(outcomes, partial_ok)
    metrics = [
        Metric("runs", float(len(outcomes)), "runs", None),
        Metric("converged_runs", float(verdict.details["converged"]), "runs", None),
    ]
    if score is not None:
        name = "partial_score" if verdict.details["partial"] else "mlperf_score"
        metrics.insert(0, Metric(name, score, "min", False, {"method": verdict.details["method"]}))
    info = {
        "config": case.config.name if case.config else None,
        "trials": {o.id: (round(o.minutes, 4) if o.minutes is not None else None) for o in outcomes},
    }
    return CaseResult(case.id, "training-score", verdict, metrics, [], info)


def combine_runs(case_id: str, runs: list[CaseResult]) -> CaseResult:
    """One case run several times (--mlperf-repeat): VALID only when every run is; otherwise INVALID naming each
    run that was not, with its reason. Each metric's value is the median of the runs' figures and `samples` keeps
    every one, in run order, for the gate's statistics. A metric some run lacks is not combined: its runs did not
    measure the same things, which is refused."""
    if not runs:
        raise ValueError("no runs to combine")
    if len(runs) == 1:
        return replace(runs[0], case_id=case_id)
    names = [m.name for m in runs[0].metrics]
    for number, run in enumerate(runs[1:], start=2):
        if [m.name for m in run.metrics] != names:
            raise ParseError(
                run.artifacts[0] if run.artifacts else case_id,
                f"run {number} reports {', '.join(m.name for m in run.metrics)}, run 1 {', '.join(names)}: "
                "the runs of one case did not measure the same figures",
            )
    metrics = []
    for index, first in enumerate(runs[0].metrics):
        values = tuple(run.metrics[index].value for run in runs)
        metrics.append(replace(first, value=statistics.median(values), samples=values))
    failed = [(number, run) for number, run in enumerate(runs, start=1) if not run.verdict.ok]
    n = len(runs)
    if failed:
        said = "; ".join(f"run {number} of {n}: {run.verdict.reason}" for number, run in failed)
        verdict = Verdict(False, f"INVALID: {said}", "INVALID", {"runs": n, "invalid_runs": [k for k, _ in failed]})
    else:
        first = runs[0].verdict
        verdict = Verdict(True, f"{first.reason} (all {n} runs {first.label})", first.label, {"runs": n})
    info = dict(runs[0].info)
    info["runs"] = [
        {"run": number, "verdict": run.verdict.label, "reason": run.verdict.reason, "folder": run.info.get("folder")}
        for number, run in enumerate(runs, start=1)
    ]
    artifacts = [path for run in runs for path in run.artifacts]
    return CaseResult(case_id, runs[0].kind, verdict, metrics, artifacts, info)
