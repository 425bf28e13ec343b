"""Fuzz every parser (and evaluate) with many mutated published logs, and print how many inputs each took and the
slowest input's time. The rule: each input gives a record whose numbers are finite and in their domain, or a
ParseError, never another exception, and never more than a second.

    python benchmarks/fuzz_parsers.py [--examples 10000] [--only summary,detail]

Needs ../shared (or PYTEST_MLPERF_SHARED) for the seeds, and hypothesis (pip install 'pytest-mlperf[dev]').
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzz_cases import PARSERS, PERF, check, check_evaluate, mutated, seeds  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from conftest import shared_dir  # noqa: E402


def fuzz(name: str, examples: int, seed: bytes, run_one) -> tuple[int, float, float, int]:
    times: list[tuple[float, int]] = []
    many = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @many
    @given(data=mutated(seed))
    def property_(data: bytes) -> None:
        times.append((run_one(data), len(data)))

    start = time.perf_counter()
    property_()
    slowest, size = max(times, default=(0.0, 0))
    return len(times), slowest, time.perf_counter() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per parser (default 10000)")
    parser.add_argument("--only", default="", help="comma-separated parser names")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("the published fixtures seed the fuzzing: put them in ../shared or set PYTEST_MLPERF_SHARED")
    work = Path(tempfile.mkdtemp(prefix="mlperf-fuzz-bench-"))
    wanted = [n for n in args.only.split(",") if n] or [*sorted(PARSERS), "evaluate"]
    print(f"{'parser':<14} {'inputs':>8} {'slowest (s)':>12} {'its bytes':>10} {'total (s)':>10}")
    worst = 0.0
    try:
        for name in wanted:
            if name == "evaluate":
                folder = work / "case"
                shutil.copytree(shared / "fixtures" / "inference" / PERF, folder)
                seed = (folder / "mlperf_log_detail.txt").read_bytes()
                counted = fuzz(
                    name, args.examples, seed, lambda d, f=folder: check_evaluate(f, "mlperf_log_detail.txt", d)
                )
            else:
                file_name, seed = seeds(shared)[name]
                counted = fuzz(name, args.examples, seed, lambda d, n=name, f=file_name: check(n, work / f, d))
            count, slowest, total, size = counted
            worst = max(worst, slowest)
            print(f"{name:<14} {count:>8} {slowest:>12.4f} {size:>10} {total:>10.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"slowest input of all: {worst:.4f} s (target under 1 s); no input raised anything but ParseError")


if __name__ == "__main__":
    main()
