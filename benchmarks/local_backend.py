"""Measure the local backend's own cost, side by side in one run, and print the ratios.

LoadGen runs for the min_duration it is given, so a run's wall time says nothing about its cost; the figures
compared here are per query, as LoadGen itself measured them (mlperf_log_detail.txt), over --repeat runs of
each side taken alternately (A B B A A B ...), so a neighbour that comes and goes weighs on both sides alike.
Each side prints its median, its spread (min-max over the runs, and that range as a share of the median) and
every run's figure; the ratio is of the two medians.

(a) harness overhead: the same cases, SingleStream and Offline of the ssd-resnet34 stand-in, through
    `pytest suites` (the plugin; its kept LoadGen logs are read from --mlperf-output) and through a bare script
    that calls run_loadgen directly, with the same stand-in model, warmed by the same probe and on the same
    single BLAS thread as the backend, and the user.conf of the latest pytest run. SingleStream: mean and 90th
    percentile latency; Offline: samples per second. Target: pytest/bare within 3 % (PASS/MISS).
(b) LoadGen efficiency: the stand-in alone, driven the way the local backend's _Worker drives it under LoadGen
    (Offline: one query, answered in batches of the model's batch_size, in LoadGen's sample order, on one
    worker thread with one BLAS thread), against LoadGen's Offline samples/s of a bare run whose sample order it
    replays. Target: LoadGen/raw >= 0.9.
(c) peak memory (max RSS) of the default smoke run, `pytest suites`, inference and training.

Every part prints the load average (/proc/loadavg) before and after it: the figures are only as quiet as the
machine was.

    python benchmarks/local_backend.py [--repeat 5] [--seconds 10] [--skip-full-run]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = "ssd-resnet34"
CASE = f"{BENCHMARK}-SingleStream-PerformanceOnly-local"
OFFLINE = f"{BENCHMARK}-Offline-PerformanceOnly-local"
SCENARIOS = {OFFLINE: "Offline", CASE: "SingleStream"}  # in pytest's collection order, which the bare runs follow
TARGET_OVERHEAD = 0.03  # pytest within 3 % of the bare script, per figure
TARGET_EFFICIENCY = 0.9  # LoadGen Offline at least 90 % of the raw SUT

# The bare side: one process, like one pytest process, running the given cases in turn through run_loadgen
# with the same model object for the benchmark, warmed by the same probe (calibrate) LocalBackend runs before
# a model's first case, and the single BLAS thread LocalBackend.run sets.
# argv: bare OUT [--record ORDER.npz] CASE=USER.CONF ...  (--record keeps the sample indices the model saw,
#       batch by batch, for (b); appending a reference per batch costs nothing next to a batch's compute)
# argv: raw ORDER.npz CASE          the model alone over that order, the way _Worker answers it; prints JSON
HELPER = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    import numpy as np
    from pytest_mlperf import catalog
    from pytest_mlperf.backends.local import LOCAL_SYSTEM_ID, calibrate, run_loadgen, single_blas_thread
    from pytest_mlperf.backends.standin import stand_in_for

    cases = {c.id: c for c in catalog.load().local_cases(LOCAL_SYSTEM_ID)}
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "bare":
        out, record = Path(args.pop(0)), None
        if args[0] == "--record":
            record = Path(args[1])
            args = args[2:]
        models = {}
        for pair in args:
            case_id, conf = pair.split("=", 1)
            case = cases[case_id]
            if case.benchmark.name not in models:  # made and probed once, as LocalBackend does before its runs
                models[case.benchmark.name] = stand_in_for(case.benchmark)
                with single_blas_thread(models[case.benchmark.name]):
                    calibrate(models[case.benchmark.name])
            model = models[case.benchmark.name]
            seen = []
            if record is not None:
                predict = model.predict
                model.predict = lambda indices: (seen.append(indices), predict(indices))[1]
            with single_blas_thread(model):
                run_loadgen(case, model, out / case_id, Path(conf).read_text())
            if record is not None:
                del model.predict
                np.savez(record, order=np.concatenate(seen), sizes=np.array([len(s) for s in seen]))
    else:
        order = np.load(args[0])
        case = cases[args[1]]
        model = stand_in_for(case.benchmark)
        batches = np.split(order["order"], np.cumsum(order["sizes"])[:-1])
        took = []

        def answer():  # _Worker._answer without the LoadGen calls: predict, then contiguous outputs
            start = time.perf_counter()
            for batch in batches:
                [np.ascontiguousarray(o) for o in model.predict(batch)]
            took.append(time.perf_counter() - start)

        with single_blas_thread(model):
            calibrate(model)  # the same warm-up as the LoadGen side's
            worker = threading.Thread(target=answer, name="mlperf-local-sut")
            worker.start()
            worker.join()
        print(json.dumps({"samples": int(order["sizes"].sum()), "batches": len(batches),
                          "batch_size": int(order["sizes"].max()), "seconds": took[0]}))
    """
)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def helper(*args: str) -> list[str]:
    return [sys.executable, "-c", HELPER, *args]


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


