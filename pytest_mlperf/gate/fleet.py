"""Several nodes' results files joined into one fleet table; nodes more than a chosen spread worse than the
fleet median on a case are marked."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..judge.metrics import headline
from .baseline import BaselineError, load, samples
from .stats import INCONCLUSIVE, REGRESSION, StatsError, decide


@dataclass
class FleetRow:
    case: str
    metric: str
    unit: str
    higher_is_better: bool
    values: dict[str, float]  # node -> value
    median: float
    behind: dict[str, float] = field(default_factory=dict)  # node -> how much worse than the median (fraction)
    # With repeated runs on every peer: each peer's runs against the others' (gate/stats.py), the spread as limit
    decisions: dict[str, dict] = field(default_factory=dict)
    undecided: dict[str, str] = field(default_factory=dict)  # peer -> its inconclusive decision, in words

    def worse(self, peer: str) -> float:
        """How much worse than the median this peer is, as a fraction (negative: better)."""
        if not self.median:
            return 0.0
        change = (self.values[peer] - self.median) / abs(self.median)
        return -change if self.higher_is_better else change


class Incomparable(ValueError):
    """Peers' figures that cannot share a median (other metrics, other units): the message names them."""


def node_names(paths: list[Path], headers: list[dict]) -> list[str]:
    """A name per file: its run's host, else its file name, else its folder (the fleet's own `<node>/results.json`
    layout), else folder and file; the first of these that tells every file apart. Files no name tells apart are
    refused: two of them would be one node's figures twice in the median."""
    hosts = [str(h.get("host") or "") for h in headers]
    for names in (
        hosts,
        [p.stem for p in paths],
        [p.parent.name for p in paths],
        [f"{p.parent.name}/{p.stem}" for p in paths],
    ):
        if all(names) and len(set(names)) == len(names):
            return names
    twice = sorted({str(p) for p in paths if [q.resolve() for q in paths].count(p.resolve()) > 1})
    raise BaselineError(
        "no name tells these files' nodes apart (host, file name or folder): "
        + (f"{', '.join(twice)} given twice" if twice else ", ".join(str(p) for p in paths))
    )


def compare_peers(case: str, by_peer: dict[str, dict], spread: float, confidence: float = 0.95) -> FleetRow | None:
    """One case's figure on each peer (a node of a fleet, a GPU of a node) against their median: the peers more
    than `spread` worse are marked. When every peer ran the case more than once (its metric has samples), a peer
    is marked only when the interval of its runs against the other peers' runs lies wholly beyond the spread
    (gate/stats.py, at `confidence`); an interval across it is inconclusive and said so. None when fewer than two
    peers have the figure. Peers whose figures are other metrics, or one metric in other units, share no median:
    Incomparable names them."""
    if len(by_peer) < 2:
        return None
    first = next(iter(by_peer.values()))
    for peer, metric in by_peer.items():
        for key in ("name", "unit"):
            if str(metric.get(key) or "") != str(first.get(key) or ""):
                other = next(iter(by_peer))
                raise Incomparable(
                    f"{case}: {peer} reports {key} {metric.get(key)!r}, {other} {first.get(key)!r}: no one median"
                )
    values = {peer: float(m["value"]) for peer, m in by_peer.items()}
    median = statistics.median(values.values())
    row = FleetRow(case, first["name"], first.get("unit", ""), bool(first["higher_is_better"]), values, median)
    runs = {peer: samples(m) for peer, m in by_peer.items()}
    if all(len(r) > 1 for r in runs.values()):
        for peer, mine in runs.items():
            others = [v for other, theirs in runs.items() if other != peer for v in theirs]
            try:
                decision = decide(others, mine, row.higher_is_better, spread, confidence)
            except StatsError as exc:
                raise Incomparable(f"{case}: {peer}: {exc}") from None
            row.decisions[peer] = decision.to_dict()
            if decision.outcome == REGRESSION:
                row.behind[peer] = row.worse(peer)
            elif decision.outcome == INCONCLUSIVE:
                row.undecided[peer] = decision.sentence(f"{peer} against the others:")
        return row
    for peer in values:
        if row.worse(peer) > spread:
            row.behind[peer] = row.worse(peer)
    return row


_CASE_RE = re.compile(
    r"(?:^|/)[^/@]+?-(?P<scenario>Offline|Server|SingleStream|MultiStream)-(?P<mode>AccuracyOnly|PerformanceOnly)"
    r"-[^/@]+(?:@[^/]*)?$"
)


def case_figure(case_id: str) -> tuple[str, bool] | None:
    """The figure a fleet compares an inference case on, read from its id, and its direction: the scenario's
    (Offline samples/s, Server scheduled QPS, the streams' percentile latency) or the accuracy. None for others."""
    from ..catalog import load as load_catalog

    match = _CASE_RE.search(case_id)
    if match is None:
        return None
    if match["mode"] == "AccuracyOnly":
        return "AccuracyValue", True
    scenario = load_catalog().scenarios.get(match["scenario"])
    return (scenario.perf_key, scenario.higher_is_better) if scenario is not None else None


