"""--mlperf-server-search: the peak Server load, found by a bounded search over short LoadGen runs and confirmed by
one run of the configured length.

The search itself is a pure function over a step that says VALID or not (tested here with an exact threshold).
End to end it runs on the local backend with the real LoadGen and a user's model (pytest_mlperf_make_sut) whose
service time is a sleep of 1 ms a sample on one thread (its answers are empty: only performance runs use it): a
capacity of about 1,000 samples/s that hardly depends on how busy the two cores here are."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_pytest_child, suite_project
from pytest_mlperf.backends.search import SearchBounds, SearchResult, Step, confirm, find_peak, search_record, whole
from pytest_mlperf.judge.evaluate import read_search
from pytest_mlperf.logs import ParseError


def _capacity(limit: float, log: list | None = None):
    def run_at(qps: float) -> bool:
        if log is not None:
            log.append(qps)
        return qps <= limit

    return run_at


@pytest.mark.parametrize("start", [10.0, 90.0, 100.0, 1000.0, 50000.0])
def test_the_search_brackets_and_narrows_to_the_tolerance(start):
    found = find_peak(_capacity(100.0), start, SearchBounds(max_runs=40, tolerance=0.02))
    assert found.stopped_by is None
    assert 100.0 / 1.02 <= found.peak <= 100.0 < found.upper
    assert found.width <= 0.02
    assert any(s.valid for s in found.steps) and any(not s.valid for s in found.steps)


def test_the_run_bound_and_the_time_bound_stop_it_and_say_so():
    log: list[float] = []
    found = find_peak(_capacity(100.0, log), 1.0, SearchBounds(max_runs=3))
    assert len(log) == 3 and found.stopped_by == "runs" and found.upper is None
    assert "stopped by the run bound" in found.describe()

    def slow(qps: float) -> bool:
        time.sleep(0.05)
        return qps <= 100.0

    found = find_peak(slow, 1.0, SearchBounds(max_runs=100, max_seconds=0.12))
    assert found.stopped_by == "time" and len(found.steps) <= 4


def test_nothing_valid_is_no_peak():
    found = find_peak(_capacity(0.0), 10.0, SearchBounds(max_runs=4))
    assert found.peak is None and "no VALID load found" in found.describe()
    with pytest.raises(ValueError, match="positive number"):
        find_peak(_capacity(1.0), math.nan, SearchBounds())


@pytest.mark.parametrize(
    "long_capacity, loads",
    [
        (1019.0, [1019.0]),  # the peak holds the long run too
        (990.0, [1019.0, 968.0]),  # one back-off (whole QPS: 1019 x 0.95 = 968.05)
        (10.0, [1019.0, 968.0, 920.0]),  # three runs at most, the last at 920 INVALID
    ],
)
def test_the_confirming_run_backs_off_at_most_twice(long_capacity, loads):
    """Both backends confirm through search.confirm: a long run can fail at a load the short ones held. The
    record names the load of the last confirming run; the judge takes the peak only when that run is VALID."""
    found = SearchResult(1019.0, [Step(1000.0, True, 5.0), Step(1040.0, False, 5.0), Step(1019.0, True, 5.0)], 1040.0)
    ran: list[float] = []

    def run_full(load: float) -> bool:
        ran.append(load)
        return load <= long_capacity

    load, tries = confirm(found, run_full, quantize=whole)
    assert ran == loads and tries == len(loads) and load == loads[-1]
    record = search_record(found, "a test", 1000.0, load, tries, steps_folder="x")
    assert record["confirmed_qps"] == load and record["confirm_runs"] == tries and record["peak_qps"] == 1019.0
    assert record["steps_folder"] == "x" and record["start_qps"] == 1000.0 and record["method"] == "a test"


def test_with_no_peak_one_run_at_the_lowest_load_gives_the_case_its_logs():
    found = find_peak(_capacity(0.0), 10.0, SearchBounds(max_runs=3))
    ran: list[float] = []
    load, tries = confirm(found, lambda load: ran.append(load) or False)
    assert found.peak is None and tries == 1 and ran == [found.steps[-1].target_qps] == [load]
    assert search_record(found, "a test", 10.0, load, tries)["confirmed_qps"] is None


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"steps": [], "confirmed_qps": NaN}', "NaN"),
        ('{"steps": [], "confirmed_qps": -3}', "confirmed_qps is -3"),
        ('{"steps": "x"}', "no 'steps' list"),
        ('{"steps": [], "peak_qps": true}', "peak_qps is True"),
    ],
)
def test_a_bad_search_record_is_a_parse_error(tmp_path, text, message):
    path = tmp_path / "server_search.json"
    path.write_text(text)
    with pytest.raises(ParseError, match=message):
        read_search(path)


CONFTEST = '''
import threading, time

import numpy as np

from pytest_mlperf.backends.standin import LocalModel

LOCK = threading.Lock()


class FixedRate(LocalModel):
    """1 ms a sample, one sample at a time whatever the threads: about 1,000 samples/s."""

    name = "fixed-rate"

    def predict(self, indices):
        with LOCK:
            time.sleep(0.001 * len(indices))
        return [np.zeros(1, dtype=np.float32) for _ in indices]


def pytest_mlperf_make_sut(config, case):
    return FixedRate()
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return suite_project(tmp_path, CONFTEST, ini="-p no:cacheprovider")


def _run(project: Path, name: str, *args: str):
    cmd = [sys.executable, "-m", "pytest", "-k", "ssd-resnet34-Server-PerformanceOnly", f"--mlperf-json={name}"]
    result = run_pytest_child([*cmd, *args], project, None, timeout=900)
    records = json.loads((project / name).read_text())["results"] if (project / name).exists() else []
    return result, records


def _figure(record: dict, name: str) -> float | None:
    return next((m["value"] for m in record["metrics"] if m["name"] == name), None)


@pytest.mark.timing
@pytest.mark.quiet  # beside the other test workers the search found 174 QPS where it finds ~1,000 alone
def test_the_local_peak_matches_fixed_loads_around_it_and_repeats(project):
    """Two searches agree within 10 %; a fixed load 10 % under the peak is VALID and 15 % over it INVALID (the
    rate found by hand brackets the searched peak); the peak, its steps and the search file are reported, and
    `pytest-mlperf metrics` reads the same peak from the kept logs. (It held beside six busy loops on the two
    cores, three times of three, at the raised priority of a timing test and once without it; beside the other
    test workers, whose Python work competes with every query's, it did not.)"""
    search = ["--mlperf-server-search", "--mlperf-search-step-seconds=2", "--mlperf-duration=4"]
    first, records = _run(project, "first.json", *search, "--mlperf-output=out1")
    assert first.returncode == 0, first.stdout[-3000:]
    peak = _figure(records[0], "peak_server_qps")
    info = records[0]["info"]["server_search"]
    assert peak is not None and 500 < peak < 1100, (peak, info)
    assert {s["valid"] for s in info["steps"]} == {True, False} and info["stopped_by"] is None
    assert "peak Server load peak" in records[0]["reason"]

    second, records2 = _run(project, "second.json", *search, "--mlperf-output=out2")
    again = _figure(records2[0], "peak_server_qps")
    assert second.returncode == 0 and again is not None
    assert abs(again - peak) / peak < 0.10, (peak, again)

    below, rec_below = _run(
        project, "below.json", f"--mlperf-server-target-qps={peak * 0.9:.1f}", "--mlperf-duration=6"
    )
    above, rec_above = _run(
        project, "above.json", f"--mlperf-server-target-qps={peak * 1.15:.1f}", "--mlperf-duration=6"
    )
    assert rec_below[0]["verdict"] == "VALID", rec_below[0]["reason"]
    assert rec_above[0]["verdict"] == "INVALID", rec_above[0]["reason"]

    kept = Path(records[0]["info"]["folder"])
    assert (kept / "server_search.json").is_file()
    cli = [sys.executable, "-m", "pytest_mlperf.cli", "metrics", str(project / "out1")]
    lines = subprocess.run(cli, capture_output=True, text=True, cwd=project).stdout.splitlines()
    peaks = [json.loads(line) for line in lines if '"peak_server_qps"' in line]
    assert peaks and peaks[0]["value"] == pytest.approx(peak)


@pytest.mark.timing
@pytest.mark.quiet  # beside the other workers its runs took 177 s (85 s alone), and a gated search once held its peak
def test_a_lower_peak_is_a_throughput_regression(project):
    """The baseline gate covers the peak: a saved baseline whose peak is four times what this machine holds now (as
    before a bad roll-out) fails the case under --mlperf-fail-on=peak_server_qps:5%. (A quarter more was not
    enough: beside five other test workers on two cores the saved search itself ran a quarter low once.)"""
    search = ["--mlperf-server-search", "--mlperf-search-step-seconds=2", "--mlperf-duration=4"]
    # The baseline needs a peak that held. Beside five other busy test workers on two cores a confirming run can
    # miss the latency bound (then no peak is recorded, rightly); as a user would, save again, up to three times.
    for _ in range(3):
        saved, _ = _run(project, "base.json", *search, "--mlperf-save=peak")
        if saved.returncode == 0:
            break
    assert saved.returncode == 0, saved.stdout[-2000:]
    base = project / ".mlperf-baselines" / "peak.json"
    data = json.loads(base.read_text())
    for metric in data["results"][0]["metrics"]:
        if metric["name"] == "peak_server_qps":
            metric["value"] *= 4.0  # the node held four times more before the roll-out
    base.write_text(json.dumps(data))
    gated, _ = _run(project, "gated.json", *search, "--mlperf-baseline=peak", "--mlperf-fail-on=peak_server_qps:5%")
    assert gated.returncode == 1 and "REGRESSED vs baseline peak" in gated.stdout and "peak_server_qps" in gated.stdout


def test_the_report_shows_the_search_steps_as_a_table_and_a_chart():
    """The HTML of a searched Server case: one row per short run with LoadGen's word on it, the bound that
    stopped the search, and a chart; malformed steps are left out, the description is escaped."""
    from pytest_mlperf.report.html import metrics_table
    from pytest_mlperf.report.records import CaseRecord

    found = SearchResult(
        1019.0, [Step(1000.0, True, 5.0), Step(1500.0, False, 5.0), Step(1224.7, False, 5.0), Step(1019.0, True, 5.0)]
    )
    found.upper, found.stopped_by = 1224.7, "runs"
    search = search_record(found, "a test", 1000.0, 1019.0, 1)
    search["description"] += " <script>"
    search["steps"].append({"target_qps": "many", "valid": True})  # not a number: not drawn
    record = CaseRecord(id="x-Server-PerformanceOnly-local", verdict="VALID", info={"server_search": search})
    html = metrics_table(record)
    table = html[html.index("<table class='mlperf-search'") :]
    rows = re.findall(r"<tr><td>(\d+)</td><td[^>]*>([^<]+)</td><td>(\w+)</td></tr>", table)
    assert rows == [
        ("1", "1,000", "VALID"),
        ("2", "1,500", "INVALID"),
        ("3", "1,224.70", "INVALID"),
        ("4", "1,019", "VALID"),
    ]
    assert "(the run bound stopped it)" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "Server search: target QPS of each short run" in html and "<svg" in html