def alternate(repeat: int) -> Iterator[tuple[int, int]]:
    """(run, side) in the order A B B A A B ...: each side goes first as often as the other."""
    for i in range(repeat):
        yield from ((i, 0), (i, 1)) if i % 2 == 0 else ((i, 1), (i, 0))


def detail(folder: Path):
    from pytest_mlperf.logs.loadgen import parse_detail

    return parse_detail(folder / "mlperf_log_detail.txt")


def figure(folder: Path, key: str) -> float:
    value = detail(folder).get(key)
    if value is None:
        sys.exit(f"{folder / 'mlperf_log_detail.txt'} has no {key}")
    return float(value)


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    runs = ", ".join(fmt(v) for v in values)
    low, high, share = fmt(min(values)), fmt(max(values)), spread_share(values) * 100
    return f"median {fmt(statistics.median(values))} (min {low}, max {high}, range {share:.1f} %; runs {runs})"


def verdict(ratio: float, ok: bool, target: str) -> str:
    return f"{ratio:.3f} ({target}: {'PASS' if ok else 'MISS'})"


def spread_share(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def overhead(work: Path, seconds: int, repeat: int) -> None:
    print(f"(a) harness overhead: {CASE} and {OFFLINE}, {seconds} s each, {repeat} runs per side; load {loadavg()}")
    keys = {
        "SingleStream mean latency": (CASE, "result_mean_latency_ns"),
        "SingleStream p90 latency": (CASE, "result_90.00_percentile_latency_ns"),
        "Offline samples/s": (OFFLINE, "result_samples_per_second"),
    }
    found: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in keys}
    confs: dict[str, Path] = {}
    order = []
    for i, side in alternate(repeat):
        if side == 0:
            out = work / f"a-pytest-{i}"
            args = ("-k", f"{CASE} or {OFFLINE}", f"--mlperf-duration={seconds}", f"--mlperf-output={out}")
            run(pytest_cmd(work, *args), work, f"pytest run {i + 1}")
            system = out / "Local-CPU_Local" / BENCHMARK
            folders = {c: system / scenario / "performance" / "run_1" for c, scenario in SCENARIOS.items()}
            confs = {c: f / "user.conf" for c, f in folders.items()}  # the next bare runs use these
        else:
            out = work / f"a-bare-{i}"
            run(helper("bare", str(out), *(f"{c}={conf}" for c, conf in confs.items())), work, f"bare run {i + 1}")
            folders = {c: out / c for c in SCENARIOS}
        order.append("AB"[side])
        for name, (case, key) in keys.items():
            found[name][side].append(figure(folders[case], key))
    print(f"    order {' '.join(order)} (A pytest suites, B bare run_loadgen script); load {loadavg()}")
    for name, (pytest_values, bare_values) in found.items():
        fmt = (lambda v: f"{v / 1000:.1f} us") if "latency" in name else (lambda v: f"{v:,.0f}")
        ratio = statistics.median(pytest_values) / statistics.median(bare_values)
        print(f"    {name}:")
        print(f"      pytest suites {spread(pytest_values, fmt)}")
        print(f"      bare script   {spread(bare_values, fmt)}")
        ok = abs(ratio - 1) <= TARGET_OVERHEAD
        print(f"      ratio pytest/bare of the medians = {verdict(ratio, ok, f'target within {TARGET_OVERHEAD:.0%}')}")
        noise = max(spread_share(pytest_values), spread_share(bare_values))
        if noise > TARGET_OVERHEAD:
            print(
                f"      the runs of one side spread over {noise:.0%}, more than the {TARGET_OVERHEAD:.0%} target: "
                "on this machine at this load the verdict is within the noise"
            )
    (work / "offline-user.conf").write_text(confs[OFFLINE].read_text())


