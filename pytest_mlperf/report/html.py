"""pytest-html integration: a verdict column, a metrics table per test, a summary table of all.

Registered only when pytest-html is active, so the plugin runs without it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from . import charts as charts_mod
from .records import CaseRecord


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.2f}"


def _delta_cells(metric: dict, deltas: dict[str, dict]) -> str:
    delta = deltas.get(metric["name"])
    if delta is None:
        return "<td></td><td></td>"
    change = delta.get("change")
    worse = delta.get("worsening") or 0.0
    style = " style='color:#b00;font-weight:bold'" if worse > 0.005 else ""
    text = "n/a" if change is None else f"{change * 100:+.1f}%"
    return f"<td style='text-align:right'>{_fmt(delta['baseline'])}</td><td{style}>{escape(text)}</td>"


def metrics_table(record: CaseRecord) -> str:
    base = record.baseline or {}
    deltas = {d["metric"]: d for d in base.get("deltas", [])}
    rows = "".join(
        f"<tr><td>{escape(m['name'])}</td><td style='text-align:right'>{_fmt(m['value'])}</td>"
        f"<td>{escape(m['unit'])}</td><td>{_direction(m['higher_is_better'])}</td>{_delta_cells(m, deltas)}</tr>"
        for m in record.metrics
    )
    verdict = escape(record.reason or record.verdict or record.outcome)
    stand_in = (
        f"<p class='mlperf-standin'>Stand-in model ({escape(str(record.info.get('model', '')))}), not the MLPerf "
        "model: the figures measure this machine and the harness, not a benchmark result.</p>"
        if record.info.get("stand_in")
        else ""
    )
    links = " ".join(
        f"<a href='{escape(Path(path).resolve().as_uri())}'>{escape(Path(path).name)}</a>" for path in record.artifacts
    )
    logs = f"<p class='mlperf-logs'>Logs: {links}</p>" if links else ""
    baseline_name = escape(str(base.get("name", ""))) if base else ""
    return (
        f"<div class='mlperf'>{logs}<p><b>MLPerf verdict</b> {verdict} "
        f"(backend {escape(record.backend)})</p>{stand_in}{_notes(record)}{_compliance(record)}"
        "<table class='mlperf-metrics' border='1' cellpadding='3'>"
        "<tr><th>metric</th><th>value</th><th>unit</th><th>better</th>"
        f"<th>baseline {baseline_name}</th><th>delta</th></tr>"
        f"{rows}</table>{_search(record)}{_charts(record)}</div>"
    )


def _search(record: CaseRecord) -> str:
    """A searched Server case: each short run's load and LoadGen's verdict on it, as a table and a chart."""
    search = record.info.get("server_search")
    if not isinstance(search, dict) or not isinstance(search.get("steps"), list):
        return ""
    steps = [s for s in search["steps"] if isinstance(s, dict) and isinstance(s.get("target_qps"), int | float)]
    rows = "".join(
        f"<tr><td>{n}</td><td style='text-align:right'>{_fmt(s['target_qps'])}</td>"
        f"<td>{'VALID' if s.get('valid') else 'INVALID'}</td></tr>"
        for n, s in enumerate(steps, start=1)
    )
    stop = {"runs": "the run bound stopped it", "time": "the time bound stopped it"}.get(search.get("stopped_by"), "")
    chart = charts_mod.bar_chart(
        [(f"{n}: {'VALID' if s.get('valid') else 'INVALID'}", s["target_qps"]) for n, s in enumerate(steps, 1)],
        "Server search: target QPS of each short run",
        "QPS",
        signed=False,
    )
    return (
        f"<p class='mlperf-search'><b>Server search</b>: {escape(str(search.get('description', '')))}"
        f"{' (' + stop + ')' if stop else ''}</p><table class='mlperf-search' border='1' cellpadding='3'>"
        f"<tr><th>run</th><th>target QPS</th><th>LoadGen</th></tr>{rows}</table>"
        f"<div class='mlperf-chart-box'>{chart}</div>"
    )


def _notes(record: CaseRecord) -> str:
    notes = []
    published = record.metric("published_pct")
    if published is not None:
        figure = published.get("metadata", {}).get("published")
        shown = f" ({_fmt(figure)})" if isinstance(figure, int | float) else ""
        notes.append(f"{published['value']:.1f}% of NVIDIA's published v2.0 figure{shown}")
    tuned = record.metric("tuned_target_pct")
    if tuned is not None:
        meta = tuned.get("metadata", {})
        target = meta.get("target_qps") or meta.get("target_latency_ns")
        unit = "samples/s" if "target_qps" in meta else "ns"
        notes.append(
            f"{tuned['value']:.1f}% of the target NVIDIA tuned this case for ({_fmt(target)} {unit}, user.conf)"
        )
    notes += [escape(note) for note in record.notes]
    if record.throttled:
        reasons = ", ".join((record.telemetry or {}).get("throttle_reasons", []))
        notes.append(
            f"<b style='color:#b00'>throttling during this run: {escape(', '.join(record.throttled))}</b>"
            f" ({escape(reasons)})"
        )
    if record.contended:
        notes.append(
            f"<b style='color:#b00'>contended during this run: {escape(', '.join(record.contended))}</b> (the "
            "machine, not only the system under test, may have decided the figures)"
        )
    for problem in record.gate:
        notes.append(f"<b style='color:#b00'>{escape(problem)}</b>")
    base = record.baseline or {}
    if base.get("missing"):
        notes.append(f"not in baseline {escape(str(base.get('name')))}")
    return "".join(f"<p class='mlperf-note'>{n}</p>" for n in notes)


def _charts(record: CaseRecord) -> str:
    charts = [charts_mod.percentile_chart(record.metrics)]
    series = (record.telemetry or {}).get("series") or []
    charts.append(charts_mod.series_chart(series, "power_w", "GPU power (mean over GPUs)", "W"))
    charts.append(charts_mod.series_chart(series, "sm_clock_mhz", "SM clock (mean over GPUs)", "MHz"))
    charts += [charts_mod.gate_chart(d) for d in (record.baseline or {}).get("decisions") or []]
    return "".join(f"<div class='mlperf-chart-box'>{c}</div>" for c in charts if c)


def _compliance(record: CaseRecord) -> str:
    found = record.compliance
    if not found:
        return ""
    items = [
        *(f"<li>{escape(f)}</li>" for f in found["findings"]),
        *(f"<li>known: {escape(k)}</li>" for k in found["known"]),
    ]
    return (
        f"<p class='mlperf-compliance'><b>Compliance checker</b> (mlperf-logging, training 2.1.0): "
        f"{escape(found['status'])}</p>" + (f"<ul>{''.join(items)}</ul>" if items else "")
    )


def _direction(higher: bool | None) -> str:
    return {True: "higher", False: "lower", None: ""}[higher]


def fingerprint_changes_html(name: str, changes: list, surprising: list[str]) -> str:
    """Which fingerprint fields differ from the baseline's, and a warning when more than the roll-out's did."""
    if not changes:
        return f"<p class='mlperf-fingerprint'>Fingerprint: same as baseline {escape(name)}.</p>"
    rows = "".join(
        f"<tr><td>{escape(str(f))}</td><td>{escape(str(a))}</td><td>{escape(str(b))}</td></tr>" for f, a, b in changes
    )
    warning = (
        f"<p class='mlperf-warning' style='color:#b00'><b>More than the driver/firmware changed "
        f"({escape(', '.join(surprising))}): this comparison is not a driver test.</b></p>"
        if surprising
        else ""
    )
    return (
        f"<p class='mlperf-fingerprint'>Fingerprint differences from baseline {escape(name)}:</p>{warning}"
        "<table class='mlperf-fingerprint' border='1' cellpadding='3'><tr><th>field</th><th>baseline</th>"
        f"<th>now</th></tr>{rows}</table>"
    )


def summary_table(records: list[CaseRecord], header: dict, fingerprint_html: str = "") -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.label] = counts.get(record.label, 0) + 1
    passed = sum(1 for r in records if r.outcome == "passed")
    failed = sum(1 for r in records if r.outcome == "failed")
    regressed = sum(1 for r in records if r.regressions)
    throttled = sum(1 for r in records if r.throttled)
    contended = sum(1 for r in records if r.contended)
    tally = (
        f"<b>{passed} passed, {failed} failed, {regressed} regressed, {throttled} throttled, {contended} contended</b>"
        f" of {len(records)}; " + ", ".join(f"{escape(k)}: {v}" for k, v in sorted(counts.items()))
    )
    records = sorted(records, key=lambda r: (r.outcome == "passed", -r.worst))  # worst first
    rows = "".join(_summary_row(record) for record in records)
    meta = ", ".join(
        f"{escape(str(k))}: {escape(str(v))}" for k, v in header.items() if v is not None and k != "fingerprint"
    )
    worst = [(r.id, -r.worst * 100) for r in records if r.worst > 0]
    if worst:
        chart = charts_mod.bar_chart(worst, "Worst changes against the baseline", "%")
    else:
        shares = [(r.id, m["value"]) for r in records if (m := r.metric("published_pct"))]
        chart = charts_mod.bar_chart(shares, "Share of NVIDIA's published v2.0 figure", "%", signed=False)
    return (
        "<h2>MLPerf results</h2>"
        f"<p class='mlperf-meta'>{meta}</p><p class='mlperf-tally'>{tally}</p>{fingerprint_html}{chart}"
        "<table class='mlperf-summary' border='1' cellpadding='3'>"
        "<tr><th>case</th><th>verdict</th><th>headline</th><th>reason</th></tr>" + rows + "</table>"
    )


def _summary_row(record: CaseRecord) -> str:
    found = record.headline
    headline = escape(f"{found['name']} = {_fmt(found['value'])} {found['unit']}".strip()) if found else ""
    label = (record.verdict or record.outcome) + (" but GATED" if record.gate else "")
    reason = " | ".join([*record.gate, record.reason]) if record.gate else record.reason
    style = " style='color:#b00'" if record.outcome == "failed" else ""
    return (
        f"<tr{style}><td>{escape(record.id)}</td><td>{escape(label)}</td>"
        f"<td>{headline}</td><td>{escape(reason)}</td></tr>"
    )


class HtmlReport:
    """The pytest-html hooks, bound to the session's reporter."""

    def __init__(self, reporter):
        self.reporter = reporter

    def pytest_html_results_table_header(self, cells):
        cells.insert(2, "<th>MLPerf verdict</th>")

    def pytest_html_results_table_row(self, report, cells):
        record = getattr(report, "mlperf", None)
        label = record.get("verdict", "") if record else ""
        cells.insert(2, f"<td>{escape(label or '')}</td>")

    def pytest_html_results_summary(self, prefix, summary, postfix):
        reporter = self.reporter
        extra = ""
        if reporter.gate.baseline is not None:
            extra = fingerprint_changes_html(reporter.gate.baseline.name, *reporter.fingerprint_changes())
            extra += "".join(
                f"<p class='mlperf-warning' style='color:#b00'><b>{escape(line)}</b></p>"
                for line in reporter.unmatched_lines()
            )
        peers = "".join(peer_table(report) for report in reporter.peers)
        postfix.append(peers + summary_table(reporter.records, reporter.header, extra))


