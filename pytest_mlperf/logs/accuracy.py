"""accuracy.txt as NVIDIA's harness (and MLPerf's accuracy scripts) write it: F1, mAP or WER (v2.0's models), and
the later rounds' top-1 (accuracy=X%), AUC, DICE (Accuracy: mean = X), the LLMs' ROUGE dictionary (with generated
tokens per sample, and mixtral's GSM8K and MBXP) and stable-diffusion-xl's FID and CLIP scores.

Every score found is kept under the name MLCommons' submission checker gives it (`scores`); `metric` and `value` are
the model's first one, as before."""

from __future__ import annotations

import ast
import math
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


_ACC_RE = re.compile(r"^accuracy=([0-9.eE+-]+)%, good=(\d+), total=(\d+)\s*$")
_AUC_RE = re.compile(r"^AUC=([0-9.eE+-]+)%, accuracy=([0-9.eE+-]+)%, good=(\d+), total=(\d+), queries=(\d+)\s*$")
_DICE_RE = re.compile(r"^Accuracy: mean = ([0-9.eE+-]+), kidney = ([0-9.eE+-]+), tumor = ([0-9.eE+-]+)\s*$")
_SDXL_PREFIX = "Accuracy Results:"
# The LLM evaluation scripts' dictionary (a Python repr, not JSON): its keys and the checker's names for them.
_ROUGE_KEYS = {"rouge1": "ROUGE1", "rouge2": "ROUGE2", "rougeL": "ROUGEL", "rougeLsum": "ROUGELSUM"}
_LLM_PERCENT = {"gsm8k": "gsm8k", "mbxp": "mbxp"}
_LLM_COUNTS = {"gen_len": "GEN_LEN", "gen_num": "gen_num", "gen_tok_len": "gen_tok_len"}
_LLM_KEYS = {**_ROUGE_KEYS, **_LLM_PERCENT, **_LLM_COUNTS, "tokens_per_sample": "TOKENS_PER_SAMPLE"}


@dataclass(frozen=True)
class AccuracyResult:
    path: Path
    metric: str  # F1 | mAP | 100-WER | acc | AUC | DICE | ROUGE1 | FID_SCORE
    value: float
    hash: str | None
    extra: dict[str, float]

    @property
    def scores(self) -> dict[str, float]:
        """Every figure the file gives, by the submission checker's name (the main one and the rest)."""
        return {self.metric: self.value, **self.extra}


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
            if digest is not None and digest != match.group(1):  # the same line twice is a copy; two hashes are not
                raise ParseError(path, "a second, different hash line", line=number)
            digest = match.group(1)
            continue
        score = _score_line(path, line, number)
        if score is None:
            continue
        if found is not None and found[:3] != score:
            raise ParseError(path, f"a second score ({score[0]} {score[1]:g}) after line {found[3]}'s", line=number)
        found = (*score, number)
    if found is None:
        raise ParseError(
            path,
            "no accuracy score found (an F1 json, mAP=X%, Word Error Rate, accuracy=X%, AUC=X%, 'Accuracy: mean =', "
            "a ROUGE dictionary or 'Accuracy Results:' line)",
        )
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
    if line.startswith("accuracy="):
        match = _ACC_RE.match(line)
        if not match:
            raise ParseError(path, f"malformed top-1 line {line!r} (expected accuracy=X%, good=N, total=N)", number)
        top1 = _percent(path, number, "accuracy", match.group(1))
        _check_share(path, number, "accuracy", match.group(1), int(match.group(2)), int(match.group(3)))
        return "acc", top1, {"good": float(match.group(2)), "total": float(match.group(3))}
    if line.startswith("AUC="):
        match = _AUC_RE.match(line)
        if not match:
            raise ParseError(path, f"malformed AUC line {line!r}", number)
        auc = _percent(path, number, "AUC", match.group(1))
        share = _percent(path, number, "accuracy", match.group(2))
        _check_share(path, number, "accuracy", match.group(2), int(match.group(3)), int(match.group(4)))
        return "AUC", auc, {"accuracy": share, "queries": float(match.group(5))}
    if line.startswith("Accuracy: mean"):
        return _dice(path, line, number)
    if line.startswith(_SDXL_PREFIX):
        return _image_scores(path, line[len(_SDXL_PREFIX) :].strip(), number)
    if line.startswith("{") and "'rouge1'" in line:
        return _llm_scores(path, line, number)
    return None


def _places(text: str) -> int:
    return len(text.partition(".")[2].partition("e")[0].partition("E")[0])


def _check_share(path: Path, number: int, name: str, printed: str, good: int, total: int) -> None:
    """A percentage printed beside its own counts is good / total, to the places it is printed with."""
    if total <= 0 or good > total:
        raise ParseError(path, f"{name}: good={good} of total={total} is not a share", number)
    allowed = 0.5 * 10.0 ** -_places(printed) + 1e-9
    if abs(float(printed) - 100.0 * good / total) > allowed:
        raise ParseError(path, f"{name}={printed}% is not good/total ({good}/{total}): it contradicts itself", number)


