"""MLLOG lines (`:::MLLOG {json}`), as LoadGen's detail log and MLPerf training logs write them,
and the training-run record built from them."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import ParseError, read_text

MARKER = ":::MLLOG"
# Multi-node logs carry a rank prefix ("0: :::MLLOG ..."), srun may add more; anything before the marker goes.
_SUMMARY_RE = re.compile(r"\{'e2e_time':.*\}")


@dataclass(frozen=True)
class Event:
    key: str
    value: object
    time_ms: float
    event_type: str
    metadata: dict
    line: int


def iter_events(path: Path | str, text: str | None = None) -> Iterator[Event]:
    """Yield each MLLOG event of a file. A marker line whose JSON does not parse is an error."""
    if text is None:
        text = read_text(path)
    for number, raw in enumerate(text.splitlines(), start=1):
        at = raw.find(MARKER)
        if at < 0:
            continue
        payload = raw[at + len(MARKER) :].strip()
        try:
            record = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ParseError(path, f"malformed MLLOG record ({exc.msg})", line=number) from None
        if not isinstance(record, dict) or "key" not in record:
            raise ParseError(path, "MLLOG record without a key", line=number)
        try:
            time_ms = float(record.get("time_ms", 0.0))
        except (TypeError, ValueError):
            raise ParseError(path, f"MLLOG time_ms is not a number: {record.get('time_ms')!r}", line=number) from None
        yield Event(
            key=str(record["key"]),
            value=record.get("value"),
            time_ms=time_ms,
            event_type=str(record.get("event_type", "")),
            metadata=record.get("metadata") or {},
            line=number,
        )


@dataclass(frozen=True)
class EvalPoint:
    accuracy: float
    samples: int | None
    time_ms: float


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


def parse_training_log(path: Path | str) -> TrainingRun:
    """Build a TrainingRun from a trial log (MLLOG lines, with or without rank prefixes)."""
    path = Path(path)
    text = read_text(path)
    run = TrainingRun(path=path)
    seen_any = False
    for event in iter_events(path, text):
        seen_any = True
        key = event.key
        if key == "submission_benchmark":
            run.benchmark = str(event.value)
        elif key == "submission_org":
            run.org = str(event.value)
        elif key == "submission_platform":
            run.platform = str(event.value)
        elif key in _PARAM_KEYS:
            run.params[key] = event.value
        elif key == "run_start":
            # Every rank logs it in some implementations; the first one starts the clock.
            if run.run_start_ms is None:
                run.run_start_ms = event.time_ms
        elif key == "run_stop":
            run.run_stop_ms = event.time_ms
            run.status = str(event.metadata.get("status", "")) or None
        elif key == "eval_accuracy":
            try:
                accuracy = float(event.value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ParseError(path, f"eval_accuracy is not a number: {event.value!r}", line=event.line) from None
            samples = event.metadata.get("epoch_num")
            run.evals.append(EvalPoint(accuracy, int(samples) if samples is not None else None, event.time_ms))
        elif key == "train_samples":
            run.train_samples = int(event.value)  # type: ignore[arg-type]
    if not seen_any:
        raise ParseError(path, "no MLLOG lines: not an MLPerf training log")
    if run.run_start_ms is None:
        raise ParseError(path, "no run_start event: the log is truncated or the run never started")
    if run.run_stop_ms is None:
        raise ParseError(path, "no run_stop event: the log is truncated or the run is still going")
    run.summary = parse_summary_line(path, text)
    return run


def parse_summary_line(path: Path | str, text: str) -> dict[str, float] | None:
    """The `{'e2e_time': ..., ...}` dict NVIDIA's run prints at the end, if the log kept it."""
    found = None
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _SUMMARY_RE.search(raw)
        if not match:
            continue
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            raise ParseError(path, "malformed run summary line", line=number) from None
        if not isinstance(value, dict):
            raise ParseError(path, "run summary line is not a dict", line=number)
        try:
            found = {str(k): float(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise ParseError(path, "run summary line holds a value that is not a number", line=number) from None
    return found
