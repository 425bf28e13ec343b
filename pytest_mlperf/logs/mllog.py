"""MLLOG lines (`:::MLLOG {json}`), as LoadGen's detail log and MLPerf training logs write them,
and the training-run record built from them."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import ParseError, finite, read_text, strict_json_at

MARKER = ":::MLLOG"
# Multi-node logs carry a rank prefix ("0: :::MLLOG ..."), srun may add more; anything before the marker goes.
_SUMMARY_RE = re.compile(r"\{'e2e_time':.*\}")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RANK_RE = re.compile(r"^\s*(\d{1,6})\s*:\s*$")  # srun's "3: " before a rank's line


@dataclass(frozen=True)
class Event:
    key: str
    value: object
    time_ms: float
    event_type: str
    metadata: dict
    line: int
    rank: int | None = None  # the rank prefix of its line ("3: :::MLLOG ..."), None without one


def iter_events(path: Path | str, text: str | None = None) -> Iterator[Event]:
    """Yield each MLLOG event of a file. Ranks that write at once can leave two records on one line
    (`...}:::MLLOG {...`): each is read. A marker whose JSON does not parse, or text other than whitespace between
    a record and the next marker, is an error naming the line."""
    if text is None:
        text = read_text(path)
    # lines end at "\n" only: str.splitlines() would also break inside a record at U+2028, U+0085 or \x1c-\x1e
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        at = raw.find(MARKER)
        prefix = _RANK_RE.match(raw[:at]) if at > 0 else None
        rank = int(prefix.group(1)) if prefix else None
        while at >= 0:
            record, end = _record_at(path, raw, at + len(MARKER), number)
            yield _event(path, record, number, rank)
            at = raw.find(MARKER, end)
            if raw[end : at if at >= 0 else len(raw)].strip():
                raise ParseError(path, "text after an MLLOG record on its line", line=number)


def _record_at(path: Path | str, raw: str, start: int, number: int) -> tuple[dict, int]:
    try:
        record, end = strict_json_at(raw, start)
    except json.JSONDecodeError as exc:
        raise ParseError(path, f"malformed MLLOG record ({exc.msg})", line=number) from None
    except ValueError as exc:  # NaN or Infinity, an overflowing number, a key twice with two values
        raise ParseError(path, f"malformed MLLOG record ({exc})", line=number) from None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        raise ParseError(path, "MLLOG record without a key", line=number)
    return record, end


def _event(path: Path | str, record: dict, number: int, rank: int | None = None) -> Event:
    try:
        time_ms = finite(record.get("time_ms", 0.0))
    except ValueError as exc:
        raise ParseError(path, f"MLLOG time_ms: {exc}", line=number) from None
    if not isinstance(record.get("metadata") or {}, dict):
        raise ParseError(path, "MLLOG metadata is not an object", line=number)
    return Event(
        key=str(record["key"]),
        value=record.get("value"),
        time_ms=time_ms,
        event_type=str(record.get("event_type", "")),
        metadata=record.get("metadata") or {},
        line=number,
        rank=rank,
    )


@dataclass(frozen=True)
class EvalPoint:
    accuracy: float
    samples: int | None
    time_ms: float
    line: int = 0
    rank: int | None = None


@dataclass
class TrainingRun:
    """One trial of MLPerf training, as its log shows it."""

    path: Path
    params: dict[str, object] = field(default_factory=dict)  # the hyperparameters it logged, by key
    benchmark: str | None = None
    org: str | None = None
    platform: str | None = None
    run_start_ms: float | None = None
    run_stop_ms: float | None = None
    status: str | None = None
    evals: list[EvalPoint] = field(default_factory=list)
    train_samples: int | None = None
    summary: dict[str, float] | None = None  # the {'e2e_time': ...} line, when the console log kept it
    late_evals: list[EvalPoint] = field(default_factory=list)  # logged after run_stop: they do not count
    init_start_ms: float | None = None

    @property
    def last_accuracy(self) -> float | None:
        return self.evals[-1].accuracy if self.evals else None

    @property
    def time_to_train_s(self) -> float | None:
        if self.run_start_ms is None or self.run_stop_ms is None:
            return None
        return (self.run_stop_ms - self.run_start_ms) / 1000.0

    @property
    def nodes(self) -> int | None:
        match = re.match(r"(\d+)x", self.platform or "")
        return int(match.group(1)) if match else None


_PARAM_KEYS = {
    "global_batch_size",
    "gradient_accumulation_steps",
    "opt_learning_rate_training_steps",
    "opt_base_learning_rate",
    "max_sequence_length",
    "seed",
    "eval_samples",
}


_SUBMISSION = {"submission_benchmark": "benchmark", "submission_org": "org", "submission_platform": "platform"}


def parse_training_log(path: Path | str) -> TrainingRun:
    """Build a TrainingRun from a trial log (MLLOG lines, with or without rank prefixes). The whole file is one run:
    a console capture of several runs is parse_training_runs' to read."""
    path = Path(path)
    text = read_text(path)
    run = _build(path, iter_events(path, text))
    run.summary = parse_summary_line(path, text)
    return run


