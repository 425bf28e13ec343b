"""Baselines: a run's results kept under a name, compared metric by metric with a later run, and a gate
(`throughput:5%,latency:10%,accuracy:any`) that turns regressions into failures. Each metric knows its
direction; VALID -> INVALID and PASS -> FAIL are regressions whatever the gate says.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..judge.metrics import headline, metric_class
from ..logs import ParseError, clean, finite, read_text, strict_json
from .stats import INCONCLUSIVE, REGRESSION, Decision, StatsError, decide

DECISION_FIELDS = tuple(f.name for f in fields(Decision))

CLASSES = ("throughput", "latency", "accuracy", "time")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Fingerprint fields a driver/firmware roll-out is expected to change; others changing makes a comparison
# something other than a driver test (another GPU model, another image...).
EXPECTED_CHANGES = ("driver_version", "cuda_driver_version", "vbios")
IGNORED_FIELDS = ("host", "time")


class BaselineError(ValueError):
    """A baseline or gate expression that cannot be used: the message says which and why."""


@dataclass(frozen=True)
class Rule:
    target: str  # a class (throughput, latency, accuracy, time) or one metric's name
    limit: float | None  # a fraction (0.05 for 5%); None for "any" worsening

    def describe(self) -> str:
        return f"{self.target}:{'any' if self.limit is None else f'{self.limit * 100:g}%'}"


def parse_fail_on(expr: str) -> list[Rule]:
    """`throughput:5%,latency:10%,accuracy:any` -> rules. Anything else is a BaselineError naming the bad part
    (the caller names the flag or argument it came from)."""
    rules = []

    def where(part: str) -> str:  # the whole expression, when the bad part is not all of it
        return "" if part == expr.strip() else f"{expr!r}: "

    for part in (p.strip() for p in expr.split(",")):
        if not part:
            continue
        target, sep, limit = part.partition(":")
        target, limit = target.strip(), limit.strip()
        if not sep or not target:
            raise BaselineError(f"{where(part)}{part!r} is not CLASS:LIMIT (e.g. throughput:5%)")
        if limit == "any":
            rules.append(Rule(target, None))
            continue
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", limit)
        if not match:
            raise BaselineError(f"{where(part)}limit {limit!r} of {target!r} is not N% or 'any'")
        rules.append(Rule(target, float(match.group(1)) / 100.0))
    if not rules:
        raise BaselineError(f"{expr!r}: no rules")
    return rules


@dataclass
class Delta:
    metric: str
    unit: str
    klass: str | None
    higher_is_better: bool | None
    baseline: float
    now: float

    @property
    def change(self) -> float | None:
        """Relative change (now - baseline) / baseline; None when the baseline is 0."""
        return (self.now - self.baseline) / abs(self.baseline) if self.baseline else None

    @property
    def worsening(self) -> float:
        """How much worse, as a positive fraction (0 when equal or better)."""
        change = self.change
        if change is None or self.higher_is_better is None:
            return 0.0
        return max(0.0, -change if self.higher_is_better else change)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["class"] = out.pop("klass")
        return {**out, "change": self.change, "worsening": self.worsening}


@dataclass
class Comparison:
    case_id: str
    deltas: list[Delta] = field(default_factory=list)
    verdict_before: str | None = None
    verdict_after: str | None = None
    regressions: list[str] = field(default_factory=list)  # one sentence each
    gated: int = 0  # metrics a rule compared (0: the rules found nothing of the baseline's to compare)
    decisions: list[dict] = field(default_factory=list)  # each gated metric's Decision (gate/stats.py), with its rule
    inconclusive: list[str] = field(
        default_factory=list
    )  # the gated metrics the runs could not decide, a sentence each

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def worst(self) -> Delta | None:
        moving = [d for d in self.deltas if d.klass is not None]
        return max(moving, key=lambda d: d.worsening, default=None)

    @classmethod
    def from_dict(cls, data: dict) -> Comparison:
        deltas = [
            Delta(d["metric"], d["unit"], d["class"], d["higher_is_better"], d["baseline"], d["now"])
            for d in data.get("deltas", [])
        ]
        return cls(
            data["case"],
            deltas,
            data.get("verdict_before"),
            data.get("verdict_after"),
            list(data.get("regressions", [])),
            int(data.get("gated", 0)),
            [dict(d) for d in data.get("decisions", [])],
            list(data.get("inconclusive", [])),
        )

    def to_dict(self) -> dict:
        verdicts = {"verdict_before": self.verdict_before, "verdict_after": self.verdict_after}
        return {
            "case": self.case_id,
            **verdicts,
            "regressions": self.regressions,
            "inconclusive": self.inconclusive,
            "gated": self.gated,
            "decisions": self.decisions,
            "deltas": [d.to_dict() for d in self.deltas],
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def gated_metrics(metrics: list[dict], rules: list[Rule]) -> dict[str, Rule]:
    """Which of a record's metrics the rules gate, each with the first rule that does: a rule naming a metric gates
    that metric; a rule naming a class (throughput, latency, accuracy, time) gates the record's headline figure
    when it is of that class: the scenario's figure as MLPerf reports it (Offline samples/s, Server's scheduled
    QPS or its searched peak, the 90th / 99th percentile latency of SingleStream / MultiStream), the accuracy, the
    time to train or the score. The other figures LoadGen prints (its max and min latency, every percentile) move
    with every run and gate nothing unless a rule names them."""
    first = headline(metrics)
    out: dict[str, Rule] = {}
    for metric in metrics:
        klass = metric_class(metric) if metric is first else None
        rule = next((r for r in rules if r.target == metric["name"] or (klass and r.target == klass)), None)
        if rule is not None:
            out[metric["name"]] = rule
    return out


def samples(metric: dict) -> list[float]:
    """Every run's figure of a metric: its samples, or (one run, or a baseline saved before repeats) its value."""
    return [float(v) for v in metric.get("samples") or [metric["value"]]]


