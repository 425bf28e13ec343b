"""Pass criteria: parsed records + catalog targets -> Verdict(ok, reason)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog import Benchmark, Scenario
from ..logs.accuracy import AccuracyResult
from ..logs.harness import AccuracyMessage, PerfMessage
from ..logs.loadgen import FLAG_LINES, LoadgenDetail, LoadgenSummary
from ..logs.mllog import TrainingRun

FLAG_TEXT = {key: label.replace(" satisfied", "").lower() for label, key in FLAG_LINES.items()}
# Every label a verdict can carry, by whether it passes: a record whose `ok` disagrees with its label is refused.
PASSING = frozenset({"PASS", "VALID", "CONVERGED", "SCORED"})
FAILING = frozenset({"FAIL", "INVALID", "NOT CONVERGED"})


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    label: str  # PASS/FAIL, VALID/INVALID, CONVERGED/NOT CONVERGED
    details: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # what pytest shows under a failed assert: the reason, not the fields
        return f"Verdict({self.reason!r})"


def accuracy_verdict(result: AccuracyResult, benchmark: Benchmark, harness: AccuracyMessage | None = None) -> Verdict:
    threshold = benchmark.threshold
    ok = result.value >= threshold
    relation = ">=" if ok else "<"
    reason = (
        f"{'PASS' if ok else 'FAIL'}: {result.metric} {result.value:.3f} {relation} threshold {threshold:.3f} "
        f"({benchmark.level}% of {benchmark.reference:g})"
    )
    if harness is not None and harness.passed is not None and harness.passed != ok:
        return Verdict(
            False,
            f"{reason}; but NVIDIA's harness said Accuracy test "
            f"{'PASSED' if harness.passed else 'FAILED'} (threshold {harness.threshold})",
            "FAIL",
            {"value": result.value, "threshold": threshold},
        )
    return Verdict(ok, reason, "PASS" if ok else "FAIL", {"value": result.value, "threshold": threshold})


def performance_verdict(
    summary: LoadgenSummary | None,
    detail: LoadgenDetail | None,
    scenario: Scenario,
    benchmark: Benchmark,
    harness: PerfMessage | None = None,
) -> Verdict:
    """VALID iff LoadGen says VALID; the reason names each unmet condition in LoadGen's terms."""
    if summary is None and detail is None:
        raise ValueError("a performance verdict needs the summary or the detail log")
    validity = detail.validity if detail is not None else summary.validity  # type: ignore[union-attr]
    flags = dict(summary.flags) if summary is not None else {}
    if detail is not None:
        flags.update(detail.flags)
    if summary is not None and detail is not None and summary.validity != detail.validity:
        return Verdict(
            False,
            f"INVALID: summary says {summary.validity} but detail log says {detail.validity}",
            "INVALID",
            {"flags": flags},
        )
    unmet = [FLAG_TEXT[key] + " not satisfied" for key, met in flags.items() if not met]
    if validity == "VALID":
        ok, label = True, "VALID"
        reason = "VALID: " + ", ".join(f"{FLAG_TEXT[k]} satisfied" for k in flags) if flags else "VALID"
    else:
        ok, label = False, "INVALID"
        parts = list(unmet) or ["LoadGen reported INVALID"]
        latency = _latency_note(detail, scenario, benchmark)
        if latency and "performance constraints not satisfied" in parts:
            parts[parts.index("performance constraints not satisfied")] += f" ({latency})"
        if summary is not None and summary.recommendations:
            parts.append("LoadGen recommends: " + " ".join(summary.recommendations))
        reason = "INVALID: " + "; ".join(parts)
    if harness is not None and harness.accuracy_only:
        return Verdict(
            False,
            f"{reason}; but NVIDIA's harness found no performance result (an AccuracyOnly run's message)",
            "INVALID",
            {"flags": flags},
        )
    if harness is not None and harness.validity != label:
        return Verdict(
            False, f"{reason}; but NVIDIA's harness printed Result is {harness.validity}", "INVALID", {"flags": flags}
        )
    return Verdict(ok, reason, label, {"flags": flags})


def _latency_note(detail: LoadgenDetail | None, scenario: Scenario, benchmark: Benchmark) -> str | None:
    if detail is None or scenario.name != "Server":
        return None
    p99 = detail.get("result_99.00_percentile_latency_ns")
    target = detail.get("effective_target_latency_ns") or (
        benchmark.server_latency_ms * 1e6 if benchmark.server_latency_ms else None
    )
    if p99 is None or not target:
        return None
    return f"p99 latency {float(p99) / 1e6:.1f} ms > target {float(target) / 1e6:.0f} ms" if p99 > target else None