# What starts a trial: the cache drop before it, each rank's init_start, run_start.
_OPENERS = ("cache_clear", "init_start", "run_start")


def parse_training_runs(path: Path | str) -> list[TrainingRun]:
    """Every run of a console capture that holds several trials back to back (as VirtualClient keeps a config's
    trials), in order; a file of one run gives exactly what parse_training_log gives.

    A run ends at its run_stop; the next cache_clear, init_start or run_start opens the next one. Every rank logs
    init_start, and a slow rank's line can be flushed after run_start: an init_start or cache_clear inside a started
    run opens another only when it is later than that run's run_start. A run_start inside a started run opens
    another once the first has evaluated (before that it is another rank's). A run opened before the last one
    stopped is a crashed or cut-off trial, and an error naming both. A summary line ({'e2e_time': ...}) belongs to
    the last run stopped before it; one before any run_stop, or a second for one run, is an error."""
    path = Path(path)
    text = read_text(path)
    events = list(iter_events(path, text))
    spans = _split_runs(path, events)
    if len(spans) <= 1:
        run = _build(path, events)
        run.summary = parse_summary_line(path, text)
        return [run]
    runs = []
    for number, span in enumerate(spans, start=1):
        try:
            runs.append(_build(path, span))
        except ParseError as exc:
            raise ParseError(
                path, f"run {number} of {len(spans)} (from line {span[0].line}): {exc.message}", exc.line
            ) from None
    stops = [next(e.line for e in span if e.key == "run_stop") for span in spans]
    for line, summary in _summary_lines(path, text):
        owner = max((i for i, stop in enumerate(stops) if stop < line), default=None)
        if owner is None:
            raise ParseError(path, "run summary line before any run's run_stop: it belongs to no run", line=line)
        if runs[owner].summary is not None:
            raise ParseError(path, f"a second run summary line for run {owner + 1} of {len(runs)}", line=line)
        runs[owner].summary = summary
    return runs


def _split_runs(path: Path, events: list[Event]) -> list[list[Event]]:
    spans: list[list[Event]] = []
    start: Event | None = None  # the open run's run_start
    stopped = evaluated = False
    for event in events:
        if event.key in _OPENERS and start is not None and not stopped:
            later = event.time_ms > start.time_ms if event.key != "run_start" else evaluated
            if later:
                raise ParseError(
                    path,
                    f"run {len(spans)} (run_start at line {start.line}) has no run_stop before the next run begins "
                    f"with {event.key} at line {event.line}: a crashed or cut-off trial",
                    line=event.line,
                )
        if not spans or (event.key in _OPENERS and stopped):
            spans.append([])
            start, stopped, evaluated = None, False, False
        spans[-1].append(event)
        if event.key == "run_start" and start is None:
            start = event
        elif event.key == "run_stop" and start is not None:
            stopped = True
        elif event.key == "eval_accuracy" and start is not None:
            evaluated = True
    return spans


def _build(path: Path, events) -> TrainingRun:
    run = TrainingRun(path=path)
    seen_any = False
    for event in events:
        seen_any = True
        _apply(run, event)
    if not seen_any:
        raise ParseError(path, "no MLLOG lines: not an MLPerf training log")
    if run.run_start_ms is None:
        raise ParseError(path, "no run_start event: the log is truncated or the run never started")
    if run.run_stop_ms is None:
        raise ParseError(path, "no run_stop event: the log is truncated or the run is still going")
    if run.run_stop_ms < run.run_start_ms:
        raise ParseError(
            path, f"run_stop (time_ms {run.run_stop_ms:g}) comes before run_start (time_ms {run.run_start_ms:g})"
        )
    run.evals = _rank_zero(path, run.evals)
    run.late_evals = [e for e in run.evals if e.time_ms > run.run_stop_ms]
    run.evals = [e for e in run.evals if e.time_ms <= run.run_stop_ms]
    return run