def _not_comparable(old: dict, new: dict | None) -> str | None:
    """Why a baseline metric cannot be compared with this run's (gone, another unit or direction), or None."""
    name, unit = old["name"], old.get("unit", "")
    if new is None:
        return f"{name} ({unit or 'no unit'}) is in the baseline, not in this run: it was renamed or is gone"
    if new.get("unit", "") != unit or new.get("higher_is_better") != old.get("higher_is_better"):
        return f"{name} is in {unit or 'no unit'} in the baseline, {new.get('unit', '') or 'no unit'} now" + (
            ""
            if new.get("higher_is_better") == old.get("higher_is_better")
            else f" (higher is better: {old.get('higher_is_better')} then, {new.get('higher_is_better')} now)"
        )
    return None


def compare_records(before: dict, after: dict, rules: list[Rule], confidence: float = 0.95) -> Comparison:
    """One case: every metric both runs have, as deltas of their medians; regressions are verdict flips and, for
    each gated metric, a decision (gate/stats.py) from the baseline's runs and this run's at `confidence`: a
    regression, no regression, or inconclusive. A metric the rules gate in the baseline that this run lacks, or
    reports in another unit or direction, is NOT COMPARABLE, which fails the case: a gate never passes a figure it
    did not compare."""
    comp = Comparison(after["id"], verdict_before=before.get("verdict"), verdict_after=after.get("verdict"))
    was = {m["name"]: m for m in before.get("metrics", [])}
    now = {m["name"]: m for m in after.get("metrics", [])}
    judged = after.get("verdict") is not None
    gated = gated_metrics(before.get("metrics", []), rules)
    for name, old in was.items():
        problem = _not_comparable(old, now.get(name)) if judged and name in gated else None
        if problem is not None:
            comp.regressions.append(f"NOT COMPARABLE: {problem}")
    for metric in after.get("metrics", []):
        old = was.get(metric["name"])
        if old is None or _not_comparable(old, metric) is not None:
            continue
        comp.deltas.append(
            Delta(
                metric["name"],
                metric.get("unit", ""),
                metric_class(metric),
                metric.get("higher_is_better"),
                float(old["value"]),
                float(metric["value"]),
            )
        )
    flips = {
        ("VALID", "INVALID"),
        ("PASS", "FAIL"),
        ("CONVERGED", "NOT CONVERGED"),
        ("SCORED", "INVALID"),
        ("SCORED", "PARTIAL"),
    }
    if (comp.verdict_before, comp.verdict_after) in flips:
        comp.regressions.append(f"verdict {comp.verdict_before} -> {comp.verdict_after}")
    for name, rule in gated.items():
        old, new = was[name], now.get(name)
        if new is None or _not_comparable(old, new) is not None or old.get("higher_is_better") is None:
            continue
        comp.gated += 1
        try:
            decision = decide(samples(old), samples(new), bool(old["higher_is_better"]), rule.limit, confidence)
        except StatsError as exc:
            comp.regressions.append(f"NOT COMPARABLE: {name}: {exc}")
            continue
        comp.decisions.append(
            {
                "metric": name,
                "unit": old.get("unit", ""),
                "rule": rule.describe(),
                **decision.to_dict(),
                "samples_before": samples(old),
                "samples_now": samples(new),
            }
        )
        sentence = decision_line(comp.decisions[-1])
        if decision.outcome == REGRESSION:
            comp.regressions.append(f"{sentence}, worse than {rule.describe()}")
        elif decision.outcome == INCONCLUSIVE:
            comp.inconclusive.append(sentence)
    return comp


