"""accuracy.txt as NVIDIA's harness (and MLPerf's accuracy scripts) write it: F1, mAP or WER."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import ParseError, finite, read_text, strict_json

_MAP_RE = re.compile(r"^mAP=([0-9.eE+-]+)%\s*$")
_WER_RE = re.compile(r"^Word Error Rate:\s*([0-9.eE+-]+)%, accuracy=([0-9.eE+-]+)%\s*$")
_HASH_RE = re.compile(r"^hash=([0-9a-f]+)\s*$")
# pycocotools' summary line whose value (x 100) is the mAP MLPerf's COCO accuracy scripts print after the table.
_COCO_AP_RE = re.compile(
    r"^Average Precision\s+\(AP\) @\[\s*IoU=0\.50:0\.95\s*\|\s*area=\s*all\s*\|\s*maxDets=\s*100\s*\]\s*=\s*(\S+)$"
)


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
    table: tuple[float, int, int] | None = None  # the COCO table's AP @[IoU=0.50:0.95, all, 100], places, line
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if line.startswith("Average Precision") and (coco := _COCO_AP_RE.match(line)):
            ap = _fraction(path, number, coco.group(1))
            if table is not None and table[0] != ap:
                raise ParseError(
                    path, f"a second COCO table gives AP {ap:g} after line {table[2]}'s {table[0]:g}", number
                )
            table = (ap, len(coco.group(1).partition(".")[2]), number)
            continue
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
    metric, value, extra, line = found
    if table is not None and metric == "mAP":
        _check_table(path, value, line, *table)
        extra = {**extra, "coco_ap": table[0]}
    return AccuracyResult(path=path, metric=metric, value=value, hash=digest, extra=extra)


def _fraction(path: Path, number: int, text: str) -> float:
    if not re.fullmatch(r"-?[0-9]+\.[0-9]+", text):
        raise ParseError(path, f"malformed COCO AP {text[:40]!r} (pycocotools prints 0.xyz)", number)
    try:
        value = finite(text)
    except ValueError as exc:
        raise ParseError(path, f"COCO AP: {exc}", number) from None
    if not 0.0 <= value <= 1.0 and value != -1.0:  # pycocotools prints -1 for an empty category
        raise ParseError(path, f"COCO AP {value:g} is outside 0-1", number)
    return value


def _check_table(path: Path, mean_ap: float, line: int, ap: float, places: int, table_line: int) -> None:
    """The mAP line is the table's AP @[IoU=0.50:0.95 | area=all | maxDets=100] x 100, the table rounded to the
    places it prints (three in v2.0's scripts, 0.05 points; five in later rounds'): they may differ by half a unit
    of that rounding, no more."""
    allowed = 0.5 * 10.0**-places * 100.0 + 1e-9
    if abs(mean_ap - ap * 100.0) > allowed:
        raise ParseError(
            path,
            f"mAP={mean_ap:g}% is not the COCO table's AP {ap:.{places}f} (line {table_line}) x 100: it contradicts "
            "itself",
            line,
        )


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