def _rank_zero(path: Path, evals: list[EvalPoint]) -> list[EvalPoint]:
    """The evaluations that count where several ranks log them: rank 0's (or the unprefixed lines'); another
    rank's eval at the same point must say the same, or the ranks disagree and the log is refused."""
    ranks = {e.rank for e in evals}
    if len(ranks) <= 1:
        return evals
    lead = 0 if 0 in ranks else None if None in ranks else min(r for r in ranks if r is not None)
    decided = {(e.samples if e.samples is not None else i): e for i, e in enumerate(x for x in evals if x.rank == lead)}
    for other in (e for e in evals if e.rank != lead):
        mine = decided.get(other.samples) if other.samples is not None else None
        if mine is not None and abs(mine.accuracy - other.accuracy) > 1e-9:
            raise ParseError(
                path,
                f"rank {other.rank} logs eval_accuracy {other.accuracy:g} at epoch_num {other.samples}, rank "
                f"{lead if lead is not None else '(none)'} {mine.accuracy:g} (line {mine.line}): the ranks disagree",
                line=other.line,
            )
    return [e for e in evals if e.rank == lead]


def _apply(run: TrainingRun, event: Event) -> None:
    key, path = event.key, run.path
    if key in _SUBMISSION:
        value, before = str(event.value), getattr(run, _SUBMISSION[key])
        if before is not None and before != value:
            raise ParseError(path, f"{key} logged twice: {before!r} and {value!r}", line=event.line)
        setattr(run, _SUBMISSION[key], value)
    elif key in _PARAM_KEYS:
        run.params[key] = event.value
    elif key == "init_start" and run.init_start_ms is None:
        run.init_start_ms = event.time_ms
    elif key == "run_start" and run.run_start_ms is None:
        run.run_start_ms = event.time_ms  # every rank logs it in some implementations; the first starts the clock
    elif key == "run_stop":
        status = str(event.metadata.get("status", "")) or None
        if run.status is not None and status is not None and status != run.status:
            raise ParseError(path, f"run_stop logged twice: status {run.status!r} and {status!r}", line=event.line)
        run.run_stop_ms, run.status = event.time_ms, status or run.status
    elif key == "eval_accuracy":
        accuracy = _bounded(path, event, event.value, 0.0, 1.0, "eval_accuracy")
        samples = event.metadata.get("epoch_num")
        count = int(_bounded(path, event, samples, 0.0, None, "epoch_num")) if samples is not None else None
        run.evals.append(EvalPoint(accuracy, count, event.time_ms, event.line, event.rank))
    elif key == "train_samples":
        run.train_samples = int(_bounded(path, event, event.value, 0.0, None, "train_samples"))


def _bounded(path: Path, event: Event, value: object, low: float, high: float | None, name: str) -> float:
    try:
        number = finite(value)
    except ValueError as exc:
        raise ParseError(path, f"{name}: {exc}", line=event.line) from None
    if number < low or (high is not None and number > high):
        span = f"{low:g} to {high:g}" if high is not None else f"{low:g} or more"
        raise ParseError(path, f"{name} is {number:g}, outside {span}", line=event.line)
    return number


def parse_summary_line(path: Path | str, text: str) -> dict[str, float] | None:
    """The `{'e2e_time': ..., ...}` dict NVIDIA's run prints at the end, if the log kept it (the last, if several)."""
    found = _summary_lines(path, text)
    return found[-1][1] if found else None


def _summary_lines(path: Path | str, text: str) -> list[tuple[int, dict[str, float]]]:
    """(line number, figures) of every run summary line; numbered as iter_events numbers lines."""
    out = []
    for number, raw in enumerate(text.split("\n"), start=1):
        match = _SUMMARY_RE.search(raw)
        if not match:
            continue
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            raise ParseError(path, "malformed run summary line", line=number) from None
        if not isinstance(value, dict):
            raise ParseError(path, "run summary line is not a dict", line=number)
        if not all(isinstance(k, str) and _NAME_RE.match(k) for k in value):
            raise ParseError(path, "run summary line has a key that is not a plain name", line=number)
        try:
            found = {k: finite(v) for k, v in value.items()}
        except ValueError as exc:
            raise ParseError(path, f"run summary line: {exc}", line=number) from None
        if any(v < 0 for v in found.values()):
            raise ParseError(path, "run summary line holds a negative time, rate or loss", line=number)
        out.append((number, found))
    return out
