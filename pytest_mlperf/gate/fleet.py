"""Several nodes' results files joined into one fleet table; nodes more than a chosen spread worse than the
fleet median on a case are marked."""

from __future__ import annotations

import re
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

    def worse(self, peer: str) -> float:
        """How much worse than the median this peer is, as a fraction (negative: better)."""
        if not self.median:
            return 0.0
        change = (self.values[peer] - self.median) / abs(self.median)
        return -change if self.higher_is_better else change


def node_names(paths: list[Path], headers: list[dict]) -> list[str]:
    hosts = [str(h.get("host") or p.stem) for p, h in zip(paths, headers, strict=True)]
    if len(set(hosts)) == len(hosts):
        return hosts
    return [p.stem for p in paths]  # several files from one host (or unnamed): the file names tell them apart


def compare_peers(case: str, by_peer: dict[str, dict], spread: float) -> FleetRow | None:
    """One case's headline figure on each peer (a node of a fleet, a GPU of a node) against their median: the
    peers more than `spread` worse are marked. None when fewer than two peers have the figure. A peer whose
    headline is another metric than the first peer's (another scenario's key, say) is left out."""
    if len(by_peer) < 2:
        return None
    first = next(iter(by_peer.values()))
    values = {peer: float(m["value"]) for peer, m in by_peer.items() if m["name"] == first["name"]}
    if len(values) < 2:
        return None
    median = statistics.median(values.values())
    row = FleetRow(case, first["name"], first.get("unit", ""), bool(first["higher_is_better"]), values, median)
    for peer in values:
        if row.worse(peer) > spread:
            row.behind[peer] = row.worse(peer)
    return row


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
    rows = [row for case in sorted(cases) if (row := compare_peers(case, cases[case], spread)) is not None]
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


# ---- peers of one run: a fleet's nodes, a node's GPUs ---------------------------------------------------------
PEER_ID = re.compile(r"^(?P<case>.+)@(?P<peer>[A-Za-z0-9._-]+)$")


@dataclass
class PeerReport:
    """A run's peers side by side: each peer's tests, problem and slow cases, and the table of headline figures."""

    kind: str  # "node" or "GPU"
    spread: float
    peers: list[str]
    rows: list[FleetRow]
    status: dict[str, dict]  # peer -> passed/failed/skipped counts, problem, and what the run knows of it

    @property
    def slow(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for row in self.rows:
            for peer, worse in row.behind.items():
                found.setdefault(peer, []).append(f"{row.case} {worse * 100:.1f}% behind the median")
        return found

    def _worst(self, peer: str) -> float:
        return max((row.behind.get(peer, 0.0) for row in self.rows), default=0.0)

    def order(self) -> list[str]:
        """Outliers first: peers that failed, then slow ones (the furthest behind first), then the rest."""
        slow = self.slow

        def key(peer: str):
            state = self.status[peer]
            rank = 0 if state.get("problem") or state["failed"] else 1 if peer in slow else 2
            return rank, -self._worst(peer), peer

        return sorted(self.peers, key=key)

    def lines(self) -> list[str]:
        slow = self.slow
        out = []
        for peer in self.order():
            state = self.status[peer]
            counts = f"{state['passed']} passed, {state['failed']} failed, {state['skipped']} skipped"
            mark = "FAILED" if state.get("problem") or state["failed"] else "SLOW" if peer in slow else "ok"
            out.append(f"{peer:<16} {mark:<7} {counts}")
            if state.get("problem"):
                out.append(f"    {state['problem'].splitlines()[0]}")
            out += [f"    {text}" for text in slow.get(peer, [])]
        if self.rows:
            table, _ = format_fleet(self.order(), self.rows, self.spread)
            out += table[:-1] if slow else table  # the SLOW lines were said per peer above
        return out

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "spread": self.spread,
            "order": self.order(),
            "peers": self.status,
            "slow": self.slow,
            "cases": [
                {"case": r.case, "metric": r.metric, "unit": r.unit, "median": r.median, "values": r.values}
                for r in self.rows
            ],
        }


def peer_report(
    kind: str,
    peers: list[str],
    entries: list[tuple[str, str, dict | None]],
    spread: float,
    info: dict[str, dict] | None = None,
) -> PeerReport:
    """entries: (record id, pytest outcome, headline metric of a judged record or None) of every test of the run;
    those whose id ends @<peer> count for that peer."""
    status = {peer: {"passed": 0, "failed": 0, "skipped": 0, **(info or {}).get(peer, {})} for peer in peers}
    figures: dict[str, dict[str, dict]] = {}
    for record_id, outcome, metric in entries:
        found = PEER_ID.match(record_id)
        if found is None or found["peer"] not in status:
            continue
        peer = found["peer"]
        if outcome in ("passed", "failed", "skipped"):
            status[peer][outcome] += 1
        if metric is not None:
            figures.setdefault(found["case"], {})[peer] = metric
    rows = [row for case in sorted(figures) if (row := compare_peers(case, figures[case], spread)) is not None]
    return PeerReport(kind, spread, peers, rows, status)