def efficiency(work: Path, repeat: int) -> None:
    conf = work / "offline-user.conf"  # the latest pytest Offline run's, from (a)
    print(f"(b) LoadGen efficiency: {OFFLINE}, the user.conf of (a)'s last pytest run, {repeat} runs per side")
    print(f"    load {loadavg()}")
    order_file = work / "b-order.npz"
    rates: tuple[list[float], list[float]] = ([], [])
    shape, sequence = "", []
    for i, side in alternate(repeat):
        if side == 0:
            out = work / f"b-loadgen-{i}"
            run(helper("bare", str(out), "--record", str(order_file), f"{OFFLINE}={conf}"), work, "LoadGen Offline")
            rates[0].append(figure(out / OFFLINE, "result_samples_per_second"))
        else:
            raw = json.loads(run(helper("raw", str(order_file), OFFLINE), work, "raw SUT").stdout.splitlines()[-1])
            rates[1].append(raw["samples"] / raw["seconds"])
            shape = f"{raw['samples']:,} samples in {raw['batches']} batches of up to {raw['batch_size']}"
        sequence.append("AB"[side])
    fmt = lambda v: f"{v:,.0f}"  # noqa: E731
    print(f"    order {' '.join(sequence)} (A LoadGen Offline in a bare script, B raw SUT); load {loadavg()}")
    print(f"    raw SUT: {shape}, LoadGen's sample order, one worker thread, one BLAS thread")
    print(f"      LoadGen Offline samples/s {spread(rates[0], fmt)}")
    print(f"      raw SUT samples/s         {spread(rates[1], fmt)}")
    ratio = statistics.median(rates[0]) / statistics.median(rates[1])
    ok = ratio >= TARGET_EFFICIENCY
    print(f"      ratio LoadGen/raw of the medians = {verdict(ratio, ok, f'target >= {TARGET_EFFICIENCY}')}")


def memory(work: Path) -> None:
    """The smoke run's own peak: os.wait4 reports the resources of that one child (RUSAGE_CHILDREN would be the
    largest of every child this script has waited for, (a) and (b)'s included)."""
    print(f"(c) load {loadavg()}")
    log = work / "c.log"
    start = time.perf_counter()
    with log.open("w") as stdout:
        cmd = pytest_cmd(work, f"--mlperf-output={work / 'c'}")
        proc = subprocess.Popen(cmd, cwd=work, stdout=stdout, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    lines = log.read_text().strip().splitlines()
    tail = lines[-1] if lines else "(no output)"
    print(
        f"    default smoke run `pytest suites`: {tail.strip('= ')} in {wall:.0f} s; "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB; load {loadavg()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per side in (a) and (b), taken alternately")
    parser.add_argument("--seconds", type=int, default=10, help="LoadGen min_duration of the runs in (a) and (b)")
    parser.add_argument("--skip-full-run", action="store_true", help="skip (c), the ~3 minute default run")
    args = parser.parse_args()
    if args.repeat < 1 or args.seconds < 1:
        parser.error("--repeat and --seconds must be at least 1")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    with tempfile.TemporaryDirectory(prefix="mlperf-bench-") as tmp:
        work = Path(tmp)
        overhead(work, args.seconds, args.repeat)
        efficiency(work, args.repeat)
        if not args.skip_full_run:
            memory(work)


if __name__ == "__main__":
    main()
