"""Pass criteria: parsed records + catalog targets -> Verdict(ok, reason)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..catalog import Benchmark, Scenario
from ..logs import ParseError
from ..logs.accuracy import AccuracyResult
from ..logs.harness import AccuracyMessage, PerfMessage
from ..logs.loadgen import FLAG_LINES, LoadgenDetail, LoadgenSummary, agree
from ..logs.mllog import TrainingRun

FLAG_TEXT = {key: label.replace(" satisfied", "").lower() for label, key in FLAG_LINES.items()}
# Every label a verdict can carry, by whether it passes: a record whose `ok` disagrees with its label is refused.
PASSING = frozenset({"PASS", "VALID", "CONVERGED", "SCORED"})
FAILING = frozenset({"FAIL", "INVALID", "NOT CONVERGED", "PARTIAL"})


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    label: str  # PASS/FAIL, VALID/INVALID, CONVERGED/NOT CONVERGED
    details: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # what pytest shows under a failed assert: the reason, not the fields
        return f"Verdict({self.reason!r})"


HARNESS_PLACES = 3  # NVIDIA's main.py prints an accuracy message's value and threshold to three places
HARNESS = "NVIDIA's harness summary"


def check_harness_accuracy(result: AccuracyResult, benchmark: Benchmark, harness: AccuracyMessage) -> None:
    """NVIDIA's accuracy message is main.py's reading of the same accuracy.txt against the same target: its value
    and threshold, printed to three places, are accuracy.txt's score and the case's threshold, or one of the two is
    another run's (or another accuracy target's: 99 % against 99.9 %)."""
    allowed = 0.5 * 10.0**-HARNESS_PLACES + 1e-9
    where = harness.source or HARNESS
    if harness.value is not None and abs(harness.value - result.value) > allowed:
        raise ParseError(
            where,
            f"says Accuracy = {harness.value:.3f}, {result.path} scores {result.metric} {result.value:.3f}: "
            "they are not the same run's",
        )
    if harness.threshold is not None and abs(harness.threshold - benchmark.threshold) > allowed:
        raise ParseError(
            where,
            f"says Threshold = {harness.threshold:.3f}, the case's is {benchmark.threshold:.3f} ({benchmark.level}% "
            f"of {benchmark.reference:g}): another accuracy target's message",
        )


def check_harness_perf(harness: PerfMessage, summary: LoadgenSummary | None, detail: LoadgenDetail | None) -> None:
    """NVIDIA's perf message copies one figure from LoadGen's detail log: it must be the figure LoadGen's files
    give under that key (the detail log's six digits, or the summary as printed)."""
    if harness.key is None or harness.value is None:
        return
    logged = detail.get(harness.key) if detail is not None else None
    if isinstance(logged, int | float) and not isinstance(logged, bool):
        same, theirs, where = math.isclose(harness.value, logged, rel_tol=1e-5), f"{logged:g}", detail.path
    elif summary is not None and harness.key in summary.figures:
        text = summary.figures[harness.key][0]
        same, theirs, where = agree(text, harness.value), text, summary.path
    else:
        return
    if not same:
        raise ParseError(
            harness.source or HARNESS,
            f"says {harness.key}: {harness.value:g}, {where} says {theirs}: they are not the same run's",
        )


def accuracy_verdict(result: AccuracyResult, benchmark: Benchmark, harness: AccuracyMessage | None = None) -> Verdict:
    if benchmark.targets:
        return _targets_verdict(result, benchmark, harness)
    threshold = benchmark.threshold
    if harness is not None:
        check_harness_accuracy(result, benchmark, harness)
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


def _targets_verdict(result: AccuracyResult, benchmark: Benchmark, harness: AccuracyMessage | None) -> Verdict:
    """A benchmark held to several rules (the LLMs: ROUGE-1/2/L and tokens a sample; SDXL: FID and CLIP, each in a
    range): PASS only when accuracy.txt gives every score the rules name and each holds, and NVIDIA's harness, where
    its message is there, did not say FAILED; the reason names each rule broken, or each one held."""
    scores = result.scores
    broken, held = [], []
    for target in benchmark.targets:
        value = scores.get(target.metric)
        if value is None:
            broken.append(f"{result.path.name} gives no {target.metric}")
        elif (why := target.breaks(value)) is not None:
            broken.append(why)
        else:
            held.append(f"{target.metric} {value:.4g} {target.bounds}")
    details = {"value": result.value, "threshold": benchmark.threshold, "scores": scores}
    if broken:
        return Verdict(False, "FAIL: " + "; ".join(broken), "FAIL", details)
    if harness is not None and harness.passed is False:  # the harness's own reading of the same file disagrees
        return Verdict(
            False, f"PASS: {', '.join(held)}; but NVIDIA's harness said Accuracy test FAILED", "FAIL", details
        )
    return Verdict(True, "PASS: " + ", ".join(held), "PASS", details)


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
    if harness is not None:
        check_harness_perf(harness, summary, detail)
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
    over = token_latency_breaks(summary, detail, scenario)
    if validity == "VALID" and over:
        return Verdict(
            False,
            f"INVALID: LoadGen says VALID, but {'; '.join(over)}: the run's own figures contradict it",
            "INVALID",
            {"flags": flags, "token_latency": over},
        )
    if validity == "VALID":
        ok, label = True, "VALID"
        reason = "VALID: " + ", ".join(f"{FLAG_TEXT[k]} satisfied" for k in flags) if flags else "VALID"
    else:
        ok, label = False, "INVALID"
        parts = list(unmet) or ["LoadGen reported INVALID"]
        latency = _latency_note(detail, scenario, benchmark)
        if latency and "performance constraints not satisfied" in parts:
            parts[parts.index("performance constraints not satisfied")] += f" ({latency})"
        parts.extend(over)
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


# MLPerf's latency rule for the LLMs in Server (LoadGen 4.x, use_token_latencies): the time to the first token
# (TTFT) and the time per output token (TPOT), each at the scenario's percentile, within the bounds mlperf.conf
# sets (llama2-70b: 2000 ms and 200 ms), where the other models have one bound on the whole query.
TOKEN_BOUNDS = (
    ("TTFT", "ttft_latency (ns)", "requested_server_ttft_latency", "result_first_token_{p}_percentile_latency_ns"),
    ("TPOT", "tpot_latency (ns)", "requested_server_tpot_latency", "result_time_per_output_token_{p}_percentile_ns"),
)


def token_latency_breaks(summary: LoadgenSummary | None, detail: LoadgenDetail | None, scenario: Scenario) -> list[str]:
    """Each token-latency bound a Server run's own figures break, in words; [] for a run bound by query latency."""
    if scenario.name != "Server" or scenario.target_latency_percentile is None:
        return []
    percent = f"{scenario.target_latency_percentile * 100:.2f}"
    out = []
    for name, param, requested, template in TOKEN_BOUNDS:
        bound = _figure(summary.params.get(param) if summary is not None else None)
        if bound is None and detail is not None:
            bound = _figure(detail.get(requested))
            bound = bound * 1e6 if bound is not None and bound < 1e6 else bound  # requested in ms, logged in ns
        key = template.format(p=percent)
        value = _figure(summary.figures[key][0]) if summary is not None and key in summary.figures else None
        if value is None and detail is not None:
            value = _figure(detail.get(key))
        if bound is None or value is None or bound <= 0:
            continue
        if value > bound:
            where = f"{name} p{scenario.target_latency_percentile * 100:g}"
            out.append(f"{where} {value / 1e6:.1f} ms > bound {bound / 1e6:.0f} ms (MLPerf's LLM token-latency rule)")
    return out


def _figure(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


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


EVAL_SAMPLES = 10_000  # MLPerf Training BERT's evaluation set (run_pretraining.py logs eval_samples)
SUMMARY_SLACK_S = 1.0  # the run's summary line and its MLLOG clock may differ by this much (rounding, flushing)


def training_log_problems(run: TrainingRun, eval_samples: int | None = EVAL_SAMPLES) -> list[str]:
    """What in a trial log contradicts a convergence: an eval logged after run_stop (it does not count), an
    evaluation set that is not the benchmark's, a summary line whose times are not this run's (e2e_time shorter
    than run_stop - run_start, or longer than init_start to run_stop allows; raw_train_time over e2e_time)."""
    out = [
        f"eval_accuracy {e.accuracy:.5f} (line {e.line}) is logged after run_stop and does not count"
        for e in run.late_evals
    ]
    logged = run.params.get("eval_samples")
    if eval_samples is not None and logged is not None and logged != eval_samples:
        out.append(f"eval_samples is {str(logged)[:20]}, the benchmark evaluates on {eval_samples}")
    summary, ttt = run.summary or {}, run.time_to_train_s
    e2e, raw = summary.get("e2e_time"), summary.get("raw_train_time")
    if e2e is not None and ttt is not None:
        if e2e < ttt - SUMMARY_SLACK_S:
            out.append(f"e2e_time {e2e:.1f} s is shorter than run_stop - run_start ({ttt:.1f} s)")
        if run.init_start_ms is not None and run.run_stop_ms is not None:
            whole = (run.run_stop_ms - run.init_start_ms) / 1000.0
            if e2e > whole + max(60.0, 0.05 * whole):
                out.append(f"e2e_time {e2e:.1f} s is far longer than init_start to run_stop ({whole:.1f} s)")
    if raw is not None and e2e is not None and raw > e2e + SUMMARY_SLACK_S:
        out.append(f"raw_train_time {raw:.1f} s is longer than e2e_time {e2e:.1f} s")
    return out


def training_verdict(run: TrainingRun, target: float, eval_samples: int | None = EVAL_SAMPLES) -> Verdict:
    last = run.last_accuracy
    samples = run.evals[-1].samples if run.evals else None
    seen = f" after {samples} samples" if samples is not None else ""
    details = {"status": run.status, "last_eval_accuracy": last, "target": target}
    problems = training_log_problems(run, eval_samples)
    if problems:
        details["problems"] = problems
        return Verdict(False, "NOT CONVERGED: " + "; ".join(problems), "NOT CONVERGED", details)
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
    identity: str = ""  # what makes it one run: its seed and run_start, and its log's digest ("" unknown)


RUNS_FOR_A_SCORE = 10  # MLPerf Training BERT: 10 runs, fastest and slowest dropped


def training_score(trials: list[TrialOutcome], partial_ok: bool = False) -> tuple[Verdict, float | None]:
    """MLPerf's score across trials: the olympic mean of run_stop - run_start (fastest and slowest dropped), a
    non-converged run counting as the slowest, more than one making the result invalid. With fewer than three
    trials nothing can be dropped: every trial must converge and the figure is their mean.

    Fewer trials than the benchmark's RUNS_FOR_A_SCORE make a PARTIAL score: not an MLPerf result, so it fails
    (label PARTIAL, the figure kept for the record) unless the user asked for partial scores (`partial_ok`), when
    it is SCORED and its reason says it is partial. Copies of one run, no run at all and too many failed runs are
    INVALID whatever was asked."""
    n = len(trials)
    failed = [t for t in trials if not t.converged or t.minutes is None]
    details = {"runs": n, "converged": n - len(failed), "not_converged": [t.id for t in failed], "partial": False}
    copies = _copies(trials)
    if copies:
        return Verdict(
            False, "INVALID: copies of one run are not trials: " + "; ".join(copies), "INVALID", details
        ), None
    if n == 0:
        return Verdict(False, "INVALID: no trials to score", "INVALID", details), None
    if n < 3:
        if failed:
            names = ", ".join(f"{t.id} ({t.reason})" if t.reason else t.id for t in failed)
            return Verdict(False, f"INVALID: not converged: {names}", "INVALID", details), None
        score = sum(t.minutes for t in trials) / n  # type: ignore[misc]
        how = f"mean of {n} run{'s' if n > 1 else ''} (too few to drop any)"
        details.update(score_min=score, method="mean")
        return _scored(score, how, n, partial_ok, details), score
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
    how = f"olympic mean of {len(kept)} of {n} runs (fastest {ordered[0].minutes:.2f} and slowest {slow_text} dropped)"
    details.update(score_min=score, method="olympic mean", dropped=[ordered[0].id, slowest.id])
    return _scored(score, how, n, partial_ok, details), score


def _scored(score: float, how: str, n: int, partial_ok: bool, details: dict) -> Verdict:
    """A computed score's verdict: SCORED with all the runs the benchmark needs; with fewer, PARTIAL (failing)
    unless partial scores were asked for."""
    if n >= RUNS_FOR_A_SCORE:
        return Verdict(True, f"SCORE {score:.3f} min: {how}", "SCORED", details)
    details["partial"] = True
    short = f"{n} of the {RUNS_FOR_A_SCORE} runs an MLPerf BERT score needs"
    if partial_ok:
        return Verdict(
            True,
            f"SCORE {score:.3f} min (partial: {short}, accepted by --mlperf-partial-scores): {how}",
            "SCORED",
            details,
        )
    return Verdict(
        False,
        f"PARTIAL: {short}, so {score:.3f} min ({how}) is not an MLPerf score; run --mlperf-nexp "
        f"{RUNS_FOR_A_SCORE}, or accept a partial score with --mlperf-partial-scores",
        "PARTIAL",
        details,
    )


def _copies(trials: list[TrialOutcome]) -> list[str]:
    """Trials that are one run counted twice: the same log content, or the same seed and run_start."""
    seen: dict[str, str] = {}
    out = []
    for trial in trials:
        for part in (p for p in trial.identity.split("|") if p):
            if part in seen and seen[part] != trial.id:
                out.append(f"{trial.id} is {seen[part]} again ({part})")
                break
            seen.setdefault(part, trial.id)
    return out


def record_problem(case, record: dict) -> str | None:
    """Why a record another process wrote of this case (a fleet node's) cannot stand as its verdict, or None: its
    label and ok must agree; each metric is named once with one finite value; its state metrics
    (`<config>-PerformanceMode`, `<config>-AccuracyMode`: 1 or 0) say what its label says, for this case's config;
    an accuracy is a percentage (0-100) against the case's own threshold; and the figures the verdict rests on
    must be there and say the same as the label against the catalog's targets (the threshold of an accuracy run,
    the scenario's figure of a performance run, the target of a training trial, the score of a set). `case` may
    be None (a file's record of a case this catalog does not know): then only what the record says of itself."""
    from ..catalog import InferenceCase, ScoreCase, TrainingCase

    ok, label = record.get("ok"), record.get("verdict")
    if not isinstance(ok, bool) or not isinstance(label, str) or label not in (PASSING if ok else FAILING):
        return f"verdict {label!r} with ok {ok!r}"
    values: dict[str, float] = {}
    for metric in record.get("metrics") or []:
        name = metric.get("name") if isinstance(metric, dict) else None
        if not isinstance(name, str) or not name:
            return f"a metric without a name ({str(metric)[:80]})"
        value = metric.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{name} is {str(value)[:40]}, not a finite number"
        if name in values and values[name] != value:
            return f"{name} is given twice, as {values[name]:g} and {value:g}"
        values[name] = float(value)
    if problem := _state_problem(case, label, ok, values):
        return problem
    if isinstance(case, InferenceCase) and case.mode == "AccuracyOnly":
        value, threshold = values.get("AccuracyValue"), case.benchmark.threshold
        if value is None:
            return "no AccuracyValue"
        if (value >= threshold) != ok:
            return f"{label} with AccuracyValue {value:g} against the threshold {threshold:g}"
        said = values.get("ThresholdValue")
        if said is not None and not math.isclose(said, threshold, rel_tol=1e-6):
            return f"ThresholdValue {said:g} is not the case's threshold {threshold:g} ({case.benchmark.level}%)"
    elif isinstance(case, InferenceCase):
        value = values.get(case.scenario.perf_key)
        if ok and (value is None or value <= 0):
            return f"{label} without a positive {case.scenario.perf_key}"
    elif isinstance(case, TrainingCase):
        value = values.get("eval_mlm_accuracy")
        if ok and (value is None or value < case.target):
            return f"{label} with eval_mlm_accuracy {value!r} against the target {case.target:g}"
    elif isinstance(case, ScoreCase) and ok:
        name = "partial_score" if "partial_score" in values else "mlperf_score"
        value = values.get(name)
        if value is None or value <= 0:
            return f"{label} without a positive mlperf_score"
        runs = values.get("runs")
        if (name == "mlperf_score") != (runs is not None and runs >= RUNS_FOR_A_SCORE):
            return f"{label} with {name} over {runs!r} runs (an MLPerf score needs {RUNS_FOR_A_SCORE})"
    return None


STATE_SUFFIXES = ("-PerformanceMode", "-AccuracyMode")


def _state_problem(case, label: str, ok: bool, values: dict[str, float]) -> str | None:
    """The state metrics and accuracy figures of a record against its own label."""
    from ..catalog import InferenceCase

    for name, value in values.items():
        if not name.endswith(STATE_SUFFIXES):
            continue
        if value not in (0.0, 1.0):
            return f"{name} is {value:g}, not 1 or 0"
        if (value == 1.0) != ok:
            return f"{name} is {value:g} under the verdict {label}"
        config = name.rsplit("-", 1)[0]
        if isinstance(case, InferenceCase) and config != case.config_name:
            return f"{name} is another config's state (the case's config is {case.config_name})"
    value, threshold = values.get("AccuracyValue"), values.get("ThresholdValue")
    for key, figure in (("AccuracyValue", value), ("ThresholdValue", threshold)):
        if figure is not None and not 0.0 <= figure <= 100.0:
            return f"{key} {figure:g} is outside 0-100: not an accuracy"
    if value is not None and threshold is not None:
        if threshold <= 0:
            return f"ThresholdValue {threshold:g} is not above 0"
        if (value >= threshold) != ok:
            return f"{label} with AccuracyValue {value:g} against its own ThresholdValue {threshold:g}"
        ratio = values.get("AccuracyThresholdRatio")
        if ratio is not None and not math.isclose(ratio, value / threshold, rel_tol=1e-6):
            return f"AccuracyThresholdRatio {ratio:g} is not AccuracyValue / ThresholdValue ({value / threshold:g})"
    return None
