"""Parsers: pure functions from log files to typed records. Nothing here knows pytest.

What they share: reading a file safely (only regular files, any of the encodings LoadGen's and NVIDIA's tools
write), strict JSON (no NaN or Infinity tokens, no duplicate keys), finite numbers, and errors that name the
file and line and quote no more than a line's worth of what they found.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
import stat
from pathlib import Path

QUOTE_LIMIT = 400  # characters of a log's text an error message may quote
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|\x1b\[[0-9;?]*[ -/]*[@-~]")


class ParseError(ValueError):
    """A log that is truncated, malformed, out of its domain or contradicts itself. Names the file and, where
    known, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.message = clean(message)
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{clean(where)}: {self.message}")


def clean(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Text from a log made safe to echo: terminal escapes and control characters dropped (a newline or tab
    kept), and at most `limit` characters, saying how many more there were."""
    text = _CONTROL_RE.sub("", str(text))
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


def read_text(path: Path | str) -> str:
    """A log file's text. Only a regular file is read (a FIFO named like a log would block the run forever);
    a UTF-8 or UTF-16 byte-order mark is honoured; anything else is a ParseError that says what it is."""
    path = Path(path)
    return decode(path, read_bytes(path))


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes (the first `limit` of them), opened without blocking and checked before reading."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ParseError(path, "file not found") from None
    except OSError as exc:
        raise ParseError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ParseError(path, "is a directory, expected a log file")
        if not stat.S_ISREG(mode):
            raise ParseError(path, "is not a regular file (a FIFO, socket or device), so it is not read")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    except OSError as exc:
        raise ParseError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_head(path: Path, limit: int = 256 * 1024) -> str:
    """The start of a file, for a cheap look at what it is; '' for anything that is not a readable regular file."""
    try:
        return read_bytes(path, limit).decode("utf-8", errors="replace")
    except ParseError:
        return ""


def decode(path: Path | str, data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ParseError(path, "starts with a UTF-16 byte-order mark but is not UTF-16 text") from None
    if b"\x00" in data[:4096]:
        raise ParseError(path, "holds NUL bytes: not a text log (UTF-16 without a byte-order mark, or binary)")
    return data.decode("utf-8", errors="replace")


def finite(value: object) -> float:
    """A number's float, or ValueError when it is not a finite number (bools are not numbers here)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{clean(repr(value), 60)} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{clean(repr(value), 60)} is not a finite number")
    return number


def _no_constants(token: str):
    raise ValueError(f"non-finite number {token}")


def _finite_float(token: str) -> float:
    number = float(token)
    if not math.isfinite(number):
        raise ValueError(f"number {clean(token, 40)} overflows")
    return number


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            raise ValueError(f"key {clean(key, 60)!r} twice with different values")
        out[key] = value
    return out


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity tokens, numbers that overflow, conflicting duplicate keys and nesting
    too deep for the decoder (ValueError, json.JSONDecodeError among them)."""
    try:
        return json.loads(text, parse_constant=_no_constants, parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except RecursionError:  # `[[[[...` a hundred thousand deep: the C decoder recurses once a level
        raise ValueError("arrays or objects nested too deeply") from None


def strict_json_at(text: str, start: int = 0) -> tuple[object, int]:
    """One JSON value decoded as strict_json decodes it, starting at text[start] (leading whitespace skipped);
    returns it and the index just past it, so a line holding several values can be read value by value."""
    decoder = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite_float, object_pairs_hook=_unique_keys)
    while start < len(text) and text[start].isspace():
        start += 1
    try:
        return decoder.raw_decode(text, start)
    except RecursionError:
        raise ValueError("arrays or objects nested too deeply") from None


def load_json(path: Path | str):
    """A whole JSON file, read as strict_json does; any failure is a ParseError naming the file (and line)."""
    path = Path(path)
    try:
        return strict_json(read_text(path))
    except json.JSONDecodeError as exc:
        raise ParseError(path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    except ValueError as exc:
        raise ParseError(path, f"malformed JSON ({exc})") from None


def last_lines(source: Path | str, count: int, joiner: str = "\n") -> str:
    """The last `count` lines of a log file (a Path; '' when it is missing) or of text, joined: what a failure
    message quotes of the step that failed."""
    if isinstance(source, Path):
        source = source.read_text(errors="replace") if source.exists() else ""
    return joiner.join(source.strip().splitlines()[-count:])


# ---- what kind of log a file is ---------------------------------------------------------------------------------
LOG_KINDS = {
    "loadgen_summary": "LoadGen summary (mlperf_log_summary.txt)",
    "loadgen_detail": "LoadGen detail log (mlperf_log_detail.txt)",
    "accuracy_txt": "accuracy script output (accuracy.txt)",
    "perf_harness_summary": "NVIDIA perf_harness_summary.json",
    "accuracy_summary": "NVIDIA accuracy_summary.json",
    "metadata": "NVIDIA metadata.json",
    "harness_stdout": "NVIDIA run_harness console output (stdout.txt)",
    "training_log": "MLPerf training log (MLLOG lines)",
}
_EXACT_NAMES = {
    "accuracy.txt": "accuracy_txt",
    "perf_harness_summary.json": "perf_harness_summary",
    "accuracy_summary.json": "accuracy_summary",
    "metadata.json": "metadata",
    "stdout.txt": "harness_stdout",
}
_TRIAL_NAME_RE = re.compile(r"^result_\d+\.txt$")  # published training trials: result_0.txt ... result_9.txt
_LOADGEN_KEYS = ('"loadgen_version"', '"effective_test_mode"', '"requested_scenario"', '"effective_scenario"')
# cache_clear too: a multi-node capture can open with each node's cache drop and 256 KiB of launcher output
_TRAINING_KEYS = ('"submission_benchmark"', '"run_start"', '"init_start"', '"run_stop"', '"cache_clear"')
_ACCURACY_LINE_RE = re.compile(r'^(\{.*"f1"\s*:|mAP=[0-9.eE+-]+%|Word Error Rate:.*accuracy=)', re.MULTILINE)
_COUNT_LINE_RE = re.compile(r"^(No|\d+) (warning|error)s? encountered", re.IGNORECASE | re.MULTILINE)
_BANNER_RE = re.compile(r"^=+ (Perf harness results|Accuracy results): =+\s*$", re.MULTILINE)
_PERF_JSON_RE = re.compile(r"Result is (VALID|INVALID)|Result validity unknown|Cannot find performance result")
_ACC_JSON_RE = re.compile(r"Accuracy test (PASSED|FAILED)|No accuracy results in PerformanceOnly mode")
_METADATA_KEYS = ('"config_name"', '"test_mode"', '"scenario_key"')


def kind_by_name(name: str) -> str | None:
    """The kind of log a file name says it is (the names LoadGen, NVIDIA's harness and MLPerf's published trees
    use), or None for any other name."""
    if name.startswith("mlperf_log_summary"):
        return "loadgen_summary"
    if name.startswith("mlperf_log_detail"):
        return "loadgen_detail"
    if name in _EXACT_NAMES:
        return _EXACT_NAMES[name]
    return "training_log" if _TRIAL_NAME_RE.match(name) else None


def kind_by_content(path: Path | str) -> tuple[str, str] | None:
    """(kind, the evidence) of a file whose name says nothing, from its first 256 KiB: the marks each kind of log
    always carries. None when nothing matches, when two kinds' marks do (a file is never guessed at) or when it is
    not text; a ParseError when it cannot be read at all (missing, a directory, a FIFO)."""
    data = read_bytes(Path(path), 256 * 1024)
    try:
        text = decode(path, data).lstrip("\ufeff")
    except ParseError:  # NUL bytes, or a UTF-16 mark on what is not UTF-16: not a log of any kind
        return None
    found = [(kind, why) for kind, why in _content_marks(text) if why]
    return found[0] if len(found) == 1 else None


def _content_marks(text: str) -> list[tuple[str, str | None]]:
    head = text.lstrip()
    # accuracy.txt of BERT opens with a JSON line ({"exact_match": X, "f1": Y}) and goes on in plain text
    is_json = head.startswith("{") and not re.match(r'\{[^\n]*"f1"\s*:', head)
    mllog = ":::MLLOG" in text and not _BANNER_RE.search(text)
    perf_json = is_json and bool(_PERF_JSON_RE.search(text)) and not _ACC_JSON_RE.search(text)
    acc_json = is_json and bool(_ACC_JSON_RE.search(text)) and not _PERF_JSON_RE.search(text)
    metadata = is_json and all(key in text for key in _METADATA_KEYS)
    counts = {m.group(2).lower() for m in _COUNT_LINE_RE.finditer(text)}
    # NVIDIA's console output also carries LoadGen's summary and the accuracy script's lines: its banners decide.
    banner = bool(_BANNER_RE.search(text))
    plain = not (mllog or is_json or banner)
    return [
        ("metadata", "a JSON object with config_name, test_mode and scenario_key" if metadata else None),
        (
            "perf_harness_summary",
            "JSON messages '<key>: <value>, Result is ...'" if perf_json and not metadata else None,
        ),
        ("accuracy_summary", "JSON messages 'Accuracy ... Accuracy test ...'" if acc_json and not metadata else None),
        ("loadgen_detail", "MLLOG lines with LoadGen's keys" if mllog and _has(text, _LOADGEN_KEYS) else None),
        (
            "training_log",
            "MLLOG lines with a training run's keys"
            if mllog and _has(text, _TRAINING_KEYS) and not _has(text, _LOADGEN_KEYS)
            else None,
        ),
        (
            "loadgen_summary",
            "LoadGen's 'MLPerf Results Summary' or warning/error count lines"
            if plain and ("MLPerf Results Summary" in text or counts == {"warning", "error"})
            else None,
        ),
        (
            "harness_stdout",
            "the 'Perf harness results' / 'Accuracy results' banners" if banner and not is_json else None,
        ),
        (
            "accuracy_txt",
            "an F1, mAP or Word Error Rate score line" if plain and _ACCURACY_LINE_RE.search(text) else None,
        ),
    ]


def _has(text: str, keys: tuple[str, ...]) -> bool:
    return any(key in text for key in keys)
