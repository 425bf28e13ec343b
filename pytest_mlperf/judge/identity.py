"""The logs say what they are: LoadGen's scenario and test mode, the Server latency bound, the SUT and QSL names
NVIDIA's harnesses log, the dataset's size, the accuracy metric's kind. A folder whose content disagrees with
the case it stands for (a careless copy, a wrong path) is an error naming both, never a verdict."""

from __future__ import annotations

import math
from pathlib import Path

from ..catalog import ROUNDS, InferenceCase, load
from ..logs import ParseError
from ..logs.accuracy import AccuracyResult
from ..logs.loadgen import LoadgenDetail, LoadgenSummary, percentile_key
from ..logs.metadata import METADATA_NAMES, AccuracyMetadata, cross_check, parse_metadata


def check_identity(
    case: InferenceCase,
    folder: Path,
    summary: LoadgenSummary | None,
    detail: LoadgenDetail | None,
) -> None:
    def disagree(what: str, logged: object, wanted: object) -> ParseError:
        return ParseError(folder, f"the logs' {what} is {logged}, the case {case.id} has {wanted}")

    scenario = detail.scenario if detail is not None else (summary.scenario if summary is not None else None)
    if scenario and scenario.replace(" ", "") != case.scenario.name:
        raise disagree("scenario", scenario, case.scenario.name)
    if case.scenario.name == "Server" and case.benchmark.server_latency_ms:
        bound = _server_bound(summary, detail)
        wanted = int(case.benchmark.server_latency_ms * 1_000_000)
        if bound is not None and bound != wanted:
            raise disagree("Server latency bound", f"{bound / 1e6:g} ms", f"{wanted / 1e6:g} ms")
    _check_percentile(case, folder, summary, detail)
    if case.harness == "local" or detail is None:
        return  # the local backend's stand-ins have their own sample counts and a generic SUT name
    for key, field in (
        ("sut_name", "log_names"),
        ("qsl_name", "log_names"),
        ("effective_performance_sample_count", "performance_sample_count"),
    ):
        owners = _owners(case, field, detail.get(key))
        if owners and case.benchmark.name not in owners:
            raise ParseError(
                folder,
                f"the logs' {key} {detail.get(key)!r} is {'/'.join(owners)}'s, not {case.benchmark.name}'s "
                f"(the case {case.id})",
            )
    total = detail.get("qsl_reported_total_count")
    if case.benchmark.dataset_size and total is not None and total != case.benchmark.dataset_size:
        raise disagree("data set", f"{total} samples", f"{case.benchmark.dataset_size}")


def _check_percentile(
    case: InferenceCase, folder: Path, summary: LoadgenSummary | None, detail: LoadgenDetail | None
) -> None:
    """The latency percentile LoadGen held the run to is the round's for its scenario (a Server bound met at the
    50th percentile is no MLPerf result), and a summary read without its detail log meets the Server bound only
    with its latency at that percentile at or under the bound it printed."""
    wanted = case.scenario.target_latency_percentile
    if wanted is None:
        return
    logged = detail.get("effective_target_latency_percentile") if detail is not None else None
    if logged is not None and (
        isinstance(logged, bool) or not isinstance(logged, int | float) or abs(float(logged) - wanted) > 1e-9
    ):
        raise ParseError(
            detail.path,  # type: ignore[union-attr]
            f"effective_target_latency_percentile is {logged!r}, the round's {case.scenario.name} percentile is "
            f"{wanted:g} (the case {case.id})",
        )
    if detail is not None or summary is None or case.scenario.name != "Server":
        return
    if summary.flags.get("result_perf_constraints_met") is not True or _token_bound(summary):
        return
    key = percentile_key(wanted)
    latency, bound = summary.figures.get(key), summary.params.get("target_latency (ns)")
    try:
        over = latency is not None and bound is not None and float(latency[0]) > float(bound)
    except ValueError:
        raise ParseError(summary.path, f"target_latency (ns) is {bound!r}, not a number") from None
    if over:
        raise ParseError(
            summary.path,
            f"says 'Performance constraints satisfied : Yes' but its {key} {latency[0]} (line {latency[1]}) is over "
            f"its target_latency (ns) {bound}: it contradicts itself",
        )


