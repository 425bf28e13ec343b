"""Measure the local backend's own cost, side by side in one run, and print the ratios.

(a) harness overhead: the same LoadGen run (same stand-in SUT, same user.conf) through `pytest suites` and
    through a bare script that calls LoadGen directly; wall time of each whole process. Target <= 1.05.
(b) LoadGen efficiency: the SUT's raw batch throughput vs the samples/s LoadGen measured in Offline.
    Target >= 0.9.
(c) peak memory (max RSS) of the default smoke run, `pytest suites`, inference and training.

    python benchmarks/local_backend.py [--seconds 30] [--skip-full-run]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE = "ssd-resnet34-SingleStream-PerformanceOnly-local"
OFFLINE = "ssd-resnet34-Offline-PerformanceOnly-local"

BARE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_mlperf import catalog
    from pytest_mlperf.backends.local import run_loadgen
    from pytest_mlperf.backends.standin import stand_in_for

    conf, out = Path(sys.argv[1]), Path(sys.argv[2])
    cat = catalog.load()
    case = next(c for c in cat.local_cases("Local-CPU") if c.id == sys.argv[3])
    run_loadgen(case, stand_in_for(case.benchmark), out, conf.read_text())
    """
)


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def pytest_cmd(work: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "suites"),
        "-p",
        "no:cacheprovider",
        "-q",
        *args,
        f"--rootdir={work}",
    ]


def overhead(work: Path, seconds: int) -> None:
    out = work / "a"
    wall_pytest, proc = timed(
        pytest_cmd(work, "-k", CASE, f"--mlperf-duration={seconds}", f"--mlperf-output={out}"), work
    )
    if proc.returncode != 0:
        sys.exit(f"pytest run failed:\n{proc.stdout[-2000:]}")
    folder = out / "Local-CPU_Local" / "ssd-resnet34" / "SingleStream" / "performance" / "run_1"
    conf = folder / "user.conf"
    wall_bare, proc = timed([sys.executable, "-c", BARE, str(conf), str(work / "bare"), CASE], work)
    if proc.returncode != 0:
        sys.exit(f"bare run failed:\n{proc.stderr[-2000:]}")
    q_pytest = _detail(folder, "result_query_count")
    q_bare = _detail(work / "bare", "result_query_count")
    print(
        f"(a) {CASE}, {seconds} s: pytest suites {wall_pytest:.2f} s ({q_pytest} queries), "
        f"bare LoadGen script {wall_bare:.2f} s ({q_bare} queries)"
    )
    print(
        f"    wall-time ratio pytest/bare = {wall_pytest / wall_bare:.3f} (target <= 1.05); "
        f"fixed cost {wall_pytest - wall_bare:.2f} s (interpreter, collection, probe)"
    )


def _detail(folder: Path, key: str):
    for line in (folder / "mlperf_log_detail.txt").read_text().splitlines():
        if f'"key": "{key}"' in line:
            return json.loads(line.split(":::MLLOG", 1)[1])["value"]
    return None


def efficiency(work: Path, seconds: int) -> None:
    import numpy as np

    from pytest_mlperf import catalog
    from pytest_mlperf.backends.standin import stand_in_for

    out = work / "b"
    _, proc = timed(pytest_cmd(work, "-k", OFFLINE, f"--mlperf-duration={seconds}", f"--mlperf-output={out}"), work)
    if proc.returncode != 0:
        sys.exit(f"pytest Offline run failed:\n{proc.stdout[-2000:]}")
    folder = out / "Local-CPU_Local" / "ssd-resnet34" / "Offline" / "performance" / "run_1"
    loadgen_rate = float(_detail(folder, "result_samples_per_second"))
    model = stand_in_for(catalog.load().benchmark("ssd-resnet34"))
    rng = np.random.default_rng(0)
    samples = int(_detail(folder, "result_query_count") or 0) or 1
    total = int(loadgen_rate * seconds)
    done, start = 0, time.perf_counter()
    while done < total:  # the same amount of work LoadGen issued, in random order like LoadGen's
        model.predict(rng.integers(0, model.performance_samples, model.batch_size))
        done += model.batch_size
    raw_rate = done / (time.perf_counter() - start)
    print(
        f"(b) {OFFLINE}, {seconds} s: raw SUT {raw_rate:,.0f} samples/s, LoadGen Offline {loadgen_rate:,.0f} "
        f"samples/s ({samples} query)"
    )
    print(f"    ratio LoadGen/raw = {loadgen_rate / raw_rate:.3f} (target >= 0.9)")


def memory(work: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall, proc = timed(pytest_cmd(work, f"--mlperf-output={work / 'c'}"), work)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    print(
        f"(c) default smoke run `pytest suites`: {tail.strip('= ')} in {wall:.0f} s; "
        f"peak RSS {max(peak_kib, before) / 1024:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="LoadGen min_duration of runs (a) and (b)")
    parser.add_argument("--skip-full-run", action="store_true", help="skip (c), the ~3 minute default run")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    with tempfile.TemporaryDirectory(prefix="mlperf-bench-") as tmp:
        work = Path(tmp)
        overhead(work, 8)
        overhead(work, args.seconds)
        efficiency(work, args.seconds)
        if not args.skip_full_run:
            memory(work)


if __name__ == "__main__":
    main()
