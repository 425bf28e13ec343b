"""The turnstile the project's own test run uses under pytest-xdist (conftest.py): a test marked `alone` runs while
no other test runs; tests marked `quiet` run beside each other and beside nothing else; the rest run side by side.
Real processes, a real flock(2)-guarded state file and a real pytest-xdist run, as the workers use them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

from conftest import ROOT, _chunk_starts, _turn

TEST = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from conftest import _turn
with _turn(Path(sys.argv[2]), sys.argv[3]):
    print(f"in {time.time():.6f}", flush=True)
    hold = sys.argv[4]
    if hold.startswith("until:"):  # hold the turn until the test creates this file
        while not Path(hold[6:]).exists():
            time.sleep(0.02)
    else:
        time.sleep(float(hold))
    print(f"leaving {time.time():.6f}", flush=True)
"""


def _test(folder, kind: str, hold: float | str) -> subprocess.Popen:
    """A worker's test of the given kind that holds its turn for `hold` seconds."""
    cmd = [sys.executable, "-c", TEST, str(ROOT), str(folder), kind, str(hold)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _stamp(process: subprocess.Popen, word: str) -> float:
    said, stamp = process.stdout.readline().split()
    assert said == word
    return float(stamp)


def _registered_waiting(folder, process: subprocess.Popen, kind: str, timeout: float = 30.0) -> None:
    """Until the process is in the turnstile's list of waiting tests (its interpreter's start takes its time on a
    busy machine: a test that arrives after must arrive after it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads((folder / "mlperf-turns.json").read_text() or "{}")
        except (OSError, ValueError):
            state = {}
        if state.get("waiting", {}).get(str(process.pid)) == kind:
            return
        time.sleep(0.02)
    raise AssertionError(f"{kind} test {process.pid} never registered as waiting")


def _waits(process: subprocess.Popen, seconds: float = 0.8) -> bool:
    """True when the process has not entered within `seconds` (it prints nothing before it does)."""
    readable, _, _ = select.select([process.stdout], [], [], seconds)
    return not readable and process.poll() is None


def test_an_alone_turn_waits_for_a_running_test_and_holds_off_new_ones(tmp_path):
    running = _test(tmp_path, "shared", 1.0)
    _stamp(running, "in")
    with _turn(tmp_path, "alone"):
        began = time.time()
        left = _stamp(running, "leaving")  # the running test was done before it began
        later = _test(tmp_path, "shared", 0.0)
        assert _waits(later)  # a test that wants to start waits
        ended = time.time()
    assert left <= began
    assert _stamp(later, "in") >= ended
    assert later.wait(timeout=30) == 0 and running.wait() == 0


def test_tests_that_are_neither_alone_nor_quiet_run_side_by_side(tmp_path):
    first, second = _test(tmp_path, "shared", 1.0), _test(tmp_path, "shared", 1.0)
    starts = [_stamp(p, "in") for p in (first, second)]
    ends = [_stamp(p, "leaving") for p in (first, second)]
    assert max(starts) < min(ends)  # both were in at once
    assert first.wait() == second.wait() == 0


def test_quiet_tests_run_together_and_beside_nothing_else(tmp_path):
    """A quiet test waits for a running shared test; while it waits no new shared test starts (it is not starved),
    a second quiet test joins it, and the shared test that came later starts once both quiet ones are done."""
    go = tmp_path / "go"
    shared = _test(tmp_path, "shared", f"until:{go}")  # held until both quiet tests wait, however slow their start
    shared_in = _stamp(shared, "in")
    quiet = _test(tmp_path, "quiet", 1.5)
    _registered_waiting(tmp_path, quiet, "quiet")
    later = _test(tmp_path, "shared", 0.0)
    assert _waits(later, 0.3)
    other_quiet = _test(tmp_path, "quiet", 1.5)
    _registered_waiting(tmp_path, other_quiet, "quiet")
    go.touch()
    shared_out = _stamp(shared, "leaving")
    quiet_in, other_in = _stamp(quiet, "in"), _stamp(other_quiet, "in")
    assert shared_in < shared_out <= min(quiet_in, other_in)
    quiet_out, other_out = _stamp(quiet, "leaving"), _stamp(other_quiet, "leaving")
    assert max(quiet_in, other_in) < min(quiet_out, other_out)  # the two quiet tests were in at once
    assert _stamp(later, "in") >= max(quiet_out, other_out)
    assert all(p.wait(timeout=30) == 0 for p in (shared, quiet, other_quiet, later))


def test_an_alone_test_waits_for_quiet_ones_and_no_new_quiet_one_joins(tmp_path):
    go = tmp_path / "go"
    quiet = _test(tmp_path, "quiet", f"until:{go}")  # held until the alone test waits, however slow its start
    _stamp(quiet, "in")
    alone = _test(tmp_path, "alone", 0.5)
    _registered_waiting(tmp_path, alone, "alone")
    late_quiet = _test(tmp_path, "quiet", 0.0)
    _registered_waiting(tmp_path, late_quiet, "quiet")
    go.touch()
    quiet_out = _stamp(quiet, "leaving")
    alone_in, alone_out = _stamp(alone, "in"), _stamp(alone, "leaving")
    assert quiet_out <= alone_in
    assert _stamp(late_quiet, "in") >= alone_out
    assert all(p.wait(timeout=30) == 0 for p in (quiet, alone, late_quiet))


def test_a_worker_killed_in_its_turn_does_not_stall_the_run(tmp_path):
    """A worker that dies holding its turn (kill -9: no clean-up runs) is dropped the next time anyone looks."""
    dead = _test(tmp_path, "shared", 600.0)
    _stamp(dead, "in")
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait()
    alone = _test(tmp_path, "alone", 0.0)
    _stamp(alone, "in")
    assert alone.wait(timeout=30) == 0


def test_quiet_tests_head_the_workers_shares_of_a_real_worksteal_run(pytester):
    """The run's order puts quiet tests where pytest-xdist's worksteal split starts each worker's share, so each of
    them is the first test of a different worker (the split is xdist's own, in a real -n 3 run)."""
    pytester.makeconftest(
        textwrap.dedent(
            """
            import importlib.util
            import os

            spec = importlib.util.spec_from_file_location("repo_conftest", os.environ["REPO_CONFTEST"])
            repo = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(repo)
            pytest_configure, pytest_collection_modifyitems = repo.pytest_configure, repo.pytest_collection_modifyitems

            def pytest_runtest_setup(item):  # on the worker that runs the test (the environment's name may be the
                worker = item.config.workerinput["workerid"]  # outer run's: this run is itself a test's child)
                with open(os.environ["ORDER_FILE"], "a") as out:
                    out.write(f"{worker} {item.nodeid}\\n")
            """
        )
    )
    tests = ["import pytest"]
    for index in range(30):
        mark = "@pytest.mark.quiet\n" if index in (5, 17, 29) else ""
        tests.append(f"{mark}def test_{index:02d}():\n    pass\n")
    pytester.makepyfile(test_order="\n".join(tests))
    order_file = pytester.path / "order.txt"
    os.environ.update(ORDER_FILE=str(order_file), REPO_CONFTEST=str(ROOT / "conftest.py"))
    try:
        result = pytester.runpytest_subprocess("-n", "3", "--dist", "worksteal", "-p", "no:randomly")
    finally:
        del os.environ["ORDER_FILE"], os.environ["REPO_CONFTEST"]
    result.assert_outcomes(passed=30)
    first: dict[str, str] = {}
    for line in order_file.read_text().splitlines():
        worker, nodeid = line.split()
        first.setdefault(worker, nodeid)
    assert sorted(first.values()) == ["test_order.py::test_05", "test_order.py::test_17", "test_order.py::test_29"]
    assert _chunk_starts(30, 3) == [0, 10, 20] and _chunk_starts(7, 3) == [0, 2, 4]
