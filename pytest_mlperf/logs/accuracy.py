"""accuracy.txt as NVIDIA's harness (and MLPerf's accuracy scripts) write it: F1, mAP or WER."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import ParseError, finite, read_text, strict_json

_MAP_RE = re.compile(r"^mAP=([0-9.eE+-]+)%\s*$")
_WER_RE = re.compile(r"^Word Error Rate:\s*([0-9.eE+-]+)%, accuracy=([0-9.eE+-]+)%\s*$")
_HASH_RE = re.compile(r"^hash=([0-9a-f]+)\s*$")


@dataclass(frozen=True)
class AccuracyResult:
    path: Path
    metric: str  # F1 | mAP | 100-WER
    value: float
    hash: str | None
    extra: dict[str, float]


def parse_accuracy(path: Path | str) -> AccuracyResult:
    path = Path(path)
    found: tuple[str, float, dict[str, float], int] | None = None
    digest = None
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if line.startswith("hash="):
            match = _HASH_RE.match(line)
            if not match:
                raise ParseError(path, f"malformed hash line {line!r}", line=number)
            digest = match.group(1)
            continue
        score = _score_line(path, line, number)
        if score is None:
            continue
        if found is not None and found[:3] != score:
            raise ParseError(path, f"a second score ({score[0]} {score[1]:g}) after line {found[3]}'s", line=number)
        found = (*score, number)
    if found is None:
        raise ParseError(path, "no accuracy score (F1 json, mAP=X% or Word Error Rate line) found")
    metric, value, extra, _ = found
    return AccuracyResult(path=path, metric=metric, value=value, hash=digest, extra=extra)


def _score_line(path: Path, line: str, number: int) -> tuple[str, float, dict[str, float]] | None:
    """(metric, value, extras) of an F1, mAP or WER line, every figure a percentage in 0-100."""
    if line.startswith("{") and '"f1"' in line:
        try:
            scores = strict_json(line)
            f1 = _percent(path, number, "f1", scores["f1"])
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ParseError(
                path, 'malformed SQuAD score line (expected {"exact_match": X, "f1": Y})', number
            ) from None
        if "exact_match" in scores:
            return "F1", f1, {"exact_match": _percent(path, number, "exact_match", scores["exact_match"])}
        return "F1", f1, {}
    if line.startswith("mAP="):
        match = _MAP_RE.match(line)
        if not match:
            raise ParseError(path, f"malformed mAP line {line!r}", line=number)
        return "mAP", _percent(path, number, "mAP", match.group(1)), {}
    if line.startswith("Word Error Rate"):
        match = _WER_RE.match(line)
        if not match:
            raise ParseError(path, f"malformed WER line {line!r}", line=number)
        wer = _percent(path, number, "Word Error Rate", match.group(1))
        accuracy = _percent(path, number, "accuracy", match.group(2))
        if abs(accuracy - (100.0 - wer)) > 0.01:
            raise ParseError(path, f"accuracy {accuracy:g}% is not 100 - Word Error Rate ({wer:g}%)", line=number)
        return "100-WER", accuracy, {"word_error_rate": wer}
    return None


def _percent(path: Path, number: int, name: str, value: object) -> float:
    try:
        figure = finite(value)
    except ValueError as exc:
        raise ParseError(path, f"{name}: {exc}", line=number) from None
    if not 0.0 <= figure <= 100.0:
        raise ParseError(path, f"{name} is {figure:g}, outside 0-100", line=number)
    return figure