@dataclass
class Baseline:
    name: str
    path: Path
    header: dict
    records: dict[str, dict]

    def record(self, case_id: str) -> dict | None:
        return self.records.get(case_id)


def baseline_path(name_or_file: str, directory: Path) -> Path:
    candidate = Path(name_or_file).expanduser()
    if candidate.suffix == ".json" or "/" in name_or_file:
        return candidate
    if not NAME_RE.match(name_or_file):
        raise BaselineError(f"{name_or_file!r}: a baseline name is letters, digits, '.', '_' and '-'")
    return directory / f"{name_or_file}.json"


def load(name_or_file: str, directory: Path) -> Baseline:
    path = baseline_path(name_or_file, directory)
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
        raise BaselineError(
            f"{name_or_file}: no baseline at {path}"
            + (f"; saved baselines in {directory}: {', '.join(known)}" if known else "")
        )
    try:
        data = strict_json(read_text(path))
    except (ParseError, ValueError) as exc:
        raise BaselineError(f"{path}: not a pytest-mlperf results file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BaselineError(f"{path}: not a pytest-mlperf results file (no 'results' list)")
    for key in ("catalog", "sku"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise BaselineError(f"{path}: {key} is {data[key]!r}, not a name")
    if not isinstance(data.get("fingerprint") or {}, dict):
        raise BaselineError(f"{path}: fingerprint is not an object")
    records: dict[str, dict] = {}
    for index, record in enumerate(data["results"]):
        _check_record(path, f"results[{index}]", record, records)
        records[record["id"]] = record
    return Baseline(path.stem, path, {k: v for k, v in data.items() if k != "results"}, records)


def _check_record(path: Path, where: str, record: object, seen: dict) -> None:
    """A baseline's record as a gate needs it, or a BaselineError naming the field that is not."""
    if not isinstance(record, dict):
        raise BaselineError(f"{path}: {where} is not an object")
    case = record.get("id")
    if not isinstance(case, str) or not case:
        raise BaselineError(f"{path}: {where}.id is {case!r}, not a case id")
    if case in seen:
        raise BaselineError(f"{path}: {where}.id {case!r} appears twice")
    if record.get("verdict") is not None and not isinstance(record["verdict"], str):
        raise BaselineError(f"{path}: {where}.verdict is {record['verdict']!r}, not a verdict")
    metrics = record.get("metrics", [])
    if not isinstance(metrics, list):
        raise BaselineError(f"{path}: {where}.metrics is not a list")
    for number, metric in enumerate(metrics):
        _check_metric(path, f"{where}.metrics[{number}]", metric)


def _check_metric(path: Path, where: str, metric: object) -> None:
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise BaselineError(f"{path}: {where} has no name")
    name = metric["name"]
    try:
        value = finite(metric.get("value"))
    except ValueError as exc:
        raise BaselineError(f"{path}: {where}.value ({name}): {exc}") from None
    if metric.get("higher_is_better") not in (True, False, None) or not isinstance(metric.get("unit", ""), str):
        raise BaselineError(f"{path}: {where} ({name}): higher_is_better must be true, false or null, unit a text")
    if metric_class(metric) is not None and value <= 0:
        raise BaselineError(
            f"{path}: {where}.value ({name}) is {value:g}: a change from it cannot be measured, so it cannot gate"
        )
    if "samples" in metric:
        runs = metric["samples"]
        if not isinstance(runs, list) or not runs:
            raise BaselineError(f"{path}: {where}.samples ({name}) is not a list of the runs' figures")
        try:
            figures = [finite(v) for v in runs]
        except ValueError as exc:
            raise BaselineError(f"{path}: {where}.samples ({name}): {exc}") from None
        if metric_class(metric) is not None and min(figures) <= 0:
            raise BaselineError(f"{path}: {where}.samples ({name}) holds {min(figures):g}: it cannot gate")
        middle = statistics.median(figures)
        if not math.isclose(middle, value, rel_tol=1e-9, abs_tol=1e-12):
            raise BaselineError(
                f"{path}: {where}.value ({name}) is {value:g}, the median of its {len(figures)} runs is {middle:g}: "
                "the record contradicts itself"
            )


def check_compatible(baseline: Baseline, header: dict) -> None:
    """A baseline from another MLPerf round or another SKU cannot gate this run."""
    for key, what in (("catalog", "MLPerf round"), ("sku", "SKU")):
        if baseline.header.get(key) != header.get(key):
            raise BaselineError(
                f"{baseline.path}: recorded for {what} {baseline.header.get(key)!r}, this run is {header.get(key)!r}"
            )


def fingerprint_changes(before: dict, after: dict) -> list[tuple[str, object, object]]:
    fields = sorted(set(before) | set(after))
    return [
        (f, before.get(f), after.get(f)) for f in fields if f not in IGNORED_FIELDS and before.get(f) != after.get(f)
    ]


def unexpected_changes(changes: list[tuple[str, object, object]], expected=EXPECTED_CHANGES) -> list[str]:
    return [name for name, _, _ in changes if name not in expected]


def parse_fields(text: str) -> tuple[str, ...]:
    """`driver_version,vbios` -> ('driver_version', 'vbios')."""
    return tuple(f.strip() for f in text.split(",") if f.strip())


def compare_runs(
    before: dict[str, dict], after: dict[str, dict], rules: list[Rule], confidence: float = 0.95
) -> tuple[list[Comparison], list[str]]:
    """Two runs' records by case id: a comparison per case both judged, and the cases only one holds."""
    was = dict(before)
    comps, unmatched = [], []
    for record in after.values():
        old = was.pop(record["id"], None)
        if old is None:
            unmatched.append(f"only in the new run: {record['id']}")
            continue
        if record.get("verdict") is not None:
            comps.append(compare_records(old, record, rules, confidence))
    unmatched += [f"only in the baseline: {case}" for case in was]
    return comps, unmatched


def lost_cases(before: dict[str, dict], after: dict[str, dict | None]) -> list[str]:
    """The baseline's judged cases this run did not judge: each named with what became of it (skipped, failed
    before a verdict, not run at all). Each one fails the gate: a roll-out that loses a case passed nothing."""
    lost = []
    for case, old in before.items():
        if old.get("verdict") is None:
            continue  # the baseline did not judge it either
        new = after.get(case)
        if new is None:
            lost.append(f"{case} ({old['verdict']} in the baseline): not run")
        elif new.get("verdict") is None:
            outcome = str(new.get("outcome") or "ended").lower()
            how = {"skipped": "skipped", "failed": "failed before a verdict"}.get(
                outcome, f"{outcome} without a verdict"
            )
            why = clean(str(new.get("reason") or ""), 200)
            lost.append(f"{case} ({old['verdict']} in the baseline): {how}" + (f": {why}" if why else ""))
    return lost


def nothing_compared(comps: list[Comparison], rules: list[Rule]) -> bool:
    """Rules were given, and not one metric of one case was compared under them: such a gate checked nothing."""
    return bool(rules) and not any(c.gated for c in comps)


def format_comparison(
    comps: list[Comparison], changes: list[tuple[str, object, object]], surprising: list[str]
) -> list[str]:
    """The terminal's lines: fingerprint differences (warning about the surprising ones), then cases worst
    first."""
    lines = []
    for name, old, new in changes:
        lines.append(f"fingerprint {name}: {old} -> {new}")
    if surprising:
        lines.append(
            f"WARNING: more than the driver/firmware changed ({', '.join(surprising)}): this comparison is not a "
            "driver test"
        )
    ordered = sorted(
        comps, key=lambda c: (not c.regressed, not c.inconclusive, -(c.worst.worsening if c.worst else 0.0))
    )
    for comp in ordered:
        state = "REGRESSED" if comp.regressed else "INCONCLUSIVE" if comp.inconclusive else "ok"
        head = f"{state:<10} {comp.case_id}"
        decided = [decision_line(d) for d in comp.decisions]
        if decided:
            head += f"  {decided[0]}"
        else:
            worst = comp.worst
            moved = f"{worst.metric} {_pct(worst.change)}" if worst is not None and worst.change is not None else ""
            if comp.gated == 0:  # no rule names a figure of this case: say so, never a bare figure beside "ok"
                head += "  nothing gated" + (f" (largest change, not gated: {moved})" if moved else "")
            elif moved:
                head += f"  worst {moved}"
        lines.append(head)
        lines += [f"    {line}" for line in decided[1:]]
        lines += [
            f"    {r}" for r in comp.regressions if not any(r.startswith(d["metric"] + " ") for d in comp.decisions)
        ]
    return lines


def decision_line(decision: dict) -> str:
    """A gated figure in one line: both sides' medians, then the change (of the geometric means, which the
    interval is of: it can differ from the medians' ratio, even in sign) with its interval, the limit and the
    decision."""
    shown = Decision(**{k: decision[k] for k in DECISION_FIELDS})
    unit = f" {decision.get('unit')}" if decision.get("unit") else ""
    medians = f"median {shown.median_before:.6g} -> {shown.median_now:.6g}{unit}"
    return f"{decision['metric']}: {medians}; " + shown.sentence("mean change")
