"""NVIDIA's per-case metadata.json, which its harness writes from v3.0 on (code/actionhandler/run_harness.py:
`create_metadata_json`, into the LoadGen log folder <log_dir>/<system>/<benchmark>/<Scenario>/). VirtualClient and
PerfKitBenchmarker read it; users bring it from their own runs.

What it holds (code/common/harness.py `run_harness` and run_harness.py `handle`):
- every run: benchmark_full, benchmark_short, config_name (<system_name>-<workload setting>-<scenario>),
  detected_system, scenario, scenario_key (the scenario's LoadGen result key), summary_string, system_name,
  tensorrt_version, test_mode, satisfies_query_constraint, and from v4.0 effective_min_duration_ms and the query
  constraint's LoadGen key (effective_min_query_count; Offline: effective_samples_per_query);
- a PerformanceOnly run: result_validity, early_stopping_met and the value under scenario_key, copied from LoadGen's
  detail log;
- an AccuracyOnly run: accuracy, a list of {name, pass, threshold, value} (one per MLPerf accuracy metric), and
  accuracy_pass (no entry FAILED).

satisfies_query_constraint is NVIDIA's own check that the run's query count reached the submission minimum (a
`--fast` run does not); LoadGen's validity does not depend on it, so VALID with it false is no contradiction. VALID
with early_stopping_met false is one: LoadGen's result is VALID only when min duration, min queries, performance
constraints and early stopping are all met (loadgen/results.cc).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from . import ParseError, clean, finite, load_json
from .accuracy import AccuracyResult
from .loadgen import LoadgenDetail, LoadgenSummary, quantity

FILE_NAME = "metadata.json"
MODES = ("AccuracyOnly", "PerformanceOnly")
# The LoadGen key NVIDIA's harness reports for each scenario (code/common/log_parser.py scenario_loadgen_log_keys
# and result_key(): Server moved from scheduled to completed samples; LLMs report tokens).
RESULT_KEYS = {
    "Offline": ("result_samples_per_second", "result_tokens_per_second"),
    "Server": (
        "result_scheduled_samples_per_sec",
        "result_completed_samples_per_sec",
        "result_completed_tokens_per_second",
    ),
    "SingleStream": ("result_90.00_percentile_latency_ns",),
    "MultiStream": ("result_99.00_percentile_per_query_latency_ns",),
}
TEXT_KEYS = (
    "benchmark_full",
    "benchmark_short",
    "config_name",
    "detected_system",
    "scenario",
    "scenario_key",
    "summary_string",
    "system_name",
    "tensorrt_version",
    "test_mode",
)
COUNT_KEYS = ("effective_min_duration_ms", "effective_min_query_count", "effective_samples_per_query")
UINT64_MAX = 2**64 - 1  # LoadGen's settings are uint64
REL_TOL = 1e-5  # LoadGen's detail log keeps 6 significant digits, its summary 2 decimals: both within this

_PERF_SUMMARY_RE = re.compile(
    r"^(?P<key>[A-Za-z0-9_.]+): (?P<value>[-+0-9.eE]+), Result is (?P<validity>VALID|INVALID|UNKNOWN_VALIDITY)\b"
)
_ACC_SUMMARY_RE = re.compile(
    r"^\[(?P<verdict>PASSED|FAILED)\] (?P<name>.+): (?P<value>[-+0-9.eE]+) \(Threshold=(?P<threshold>[-+0-9.eE]+)\)$"
)


@dataclass(frozen=True)
class AccuracyScore:
    """One accuracy metric of an AccuracyOnly run, as NVIDIA's accuracy checker scored it."""

    name: str  # the submission checker's metric name: F1, mAP, WER (whose value is 100 - WER), acc, ROUGE1...
    passed: bool
    threshold: float
    value: float


@dataclass(frozen=True, kw_only=True)
class HarnessMetadata:
    """What every metadata.json holds."""

    path: Path
    config_name: str
    system_name: str
    benchmark_full: str
    benchmark_short: str
    scenario: str
    scenario_key: str
    test_mode: str
    summary_string: str
    tensorrt_version: str
    detected_system: str
    satisfies_query_constraint: bool | None
    effective_min_duration_ms: int | None
    effective_min_query_count: int | None
    effective_samples_per_query: int | None


@dataclass(frozen=True, kw_only=True)
class AccuracyMetadata(HarnessMetadata):
    accuracy: tuple[AccuracyScore, ...]
    accuracy_pass: bool

    def virtualclient_metrics(self) -> dict[str, float]:
        """VirtualClient's name for the verdict: `<config name>-AccuracyMode`, 1 (PASS) or 0 (FAIL)."""
        return {f"{self.config_name}-AccuracyMode": 1.0 if self.accuracy_pass else 0.0}


