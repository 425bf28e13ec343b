"""LoadGen's mlperf_log_summary.txt and mlperf_log_detail.txt."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import ParseError, finite, read_text
from .mllog import iter_events

# Headline line of each scenario in the summary file, and the detail-log key it mirrors. LoadGen 2.x prints
# the first four; later releases print Server's completed rate and "90.0th"/"99.0th" instead.
HEADLINES = {
    "Samples per second": "result_samples_per_second",
    "Scheduled samples per second": "result_scheduled_samples_per_sec",
    "90th percentile latency (ns)": "result_90.00_percentile_latency_ns",
    "99th percentile latency (ns)": "result_99.00_percentile_per_query_latency_ns",
    "Completed samples per second": "result_completed_samples_per_sec",
    "90.0th percentile latency (ns)": "result_90.00_percentile_latency_ns",
    "99.0th percentile latency (ns)": "result_99.00_percentile_per_query_latency_ns",
}

# The token rates LoadGen 4.x prints beside the samples rate for the LLMs (measured from their first-token and
# token-count callbacks, or inferred from a fixed tokens-per-sample), and the detail-log key of each.
TOKEN_LINES = {
    "Tokens per second": "result_tokens_per_second",
    "Tokens per second (inferred)": "result_inferred_tokens_per_second",
    "Completed tokens per second": "result_completed_tokens_per_second",
    "Completed tokens per second (inferred)": "result_inferred_completed_tokens_per_second",
}
# Its token-latency stats (Server LLMs): time to the first token (TTFT) and time per output token (TPOT).
_TOKEN_STATS = {
    "Min First Token latency (ns)": "result_first_token_min_latency_ns",
    "Max First Token latency (ns)": "result_first_token_max_latency_ns",
    "Mean First Token latency (ns)": "result_first_token_mean_latency_ns",
    "Min Time to Output Token (ns)": "result_time_to_output_token_min",
    "Max Time to Output Token (ns)": "result_time_to_output_token_max",
    "Mean Time to Output Token (ns)": "result_time_to_output_token_mean",
    "Min Time per Output Token (ns)": "result_time_to_output_token_min",
    "Max Time per Output Token (ns)": "result_time_to_output_token_max",
    "Mean Time per Output Token (ns)": "result_time_to_output_token_mean",
}
_TOKEN_PERCENTILE_LABEL = re.compile(
    r"^(\d{1,3}(?:\.\d{1,4})?) percentile (first token latency|time to output token) \(ns\)$"
)
EARLY_STOPPING_BLOCKS = ("Early Stopping Result:", "TTFT Early Stopping Result:", "TPOT Early Stopping Result:")

FLAG_LINES = {
    "Performance constraints satisfied": "result_perf_constraints_met",
    "Min duration satisfied": "result_min_duration_met",
    "Min queries satisfied": "result_min_queries_met",
    "Early stopping satisfied": "early_stopping_met",
}

# "Additional Stats" lines and the detail-log key each mirrors. MultiStream prints its stats under "Per-query
# latency:", which are the per-query keys; LoadGen 6 prints the Server rate the headline does not give here.
_STATS = {"Min latency (ns)": "min", "Max latency (ns)": "max", "Mean latency (ns)": "mean"}
_QPS_STATS = {
    "QPS w/ loadgen overhead": "result_qps_with_loadgen_overhead",
    "QPS w/o loadgen overhead": "result_qps_without_loadgen_overhead",
}
_PERCENTILE_LABEL = re.compile(r"^(\d{1,3}(?:\.\d{1,4})?) percentile latency \(ns\)$")
PER_QUERY_BLOCK = "Per-query latency"

# Detail-log keys a verdict rests on: logged twice, they must agree.
VERDICT_KEYS = ("result_", "effective_", "early_stopping_", "requested_", "qsl_reported_")
_COUNT_RE = re.compile(r"^(No|\d+) (warning|error)s? encountered", re.IGNORECASE)


@dataclass
class LoadgenSummary:
    """mlperf_log_summary.txt: the result block, the additional stats and the test parameters LoadGen printed."""

    path: Path
    sut_name: str | None = None
    scenario: str | None = None
    mode: str | None = None
    headline: tuple[str, float] | None = None  # (detail key, value)
    validity: str | None = None  # VALID | INVALID
    flags: dict[str, bool] = field(default_factory=dict)  # detail key -> satisfied
    recommendations: list[str] = field(default_factory=list)
    early_stopping: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    warnings: int = 0
    errors: int = 0
    # detail-log key -> (the figure as printed, its line), for every results and stats line that mirrors one
    figures: dict[str, tuple[str, int]] = field(default_factory=dict)
    per_query_block: bool = False  # the stats came under "Per-query latency:" (MultiStream)
    tokens: tuple[str, float] | None = None  # an LLM's token rate: (detail key, value)
    # LoadGen 4.x's early-stopping blocks of a token-latency run, "TTFT" and "TPOT", each as early_stopping is
    token_early_stopping: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_performance(self) -> bool:
        return self.validity is not None


def quantity(key: str, value: object) -> float:
    """A figure LoadGen reports, checked against its kind: finite always, a latency (ns) 0 or more, a rate (per
    second, QPS) above 0. ValueError says which rule it broke."""
    number = finite(value)
    name = key.lower()
    if ("per second" in name or "per_sec" in name or "qps" in name) and number <= 0:
        raise ValueError(f"{key} is {number:g}: a rate must be above 0")
    if ("(ns)" in name or name.endswith("_ns") or "latency" in name) and number < 0:
        raise ValueError(f"{key} is {number:g}: a latency cannot be negative")
    return number


def _number(path: Path, line: int, key: str, text: str) -> float:
    try:
        return quantity(key, text)
    except ValueError as exc:
        raise ParseError(path, str(exc), line=line) from None


def _key_value(line: str) -> tuple[str, str] | None:
    """'label : value' split at the first colon (linear in the line's length, whatever it holds)."""
    label, sep, value = line.partition(":")
    label = label.strip()
    return (label, value.strip()) if sep and label else None


SECTIONS = {"MLPerf Results Summary": "results", "Additional Stats": "stats", "Test Parameters Used": "params"}
NAMED = {"SUT name": "sut_name", "Scenario": "scenario", "Mode": "mode"}


def parse_summary(path: Path | str) -> LoadgenSummary:
    path = Path(path)
    summary = LoadgenSummary(path=path)
    section, block, seen, lines_seen = "head", None, set(), {}
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or set(stripped) == {"="}:
            continue
        count = _COUNT_RE.match(stripped)
        if count:
            kind = count.group(2).lower() + "s"
            setattr(summary, kind, 0 if count.group(1) == "No" else int(count.group(1)))
            seen.add(kind)
            block = None
        elif stripped in SECTIONS:
            section, block = SECTIONS[stripped], None
            seen.add(section)
        elif stripped == "Recommendations:" or stripped in EARLY_STOPPING_BLOCKS:
            block = _block(summary, stripped, number)
        elif block is not None and (stripped.startswith("*") or line.startswith(" ")):
            block.append(stripped.lstrip("* ").strip())
        elif pair := _key_value(line):
            block = None
            _once(summary, lines_seen, (section, *pair), number)
            _section_line(summary, section, *pair, number)
        else:
            block = None
    _check_complete(summary, seen)
    return summary


def _block(summary: LoadgenSummary, title: str, number: int) -> list[str]:
    if title == "Recommendations:":
        return summary.recommendations
    if title == "Early Stopping Result:":
        return summary.early_stopping
    which = title.split()[0]
    if which in summary.token_early_stopping:
        raise ParseError(summary.path, f"a second {title!r} block", line=number)
    return summary.token_early_stopping.setdefault(which, [])


def _once(summary: LoadgenSummary, lines_seen: dict, entry: tuple[str, str, str], number: int) -> None:
    """A label may appear again only with the same value (a copy that doubled a line); a conflict is an error."""
    section, label, value = entry
    before = lines_seen.setdefault((section, label), (value, number))
    if before[0] != value:
        raise ParseError(
            summary.path, f"{label!r} appears twice: {before[0]!r} (line {before[1]}) and {value!r}", line=number
        )


def stat_key(label: str, per_query: bool = False) -> str | None:
    """The detail-log key a summary results or stats line mirrors, or None for a line that mirrors none."""
    if label in HEADLINES:
        return HEADLINES[label]
    if label in _QPS_STATS:
        return _QPS_STATS[label]
    if label in TOKEN_LINES:
        return TOKEN_LINES[label]
    if label in _TOKEN_STATS:
        return _TOKEN_STATS[label]
    token = _TOKEN_PERCENTILE_LABEL.match(label)
    if token:
        percent = f"{float(token.group(1)):.2f}"
        if token.group(2) == "first token latency":
            return f"result_first_token_{percent}_percentile_latency_ns"
        return f"result_time_per_output_token_{percent}_percentile_ns"
    if label in _STATS:
        return f"result_{_STATS[label]}_query_latency_ns" if per_query else f"result_{_STATS[label]}_latency_ns"
    match = _PERCENTILE_LABEL.match(label)
    if match:
        return f"result_{float(match.group(1)):.2f}_percentile_{'per_query_' if per_query else ''}latency_ns"
    return None


def _section_line(summary: LoadgenSummary, section: str, label: str, value: str, number: int) -> None:
    if section == "results":
        _result_line(summary, label, value, number)
    elif section == "stats" and label == PER_QUERY_BLOCK and not value:
        summary.per_query_block = True
    elif section == "stats" and value:
        summary.stats[label] = _number(summary.path, number, label, value)
        key = stat_key(label, summary.per_query_block)
        if key is not None:
            _figure(summary, key, value, number)
    elif section == "params":
        summary.params[label] = value


def _result_line(summary: LoadgenSummary, label: str, value: str, number: int) -> None:
    path = summary.path
    if label in NAMED:
        setattr(summary, NAMED[label], value)
    elif label in HEADLINES:
        if summary.headline is not None and summary.headline[0] != HEADLINES[label]:
            raise ParseError(path, f"a second headline ({label}) after {summary.headline[0]}", line=number)
        summary.headline = (HEADLINES[label], _number(path, number, label, value))
        _figure(summary, HEADLINES[label], value, number)
    elif label in TOKEN_LINES:
        if summary.tokens is not None and summary.tokens[0] != TOKEN_LINES[label]:
            raise ParseError(path, f"a second token rate ({label}) after {summary.tokens[0]}", line=number)
        summary.tokens = (TOKEN_LINES[label], _number(path, number, label, value))
        _figure(summary, TOKEN_LINES[label], value, number)
    elif label == "Result is":
        if value not in ("VALID", "INVALID"):
            raise ParseError(path, f"result is neither VALID nor INVALID: {value!r}", line=number)
        summary.validity = value
    elif label in FLAG_LINES:
        if value not in ("Yes", "NO", "No"):
            raise ParseError(path, f"expected Yes or NO after {label!r}, found {value!r}", line=number)
        summary.flags[FLAG_LINES[label]] = value == "Yes"


def _figure(summary: LoadgenSummary, key: str, value: str, number: int) -> None:
    """A figure the summary prints in two places (a rate in the results and again in the stats) says one value."""
    before = summary.figures.setdefault(key, (value, number))
    if float(before[0]) != float(value):
        raise ParseError(
            summary.path, f"{key} is printed as {before[0]} (line {before[1]}) and as {value}", line=number
        )


def _check_complete(summary: LoadgenSummary, seen: set[str]) -> None:
    path = summary.path
    if not {"warnings", "errors"} <= seen:
        raise ParseError(path, "truncated summary: the warnings/errors lines at the end are missing")
    if "results" not in seen:
        return
    if summary.validity is None:
        raise ParseError(path, "summary has no 'Result is' line")
    if summary.headline is None:
        raise ParseError(path, "summary has no headline result for its scenario")
    if not summary.params:
        raise ParseError(path, "truncated summary: 'Test Parameters Used' is missing")
    unmet = [label for label, key in FLAG_LINES.items() if summary.flags.get(key) is False]
    if summary.validity == "VALID" and unmet:
        raise ParseError(path, f"says 'Result is : VALID' but also '{unmet[0]} : NO': it contradicts itself")


@dataclass
class LoadgenDetail:
    path: Path
    values: dict[str, object]
    warnings: list[str]
    errors: list[str]

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    @property
    def scenario(self) -> str | None:
        value = self.values.get("effective_scenario") or self.values.get("requested_scenario")
        return str(value) if value is not None else None

    @property
    def mode(self) -> str | None:
        value = self.values.get("effective_test_mode") or self.values.get("requested_test_mode")
        return str(value) if value is not None else None

    @property
    def validity(self) -> str | None:
        value = self.values.get("result_validity")
        return str(value) if value is not None else None

    @property
    def flags(self) -> dict[str, bool]:
        return {key: bool(self.values[key]) for key in FLAG_LINES.values() if key in self.values}

    @property
    def percentiles_ns(self) -> dict[str, float]:
        """result_<p>_percentile_latency_ns keys, per query where LoadGen reports those (MultiStream)."""
        out = {}
        for key, value in self.values.items():
            if key.startswith("result_") and key.endswith("percentile_latency_ns") and isinstance(value, int | float):
                out[key] = float(value)
        return out


def parse_detail(path: Path | str) -> LoadgenDetail:
    path = Path(path)
    values: dict[str, object] = {}
    lines: dict[str, int] = {}
    warnings: list[str] = []
    errors: list[str] = []
    for event in iter_events(path):
        key, value = event.key, event.value
        if key.startswith(VERDICT_KEYS):
            _check_value(path, event.line, key, value)
            if key in values and values[key] != value:
                raise ParseError(
                    path, f"{key} logged twice: {values[key]!r} (line {lines[key]}) and {value!r}", line=event.line
                )
            lines[key] = event.line
        values[key] = value
        if event.metadata.get("is_error"):
            errors.append(f"{key}: {value}")
        elif event.metadata.get("is_warning"):
            warnings.append(f"{key}: {value}")
    if not values:
        raise ParseError(path, "no MLLOG lines: not a LoadGen detail log")
    if "effective_test_mode" not in values and "requested_test_mode" not in values:
        raise ParseError(path, "truncated detail log: the test settings (effective_test_mode) are missing")
    mode = str(values.get("effective_test_mode") or values.get("requested_test_mode"))
    if mode == "PerformanceOnly" and "result_validity" not in values:
        raise ParseError(path, "truncated detail log: a performance run without result_validity")
    unmet = [key for key in FLAG_LINES.values() if values.get(key) is False]
    if values.get("result_validity") == "VALID" and unmet:
        raise ParseError(
            path, f"result_validity is VALID but {unmet[0]} is false: it contradicts itself", lines[unmet[0]]
        )
    _check_own_figures(path, values, lines)
    return LoadgenDetail(path=path, values=values, warnings=warnings, errors=errors)


def _count(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def percentile_key(fraction: float, per_query: bool = False) -> str:
    """The detail-log key of the latency at a percentile given as LoadGen logs it (0.99 -> result_99.00_...)."""
    return f"result_{fraction * 100:.2f}_percentile_{'per_query_' if per_query else ''}latency_ns"


def _check_own_figures(path: Path, values: dict[str, object], lines: dict[str, int]) -> None:
    """LoadGen's flags are its own figures compared: min queries met is result_query_count >=
    effective_min_query_count (every scenario, every LoadGen release), and a Server run (latency-bound, not
    token-bound) meets its performance constraint only with the latency at effective_target_latency_percentile
    at or under effective_target_latency_ns. A flag its figures contradict is an edited or broken log."""
    met = values.get("result_min_queries_met")
    count, least = _count(values.get("result_query_count")), _count(values.get("effective_min_query_count"))
    if isinstance(met, bool) and count is not None and least is not None and met != (count >= least):
        relation = ">=" if count >= least else "<"
        raise ParseError(
            path,
            f"result_min_queries_met is {str(met).lower()} but result_query_count {count:g} {relation} "
            f"effective_min_query_count {least:g}: it contradicts itself",
            line=lines.get("result_min_queries_met"),
        )
    token_bound = values.get("effective_use_token_latencies") is True or any(
        "ttft" in key for key in values if key.startswith("effective_")
    )
    if (
        values.get("effective_scenario") != "Server"
        or token_bound
        or values.get("result_perf_constraints_met") is not True
    ):
        return
    fraction, target = (
        _count(values.get("effective_target_latency_percentile")),
        _count(values.get("effective_target_latency_ns")),
    )
    if fraction is None or target is None or not 0 < fraction < 1:
        return
    key = percentile_key(fraction)
    latency = _count(values.get(key))
    if latency is not None and latency > target:
        raise ParseError(
            path,
            f"result_perf_constraints_met is true but {key} {latency:g} > effective_target_latency_ns {target:g}: "
            "it contradicts itself",
            line=lines.get("result_perf_constraints_met"),
        )


def _check_value(path: Path, line: int, key: str, value: object) -> None:
    """A verdict's inputs in their domain: flags are booleans, validity is VALID or INVALID, figures are finite
    (latencies 0 or more, rates above 0)."""
    if key in FLAG_LINES.values():
        if not isinstance(value, bool):
            raise ParseError(path, f"{key} is {value!r}, not true or false", line=line)
    elif key == "result_validity":
        if value not in ("VALID", "INVALID"):
            raise ParseError(path, f"result_validity is {value!r}, neither VALID nor INVALID", line=line)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            quantity(key, value)
        except ValueError as exc:
            raise ParseError(path, str(exc), line=line) from None


_PRINTED_RE = re.compile(r"^[+-]?(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d{1,3}))?$")


def agree(text: str, value: float) -> bool:
    """A figure printed in the summary and logged in the detail log agree when they differ by no more than the
    rounding of each: half a unit of the summary's last printed place, and the six significant digits the detail
    log keeps. Text that is not a plain finite number agrees with nothing."""
    match = _PRINTED_RE.match(text.strip())
    if match is None or not math.isfinite(value):
        return False
    printed = float(text)
    try:
        half_unit = 0.5 * 10.0 ** (int(match.group(3) or 0) - len(match.group(2) or ""))
    except OverflowError:  # an exponent no LoadGen figure has
        return False
    if not math.isfinite(printed) or not math.isfinite(half_unit):
        return False
    allowed = half_unit + 5e-6 * abs(value) + 1e-9 * max(abs(printed), abs(value), 1.0)
    return abs(printed - value) <= allowed


def _param_key(label: str) -> str:
    """'target_latency (ns)' -> 'effective_target_latency_ns': the detail-log key of a summary's test parameter."""
    name, _, unit = label.partition(" (")
    unit = unit.rstrip(")")
    return f"effective_{name.strip()}" + (f"_{unit}" if unit else "")


def check_pair(summary: LoadgenSummary, detail: LoadgenDetail) -> None:
    """A run's summary and detail log are two prints of one run: its scenario, mode, verdict and flags, every figure
    the summary shows (headline, rates, latencies) and every test parameter the detail log also holds must agree.
    A pair that does not is refused, naming both files and both values: one of them is not this run's."""
    wrong: list[str] = []

    def differ(what: str, ours: object, line: int | None, theirs: object) -> None:
        where = f" (line {line})" if line else ""
        wrong.append(f"{what} {ours}{where} against {theirs}")

    if summary.scenario and detail.scenario and summary.scenario.replace(" ", "") != detail.scenario:
        differ("the scenario", summary.scenario, None, detail.scenario)
    if summary.mode and detail.mode and summary.mode != detail.mode:
        differ("the test mode", summary.mode, None, detail.mode)
    if summary.validity and detail.validity and summary.validity != detail.validity:
        differ("the result", summary.validity, None, detail.validity)
    theirs_flags = detail.flags
    for key, met in summary.flags.items():
        if key in theirs_flags and theirs_flags[key] != met:
            differ(key, "Yes" if met else "NO", None, str(theirs_flags[key]).lower())
    for key, (text, line) in summary.figures.items():
        value = _count(detail.get(key))
        if value is not None and not agree(text, value):
            differ(key, text, line, f"{value:g}")
    for label, text in summary.params.items():
        key = _param_key(label)
        if key not in detail.values:
            continue
        logged = detail.get(key)
        logged = int(logged) if isinstance(logged, bool) else logged
        same = agree(text, float(logged)) if isinstance(logged, int | float) else text == str(logged)
        if not same:
            differ(key, text, None, logged)
    if wrong:
        raise ParseError(summary.path, f"disagrees with {detail.path}: " + "; ".join(wrong[:6]))
