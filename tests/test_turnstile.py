"""The lock the project's own test run uses under pytest-xdist (conftest.py): a test marked `alone` runs while no
other test runs. Real processes and real flock(2) locks, as the workers use them."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import ROOT, _turn

READER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from conftest import _turn
with _turn(Path(sys.argv[2]), alone=False):
    print(f"in {time.time():.6f}", flush=True)
    time.sleep(float(sys.argv[3]))
    print(f"leaving {time.time():.6f}", flush=True)
"""


def _reader(folder, hold: float) -> subprocess.Popen:
    cmd = [sys.executable, "-c", READER, str(ROOT), str(folder), str(hold)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def test_an_alone_turn_waits_for_a_running_test_and_holds_off_new_ones(tmp_path):
    running = _reader(tmp_path, 1.0)
    assert running.stdout.readline().startswith("in ")
    with _turn(tmp_path, alone=True):
        began = time.time()
        left = float(running.stdout.readline().split()[1])  # the running test was done before it began
        later = _reader(tmp_path, 0.0)
        time.sleep(0.8)
        assert later.poll() is None  # a test that wants to start waits
        ended = time.time()
    assert left <= began
    entered = float(later.stdout.readline().split()[1])
    assert entered >= ended
    assert later.wait(timeout=30) == 0 and running.wait() == 0


def test_tests_that_are_not_alone_run_side_by_side(tmp_path):
    first, second = _reader(tmp_path, 1.0), _reader(tmp_path, 1.0)
    starts = [float(p.stdout.readline().split()[1]) for p in (first, second)]
    ends = [float(p.stdout.readline().split()[1]) for p in (first, second)]
    assert max(starts) < min(ends)  # both were in at once
    assert first.wait() == second.wait() == 0
