"""pytest-html integration: a verdict column, a metrics table per test, a summary table of all.

Registered only when pytest-html is active, so the plugin runs without it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.2f}"


def metrics_table(record: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(m['name'])}</td><td style='text-align:right'>{_fmt(m['value'])}</td>"
        f"<td>{escape(m['unit'])}</td><td>{_direction(m['higher_is_better'])}</td></tr>"
        for m in record.get("metrics", [])
    )
    verdict = escape(record.get("reason") or record.get("verdict") or record["outcome"])
    info = record.get("info") or {}
    stand_in = (
        f"<p class='mlperf-standin'>Stand-in model ({escape(str(info.get('model', '')))}), not the MLPerf model: "
        "the figures measure this machine and the harness, not a benchmark result.</p>"
        if info.get("stand_in")
        else ""
    )
    links = " ".join(
        f"<a href='{escape(Path(path).resolve().as_uri())}'>{escape(Path(path).name)}</a>"
        for path in record.get("artifacts", [])
    )
    logs = f"<p class='mlperf-logs'>Logs: {links}</p>" if links else ""
    return (
        f"<div class='mlperf'>{logs}<p><b>MLPerf verdict</b> {verdict} "
        f"(backend {escape(record['backend'])})</p>{stand_in}{_compliance(info)}"
        "<table class='mlperf-metrics' border='1' cellpadding='3'>"
        "<tr><th>metric</th><th>value</th><th>unit</th><th>better</th></tr>"
        f"{rows}</table></div>"
    )


def _compliance(info: dict) -> str:
    found = info.get("compliance")
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


def summary_table(records: list[dict], header: dict) -> str:
    counts: dict[str, int] = {}
    for record in records:
        key = record.get("verdict") or record["outcome"].upper()
        counts[key] = counts.get(key, 0) + 1
    tally = ", ".join(f"{escape(k)}: {v}" for k, v in sorted(counts.items()))
    rows = []
    for record in records:
        headline = _headline(record)
        rows.append(
            f"<tr><td>{escape(record['id'])}</td><td>{escape(record.get('verdict') or record['outcome'])}</td>"
            f"<td>{headline}</td><td>{escape(record.get('reason', ''))}</td></tr>"
        )
    meta = ", ".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in header.items() if v is not None)
    return (
        "<h2>MLPerf results</h2>"
        f"<p class='mlperf-meta'>{meta}</p><p class='mlperf-tally'>{tally}</p>"
        "<table class='mlperf-summary' border='1' cellpadding='3'>"
        "<tr><th>case</th><th>verdict</th><th>headline</th><th>reason</th></tr>" + "".join(rows) + "</table>"
    )


def _headline(record: dict) -> str:
    metrics = record.get("metrics") or []
    # The first quantity after the state metric is the headline (perf key, accuracy value, eval accuracy).
    for metric in metrics:
        if metric["higher_is_better"] is not None:
            return escape(f"{metric['name']} = {_fmt(metric['value'])} {metric['unit']}".strip())
    return ""


class HtmlReport:
    """The pytest-html hooks, bound to the session's records."""

    def __init__(self, session_state):
        self.state = session_state

    def pytest_html_results_table_header(self, cells):
        cells.insert(2, "<th>MLPerf verdict</th>")

    def pytest_html_results_table_row(self, report, cells):
        record = getattr(report, "mlperf", None)
        label = record.get("verdict", "") if record else ""
        cells.insert(2, f"<td>{escape(label)}</td>")

    def pytest_html_results_summary(self, prefix, summary, postfix):
        postfix.append(summary_table(self.state.records, self.state.header()))