@dataclass(frozen=True, kw_only=True)
class PerformanceMetadata(HarnessMetadata):
    result_validity: str  # VALID | INVALID
    result_value: float  # the value under scenario_key
    early_stopping_met: bool

    def virtualclient_metrics(self) -> dict[str, float]:
        """VirtualClient's name for the verdict: `<config name>-PerformanceMode`, 1 (VALID) or 0 (INVALID)."""
        return {f"{self.config_name}-PerformanceMode": 1.0 if self.result_validity == "VALID" else 0.0}


def parse_metadata(path: Path | str) -> AccuracyMetadata | PerformanceMetadata:
    """A metadata.json of either kind (by its test_mode); anything missing, mistyped, out of its domain or
    contradicting itself is a ParseError naming the file and the key."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise ParseError(path, f"expected a JSON object, found {type(data).__name__}")
    common = _common(path, data)
    if common["test_mode"] == "AccuracyOnly":
        record: AccuracyMetadata | PerformanceMetadata = _accuracy(path, data, common)
    else:
        record = _performance(path, data, common)
    _check_summary_string(record)
    return record


def _common(path: Path, data: dict) -> dict:
    fields = {key: _text(path, data, key) for key in TEXT_KEYS}
    if fields["test_mode"] not in MODES:
        raise ParseError(
            path, f"test_mode is {clean(fields['test_mode'], 60)!r}, neither AccuracyOnly nor PerformanceOnly"
        )
    scenario = fields["scenario"]
    if scenario not in RESULT_KEYS:
        raise ParseError(path, f"scenario is {clean(scenario, 60)!r}, not one of {', '.join(RESULT_KEYS)}")
    if fields["scenario_key"] not in RESULT_KEYS[scenario]:
        raise ParseError(
            path,
            f"scenario_key is {clean(fields['scenario_key'], 80)!r}, not LoadGen's result key for {scenario} "
            f"({' or '.join(RESULT_KEYS[scenario])})",
        )
    config, system = fields["config_name"], fields["system_name"]
    if not (config.startswith(system + "-") and config.endswith("-" + scenario)):
        raise ParseError(
            path,
            f"config_name {clean(config, 120)!r} is not '<system_name>-<setting>-<scenario>' for system_name "
            f"{clean(system, 80)!r} and scenario {scenario!r}: the file contradicts itself",
        )
    fields["satisfies_query_constraint"] = _flag(path, data, "satisfies_query_constraint", required=False)
    fields.update({key: _count(path, data, key) for key in COUNT_KEYS})
    return {"path": path, **fields}


def _accuracy(path: Path, data: dict, common: dict) -> AccuracyMetadata:
    raw = data.get("accuracy")
    if "accuracy" not in data:
        raise ParseError(path, "accuracy: missing (an AccuracyOnly run lists its scores there)")
    if not isinstance(raw, list) or not raw:
        raise ParseError(path, "accuracy: expected a non-empty list of {name, pass, threshold, value}")
    scores = tuple(_score(path, number, entry) for number, entry in enumerate(raw))
    names = [score.name for score in scores]
    if len(set(names)) != len(names):
        raise ParseError(path, f"accuracy: a metric is scored twice ({', '.join(names)})")
    accuracy_pass = _flag(path, data, "accuracy_pass", required=True)
    failed = [score.name for score in scores if not score.passed]
    if accuracy_pass and failed:
        raise ParseError(path, f"accuracy_pass is true but accuracy[{names.index(failed[0])}] ({failed[0]}) failed")
    if accuracy_pass is False and not failed:
        raise ParseError(path, "accuracy_pass is false but every accuracy entry passed: the file contradicts itself")
    return AccuracyMetadata(**common, accuracy=scores, accuracy_pass=bool(accuracy_pass))


def _score(path: Path, number: int, entry: object) -> AccuracyScore:
    where = f"accuracy[{number}]"
    if not isinstance(entry, dict):
        raise ParseError(path, f"{where}: expected an object of name, pass, threshold, value")
    name = _text(path, entry, "name", where)
    passed = _flag(path, entry, "pass", required=True, where=where)
    threshold, value = (_figure(path, entry, key, where) for key in ("threshold", "value"))
    if passed and value < threshold:
        raise ParseError(path, f"{where} ({name}): pass is true but value {value:g} < threshold {threshold:g}")
    return AccuracyScore(name=name, passed=bool(passed), threshold=threshold, value=value)


def _performance(path: Path, data: dict, common: dict) -> PerformanceMetadata:
    if "accuracy" in data or "accuracy_pass" in data:
        raise ParseError(path, "a PerformanceOnly run's file holds accuracy results: the file contradicts itself")
    validity = data.get("result_validity")
    if validity not in ("VALID", "INVALID"):
        missing = "result_validity" not in data
        raise ParseError(
            path, "result_validity: missing" if missing else f"result_validity is {clean(repr(validity), 60)}"
        )
    key = common["scenario_key"]
    if key not in data:
        raise ParseError(path, f"{key}: missing, though scenario_key names it (a PerformanceOnly run reports it)")
    value = _number(path, data[key], key)
    try:
        quantity(key, value)
    except ValueError as exc:
        raise ParseError(path, str(exc)) from None
    early = bool(_flag(path, data, "early_stopping_met", required=True))
    if common["satisfies_query_constraint"] is None:
        raise ParseError(path, "satisfies_query_constraint: missing")
    if validity == "VALID" and not early:
        raise ParseError(
            path, "result_validity is VALID but early_stopping_met is false: LoadGen's VALID needs early stopping met"
        )
    return PerformanceMetadata(**common, result_validity=validity, result_value=value, early_stopping_met=early)


def _text(path: Path, data: dict, key: str, where: str = "") -> str:
    name = f"{where}.{key}" if where else key
    if key not in data:
        raise ParseError(path, f"{name}: missing")
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise ParseError(path, f"{name} is {clean(repr(value), 60)}, not a non-empty string")
    return value


def _flag(path: Path, data: dict, key: str, required: bool, where: str = "") -> bool | None:
    name = f"{where}.{key}" if where else key
    if key not in data:
        if required:
            raise ParseError(path, f"{name}: missing")
        return None
    if not isinstance(data[key], bool):
        raise ParseError(path, f"{name} is {clean(repr(data[key]), 60)}, not true or false")
    return data[key]


def _number(path: Path, value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(path, f"{name} is {clean(repr(value), 60)}, not a number")
    try:
        return finite(value)
    except ValueError as exc:
        raise ParseError(path, f"{name}: {exc}") from None


def _figure(path: Path, data: dict, key: str, where: str) -> float:
    """An accuracy value or threshold: a finite number, 0 or more (every MLPerf accuracy metric is)."""
    if key not in data:
        raise ParseError(path, f"{where}.{key}: missing")
    number = _number(path, data[key], f"{where}.{key}")
    if number < 0:
        raise ParseError(path, f"{where}.{key} is {number:g}: an accuracy figure cannot be negative")
    return number


def _count(path: Path, data: dict, key: str) -> int | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(path, f"{key} is {clean(repr(value), 60)}, not a whole number")
    if not 0 <= value <= UINT64_MAX:
        raise ParseError(path, f"{key} is {clean(str(value), 60)}: outside LoadGen's range (0 to 2**64 - 1)")
    return value


def _check_summary_string(record: AccuracyMetadata | PerformanceMetadata) -> None:
    """summary_string is NVIDIA's one-line verdict, made from the same fields: where it reads as NVIDIA writes it,
    it must say what they say (a later harness's other wording is left unread, not refused)."""
    text, path = record.summary_string, record.path
    if isinstance(record, PerformanceMetadata):
        match = _PERF_SUMMARY_RE.match(text)
        if match and (
            match.group("key") != record.scenario_key
            or match.group("validity") != record.result_validity
            or not _close(_parsed(match.group("value")), record.result_value)
        ):
            raise ParseError(
                path,
                f"summary_string {clean(text, 160)!r} disagrees with {record.scenario_key} = {record.result_value:g}, "
                f"result_validity = {record.result_validity}",
            )
        return
    parts = [_ACC_SUMMARY_RE.match(part.strip()) for part in text.split(" | ")]
    if not all(parts) or len(parts) != len(record.accuracy):
        return
    for match, score in zip(parts, record.accuracy, strict=True):
        said = (match.group("verdict") == "PASSED", match.group("name"))
        if said != (score.passed, score.name) or abs(_parsed(match.group("value")) - score.value) > 5e-4:
            raise ParseError(path, f"summary_string {clean(text, 160)!r} disagrees with accuracy entry {score.name}")


def _parsed(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan  # compares unequal to everything: a garbled figure disagrees


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)


# ---- the same case as LoadGen and the accuracy script saw it ---------------------------------------------------
# Summary "Additional Stats" lines that carry a result key the headline may not (v2.0 LoadGen prints Server's
# completed rate there).
_SUMMARY_STATS = {
    "Completed samples per second": "result_completed_samples_per_sec",
    "Completed tokens per second": "result_completed_tokens_per_second",
}
_SUMMARY_PARAMS = {
    "min_duration (ms)": "effective_min_duration_ms",
    "min_query_count": "effective_min_query_count",
    "samples_per_query": "effective_samples_per_query",
}
# accuracy.txt's metric (logs/accuracy.py) -> the submission checker's name in metadata.json
METADATA_NAMES = {"F1": "F1", "mAP": "mAP", "100-WER": "WER"}


@dataclass(frozen=True)
class _Facts:
    """What a LoadGen file says of its run, in metadata.json's terms (None: the file does not say)."""

    path: Path
    mode: str | None
    scenario: str | None
    validity: str | None
    values: dict[str, float]
    early_stopping_met: bool | None
    counts: dict[str, int]


def cross_check(
    meta: AccuracyMetadata | PerformanceMetadata, other: LoadgenSummary | LoadgenDetail | AccuracyResult
) -> list[str]:
    """Where metadata.json and LoadGen's summary or detail log, or accuracy.txt, of the same case disagree: test mode,
    scenario, validity, early stopping, settings, the result value (within REL_TOL), accuracy scores. Each entry
    names both files and both values; an empty list means they agree."""
    if isinstance(other, AccuracyResult):
        return _against_accuracy_txt(meta, other)
    facts = _summary_facts(other) if isinstance(other, LoadgenSummary) else _detail_facts(other)
    out: list[str] = []
    _differ(out, "test mode", meta, meta.test_mode, facts, facts.mode)
    _differ(out, "scenario", meta, meta.scenario, facts, facts.scenario)
    for key, count in facts.counts.items():
        _differ(out, key, meta, getattr(meta, key), facts, count)
    if isinstance(meta, PerformanceMetadata) and facts.mode == "PerformanceOnly":
        _differ(out, "result_validity", meta, meta.result_validity, facts, facts.validity)
        _differ(out, "early_stopping_met", meta, meta.early_stopping_met, facts, facts.early_stopping_met)
        theirs = facts.values.get(meta.scenario_key)
        if theirs is None:
            out.append(
                f"{meta.scenario_key}: {meta.path} reports {meta.result_value:g}, {facts.path} has no such figure"
            )
        elif not _close(meta.result_value, theirs):
            out.append(f"{meta.scenario_key}: {meta.path} says {meta.result_value:g}, {facts.path} says {theirs:g}")
    return out


def _differ(out: list[str], what: str, meta: HarnessMetadata, ours: object, facts: _Facts, theirs: object) -> None:
    if ours is not None and theirs is not None and ours != theirs:
        out.append(f"{what}: {meta.path} says {ours}, {facts.path} says {theirs}")


def _summary_facts(summary: LoadgenSummary) -> _Facts:
    values = {summary.headline[0]: summary.headline[1]} if summary.headline else {}
    values.update({_SUMMARY_STATS[k]: v for k, v in summary.stats.items() if k in _SUMMARY_STATS})
    counts = {}
    for label, key in _SUMMARY_PARAMS.items():
        text = summary.params.get(label, "").strip()
        if text.isdigit():
            counts[key] = int(text)
    # LoadGen prints its results block only in performance mode: an accuracy run's summary holds only the counts.
    mode = summary.mode or ("PerformanceOnly" if summary.is_performance else "AccuracyOnly")
    return _Facts(
        summary.path, mode, summary.scenario, summary.validity, values, summary.flags.get("early_stopping_met"), counts
    )


def _detail_facts(detail: LoadgenDetail) -> _Facts:
    values = {
        key: float(value)
        for key, value in detail.values.items()
        if key.startswith("result_") and isinstance(value, int | float) and not isinstance(value, bool)
    }
    counts = {
        key: detail.values[key]
        for key in COUNT_KEYS
        if isinstance(detail.values.get(key), int) and not isinstance(detail.values.get(key), bool)
    }
    early = detail.values.get("early_stopping_met")
    return _Facts(
        detail.path,
        detail.mode,
        detail.scenario,
        detail.validity,
        values,
        early if isinstance(early, bool) else None,
        counts,
    )


def _against_accuracy_txt(meta: AccuracyMetadata | PerformanceMetadata, result: AccuracyResult) -> list[str]:
    if not isinstance(meta, AccuracyMetadata):
        return [f"test mode: {meta.path} says {meta.test_mode}, {result.path} is an accuracy run's score"]
    name = METADATA_NAMES.get(result.metric, result.metric)
    score = next((s for s in meta.accuracy if s.name == name), None)
    if score is None:
        scored = ", ".join(s.name for s in meta.accuracy)
        return [f"accuracy metric: {result.path} scores {name}, {meta.path} scores only {scored}"]
    if not _close(score.value, result.value):
        return [f"{name}: {meta.path} says {score.value:g}, {result.path} says {result.value:g}"]
    return []
