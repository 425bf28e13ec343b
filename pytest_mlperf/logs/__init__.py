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
    """json.loads that refuses NaN/Infinity tokens, numbers that overflow and conflicting duplicate keys
    (ValueError, json.JSONDecodeError among them)."""
    return json.loads(text, parse_constant=_no_constants, parse_float=_finite_float, object_pairs_hook=_unique_keys)


def last_lines(source: Path | str, count: int, joiner: str = "\n") -> str:
    """The last `count` lines of a log file (a Path; '' when it is missing) or of text, joined: what a failure
    message quotes of the step that failed."""
    if isinstance(source, Path):
        source = source.read_text(errors="replace") if source.exists() else ""
    return joiner.join(source.strip().splitlines()[-count:])