def training_verdict(run: TrainingRun, target: float) -> Verdict:
    last = run.last_accuracy
    samples = run.evals[-1].samples if run.evals else None
    seen = f" after {samples} samples" if samples is not None else ""
    details = {"status": run.status, "last_eval_accuracy": last, "target": target}
    if last is None:
        return Verdict(
            False,
            f"NOT CONVERGED: run_stop status {run.status!r} and no eval_accuracy logged",
            "NOT CONVERGED",
            details,
        )
    reached = last >= target
    if run.status == "success" and reached:
        return Verdict(True, f"CONVERGED: eval_accuracy {last:.5f} >= {target:.3f}{seen}", "CONVERGED", details)
    if run.status == "success":
        return Verdict(
            False,
            f"NOT CONVERGED: run_stop says success but the last eval_accuracy {last:.5f} < {target:.3f}{seen}",
            "NOT CONVERGED",
            details,
        )
    return Verdict(
        False,
        f"NOT CONVERGED: run_stop status {run.status!r}, last eval_accuracy {last:.5f} "
        f"{'>=' if reached else '<'} {target:.3f}{seen}",
        "NOT CONVERGED",
        details,
    )


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial contributes to a score: did it converge, and in how long (run_stop - run_start)."""

    id: str
    converged: bool
    minutes: float | None
    reason: str = ""
    skipped: bool = False  # its test was skipped (nothing to judge): a score of it is skipped too


RUNS_FOR_A_SCORE = 10  # MLPerf Training BERT: 10 runs, fastest and slowest dropped


def training_score(trials: list[TrialOutcome]) -> tuple[Verdict, float | None]:
    """MLPerf's score across trials: the olympic mean of run_stop - run_start (fastest and slowest dropped), a
    non-converged run counting as the slowest, more than one making the result invalid. With fewer than three
    trials (a gate) nothing can be dropped: every trial must converge and the score is their mean."""
    n = len(trials)
    failed = [t for t in trials if not t.converged or t.minutes is None]
    details = {"runs": n, "converged": n - len(failed), "not_converged": [t.id for t in failed]}
    short = f"; an MLPerf result needs {RUNS_FOR_A_SCORE} runs" if n < RUNS_FOR_A_SCORE else ""
    if n == 0:
        return Verdict(False, "INVALID: no trials to score", "INVALID", details), None
    if n < 3:
        if failed:
            names = ", ".join(f"{t.id} ({t.reason})" if t.reason else t.id for t in failed)
            return Verdict(False, f"INVALID: not converged: {names}", "INVALID", details), None
        score = sum(t.minutes for t in trials) / n  # type: ignore[misc]
        reason = f"SCORE {score:.3f} min: mean of {n} run{'s' if n > 1 else ''} (too few to drop any){short}"
        return Verdict(True, reason, "SCORED", {**details, "score_min": score, "method": "mean"}), score
    if len(failed) > 1:
        names = ", ".join(t.id for t in failed)
        return (
            Verdict(
                False,
                f"INVALID: {len(failed)} of {n} runs did not converge (at most one may): {names}",
                "INVALID",
                details,
            ),
            None,
        )
    ordered = sorted(trials, key=lambda t: t.minutes if t.converged and t.minutes is not None else float("inf"))
    kept = ordered[1:-1]
    score = sum(t.minutes for t in kept) / len(kept)  # type: ignore[misc]
    slowest = ordered[-1]
    slow_text = "not converged" if slowest in failed else f"{slowest.minutes:.2f}"
    reason = (
        f"SCORE {score:.3f} min: olympic mean of {len(kept)} of {n} runs (fastest {ordered[0].minutes:.2f} and "
        f"slowest {slow_text} dropped){short}"
    )
    details.update(score_min=score, method="olympic mean", dropped=[ordered[0].id, slowest.id])
    return Verdict(True, reason, "SCORED", details), score


def record_problem(case, record: dict) -> str | None:
    """Why a record another process wrote of this case (a fleet node's) cannot stand as its verdict, or None: its
    label and ok must agree, and the figures the verdict rests on must be there and say the same as the label
    against the catalog's own targets (the threshold of an accuracy run, the scenario's figure of a performance
    run, the target of a training trial, the score of a set)."""
    from ..catalog import InferenceCase, ScoreCase, TrainingCase

    ok, label = record.get("ok"), record.get("verdict")
    if not isinstance(ok, bool) or not isinstance(label, str) or label not in (PASSING if ok else FAILING):
        return f"verdict {label!r} with ok {ok!r}"
    values = {m.get("name"): m.get("value") for m in record.get("metrics") or [] if isinstance(m, dict)}
    if isinstance(case, InferenceCase) and case.mode == "AccuracyOnly":
        value, threshold = values.get("AccuracyValue"), case.benchmark.threshold
        if not isinstance(value, int | float):
            return "no AccuracyValue"
        if (value >= threshold) != ok:
            return f"{label} with AccuracyValue {value:g} against the threshold {threshold:g}"
    elif isinstance(case, InferenceCase):
        value = values.get(case.scenario.perf_key)
        if ok and (not isinstance(value, int | float) or value <= 0):
            return f"{label} without a positive {case.scenario.perf_key}"
    elif isinstance(case, TrainingCase):
        value = values.get("eval_mlm_accuracy")
        if ok and (not isinstance(value, int | float) or value < case.target):
            return f"{label} with eval_mlm_accuracy {value!r} against the target {case.target:g}"
    elif isinstance(case, ScoreCase) and ok:
        value = values.get("mlperf_score")
        if not isinstance(value, int | float) or value <= 0:
            return f"{label} without a positive mlperf_score"
    return None
