"""The peak Server load a system holds: a bounded search over short runs at fixed target QPS, each judged VALID or
INVALID by LoadGen, bracketing the peak from a starting load (NVIDIA's tuned target, or the local probe's) and
narrowing it by geometric bisection until the bracket is within the tolerance, or the run or time bound stops it.

The backend runs one step (`run_at(qps) -> bool`, VALID or not); the search keeps the steps for the report."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SEARCH = "server_search.json"  # a searched Server case's steps and peak, beside the logs of its confirming run
GROW = 1.5  # each bracketing step moves the load by this factor
# The run that confirms the peak is longer than the search's: at the edge it can fail where the short one passed.
# It then backs off by 5 % and runs again, at most three runs in all; the figure is the load that held.
CONFIRM_TRIES = 3
CONFIRM_BACKOFF = 0.95


@dataclass(frozen=True)
class SearchBounds:
    max_runs: int = 10
    max_seconds: float = 1200.0
    tolerance: float = 0.02  # the bracket's width, as a fraction of its lower end, at which the search stops


@dataclass
class Step:
    target_qps: float
    valid: bool
    seconds: float
    note: str = ""

    def to_dict(self) -> dict:
        return {"target_qps": round(self.target_qps, 3), "valid": self.valid, "seconds": round(self.seconds, 2)}


@dataclass
class SearchResult:
    peak: float | None  # the highest VALID target found; None when even the lowest tried was INVALID
    steps: list[Step] = field(default_factory=list)
    upper: float | None = None  # the lowest INVALID target found
    stopped_by: str | None = None  # "runs" or "time" when a bound ended the search before the tolerance

    @property
    def width(self) -> float | None:
        """The bracket's width as a fraction of the peak (None without both ends)."""
        if self.peak is None or self.upper is None:
            return None
        return self.upper / self.peak - 1.0

    def to_dict(self) -> dict:
        return {
            "peak_qps": self.peak,
            "upper_qps": self.upper,
            "bracket": None if self.width is None else round(self.width, 4),
            "stopped_by": self.stopped_by,
            "steps": [s.to_dict() for s in self.steps],
        }

    def describe(self) -> str:
        if self.peak is None:
            return f"no VALID load found down to {self.steps[-1].target_qps:.6g} QPS" if self.steps else "no step ran"
        bracket = f", the next load tried ({self.upper:.6g}) was INVALID" if self.upper is not None else ""
        stop = {"runs": " (stopped by the run bound)", "time": " (stopped by the time bound)"}.get(self.stopped_by, "")
        return f"peak {self.peak:.6g} QPS after {len(self.steps)} runs{bracket}{stop}"


def find_peak(
    run_at: Callable[[float], bool],
    start: float,
    bounds: SearchBounds,
    quantize: Callable[[float], float] = float,
) -> SearchResult:
    """Bracket the peak from `start` (up by GROW while VALID, down while INVALID), then bisect geometrically.
    `quantize` maps a load to one the harness can run (NVIDIA's takes whole QPS): the steps record the load run,
    and a load already tried ends the search (the bracket cannot narrow further)."""
    if not math.isfinite(start) or start <= 0 or quantize(start) <= 0:
        raise ValueError(f"the search's starting load must be a positive number, not {start!r}")
    result = SearchResult(None)
    began = time.monotonic()

    def step(qps: float) -> bool | None:
        qps = quantize(qps)
        if qps <= 0 or any(s.target_qps == qps for s in result.steps):
            return None
        if len(result.steps) >= bounds.max_runs:
            result.stopped_by = "runs"
            return None
        if time.monotonic() - began >= bounds.max_seconds:
            result.stopped_by = "time"
            return None
        t0 = time.monotonic()
        valid = bool(run_at(qps))
        result.steps.append(Step(qps, valid, time.monotonic() - t0))
        if valid:
            result.peak = max(result.peak or 0.0, qps)
        else:
            result.upper = qps if result.upper is None else min(result.upper, qps)
        return valid

    qps = start
    valid = step(qps)
    while valid is not None and (result.peak is None or result.upper is None):
        qps = qps * GROW if valid else qps / GROW
        valid = step(qps)
    while valid is not None and result.width is not None and result.width > bounds.tolerance:
        valid = step(math.sqrt(result.peak * result.upper))
    return result


def confirm(found: SearchResult, run_full: Callable[[float], bool], quantize: Callable[[float], float] = float):
    """The run of the configured length at the peak (at the lowest load tried when none held, for its logs):
    while it does not hold, back off by CONFIRM_BACKOFF, CONFIRM_TRIES runs in all at most. `run_full(load)`
    runs and says whether LoadGen judged the run VALID. Returns the last load run and the number of runs."""
    load, tries = quantize(found.peak or found.steps[-1].target_qps), 0
    while True:
        tries += 1
        if run_full(load) or found.peak is None or tries == CONFIRM_TRIES:
            return load, tries
        load = quantize(load * CONFIRM_BACKOFF)


def search_record(found: SearchResult, method: str, start: float, load: float, tries: int, **extra) -> dict:
    """What server_search.json holds: the steps and the bracket, where the search started, the load the
    confirming run held (None when no load held), and what the backend adds (where the steps' logs are)."""
    return {
        **found.to_dict(),
        "method": method,
        "start_qps": start,
        "confirmed_qps": float(load) if found.peak is not None else None,
        "confirm_runs": tries,
        "description": found.describe(),
        **extra,
    }


def whole(qps: float) -> float:
    """NVIDIA's harness takes server_target_qps in whole queries a second."""
    return float(round(qps))


def search_bounds(options) -> SearchBounds | None:
    """The bounds of --mlperf-server-search (None when the search is off)."""
    if not options.server_search:
        return None
    return SearchBounds(max_runs=options.search_runs, max_seconds=options.search_minutes * 60.0)


def write_search(path: Path, search: dict) -> None:
    """The search's record as strict JSON (no NaN), whole: written beside a temporary name, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(search, indent=2, allow_nan=False))
    tmp.replace(path)


def holds(detail) -> bool:
    """Whether a short run held its load: LoadGen's latency constraint (the Server percentile within the bound).
    Not its full verdict: a run kept short on purpose misses min_duration, min_query_count and, at low loads,
    early stopping's query count, none of which says the load was too high. The confirming run is judged whole."""
    return detail.get("result_perf_constraints_met") is True
