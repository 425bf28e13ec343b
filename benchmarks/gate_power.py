"""The gate's error rates, measured: how often it calls an unchanged build a regression (false alarm), how often
it catches a slower one (detection), how often it cannot decide, and what `--mlperf-repeat auto` costs.

Real LoadGen Offline runs of the local backend (LocalBackend.run, as a test runs them, each run judged by the
same evaluate), of two models:
- sleep: a model of set speed, 1 ms a sample on one thread (a sleep), with a drift we choose: its service time is
  multiplied by 1 + 0.03 sin(2 pi t / 7 s), so a run of a few seconds lands on another phase of a 3 % swing;
- ssd-mobilenet: the CPU stand-in (real numpy work), whatever noise this machine gives it.
A build x % slower is the same model sleeping x % of each batch's measured service time after it.

For each model, idle and again beside one busy neighbour process (a Python loop on one core), runs are taken
round-robin across the pools (a baseline pool and one pool per slowdown), so drift and neighbours weigh on every
pool alike. Then, at the limit --limit (default 5 %) and --confidence (default 0.95):
- fixed N (--runs, default 5): decision i compares baseline runs [iN, iN+N) with slowdown runs [iN, iN+N): every
  decision sees runs no other decision of its slowdown sees;
- auto: baseline group i (N runs, as auto saves a baseline), then this slowdown's runs taken in order from
  offset iN (wrapping around the pool) until the gate decides (at least 3, at most 20 runs, as the runner does).
  Runs are reused across auto decisions, so their rates lean on one pool; runs and minutes per decision are the
  honest part of that line.

Targets (at 0.95): false alarms at 0 % <= 5 %; detection at 10 % >= 95 %. Prints a table per model and condition.

    python benchmarks/gate_power.py [--decisions 20] [--runs 5] [--seconds 1] [--models sleep,ssd-mobilenet]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_mlperf import catalog  # noqa: E402
from pytest_mlperf.backends.local import LOCAL_SYSTEM_ID, LocalBackend  # noqa: E402
from pytest_mlperf.backends.standin import LocalModel, stand_in_for  # noqa: E402
from pytest_mlperf.gate.stats import INCONCLUSIVE, NO_REGRESSION, REGRESSION, decide  # noqa: E402
from pytest_mlperf.judge.evaluate import evaluate  # noqa: E402
from pytest_mlperf.options import Duration  # noqa: E402

SLOWDOWNS = (0.0, 0.02, 0.05, 0.10)
AUTO_MIN, AUTO_MAX = 3, 20  # as pytest_mlperf.runner's AUTO_MIN_RUNS and AUTO_MAX_RUNS
FIGURE = "result_samples_per_second"


class Drifting(LocalModel):
    """1 ms a sample, one batch at a time, times 1 + 0.03 sin(2 pi t / 7 s)."""

    name = "sleep-drift"
    lock = threading.Lock()

    def predict(self, indices):
        with self.lock:
            time.sleep(0.001 * len(indices) * (1.0 + 0.03 * math.sin(2 * math.pi * time.time() / 7.0)))
        return [np.zeros(1, dtype=np.float32) for _ in indices]


class Slowed(LocalModel):
    """The same model, each batch followed by a sleep of `slowdown` times its measured service time."""

    def __init__(self, inner: LocalModel, slowdown: float):
        self.inner, self.slowdown = inner, slowdown
        self.name = f"{inner.name} +{slowdown * 100:g}%"
        self.stand_in = inner.stand_in
        self.batch_size = inner.batch_size
        self.total_samples, self.performance_samples = inner.total_samples, inner.performance_samples

    def load(self, indices):
        self.inner.load(indices)

    def predict(self, indices):
        begin = time.perf_counter()
        out = self.inner.predict(indices)
        if self.slowdown:
            time.sleep((time.perf_counter() - begin) * self.slowdown)
        return out


def neighbour() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def pools(model_name: str, per_pool: int, seconds: int, out: Path) -> tuple[dict[float, list[float]], float]:
    """Every pool's figures (samples/s), runs taken round-robin; and the mean seconds of a run."""
    cat = catalog.load()
    bench = "ssd-mobilenet"
    case = next(
        c
        for c in LocalBackend(cat, out / "list", make_model=lambda case: None).cases("inference", None)
        if c.benchmark.name == bench and c.scenario.name == "Offline" and c.mode == "PerformanceOnly"
    )
    inner = Drifting() if model_name == "sleep" else stand_in_for(case.benchmark)
    backends = {}
    for slowdown in ("base", *SLOWDOWNS):
        model = Slowed(inner, 0.0 if slowdown == "base" else slowdown)
        backends[slowdown] = LocalBackend(
            cat, out / str(slowdown), duration=Duration(str(seconds), seconds), make_model=lambda c, m=model: m
        )
    figures: dict = {key: [] for key in backends}
    took = []
    for k in range(per_pool):
        for key, backend in backends.items():
            begin = time.monotonic()
            run = case.with_(run=f"run_{k + 1}")
            result = evaluate(run, backend.run(run, out))
            took.append(time.monotonic() - begin)
            if not result.verdict.ok:
                raise SystemExit(f"{model_name} {key}: run {k + 1} was {result.verdict.reason}")
            figures[key].append(next(m.value for m in result.metrics if m.name == FIGURE))
    return figures, statistics.mean(took)