def _dice(path: Path, line: str, number: int) -> tuple[str, float, dict[str, float]]:
    """3d-unet's KiTS19 line: the mean DICE of kidney and tumour, each a fraction 0-1."""
    match = _DICE_RE.match(line)
    if not match:
        raise ParseError(path, f"malformed DICE line {line!r} (expected mean = X, kidney = X, tumor = X)", number)
    mean, kidney, tumor = (
        _unit(path, number, name, text) for name, text in zip(("mean", "kidney", "tumor"), match.groups(), strict=True)
    )
    places = min(_places(match.group(2)), _places(match.group(3)))
    allowed = 0.5 * 10.0**-places + 0.5 * 10.0 ** -_places(match.group(1)) + 1e-9
    if abs(mean - (kidney + tumor) / 2.0) > allowed:
        raise ParseError(path, f"DICE mean {mean:g} is not the mean of kidney and tumor: it contradicts itself", number)
    return "DICE", mean, {"kidney": kidney, "tumor": tumor}


def _literal_dict(path: Path, text: str, number: int, what: str) -> dict:
    """A Python dict literal of names to numbers, read without evaluating anything (ast.literal_eval)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ParseError(path, f"malformed {what}: not a dictionary literal", number) from None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ParseError(path, f"malformed {what}: not a dictionary of names", number)
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise ParseError(path, f"{what}: {key} is {item!r}, not a finite number", number)
    return value


def _image_scores(path: Path, text: str, number: int) -> tuple[str, float, dict[str, float]]:
    """stable-diffusion-xl: FID (0 or more, lower is closer) and CLIP (0-100), both in MLPerf's rules."""
    scores = _literal_dict(path, text, number, "SDXL scores")
    missing = [key for key in ("FID_SCORE", "CLIP_SCORE") if key not in scores]
    if missing:
        raise ParseError(path, f"SDXL scores lack {', '.join(missing)}", number)
    fid = float(scores["FID_SCORE"])
    if fid < 0:
        raise ParseError(path, f"FID_SCORE is {fid:g}: a distance cannot be negative", number)
    return "FID_SCORE", fid, {"CLIP_SCORE": _percent(path, number, "CLIP_SCORE", scores["CLIP_SCORE"])}


def _llm_scores(path: Path, line: str, number: int) -> tuple[str, float, dict[str, float]]:
    """The LLM scripts' dictionary: ROUGE (0-100), mixtral's gsm8k and mbxp (0-100), generated lengths (whole
    numbers 0 or more) and tokens_per_sample, which is gen_tok_len / gen_num as printed (one decimal)."""
    scores = _literal_dict(path, line, number, "ROUGE dictionary")
    missing = [key for key in _ROUGE_KEYS if key not in scores]
    if missing:
        raise ParseError(path, f"ROUGE dictionary lacks {', '.join(missing)}", number)
    out: dict[str, float] = {}
    for key, value in scores.items():
        name = _LLM_KEYS.get(key, key)
        if key in _ROUGE_KEYS or key in _LLM_PERCENT:
            out[name] = _percent(path, number, key, value)
        elif key in _LLM_COUNTS:
            if value < 0 or value != int(value):
                raise ParseError(path, f"{key} is {value!r}: a count is a whole number, 0 or more", number)
            out[name] = float(value)
        elif key == "tokens_per_sample":
            if value < 0:
                raise ParseError(path, f"tokens_per_sample is {value!r}: it cannot be negative", number)
            out[name] = float(value)
        else:
            out[name] = float(value)
    if {"gen_tok_len", "gen_num", "TOKENS_PER_SAMPLE"} <= out.keys():
        if out["gen_num"] <= 0:
            raise ParseError(path, "gen_num is 0: no sample was generated", number)
        if abs(out["TOKENS_PER_SAMPLE"] - out["gen_tok_len"] / out["gen_num"]) > 0.05 + 1e-9:
            raise ParseError(
                path, "tokens_per_sample is not gen_tok_len / gen_num: the dictionary contradicts itself", number
            )
    rouge1 = out.pop("ROUGE1")
    return "ROUGE1", rouge1, out


def _unit(path: Path, number: int, name: str, value: object) -> float:
    return _bounded(path, number, name, value, 1.0)


def _percent(path: Path, number: int, name: str, value: object) -> float:
    return _bounded(path, number, name, value, 100.0)


def _bounded(path: Path, number: int, name: str, value: object, high: float) -> float:
    """A finite score from 0 to `high` (a fraction's 1, a percentage's 100)."""
    try:
        figure = finite(value)
    except ValueError as exc:
        raise ParseError(path, f"{name}: {exc}", line=number) from None
    if not 0.0 <= figure <= high:
        raise ParseError(path, f"{name} is {figure:g}, outside 0-{high:g}", line=number)
    return figure
