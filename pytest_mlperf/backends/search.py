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
LOCAL_METHOD = "bisection over short LoadGen runs"
NVIDIA_METHOD = "bisection over short runs of NVIDIA's harness"
METHODS = (LOCAL_METHOD, NVIDIA_METHOD)
STOPS = (None, "runs", "time")


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


# ---- reading a record back ------------------------------------------------------------------------------------
def read_search(path: Path) -> dict:
    """server_search.json as the judge may use it: the steps as this project's backends write them (at least one,
    each a positive load, LoadGen's verdict on it and its seconds), and the peak, the bracket and the confirmed
    load as those steps and search.confirm make them. Anything else is a ParseError naming the field. What comes
    back is rebuilt from the checked figures (the description too): no text of the file reaches a verdict or a
    report, save the folder names of the steps' logs."""
    from ..logs import ParseError, read_text, strict_json

    def refuse(message: str) -> ParseError:
        return ParseError(path, message)

    try:
        data = strict_json(read_text(path))
    except ValueError as exc:
        if isinstance(exc, ParseError):
            raise
        raise refuse(f"not strict JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise refuse("not a Server search record (no 'steps' list)")
    loads = {key: _load(refuse, data, key) for key in ("peak_qps", "upper_qps", "confirmed_qps", "start_qps")}
    tries = data.get("confirm_runs", 1)
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= CONFIRM_TRIES:
        raise refuse(f"confirm_runs is {tries!r}, not a count of 1 to {CONFIRM_TRIES}")
    if not data["steps"]:
        raise refuse("the search has no steps: no load was tried, so no peak stands")
    steps = [_step(refuse, number, entry) for number, entry in enumerate(data["steps"], start=1)]
    if data.get("stopped_by") not in STOPS:
        raise refuse(f"stopped_by is {str(data.get('stopped_by'))[:40]!r}, not 'runs', 'time' or null")
    if data.get("method") not in METHODS:
        raise refuse(f"method is {str(data.get('method'))[:60]!r}, not a search this project runs")
    found = SearchResult(
        peak=loads["peak_qps"], steps=steps, upper=loads["upper_qps"], stopped_by=data.get("stopped_by")
    )
    _check_bracket(refuse, found, data.get("bracket"))
    _check_confirmed(refuse, found, loads["confirmed_qps"], tries)
    record = {
        **found.to_dict(),
        "method": data["method"],
        "start_qps": loads["start_qps"],
        "confirmed_qps": loads["confirmed_qps"],
        "confirm_runs": tries,
        "description": found.describe(),
    }
    for key in ("steps_folder", "step_logs"):  # where the steps' logs are, for the JSON file only
        value = data.get(key)
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            record[key] = value
    return record


def _load(refuse, data: dict, key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise refuse(f"{key} is {value!r}, not a positive number")
    return float(value)


def _step(refuse, number: int, entry: object) -> Step:
    where = f"steps[{number}]"
    if not isinstance(entry, dict):
        raise refuse(f"{where} is not an object of target_qps, valid, seconds")
    qps, valid, seconds = entry.get("target_qps"), entry.get("valid"), entry.get("seconds")
    if isinstance(qps, bool) or not isinstance(qps, int | float) or not math.isfinite(qps) or qps <= 0:
        raise refuse(f"{where}.target_qps is {qps!r}, not a positive number")
    if not isinstance(valid, bool):
        raise refuse(f"{where}.valid is {valid!r}, not true or false")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        raise refuse(f"{where}.seconds is {seconds!r}, not a duration")
    return Step(float(qps), valid, float(seconds))


def _same(a: float, b: float, places: int = 3) -> bool:
    """Two loads agree within the rounding the record's steps are written with (three places)."""
    return abs(a - b) <= 0.5 * 10.0**-places + 1e-9 * max(abs(a), abs(b))


def _check_bracket(refuse, found: SearchResult, bracket: object) -> None:
    """The peak is the highest VALID step and the upper bound the lowest INVALID one; every VALID step lies below
    every INVALID one (the search narrows between them), and the bracket is their ratio."""
    valid = [s.target_qps for s in found.steps if s.valid]
    invalid = [s.target_qps for s in found.steps if not s.valid]
    for key, claimed, steps_say in (
        ("peak_qps", found.peak, max(valid) if valid else None),
        ("upper_qps", found.upper, min(invalid) if invalid else None),
    ):
        if (claimed is None) != (steps_say is None) or (
            claimed is not None and steps_say is not None and not _same(claimed, steps_say)
        ):
            raise refuse(f"{key} is {claimed!r}, its steps give {steps_say!r}")
    if valid and invalid and max(valid) >= min(invalid):
        raise refuse(
            f"a VALID step at {max(valid):g} QPS is at or above an INVALID one at {min(invalid):g}: no search "
            "brackets a peak that way"
        )
    width = found.width
    if bracket is None and width is None:
        return
    if (
        isinstance(bracket, bool)
        or not isinstance(bracket, int | float)
        or width is None
        or abs(bracket - width) > 5e-5 + 1e-9
    ):
        raise refuse(f"bracket is {bracket!r}, its peak and upper bound give {width!r}")


def _check_confirmed(refuse, found: SearchResult, confirmed: float | None, tries: int) -> None:
    """The confirmed load is the one search.confirm runs last: the peak, backed off by CONFIRM_BACKOFF once per
    further run (whole QPS on NVIDIA's harness, as is on the local backend); none when no step held."""
    if found.peak is None:
        if confirmed is not None:
            raise refuse(f"confirmed_qps is {confirmed:g}, but no step held a load")
        return
    if confirmed is None:
        raise refuse(f"confirmed_qps is missing, though the steps held {found.peak:g} QPS")
    expected = []
    for quantize in (float, whole):
        load = quantize(found.peak)
        for _ in range(tries - 1):
            load = quantize(load * CONFIRM_BACKOFF)
        expected.append(load)
    if not any(_same(confirmed, load) for load in expected):
        raise refuse(
            f"confirmed_qps is {confirmed:g}, not the load of confirming run {tries} from the peak "
            f"{found.peak:g} ({' or '.join(f'{e:g}' for e in dict.fromkeys(expected))})"
        )
