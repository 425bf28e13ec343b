"""Several nodes' results files joined into one fleet table; nodes more than a chosen spread worse than the
fleet median on a case are marked."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..judge.metrics import headline
from .baseline import BaselineError, load


@dataclass
class FleetRow:
    case: str
    metric: str
    unit: str
    higher_is_better: bool
    values: dict[str, float]  # node -> value
    median: float
    behind: dict[str, float] = field(default_factory=dict)  # node -> how much worse than the median (fraction)


def node_names(paths: list[Path], headers: list[dict]) -> list[str]:
    hosts = [str(h.get("host") or p.stem) for p, h in zip(paths, headers, strict=True)]
    if len(set(hosts)) == len(hosts):
        return hosts
    return [p.stem for p in paths]  # several files from one host (or unnamed): the file names tell them apart


def merge(paths: list[Path], spread: float) -> tuple[list[str], list[FleetRow], list[str]]:
    """The fleet table over the nodes whose files are sound, and a line for each node whose file is not (its
    figures never reach the median)."""
    loaded, bad = [], []
    for path in paths:
        try:
            loaded.append((path, load(str(path), path.parent)))
        except BaselineError as exc:
            bad.append(f"BAD NODE {path}: {exc}")
    paths = [path for path, _ in loaded]
    loaded = [run for _, run in loaded]
    nodes = node_names(paths, [b.header for b in loaded])
    cases: dict[str, dict[str, dict]] = {}
    for node, run in zip(nodes, loaded, strict=True):
        for case, record in run.records.items():
            metric = headline(record.get("metrics", []))
            if metric is not None:
                cases.setdefault(case, {})[node] = metric
    rows = []
    for case in sorted(cases):
        by_node = cases[case]
        if len(by_node) < 2:
            continue
        first = next(iter(by_node.values()))
        values = {node: float(m["value"]) for node, m in by_node.items() if m["name"] == first["name"]}
        median = statistics.median(values.values())
        row = FleetRow(case, first["name"], first.get("unit", ""), bool(first["higher_is_better"]), values, median)
        if median:
            for node, value in values.items():
                change = (value - median) / abs(median)
                worse = -change if row.higher_is_better else change
                if worse > spread:
                    row.behind[node] = worse
        rows.append(row)
    return nodes, rows, bad


def format_fleet(nodes: list[str], rows: list[FleetRow], spread: float) -> tuple[list[str], list[str]]:
    """Table lines, and the nodes marked slow."""
    width = max([len(r.case) for r in rows] + [4])
    lines = [f"{'case':<{width}}  {'metric':<34} " + " ".join(f"{n:>14}" for n in nodes) + f" {'median':>14}"]
    slow: dict[str, list[str]] = {}
    for row in rows:
        cells = []
        for node in nodes:
            value = row.values.get(node)
            mark = " SLOW" if node in row.behind else ""
            cells.append(f"{(f'{value:.6g}' if value is not None else '-') + mark:>14}")
            if node in row.behind:
                slow.setdefault(node, []).append(f"{row.case} {row.behind[node] * 100:.1f}% worse than the median")
        lines.append(f"{row.case:<{width}}  {row.metric:<34} " + " ".join(cells) + f" {row.median:>14.6g}")
    for node, why in slow.items():
        lines.append(f"SLOW NODE {node} (more than {spread * 100:g}% behind the fleet median): " + "; ".join(why))
    if not slow:
        lines.append(f"no node more than {spread * 100:g}% behind the fleet median on any case")
    return lines, sorted(slow)