def _known_cases(sku: object) -> dict:
    """The catalog's cases of a file's SKU by id (every power setting), to hold its records to; {} when unknown."""
    from ..catalog import CatalogError
    from ..catalog import load as load_catalog

    try:
        cases = load_catalog().inference_cases(str(sku), powers=("MaxP", "MaxQ"))
    except CatalogError:
        return {}
    return {case.id: case for case in cases}


def _natural(name: str) -> list:
    """A sort key that orders the digits in a name by their value: n2 < n10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def merge(paths: list[Path], spread: float) -> tuple[list[str], list[FleetRow], list[str]]:
    """The fleet table over the nodes' sound records, and a line for each thing that keeps a figure out of the
    median or fails the fleet: a file that does not load, files no name tells apart, files of other SKUs or rounds
    (refused together: never one median), a record that does not hold (judge.verdict.record_problem), a case a
    node did not pass (a failing node), a node without the case's figure, figures in other units."""
    from ..judge.verdict import record_problem

    loaded, bad = [], []
    for path in paths:
        try:
            loaded.append((path, load(str(path), path.parent)))
        except BaselineError as exc:
            bad.append(f"BAD NODE {path}: {exc}")
    paths = [path for path, _ in loaded]
    runs = [run for _, run in loaded]
    try:
        nodes = node_names(paths, [b.header for b in runs])
    except BaselineError as exc:
        return [], [], [*bad, f"BAD FLEET: {exc}"]
    for key, what in (("sku", "SKU"), ("catalog", "MLPerf round")):
        said = {node: run.header.get(key) for node, run in zip(nodes, runs, strict=True)}
        if len({str(v) for v in said.values()}) > 1:
            listed = ", ".join(f"{node}: {value}" for node, value in said.items())
            return nodes, [], [*bad, f"MIXED {what}S ({listed}): these files are never one fleet's median"]
    # The nodes in name order (natural: n2 before n10), so that the table and its lines never depend on the order
    # the files were named in.
    ordered = sorted(zip(nodes, runs, strict=True), key=lambda pair: _natural(pair[0]))
    nodes, runs = [node for node, _ in ordered], [run for _, run in ordered]
    known = _known_cases(runs[0].header.get("sku")) if runs else {}
    cases: dict[str, dict[str, dict]] = {}
    failing: dict[str, list[str]] = {}
    for node, run in zip(nodes, runs, strict=True):
        for case, record in run.records.items():
            if record.get("verdict") is None:
                continue
            if problem := record_problem(known.get(case), record):
                bad.append(f"BAD RECORD {node} {case}: {problem}")
                continue
            if not record["ok"]:
                failing.setdefault(node, []).append(f"{case} {record['verdict']}")
                continue
            metrics = [m for m in record.get("metrics") or [] if isinstance(m, dict)]
            figure = case_figure(case)
            if figure is None:
                first = headline(metrics)
                figure = (first["name"], bool(first["higher_is_better"])) if first is not None else None
            if figure is None:
                continue
            found = next((m for m in metrics if m.get("name") == figure[0]), None)
            if found is None:
                bad.append(f"INCOMPARABLE {node} {case}: judged {record['verdict']} but recorded no {figure[0]}")
                continue
            cases.setdefault(case, {})[node] = {**found, "higher_is_better": figure[1]}  # the case's direction
    rows = []
    for case in sorted(cases):
        try:
            row = compare_peers(case, cases[case], spread)
        except Incomparable as exc:
            bad.append(f"INCOMPARABLE {exc}")
            continue
        if row is not None:
            rows.append(row)
    for node, what in failing.items():
        bad.append(f"FAILED NODE {node}: {len(what)} case(s) did not pass: {', '.join(what[:5])}")
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
    for row in rows:  # with repeated runs: a node whose interval straddles the spread is neither slow nor clear
        lines += [f"INCONCLUSIVE {row.case}: {said}" for said in row.undecided.values()]
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
            out += [line for line in table if not line.startswith("SLOW NODE")]  # said per peer above
        return out

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "spread": self.spread,
            "order": self.order(),
            "peers": self.status,
            "slow": self.slow,
            "cases": [
                {
                    "case": r.case,
                    "metric": r.metric,
                    "unit": r.unit,
                    "median": r.median,
                    "values": r.values,
                    **({"decisions": r.decisions, "inconclusive": r.undecided} if r.decisions else {}),
                }
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
    rows = []
    for case in sorted(figures):
        try:
            row = compare_peers(case, figures[case], spread)
        except Incomparable as exc:  # one run's own records: other units would be a bug; said, not compared
            for peer in figures[case]:
                status[peer].setdefault("problem", f"INCOMPARABLE {exc}")
            continue
        if row is not None:
            rows.append(row)
    return PeerReport(kind, spread, peers, rows, status)