def _token_bound(summary: LoadgenSummary) -> bool:
    """A Server run bound by first-token and per-token latencies (LoadGen 4's LLM runs), not by one latency."""
    return any("ttft" in label.lower() or "tpot" in label.lower() for label in summary.params)


def check_accuracy_kind(case: InferenceCase, result: AccuracyResult) -> None:
    if result.metric != case.benchmark.metric:
        raise ParseError(
            result.path, f"accuracy.txt scores {result.metric}, the case {case.id} is scored by {case.benchmark.metric}"
        )


def _server_bound(summary: LoadgenSummary | None, detail: LoadgenDetail | None) -> int | None:
    if detail is not None and detail.get("effective_target_latency_ns") is not None:
        return int(detail.get("effective_target_latency_ns"))
    text = summary.params.get("target_latency (ns)") if summary is not None else None
    return int(float(text)) if text and text.replace(".", "", 1).isdigit() else None


def _round_benchmarks(case: InferenceCase) -> dict:
    """The benchmarks of the round the case's benchmark is from (a v4.1 case is told apart from v4.1's others)."""
    for name in ROUNDS:
        benchmarks = load(name).benchmarks
        if benchmarks.get(case.benchmark.name) is case.benchmark:
            return benchmarks
    return load().benchmarks


def _owners(case: InferenceCase, field: str, value: object) -> list[str]:
    """The benchmarks of the case's round whose entry claims a logged name or count (none: the value names no one
    benchmark)."""
    if value is None:
        return []
    found: list[str] = []
    for bench in _round_benchmarks(case).values():
        claimed = getattr(bench, field)
        if value in claimed if isinstance(claimed, tuple) else value == claimed:
            found.append(bench.name)
    return found


def _accuracy_claims(case: InferenceCase, meta: AccuracyMetadata, scored: AccuracyResult) -> list[str]:
    """metadata.json's accuracy verdict is NVIDIA's checker's, against the case's own target: the threshold of the
    metric accuracy.txt scores is the case's (99 % or 99.9 % of the reference), and its pass and accuracy_pass say
    what accuracy.txt's score says against that threshold."""
    bench, out = case.benchmark, []
    name = METADATA_NAMES.get(scored.metric, scored.metric)
    score = next((s for s in meta.accuracy if s.name == name), None)
    if score is not None and not math.isclose(score.threshold, bench.threshold, rel_tol=1e-6):
        out.append(
            f"its {name} threshold is {score.threshold:g}, the case {case.id} has {bench.threshold:g} "
            f"({bench.level}% of {bench.reference:g})"
        )
    passes = scored.value >= bench.threshold
    failed = [s.name for s in meta.accuracy if not s.passed]
    if passes and (not meta.accuracy_pass or failed):
        out.append(
            f"it says the run failed ({', '.join(failed) or 'accuracy_pass false'}), {scored.path.name} beside it "
            f"scores {scored.metric} {scored.value:g} >= {bench.threshold:g}"
        )
    elif not passes and meta.accuracy_pass:
        out.append(
            f"it says the run passed, {scored.path.name} beside it scores {scored.metric} {scored.value:g} < "
            f"{bench.threshold:g}"
        )
    return out


def check_metadata(
    case: InferenceCase, path: Path, *logs: LoadgenSummary | LoadgenDetail | AccuracyResult | None
) -> None:
    """NVIDIA's metadata.json, where its harness wrote one (v3.0 on): it must be this case's (config, benchmark,
    scenario, test mode) and agree with LoadGen's logs and accuracy.txt beside it, or the case is not judged."""
    meta = parse_metadata(path)
    wrong = [
        f"{what} is {ours}, the case {case.id} has {wanted}"
        for what, ours, wanted in (
            ("config_name", meta.config_name, case.config_name),
            ("benchmark_full", meta.benchmark_full, case.benchmark.name),
            ("scenario", meta.scenario, case.scenario.name),
            ("test_mode", meta.test_mode, case.mode),
        )
        if ours != wanted
    ]
    wrong += [line for other in logs if other is not None for line in cross_check(meta, other)]
    scored = next((other for other in logs if isinstance(other, AccuracyResult)), None)
    if isinstance(meta, AccuracyMetadata) and scored is not None:
        wrong += _accuracy_claims(case, meta, scored)
    if wrong:
        raise ParseError(path, "disagrees with the case or the logs beside it: " + "; ".join(wrong))
