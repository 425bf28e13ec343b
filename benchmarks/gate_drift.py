"""The gate as a user drives it: a model of the user's own (pytest_mlperf_make_sut) whose speed drifts by 5 % every
3 s, bert-99 Offline performance, --mlperf-repeat 5, a baseline saved once; then four gated runs of the unchanged
build and two of a build 15 % slower, each a separate `pytest` at --mlperf-fail-on=throughput:5%. Prints each run's
decision line, its exit status and its time, and whether the outcome is the one wanted (no regression for the
unchanged build, a failing regression for the slower one).

The model is tests/test_gate_repeat.py's: 1 ms a sample on one thread (a sleep), times 1 - 0.05 x a triangle wave
of period 6 s (5 % slower over 3 s, back over the next 3 s), times GATE_SLOWER. Runs of --seconds (default 6) cover
a whole drift cycle.

    python benchmarks/gate_drift.py [--seconds 6] [--unchanged 4] [--slower 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the tests' drifting model (and the conftest it imports)

from test_gate_repeat import CASE, CONFTEST  # noqa: E402


def run(project: Path, name: str, slower: float, *args: str) -> tuple[int, float, dict]:
    began = time.monotonic()
    argv = [sys.executable, "-m", "pytest", "-k", CASE, f"--mlperf-json={name}", "-q", *args]
    done = subprocess.run(
        argv, cwd=project, env={**os.environ, "GATE_SLOWER": str(slower)}, capture_output=True, text=True
    )
    took = time.monotonic() - began
    path = project / name
    record = json.loads(path.read_text())["results"][0] if path.exists() else {}
    if not record:
        print(done.stdout[-2000:], done.stderr[-2000:])
    return done.returncode, took, record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--unchanged", type=int, default=4)
    parser.add_argument("--slower", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-drift-") as tmp:
        project = Path(tmp)
        (project / "test_inference.py").write_text((ROOT / "suites" / "test_inference.py").read_text())
        (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
        (project / "conftest.py").write_text(CONFTEST)
        common = ("--mlperf-repeat=5", f"--mlperf-duration={args.seconds}")
        code, took, record = run(project, "base.json", 1.0, "--mlperf-save=base", *common)
        print(f"baseline: exit {code}, {took:.0f} s, {record.get('verdict')}")
        gate = ("--mlperf-baseline=base", "--mlperf-fail-on=throughput:5%", *common)
        wanted = [("unchanged", 1.0, "no regression", 0)] * args.unchanged
        wanted += [("15 % slower", 1 / 0.85, "regression", 1)] * args.slower
        right = 0
        for number, (what, slower, outcome, exit_code) in enumerate(wanted, start=1):
            code, took, record = run(project, f"g{number}.json", slower, *gate)
            decisions = (record.get("info") or {}).get("baseline", {}).get("decisions") or [{}]
            got = decisions[0].get("outcome")
            ok = got == outcome and code == exit_code
            right += ok
            line = "; ".join(record.get("info", {}).get("gate", [])) or next(
                (
                    f"{d['metric']} {d['change'] * 100:+.1f} % (CI {d['low'] * 100:+.1f} % .. {d['high'] * 100:+.1f} %)"
                    for d in decisions
                    if d
                ),
                "no decision",
            )
            print(f"{number}. {what:<12} exit {code}, {took:.0f} s: {got} [{'as wanted' if ok else 'NOT as wanted'}]")
            print(f"     {line}")
        print(f"{right} of {len(wanted)} gated runs as wanted")
    return 0 if right == len(wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
