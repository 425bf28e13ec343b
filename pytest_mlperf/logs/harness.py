"""NVIDIA's end-of-run summaries: the blocks that run_harness prints, and the two JSON files behind them
(perf_harness_summary.json, accuracy_summary.json: {config name: {benchmark: message}}).

An AccuracyOnly run leaves no performance result: NVIDIA's harness (code/common/harness.py, run_harness) then
reports NO_PERFORMANCE where the perf message would be, and code/main.py writes that string into
perf_harness_summary.json like any other result; print_harness_result.py prints it under the perf banner."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import ParseError, finite, load_json, read_text

PERF_BANNER = "Perf harness results:"
ACC_BANNER = "Accuracy results:"

_PERF_RE = re.compile(r"^(?P<key>[A-Za-z0-9_.]+): (?P<value>[-0-9.eE+]+), Result is (?P<validity>VALID|INVALID)$")
_ACC_RE = re.compile(
    r"^Accuracy = (?P<value>[-0-9.eE+]+), Threshold = (?P<threshold>[-0-9.eE+]+)\. "
    r"Accuracy test (?P<verdict>PASSED|FAILED)\.?$"
)
NO_ACCURACY = "No accuracy results in PerformanceOnly mode."
NO_PERFORMANCE = "Cannot find performance result. Maybe you are running in AccuracyOnly mode."


@dataclass(frozen=True)
class PerfMessage:
    key: str | None
    value: float | None
    validity: str | None  # None (with key and value): the run was AccuracyOnly, it has no performance result

    @property
    def accuracy_only(self) -> bool:
        return self.validity is None


@dataclass(frozen=True)
class AccuracyMessage:
    value: float | None
    threshold: float | None
    passed: bool | None  # None: the run was PerformanceOnly


def parse_perf_message(message: str, where: str = "<message>") -> PerfMessage:
    if message.strip() == NO_PERFORMANCE:
        return PerfMessage(None, None, None)
    match = _PERF_RE.match(message.strip())
    if not match:
        raise ParseError(
            where, f"unrecognised perf result {message!r} (expected '<key>: <value>, Result is VALID|INVALID')"
        )
    return PerfMessage(match.group("key"), _figure(match.group("value"), where), match.group("validity"))


def _figure(text: str, where: str) -> float:
    try:
        return finite(text)
    except ValueError as exc:
        raise ParseError(where, str(exc)) from None


_RAISED_RE = re.compile(
    r"^RuntimeError: (?P<message>Accuracy = \S+, Threshold = \S+\. Accuracy test FAILED)!\s*$", re.MULTILINE
)


def raised_accuracy_failure(text: str, where: str = "<output>") -> AccuracyMessage | None:
    """The exception NVIDIA's main.py raises when an accuracy check FAILS (check_accuracy: "Accuracy = v,
    Threshold = t. Accuracy test FAILED!"), the last one in a step's output, as the message it would have written;
    None when the output has none (the step failed some other way)."""
    found = list(_RAISED_RE.finditer(text))
    return parse_accuracy_message(found[-1].group("message"), where) if found else None


def parse_accuracy_message(message: str, where: str = "<message>") -> AccuracyMessage:
    text = message.strip()
    if text == NO_ACCURACY:
        return AccuracyMessage(None, None, None)
    match = _ACC_RE.match(text)
    if not match:
        raise ParseError(where, f"unrecognised accuracy result {message!r}")
    return AccuracyMessage(
        _figure(match.group("value"), where),
        _figure(match.group("threshold"), where),
        match.group("verdict") == "PASSED",
    )


@dataclass
class HarnessSummary:
    """{config name: {benchmark: parsed message}} for perf and accuracy."""

    perf: dict[str, dict[str, PerfMessage]]
    accuracy: dict[str, dict[str, AccuracyMessage]]


def parse_summary_json(path: Path | str, kind: str) -> dict[str, dict]:
    """perf_harness_summary.json (kind='perf') or accuracy_summary.json (kind='accuracy')."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise ParseError(path, "expected an object of {config name: {benchmark: message}}")
    parse = parse_perf_message if kind == "perf" else parse_accuracy_message
    out: dict[str, dict] = {}
    for config, benches in data.items():
        if not isinstance(benches, dict):
            raise ParseError(path, f"config {config!r}: expected an object of benchmark messages")
        for bench, msg in benches.items():
            if not isinstance(msg, str):
                raise ParseError(path, f"[{config}/{bench}]: the message is {type(msg).__name__}, not a string")
        out[config] = {bench: parse(msg, f"{path} [{config}/{bench}]") for bench, msg in benches.items()}
    return out


def parse_stdout(path: Path | str) -> HarnessSummary:
    """The two banner blocks at the end of `make run_harness` output (stdout.txt or a console log)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    perf: dict[str, dict[str, PerfMessage]] = {}
    accuracy: dict[str, dict[str, AccuracyMessage]] = {}
    target: dict | None = None
    kind = None
    config = None
    seen = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if line.startswith("=") and PERF_BANNER in line:
            target, kind, config = perf, "perf", None
            seen.add("perf")
            continue
        if line.startswith("=") and ACC_BANNER in line:
            target, kind, config = accuracy, "accuracy", None
            seen.add("accuracy")
            continue
        if target is None or not line.strip():
            continue
        if not line.startswith(" ") and line.endswith(":"):
            config = line[:-1]
            target.setdefault(config, {})
            continue
        if line.startswith("    ") and config is not None:
            bench, sep, message = line.strip().partition(": ")
            if not sep:
                raise ParseError(path, f"expected '<benchmark>: <message>', found {line.strip()!r}", line=number)
            where = f"{path}:{number}"
            target[config][bench] = (
                parse_perf_message(message, where) if kind == "perf" else parse_accuracy_message(message, where)
            )
            continue
        # Anything else ends the block (make's own lines follow it).
        target, config = None, None
    if not seen:
        raise ParseError(path, "no 'Perf harness results' or 'Accuracy results' block: the run did not finish")
    return HarnessSummary(perf=perf, accuracy=accuracy)
