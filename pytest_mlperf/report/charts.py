"""Inline SVG charts for the HTML report: no scripts, no network, text escaped."""

from __future__ import annotations

import math
import re
from html import escape

W, H, PAD = 520, 200, 42
PERCENTILE_RE = re.compile(r"^result_(\d+(?:\.\d+)?)_percentile(?:_per_query)?_latency_ns$")


def _frame(title: str, body: str, x_label: str, y_label: str, y_max: float, klass: str, y_min: float = 0.0) -> str:
    ticks = "".join(
        f"<line x1='{PAD}' x2='{W - 8}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>"
        f"<text x='{PAD - 4}' y='{y + 4:.1f}' font-size='10' text-anchor='end'>{value:.4g}</text>"
        for value, y in ((y_min + (y_max - y_min) * f, H - PAD - (H - 2 * PAD) * f) for f in (0, 0.5, 1))
    )
    return (
        f"<svg class='mlperf-chart {klass}' xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' "
        f"viewBox='0 0 {W} {H}' role='img' aria-label='{escape(title)}'>"
        f"<rect width='{W}' height='{H}' fill='white' stroke='#999'/>"
        f"<text x='{W / 2}' y='16' font-size='12' text-anchor='middle' font-weight='bold'>{escape(title)}</text>"
        f"{ticks}{body}"
        f"<text x='{W / 2}' y='{H - 6}' font-size='10' text-anchor='middle'>{escape(x_label)}</text>"
        f"<text x='10' y='{H / 2}' font-size='10' transform='rotate(-90 10 {H / 2})' text-anchor='middle'>"
        f"{escape(y_label)}</text></svg>"
    )


def percentile_chart(metrics: list[dict], title: str = "Latency percentiles") -> str:
    """LoadGen's latency percentiles of a performance run, as bars (ms)."""
    points = []
    for m in metrics:
        match = PERCENTILE_RE.match(m["name"])
        if match:
            points.append((float(match.group(1)), float(m["value"]) / 1e6))
    if not points:
        return ""
    points.sort()
    top = max(v for _, v in points) or 1.0
    slot = (W - PAD - 8) / len(points)
    bars = []
    for i, (pct, value) in enumerate(points):
        height = (H - 2 * PAD) * value / top
        x = PAD + i * slot + slot * 0.15
        bars.append(
            f"<rect class='bar' x='{x:.1f}' y='{H - PAD - height:.1f}' width='{slot * 0.7:.1f}' height='{height:.1f}'"
            f" fill='#4a7ebb'><title>p{pct:g}: {value:.3f} ms</title></rect>"
            f"<text x='{x + slot * 0.35:.1f}' y='{H - PAD + 12}' font-size='9' text-anchor='middle'>p{pct:g}</text>"
        )
    return _frame(title, "".join(bars), "percentile", "latency (ms)", top, "mlperf-percentiles")


def series_chart(series: list[dict], field: str, title: str, unit: str) -> str:
    """One telemetry field over the test's time, as a line."""
    points = [(s["t"], s[field]) for s in series if field in s]
    if len(points) < 2:
        return ""
    t_max = max(t for t, _ in points) or 1.0
    top = max(v for _, v in points) * 1.1 or 1.0
    xy = " ".join(f"{PAD + (W - PAD - 8) * t / t_max:.1f},{H - PAD - (H - 2 * PAD) * v / top:.1f}" for t, v in points)
    body = f"<polyline class='line' fill='none' stroke='#c0504d' stroke-width='2' points='{xy}'/>"
    return _frame(title, body, f"seconds (0 to {t_max:.1f})", unit, top, "mlperf-telemetry")


