"""LoadGen's mlperf_log_summary.txt and mlperf_log_detail.txt."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import ParseError, read_text
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

FLAG_LINES = {
    "Performance constraints satisfied": "result_perf_constraints_met",
    "Min duration satisfied": "result_min_duration_met",
    "Min queries satisfied": "result_min_queries_met",
    "Early stopping satisfied": "early_stopping_met",
}

_KV_RE = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")
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

    @property
    def is_performance(self) -> bool:
        return self.validity is not None


def _number(path: Path, line: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ParseError(path, f"expected a number, found {text!r}", line=line) from None


SECTIONS = {"MLPerf Results Summary": "results", "Additional Stats": "stats", "Test Parameters Used": "params"}
NAMED = {"SUT name": "sut_name", "Scenario": "scenario", "Mode": "mode"}


def parse_summary(path: Path | str) -> LoadgenSummary:
    path = Path(path)
    summary = LoadgenSummary(path=path)
    section, block, seen = "head", None, set()
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
        elif stripped in ("Recommendations:", "Early Stopping Result:"):
            block = summary.recommendations if stripped == "Recommendations:" else summary.early_stopping
        elif block is not None and (stripped.startswith("*") or line.startswith(" ")):
            block.append(stripped.lstrip("* ").strip())
        elif match := _KV_RE.match(line):
            block = None
            _section_line(summary, section, match.group(1), match.group(2), number)
        else:
            block = None
    _check_complete(summary, seen)
    return summary


def _section_line(summary: LoadgenSummary, section: str, label: str, value: str, number: int) -> None:
    if section == "results":
        _result_line(summary, label, value, number)
    elif section == "stats" and value:
        summary.stats[label] = _number(summary.path, number, value)
    elif section == "params":
        summary.params[label] = value


def _result_line(summary: LoadgenSummary, label: str, value: str, number: int) -> None:
    path = summary.path
    if label in NAMED:
        setattr(summary, NAMED[label], value)
    elif label in HEADLINES:
        summary.headline = (HEADLINES[label], _number(path, number, value))
    elif label == "Result is":
        if value not in ("VALID", "INVALID"):
            raise ParseError(path, f"result is neither VALID nor INVALID: {value!r}", line=number)
        summary.validity = value
    elif label in FLAG_LINES:
        if value not in ("Yes", "NO", "No"):
            raise ParseError(path, f"expected Yes or NO after {label!r}, found {value!r}", line=number)
        summary.flags[FLAG_LINES[label]] = value == "Yes"


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
    warnings: list[str] = []
    errors: list[str] = []
    for event in iter_events(path):
        values[event.key] = event.value
        if event.metadata.get("is_error"):
            errors.append(f"{event.key}: {event.value}")
        elif event.metadata.get("is_warning"):
            warnings.append(f"{event.key}: {event.value}")
    if not values:
        raise ParseError(path, "no MLLOG lines: not a LoadGen detail log")
    if "effective_test_mode" not in values and "requested_test_mode" not in values:
        raise ParseError(path, "truncated detail log: the test settings (effective_test_mode) are missing")
    mode = str(values.get("effective_test_mode") or values.get("requested_test_mode"))
    if mode == "PerformanceOnly" and "result_validity" not in values:
        raise ParseError(path, "truncated detail log: a performance run without result_validity")
    return LoadgenDetail(path=path, values=values, warnings=warnings, errors=errors)
