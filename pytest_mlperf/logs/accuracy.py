"""accuracy.txt as NVIDIA's harness (and MLPerf's accuracy scripts) write it: F1, mAP or WER."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import ParseError, read_text

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
    text = read_text(path)
    found: tuple[str, float, dict[str, float], int] | None = None
    digest = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("{") and '"f1"' in line:
            try:
                scores = json.loads(line)
                f1 = float(scores["f1"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ParseError(
                    path, 'malformed SQuAD score line (expected {"exact_match": X, "f1": Y})', line=number
                ) from None
            extra = {"exact_match": float(scores["exact_match"])} if "exact_match" in scores else {}
            found = ("F1", f1, extra, number)
            continue
        if line.startswith("mAP="):
            match = _MAP_RE.match(line)
            if not match:
                raise ParseError(path, f"malformed mAP line {line!r}", line=number)
            found = ("mAP", float(match.group(1)), {}, number)
            continue
        if line.startswith("Word Error Rate"):
            match = _WER_RE.match(line)
            if not match:
                raise ParseError(path, f"malformed WER line {line!r}", line=number)
            found = ("100-WER", float(match.group(2)), {"word_error_rate": float(match.group(1))}, number)
            continue
        if line.startswith("hash="):
            match = _HASH_RE.match(line)
            if not match:
                raise ParseError(path, f"malformed hash line {line!r}", line=number)
            digest = match.group(1)
    if found is None:
        raise ParseError(path, "no accuracy score (F1 json, mAP=X% or Word Error Rate line) found")
    metric, value, extra, _ = found
    return AccuracyResult(path=path, metric=metric, value=value, hash=digest, extra=extra)
