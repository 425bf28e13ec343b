"""How often the local backend's own sizing makes a performance run INVALID, beside a neighbour whose load changes.

Runs every local performance case (Offline, Server, SingleStream, MultiStream: `pytest suites -m inference
-k PerformanceOnly`) ROUNDS times in a row, while a neighbour loads the machine: by default one process busy all
the time plus one busy BURST_ON seconds out of every BURST_PERIOD. It reads each final run's LoadGen detail log
itself (not the backend's own account) and sorts every INVALID by cause:

  sizing  LoadGen ran out of the queries it pre-generated, an Offline query ended before min_duration, or
          early stopping lacked queries while nothing ran over the latency bound: the harness's own error (target 0)
  load    a Server load the harness chose broke the latency bound, even after its lighter retries
  other   anything else (a verdict LoadGen reached for the system's own reasons)

and counts the reruns that kept those away (the attempts the backend kept under _probes/).

    python benchmarks/local_sizing.py [--rounds 20] [--neighbour steady+bursts] [--duration smoke] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_mlperf.logs.loadgen import parse_detail  # noqa: E402

BURST_ON, BURST_PERIOD = 3.0, 10.0


def _busy(stop, on: float, period: float) -> None:
    """Spin on one core: all the time (on == period), or `on` seconds out of every `period`."""
    while not stop.is_set():
        start = time.monotonic()
        while time.monotonic() - start < on and not stop.is_set():
            pass
        if period > on:
            stop.wait(period - on)


def start_neighbour(kind: str) -> tuple[list[mp.Process], object]:
    stop = mp.Event()
    shapes = {
        "none": [],
        "steady": [(1.0, 1.0)],
        "bursts": [(BURST_ON, BURST_PERIOD)],
        "steady+bursts": [(1.0, 1.0), (BURST_ON, BURST_PERIOD)],
    }[kind]
    procs = [mp.Process(target=_busy, args=(stop, on, period), daemon=True) for on, period in shapes]
    for proc in procs:
        proc.start()
    return procs, stop


def classify(scenario: str, folder: Path) -> str:
    """Why a performance run ended INVALID, from LoadGen's own detail log."""
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    flags = detail.flags
    if any("Ran out of generated queries" in error for error in detail.errors):
        return "sizing"
    if scenario == "Offline" and flags.get("result_min_duration_met") is False:
        if all(met for key, met in flags.items() if key != "result_min_duration_met"):
            return "sizing"
    if scenario == "Server":
        if flags.get("result_perf_constraints_met") is False:
            return "load"
        if flags.get("early_stopping_met") is False:
            return "sizing" if not detail.get("result_overlatency_query_count") else "load"
    elif flags.get("early_stopping_met") is False:  # no latency bound here: early stopping lacked queries
        return "sizing"
    return "other"


def run_round(work: Path, number: int, duration: str) -> dict:
    out, report = work / f"round-{number:02d}", work / f"round-{number:02d}.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "suites"),
        "-m",
        "inference",
        "-k",
        "PerformanceOnly",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--rootdir={work}",
        f"--mlperf-duration={duration}",
        f"--mlperf-output={out}",
        f"--mlperf-json={report}",
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - start
    if not report.exists():
        sys.exit(f"round {number}: pytest wrote no results (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    records = json.loads(report.read_text())["results"]
    causes, reruns, probes = Counter(), Counter(), defaultdict(list)
    for record in records:
        info = record.get("info") or {}
        scenario = record["id"].split("-PerformanceOnly")[0].rsplit("-", 1)[1]
        for kept in info.get("sizing_reruns_kept", []):
            reruns[Path(kept).name.rsplit("-short-run", 1)[0]] += 1
        reruns["server retries"] += len(info.get("server_attempts_kept", []))
        probes[info.get("model", "?")].append(info.get("probe_samples_per_second"))
        if record["verdict"] == "VALID":
            causes["VALID"] += 1
        elif record["verdict"] == "INVALID":
            cause = classify(scenario, Path(info["folder"]))
            causes[cause] += 1
            print(f"    INVALID ({cause}) {record['id']}: {record['reason']}")
        else:
            causes["error"] += 1
            print(f"    {record['verdict']} {record['id']}: {record['reason']}")
    return {"runs": len(records), "causes": causes, "reruns": reruns, "wall": wall, "probes": probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--neighbour", choices=["none", "steady", "bursts", "steady+bursts"], default="steady+bursts")
    parser.add_argument("--duration", default="smoke", help="--mlperf-duration of every run (default smoke)")
    parser.add_argument("--keep", type=Path, help="keep every round's logs here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlperf-sizing-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        procs, stop = start_neighbour(args.neighbour)
        print(
            f"neighbour: {args.neighbour} ({len(procs)} process(es); bursts {BURST_ON:g} s of every "
            f"{BURST_PERIOD:g} s); {args.rounds} rounds of the local performance cases, duration {args.duration}"
        )
        totals, reruns, probes, walls = Counter(), Counter(), defaultdict(list), []
        try:
            for number in range(1, args.rounds + 1):
                got = run_round(work, number, args.duration)
                totals.update(got["causes"])
                reruns.update(got["reruns"])
                walls.append(got["wall"])
                for model, values in got["probes"].items():
                    probes[model] += [v for v in values if v]
                rerun_text = ", ".join(f"{k} {v}" for k, v in sorted(got["reruns"].items()) if v) or "none"
                print(
                    f"round {number:2d}/{args.rounds}: {got['runs']} runs, {got['causes']['VALID']} VALID, "
                    f"reruns: {rerun_text}; {got['wall']:.0f} s",
                    flush=True,
                )
        finally:
            stop.set()
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.kill()
    runs = sum(totals.values())
    print()
    print(f"runs: {runs} in {args.rounds} rounds ({sum(walls) / 60:.1f} min); VALID {totals['VALID']}")
    print(f"INVALID for a sizing reason: {totals['sizing']} (target 0)")
    print(f"INVALID at a Server load the harness chose: {totals['load']}")
    print(f"INVALID for other reasons: {totals['other']}; errors: {totals['error']}")
    print("reruns that kept sizing INVALIDs away: " + (", ".join(f"{k} {v}" for k, v in sorted(reruns.items())) or "0"))
    for model, values in sorted(probes.items()):
        if values:
            low, high = min(values), max(values)
            print(f"  probe {model}: {low:,.0f} to {high:,.0f} samples/s ({high / low:.2f}x)")


if __name__ == "__main__":
    main()
