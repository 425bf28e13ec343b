"""The logs say what they are: LoadGen's scenario and test mode, the Server latency bound, the SUT and QSL names
NVIDIA's harnesses log, the dataset's size, the accuracy metric's kind. A folder whose content disagrees with
the case it stands for (a careless copy, a wrong path) is an error naming both, never a verdict."""

from __future__ import annotations

from pathlib import Path

from ..catalog import InferenceCase, load
from ..logs import ParseError
from ..logs.accuracy import AccuracyResult
from ..logs.loadgen import LoadgenDetail, LoadgenSummary
from ..logs.metadata import cross_check, parse_metadata


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
    if case.harness == "local" or detail is None:
        return  # the local backend's stand-ins have their own sample counts and a generic SUT name
    for key, field in (
        ("sut_name", "log_names"),
        ("qsl_name", "log_names"),
        ("effective_performance_sample_count", "performance_sample_count"),
    ):
        owners = _owners(field, detail.get(key))
        if owners and case.benchmark.name not in owners:
            raise ParseError(
                folder,
                f"the logs' {key} {detail.get(key)!r} is {'/'.join(owners)}'s, not {case.benchmark.name}'s "
                f"(the case {case.id})",
            )
    total = detail.get("qsl_reported_total_count")
    if case.benchmark.dataset_size and total is not None and total != case.benchmark.dataset_size:
        raise disagree("data set", f"{total} samples", f"{case.benchmark.dataset_size}")


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


def _owners(field: str, value: object) -> list[str]:
    """The benchmarks whose entry claims a logged name or count (none: the value names no one benchmark)."""
    if value is None:
        return []
    found: list[str] = []
    for bench in load().benchmarks.values():
        claimed = getattr(bench, field)
        if value in claimed if isinstance(claimed, tuple) else value == claimed:
            found.append(bench.name)
    return found


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
    if wrong:
        raise ParseError(path, "disagrees with the case or the logs beside it: " + "; ".join(wrong))