def bar_chart(items: list[tuple[str, float]], title: str, unit: str, signed: bool = True) -> str:
    """Labelled horizontal bars (cases against a figure), longest first."""
    if not items:
        return ""
    rows = items[:12]
    height = 24 + 18 * len(rows)
    top = max(abs(v) for _, v in rows) or 1.0
    left = 250
    bars = []
    for i, (label, value) in enumerate(rows):
        y = 22 + 18 * i
        width = (W - left - 60) * abs(value) / top
        colour = "#c0504d" if value < 0 else "#4a7ebb"
        bars.append(
            f"<text x='{left - 4}' y='{y + 11}' font-size='10' text-anchor='end'>{escape(label[:42])}</text>"
            f"<rect class='bar' x='{left}' y='{y}' width='{width:.1f}' height='13' fill='{colour}'/>"
            f"<text x='{left + width + 4:.1f}' y='{y + 11}' font-size='10'>"
            f"{value:{'+' if signed else ''}.1f}{escape(unit)}</text>"
        )
    return (
        f"<svg class='mlperf-chart mlperf-bars' xmlns='http://www.w3.org/2000/svg' width='{W + 120}' "
        f"height='{height}' role='img' aria-label='{escape(title)}'><rect width='{W + 120}' height='{height}' "
        f"fill='white' stroke='#999'/><text x='8' y='15' font-size='12' font-weight='bold'>{escape(title)}</text>"
        + "".join(bars)
        + "</svg>"
    )


def gate_chart(decision: dict) -> str:
    """One gated figure: the baseline's runs and this run's as dots side by side, this run's interval (the change's
    interval applied to the baseline's geometric mean) as a bar, and the limit as a dashed line."""
    before = [float(v) for v in decision.get("samples_before") or []]
    now = [float(v) for v in decision.get("samples_now") or []]
    if not before or not now:
        return ""
    base = math.exp(sum(math.log(v) for v in before) / len(before))
    limit = float(decision.get("limit") or 0.0)
    line = base * (1 - limit) if decision.get("higher_is_better") else base * (1 + limit)
    low, high = base * (1 + float(decision["low"])), base * (1 + float(decision["high"]))
    values = [*before, *now, line, low, high]
    lo, hi = min(values), max(values)
    span = (hi - lo) or abs(hi) or 1.0
    lo, hi = lo - 0.1 * span, hi + 0.1 * span

    def y(v: float) -> float:
        return H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo)

    def dots(xs: float, runs: list[float], colour: str, what: str) -> str:
        return "".join(
            f"<circle cx='{xs + (i % 5 - 2) * 6:.1f}' cy='{y(v):.1f}' r='3.5' fill='{colour}'>"
            f"<title>{escape(what)} run {i + 1}: {v:.6g}</title></circle>"
            for i, v in enumerate(runs)
        )

    left, right = PAD + (W - PAD) * 0.3, PAD + (W - PAD) * 0.65
    outcome = str(decision.get("outcome", ""))
    colour = {"regression": "#c0504d", "inconclusive": "#d08a00"}.get(outcome, "#2e7d32")
    body = (
        f"<line x1='{PAD}' x2='{W - 8}' y1='{y(line):.1f}' y2='{y(line):.1f}' stroke='#c0504d' stroke-dasharray='5,4'>"
        f"<title>limit: {line:.6g}</title></line>"
        f"<rect class='interval' x='{right + 22:.1f}' y='{y(high):.1f}' width='8' "
        f"height='{max(1.0, y(low) - y(high)):.1f}' fill='{colour}' opacity='0.6'><title>{escape(outcome)}: "
        f"{float(decision.get('confidence', 0.95)) * 100:g} % interval {low:.6g} .. {high:.6g}</title></rect>"
        + dots(left, before, "#4a7ebb", "baseline")
        + dots(right, now, colour, "this")
        + f"<text x='{left:.1f}' y='{H - PAD + 14}' font-size='10' text-anchor='middle'>baseline ({len(before)})</text>"
        f"<text x='{right:.1f}' y='{H - PAD + 14}' font-size='10' text-anchor='middle'>this run ({len(now)})</text>"
    )
    title = f"{decision.get('metric', '')}: {outcome}"
    return _frame(title, body, "", str(decision.get("unit") or ""), hi, "mlperf-gate", y_min=lo)
