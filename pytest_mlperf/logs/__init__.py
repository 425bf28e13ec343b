"""Parsers: pure functions from log files to typed records. Nothing here knows pytest."""

from __future__ import annotations

from pathlib import Path


class ParseError(ValueError):
    """A log that is truncated or malformed. Names the file and, where known, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


def read_text(path: Path | str) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ParseError(path, "file not found") from None
    except IsADirectoryError:
        raise ParseError(path, "is a directory, expected a log file") from None


def last_lines(source: Path | str, count: int, joiner: str = "\n") -> str:
    """The last `count` lines of a log file (a Path; '' when it is missing) or of text, joined: what a failure
    message quotes of the step that failed."""
    if isinstance(source, Path):
        source = source.read_text(errors="replace") if source.exists() else ""
    return joiner.join(source.strip().splitlines()[-count:])
