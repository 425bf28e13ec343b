"""The run's records, and everything written from them at the end: the results JSON file, a saved baseline and
the terminal's summary."""

from __future__ import annotations

from pathlib import Path

from .. import SUITES
from ..gate.baseline import Comparison, format_comparison, lost_cases, nothing_compared
from ..gate.fleet import PeerReport, peer_report
from ..gate.policy import Gate
from ..installed import names_suites
from .records import CaseRecord, write_json


class Reporter:
    def __init__(self, header: dict, gate: Gate):
        self.header = header
        self.gate = gate
        self.records: list[CaseRecord] = []
        self.saved: Path | None = None  # where the baseline went, once saved
        self.partial = False  # the run stopped early: a baseline goes under NAME.partial
        self.peers: list[PeerReport] = []  # a fleet's nodes, a node's GPUs, side by side
        self.extra: dict = {}  # what the run adds to the JSON file's header at its end (the fleet's jobs)

    def add(self, record: CaseRecord) -> None:
        self.records.append(record)

    def pytest_runtest_logreport(self, report) -> None:
        # On the xdist controller this sees the workers' reports too, each with its record as plain data.
        data = getattr(report, "mlperf", None)
        if data is not None:
            self.add(CaseRecord.from_dict(data))

    def payload(self) -> dict:
        peers = {"peers": [report.to_dict() for report in self.peers]} if self.peers else {}
        failures = self.gate_failures()
        gate = {"gate_failures": failures} if failures else {}
        records = [record.to_dict() for record in self.records]
        return {**self.header, **self.extra, **peers, **gate, "results": records}

    def gate_failures(self) -> list[str]:
        """What fails the gate as a whole, beside the cases' own failures: the baseline's judged cases this run
        lost (skipped, failed before a verdict, not run), and rules that compared nothing at all."""
        baseline = self.gate.baseline
        if baseline is None:
            return []
        now: dict[str, dict | None] = {}
        for record in self.records:  # a case run twice (a rerun) counts by its last record
            now[record.id] = record.to_dict()
        out = [f"LOST vs baseline {baseline.name}: {line}" for line in lost_cases(baseline.records, now)]
        comps = [Comparison.from_dict(r.baseline) for r in self.records if r.baseline and not r.baseline.get("missing")]
        if self.records and nothing_compared(comps, list(self.gate.rules)):
            rules = ",".join(rule.describe() for rule in self.gate.rules)
            out.append(
                f"NOTHING COMPARED vs baseline {baseline.name}: no metric of {len(comps)} matching case(s) is "
                f"gated by {rules}"
            )
        return out

    def compare_peers(self, kind: str, peers: list[str], spread: float, info: dict | None = None) -> PeerReport:
        """The run's peers (a fleet's nodes, a node's GPUs) from the records of their tests (ids `case@peer`)."""
        entries = [(r.id, r.outcome, r.headline if r.verdict else None) for r in self.records]
        report = peer_report(kind, peers, entries, spread, info)
        self.peers.append(report)
        return report

    def write(self, json_path: Path | None, baseline_path: Path | None, partial: bool = False) -> None:
        self.partial = partial
        if json_path is not None:
            write_json(json_path, self.payload())
        if baseline_path is not None:
            self.saved = write_json(baseline_path, self.payload())

    def nothing_judged(self) -> bool:
        """MLPerf tests ran, and not one of them came to a verdict (all skipped: nothing found, nothing run)."""
        return bool(self.records) and not any(record.verdict for record in self.records)

    def unmatched(self) -> tuple[list[str], list[str]]:
        """This run's cases the baseline has no record of, and the baseline's cases this run did not judge."""
        baseline = self.gate.baseline
        if baseline is None:
            return [], []
        missing = [r.id for r in self.records if r.baseline and r.baseline.get("missing")]
        judged = {r.id for r in self.records}
        return missing, [case for case in baseline.records if case not in judged]

    def fingerprint_changes(self) -> tuple[list, list[str]]:
        return self.gate.fingerprint_changes(self.header.get("fingerprint") or {})

    def summary_lines(self) -> list[str]:
        lines = []
        for record in self.records:
            flags = f" [throttled: {', '.join(record.throttled)}]" if record.throttled else ""
            flags += f" [contended: {', '.join(record.contended)}]" if record.contended else ""
            flags += "".join(f" [{problem}]" for problem in record.gate)
            lines.append(f"{record.label:<14} {record.id}: {record.reason}{flags}")
        return lines

    def baseline_lines(self) -> list[str]:
        comps = [Comparison.from_dict(r.baseline) for r in self.records if r.baseline and not r.baseline.get("missing")]
        return format_comparison(comps, *self.fingerprint_changes()) + self.unmatched_lines()

    def unmatched_lines(self) -> list[str]:
        missing, unrun = self.unmatched()
        name = self.gate.baseline.name if self.gate.baseline else ""
        lines = []
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            lines.append(
                f"WARNING: {len(missing)} of {len(self.records)} cases are not in baseline {name}: nothing gates them "
                f"({shown})"
            )
        if unrun:
            lines.append(f"WARNING: {len(unrun)} of baseline {name}'s cases were not judged in this run")
        return lines

    def terminal_summary(self, terminalreporter, json_path: Path | None, exitstatus: int = 0) -> None:
        if not self.records:
            config = terminalreporter.config
            hint = no_tests_hint(config.args, exitstatus, config.invocation_params.dir)
            if hint:
                terminalreporter.write_line(hint, yellow=True)
            return
        terminalreporter.section("MLPerf verdicts")
        for line in self.summary_lines():
            terminalreporter.write_line(line)
        for report in self.peers:
            title = "fleet nodes" if report.kind == "node" else "GPUs of this node"
            terminalreporter.section(f"MLPerf {title}, outliers first (spread {report.spread * 100:g}%)")
            for line in report.lines():
                terminalreporter.write_line(line, red=line.split()[1:2] in (["FAILED"], ["SLOW"]))
            if report.kind == "GPU" and report.slow:
                terminalreporter.write_line(
                    f"MLPerf: GPU(s) {', '.join(sorted(report.slow))} more than {report.spread * 100:g}% behind the "
                    "others on a case, so this run fails",
                    red=True,
                )
        baseline = self.gate.baseline
        if baseline is not None:
            terminalreporter.section(f"MLPerf baseline {baseline.name} ({baseline.path})")
            for line in self.baseline_lines():
                terminalreporter.write_line(line)
        if json_path is not None:
            terminalreporter.write_line(f"results JSON: {json_path}")
        if self.saved is not None:
            state = (
                " (the run stopped early: saved as partial, the named baseline is untouched)" if self.partial else ""
            )
            terminalreporter.write_line(f"baseline saved: {self.saved}{state}", red=self.partial)
        failures = self.gate_failures()
        for line in failures[:20]:
            terminalreporter.write_line(line, red=True)
        if failures:
            more = f" ({len(failures) - 20} more in the results JSON)" if len(failures) > 20 else ""
            terminalreporter.write_line(f"MLPerf: the gate lost or compared nothing, so this run fails{more}", red=True)
        if self.nothing_judged():
            reasons = sorted({record.reason for record in self.records if record.reason})
            terminalreporter.write_line(
                f"MLPerf: none of the {len(self.records)} cases came to a verdict, so this run fails: "
                + " | ".join(reasons[:3]),
                red=True,
            )


def no_tests_hint(args: list[str], exitstatus: int, here: Path) -> str | None:
    """What to type when no test ran and pytest was not pointed at the suites: installed from a wheel, the suites
    are not in the current folder but in the package."""
    if exitstatus != 5 or names_suites(args, here):  # 5: pytest.ExitCode.NO_TESTS_COLLECTED
        return None
    current = all((here / arg).resolve() == here.resolve() for arg in args)
    where = f"the current folder ({here})" if current else " ".join(args)
    return (
        f"pytest-mlperf: no test ran from {where}. The MLPerf suites are installed with the plugin; run them from "
        f"any folder with 'pytest --pyargs {SUITES} -m inference --sku SKU ...' or 'pytest-mlperf run -m inference "
        "--sku SKU ...' (paths of your own tests may follow)."
    )
