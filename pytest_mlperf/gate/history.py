"""Saved baselines as a history: the runs of a baseline folder in time order, each case's gated figure as a series
(one point a saved run: the median of its repeats), and the change points of each series, found by Apache Otava's
E-divisive means (the method of Matteson and James, as Otava runs it for continuous performance testing). A drift
over several roll-outs, each step under the gate's limit, shows as a change point where no single comparison
failed.

Otava is an optional dependency (pip install 'pytest-mlperf[history]'); without it the series are listed and the
change points are said to be unavailable, naming the install.
"""

from __future__ import annotations

import datetime
import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..judge.metrics import headline
from .baseline import Baseline, BaselineError, fingerprint_changes, load

MAX_PVALUE = 0.001  # Otava's default significance for a change point
WINDOW = 50  # Otava's sliding window, in saved runs


class HistoryError(ValueError):
    """A folder that holds no history: the message says why."""


@dataclass
class SavedRun:
    name: str
    path: Path
    when: datetime.datetime | None  # the header's `started`; None for a baseline saved before it was recorded
    order: str  # how its place was decided: "started" or "file time"
    baseline: Baseline


@dataclass
class Series:
    case: str
    metric: str
    unit: str
    higher_is_better: bool | None
    points: list[tuple[str, float]] = field(default_factory=list)  # (saved run's name, median)
    change_points: list[dict] = field(default_factory=list)


def saved_runs(folder: Path) -> tuple[list[SavedRun], list[str]]:
    """Every baseline file in the folder, oldest first (by the header's start time, else the file's time), and a
    line for each file that is not one."""
    if not folder.is_dir():
        raise HistoryError(f"{folder}: not a folder of saved baselines")
    runs, bad = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            base = load(str(path), folder)
        except BaselineError as exc:
            bad.append(f"SKIPPED {path.name}: {exc}")
            continue
        started = base.header.get("started")
        when, order = None, "file time"
        if isinstance(started, str):
            try:
                when, order = datetime.datetime.fromisoformat(started), "started"
            except ValueError:
                bad.append(f"SKIPPED {path.name}: started {started[:40]!r} is not a time")
                continue
        if when is None:
            when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        runs.append(SavedRun(path.stem, path, when, order, base))
    if not runs:
        raise HistoryError(f"{folder}: no saved baselines (*.json written by --mlperf-save)" + _said(bad))
    runs.sort(key=lambda run: (run.when, run.name))
    return runs, bad


def _said(bad: list[str]) -> str:
    return "; " + "; ".join(bad[:3]) if bad else ""


def series_of(runs: list[SavedRun], metric: str | None = None, case: str | None = None) -> list[Series]:
    """Each case's figure over the saved runs: the named metric, or the case's headline (the figure the gate
    decides on by default). `case` is an id or an fnmatch pattern."""
    found: dict[tuple[str, str], Series] = {}
    for run in runs:
        for case_id, record in run.baseline.records.items():
            if case is not None and not fnmatch.fnmatchcase(case_id, case):
                continue
            if record.get("verdict") is None or not record.get("ok", True):
                continue  # a run that failed has no figure to trend
            metrics = record.get("metrics") or []
            chosen = next((m for m in metrics if m["name"] == metric), None) if metric else headline(metrics)
            if chosen is None:
                continue
            key = (case_id, chosen["name"])
            if key not in found:
                found[key] = Series(case_id, chosen["name"], chosen.get("unit", ""), chosen.get("higher_is_better"))
            found[key].points.append((run.name, float(chosen["value"])))
    return [found[key] for key in sorted(found)]


def change_points(series: Series, max_pvalue: float = MAX_PVALUE) -> list[dict]:
    """Otava's change points of one series: where, the means before and after, the change, its p-value."""
    from otava.analysis import compute_change_points

    values = [value for _, value in series.points]
    if len(values) < 3:
        return []
    points, _ = compute_change_points(values, window_len=WINDOW, max_pvalue=max_pvalue)
    out = []
    for point in points:
        index = int(point.index)
        stats = point.stats
        before, after = float(stats.mean_1), float(stats.mean_2)
        change = after / before - 1.0 if before else math.nan
        worse = None
        if series.higher_is_better is not None and math.isfinite(change):
            worse = change < 0 if series.higher_is_better else change > 0
        out.append(
            {
                "index": index,
                "run": series.points[index][0],
                "after_run": series.points[index - 1][0],
                "mean_before": before,
                "mean_after": after,
                "change": change,
                "pvalue": float(stats.pvalue),
                "worse": worse,
            }
        )
    return out


def otava_missing() -> str | None:
    try:
        import otava.analysis  # noqa: F401
    except ImportError as exc:
        return f"change points need Apache Otava: pip install 'pytest-mlperf[history]' ({exc})"
    return None


def history_lines(
    folder: Path, metric: str | None = None, case: str | None = None, max_pvalue: float = MAX_PVALUE
) -> tuple[list[str], int]:
    """The listing `pytest-mlperf history` prints, and how many change points it found."""
    runs, bad = saved_runs(folder)
    lines = [f"{len(runs)} saved runs in {folder}, oldest first:"]
    previous = None
    for run in runs:
        header = run.baseline.header
        stamp = run.when.isoformat(timespec="seconds") if run.when else "?"
        label = "" if run.order == "started" else " (no start time saved: ordered by the file's time)"
        lines.append(f"  {run.name:<24} {stamp}  {header.get('sku') or '-'}  {len(run.baseline.records)} cases{label}")
        if previous is not None:
            for name, old, new in fingerprint_changes(previous, header.get("fingerprint") or {}):
                lines.append(f"      fingerprint {name}: {old} -> {new}")
        previous = header.get("fingerprint") or {}
    lines += bad
    series = series_of(runs, metric, case)
    if not series:
        lines.append(
            "no figure to trend" + (f" (metric {metric})" if metric else "") + (f" (case {case})" if case else "")
        )
        return lines, 0
    missing = otava_missing()
    if missing:
        lines.append(missing)
    found = 0
    for one in series:
        unit = f" {one.unit}" if one.unit else ""
        values = ", ".join(f"{value:.6g}" for _, value in one.points)
        lines.append(f"{one.case}  {one.metric}{unit}: {values}")
        if missing:
            continue
        one.change_points = change_points(one, max_pvalue)
        for point in one.change_points:
            found += 1
            direction = {True: "WORSE", False: "better", None: "changed"}[point["worse"]]
            lines.append(
                f"    CHANGE POINT ({direction}) at {point['run']} (after {point['after_run']}): mean "
                f"{point['mean_before']:.6g} -> {point['mean_after']:.6g}{unit} ({point['change'] * 100:+.1f} %), "
                f"p {point['pvalue']:.2g}"
            )
    return lines, found