def peer_table(report) -> str:
    """A fleet's nodes (or a node's GPUs), outliers first: each one's tests, its problem, its slow cases, and
    its headline figure on each case beside the median."""
    slow = report.slow
    cases = report.rows
    head = "".join(f"<th>{escape(row.case)}<br>{escape(row.metric)}</th>" for row in cases)
    body = []
    for peer in report.order():
        state = report.status[peer]
        bad = bool(state.get("problem") or state["failed"])
        mark = "FAILED" if bad else "SLOW" if peer in slow else "ok"
        style = " style='color:#b00'" if mark != "ok" else ""
        note = "; ".join([*(state.get("problem") or "").splitlines()[:1], *slow.get(peer, [])])
        cells = "".join(
            f"<td style='text-align:right'{' class=slow' if peer in row.behind else ''}>"
            f"{_fmt(row.values[peer]) if peer in row.values else '-'}{' SLOW' if peer in row.behind else ''}</td>"
            for row in cases
        )
        tally = f"{state['passed']} passed, {state['failed']} failed, {state['skipped']} skipped"
        body.append(
            f"<tr{style}><td>{escape(peer)}</td><td>{mark}</td><td>{tally}</td>{cells}<td>{escape(note)}</td></tr>"
        )
    medians = "".join(f"<td style='text-align:right'>{_fmt(row.median)}</td>" for row in cases)
    title = "Fleet nodes" if report.kind == "node" else "GPUs of this node"
    return (
        f"<h2>MLPerf {title}, outliers first</h2><p>Flagged: more than {report.spread * 100:g}% behind the median.</p>"
        f"<table class='mlperf-peers' border='1' cellpadding='3'><tr><th>{escape(report.kind)}</th><th>state</th>"
        f"<th>tests</th>{head}<th>why</th></tr>{''.join(body)}"
        f"<tr><td><i>median</i></td><td></td><td></td>{medians}<td></td></tr></table>"
    )
