"""Run the local backend's four Server cases at smoke length next to 0, 1 and 2 busy neighbour processes (each a
`while True: pass` loop spinning one core), and print per setting: the verdicts, the worst 99th-percentile latency
against the case's latency bound, and the contention figures two ways:

- as the run recorded them: each JSON record's `info.contention` (the Watcher's summary) and `info.contended`
  (its reasons, when contended); "n/a" where the records carry none;
- as this script measured them: a Watcher (pytest_mlperf.machine.contention) around each whole pytest process,
  from outside (the neighbours are this script's children, not pytest's, so they count as others).

The goal the flag is held to: every INVALID verdict next to two busy neighbours is flagged, no run on an idle
machine is. Before each run the script waits (up to --quiet-wait seconds) for the machine to be idle, since other
work may share it, and says what else was running when it was not.

    python benchmarks/contention.py [--repeat N] [--neighbours 0,1,2] [--quiet-wait 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_mlperf.machine.contention import Watcher  # noqa: E402

SELECT = "inference and server and performance"
P99 = "result_99.00_percentile_latency_ns"
DEFAULT_REPEAT = {0: 5, 1: 5, 2: 3}
BUSY = "while True: pass"


def latency_bounds() -> dict[str, float]:
    """Each benchmark's Server latency bound in ms, from the catalog (the local backend's default is 100 ms)."""
    data = json.loads((ROOT / "pytest_mlperf" / "catalog" / "inference_v2_0.json").read_text())
    return {name: b.get("server_latency_ms") or 100 for name, b in data["benchmarks"].items()}


def bound_ms(record: dict, bounds: dict[str, float]) -> float | None:
    """The bound LoadGen was given (the run's user.conf), else the catalog's for the record's benchmark."""
    for path in record.get("artifacts") or []:
        if path.endswith("user.conf"):
            try:
                found = re.search(r"\.Server\.target_latency\s*=\s*([0-9.]+)", Path(path).read_text())
            except OSError:
                found = None
            if found:
                return float(found.group(1))
    benchmark = record["id"].split("-Server")[0]
    return bounds.get(benchmark)


def wait_quiet(limit: float) -> dict:
    """A 2-second look at the machine, repeated until nobody else is busy on it or `limit` seconds passed."""
    deadline = time.monotonic() + limit
    while True:
        watcher = Watcher(interval=0.1).start()
        time.sleep(2)
        seen = watcher.stop()
        if (seen["others_cores"] or 0) < 0.2 or time.monotonic() > deadline:
            return seen
        time.sleep(3)


def cpu_seconds(pid: int) -> float:
    """A live process's CPU time so far (utime + stime), from /proc; 0 when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def one_run(neighbours: int, work: Path, duration: str) -> dict:
    """One pytest run next to `neighbours` busy loops; the Watcher stops while the finished pytest is still a
    zombie (waitid WNOWAIT), so its CPU time is still in /proc. `background_cores`: what processes other than
    pytest and the neighbours used (other work on the machine)."""
    out = work / f"n{neighbours}-{time.monotonic_ns()}.json"
    log = out.with_suffix(".log")
    argv = [str(ROOT / ".venv" / "bin" / "pytest"), "suites", "-m", SELECT, f"--mlperf-duration={duration}"]
    argv += ["-p", "no:cacheprovider", f"--mlperf-json={out}", "-q"]
    if not Path(argv[0]).exists():
        argv[0:1] = [sys.executable, "-m", "pytest"]
    hogs: list[subprocess.Popen] = []
    try:
        hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(neighbours)]
        time.sleep(0.3)
        with log.open("wb") as fh:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        hogs_before = sum(cpu_seconds(h.pid) for h in hogs)
        watcher = Watcher(pid=proc.pid).start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        outside = watcher.stop()
        hogs_cpu = sum(cpu_seconds(h.pid) for h in hogs) - hogs_before
        proc.wait()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    if not out.exists():
        sys.exit(f"pytest wrote no JSON (exit {proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    wall = outside["wall_s"] or 0
    others = outside["others_cores"]
    neighbour_cores = hogs_cpu / wall if wall > 0 else None
    background = max(others - neighbour_cores, 0.0) if others is not None and neighbour_cores is not None else None
    outside = {**outside, "neighbour_cores": neighbour_cores, "background_cores": background}
    return {"records": json.loads(out.read_text())["results"], "outside": outside}


def mean_range(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(neighbours: int, runs: list[dict], bounds: dict[str, float]) -> list[str]:
    records = [r for run in runs for r in run["records"]]
    verdicts = [r.get("verdict") for r in records]
    ratios = []
    for r in records:
        metrics = {m["name"]: m["value"] for m in r.get("metrics") or []}
        limit = bound_ms(r, bounds)
        if P99 in metrics and limit:
            ratios.append((metrics[P99] / 1e6 / limit, r["id"]))
    worst = max(ratios, default=None)
    invalid = [r for r in records if r.get("verdict") != "VALID"]
    recorded = [r for r in records if isinstance((r.get("info") or {}).get("contention"), dict)]
    lines = [f"{neighbours} busy neighbour(s), {len(runs)} run(s), {len(records)} cases"]
    lines.append(f"  verdicts: VALID {verdicts.count('VALID')}, INVALID {len(verdicts) - verdicts.count('VALID')}")
    if worst:
        lines.append(f"  worst p99 / latency bound: {worst[0]:.3f} ({worst[1]})")
    if recorded:
        flagged = [r for r in recorded if r["info"].get("contended")]
        flagged_invalid = [r for r in invalid if (r.get("info") or {}).get("contended")]
        figures = [r["info"]["contention"] for r in recorded]
        lines.append(
            f"  recorded (info.contention): {len(flagged)} of {len(recorded)} cases contended; "
            f"INVALID flagged {len(flagged_invalid)} of {len(invalid)}"
        )
        lines.append(
            "    others' cores "
            + mean_range([f.get("others_cores") for f in figures])
            + ", others runnable "
            + mean_range([f.get("others_runnable_mean") for f in figures])
            + ", CPU pressure "
            + mean_range([f.get("cpu_pressure") for f in figures])
            + ", harness cores "
            + mean_range([f.get("cpu_share") for f in figures])
        )
        for r in flagged[:4] if neighbours < 2 else []:  # where the neighbours alone should not have been enough
            f = r["info"]["contention"]
            lines.append(
                f"    flagged {r['id']}: others' cores {f.get('others_cores')}, others runnable "
                f"{f.get('others_runnable_mean')}, CPU pressure {f.get('cpu_pressure')}"
            )
    else:
        lines.append("  recorded (info.contention): n/a")
    outside = [run["outside"] for run in runs]
    contended_runs = [run for run in runs if run["outside"]["contended"]]
    invalid_in_contended = sum(1 for run in contended_runs for r in run["records"] if r.get("verdict") != "VALID")
    lines.append(
        f"  measured around each pytest: {len(contended_runs)} of {len(runs)} runs contended; "
        f"INVALID in a contended run {invalid_in_contended} of {len(invalid)}"
    )
    lines.append(
        "    others' cores "
        + mean_range([o["others_cores"] for o in outside])
        + ", others runnable "
        + mean_range([o["others_runnable_mean"] for o in outside])
        + ", CPU pressure "
        + mean_range([o["cpu_pressure"] for o in outside])
        + ", pytest's cores "
        + mean_range([o["cpu_share"] for o in outside])
    )
    lines.append(
        "    of the others' cores: the neighbours "
        + mean_range([o["neighbour_cores"] for o in outside])
        + ", anything else on the machine "
        + mean_range([o["background_cores"] for o in outside])
    )
    reasons = sorted({", ".join(o["reasons"]) for o in outside if o["reasons"]})
    for text in reasons[:3]:
        lines.append(f"    e.g. contended: {text}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None, help="runs per setting (default 5, 5 and 3)")
    parser.add_argument("--neighbours", default="0,1,2", help="comma-separated counts of busy neighbours")
    parser.add_argument("--duration", default="smoke", help="--mlperf-duration for the runs (default smoke)")
    parser.add_argument("--quiet-wait", type=float, default=300.0, help="seconds to wait for an idle machine")
    args = parser.parse_args()
    settings = [int(n) for n in args.neighbours.split(",") if n.strip()]
    bounds = latency_bounds()
    print(f"{os.cpu_count()} CPUs here; this process may use {len(os.sched_getaffinity(0))}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mlperf-contention-") as tmp:
        work = Path(tmp)
        for neighbours in settings:
            repeat = args.repeat if args.repeat is not None else DEFAULT_REPEAT.get(neighbours, 3)
            runs = []
            for i in range(repeat):
                before = wait_quiet(args.quiet_wait)
                if (before["others_cores"] or 0) >= 0.2:
                    print(f"  (run {i + 1}: the machine was not idle: others used {before['others_cores']} cores)")
                runs.append(one_run(neighbours, work, args.duration))
            print("\n".join(report(neighbours, runs, bounds)), flush=True)


if __name__ == "__main__":
    main()