def auto_decision(base: list[float], pool: list[float], start: int, limit: float, confidence: float):
    taken = []
    while True:
        taken.append(pool[(start + len(taken)) % len(pool)])
        if len(taken) < AUTO_MIN:
            continue
        decision = decide(base, taken, True, limit, confidence)
        if decision.outcome != INCONCLUSIVE or len(taken) >= AUTO_MAX:
            return decision, len(taken)


def table(figures, run_seconds: float, decisions: int, n: int, limit: float, confidence: float) -> list[str]:
    base = figures["base"]
    cv = statistics.stdev(base) / statistics.mean(base)
    lines = [f"  baseline pool: {len(base)} runs, median {statistics.median(base):.1f} samples/s, CV {cv * 100:.1f} %"]
    lines.append(
        f"  {'slowdown':>8}  {'fixed N=' + str(n) + ': regression':>22} {'no regr.':>9} {'inconcl.':>9}   "
        f"{'auto: regression':>16} {'no regr.':>9} {'inconcl.':>9} {'runs/dec.':>9} {'min/dec.':>9}"
    )
    for slowdown in SLOWDOWNS:
        pool = figures[slowdown]
        fixed = [
            decide(base[i * n : (i + 1) * n], pool[i * n : (i + 1) * n], True, limit, confidence).outcome
            for i in range(decisions)
        ]
        autos = [auto_decision(base[i * n : (i + 1) * n], pool, i * n, limit, confidence) for i in range(decisions)]
        outcomes = [d.outcome for d, _ in autos]
        runs = statistics.mean(r for _, r in autos)

        def share(found, what):
            return f"{found.count(what) / len(found) * 100:.0f} %"

        lines.append(
            f"  {slowdown * 100:>7g}%  {share(fixed, REGRESSION):>22} {share(fixed, NO_REGRESSION):>9} "
            f"{share(fixed, INCONCLUSIVE):>9}   {share(outcomes, REGRESSION):>16} {share(outcomes, NO_REGRESSION):>9} "
            f"{share(outcomes, INCONCLUSIVE):>9} {runs:>9.1f} {runs * run_seconds / 60:>9.2f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5, help="runs a side for the fixed-N decisions (and baselines)")
    parser.add_argument("--seconds", type=int, default=1, help="LoadGen's min duration of each run")
    parser.add_argument("--limit", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--models", default="sleep,ssd-mobilenet")
    parser.add_argument("--conditions", default="idle,neighbour")
    args = parser.parse_args()
    per_pool = args.decisions * args.runs
    print(
        f"gate_power: {args.decisions} decisions a slowdown, {args.runs} runs a side (fixed), runs of "
        f"{args.seconds} s, limit {args.limit * 100:g} %, confidence {args.confidence}; {os.cpu_count()} CPUs, "
        f"load {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    for model in args.models.split(","):
        for condition in args.conditions.split(","):
            busy = neighbour() if condition == "neighbour" else None
            try:
                with tempfile.TemporaryDirectory(prefix="gate-power-") as tmp:
                    began = time.monotonic()
                    figures, run_seconds = pools(model, per_pool, args.seconds, Path(tmp))
                    spent = time.monotonic() - began
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            print(
                f"\n{model}, {condition} ({LOCAL_SYSTEM_ID}; {5 * per_pool} runs in {spent / 60:.1f} min, "
                f"{run_seconds:.2f} s a run)"
            )
            for line in table(figures, run_seconds, args.decisions, args.runs, args.limit, args.confidence):
                print(line)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
