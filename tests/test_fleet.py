"""Fleet runs through Slurm, against the real Slurm cluster these tests start on this machine (munged, slurmctld,
eight slurmd on loopback): the controller submits one exclusive job per node with sbatch, each job runs the real
pytest-mlperf on its node (a replay of the published fixtures: eight nodes share two cores here, so the verdicts
must not depend on load), and the controller turns what each node wrote into tests of its own.

What differs between nodes is scripted by a conftest.py in the test project, read on each node through Slurm's
SLURMD_NODENAME: a node made slow has its throughput figures scaled down (through the plugin's
pytest_mlperf_result hook, as a slow card would measure), a node made to hang sleeps at its session's start (so
it can be lost, cancelled or run past its time limit while its job runs), a node made to vanish exits before it
writes its results. These are the stand-ins at the boundary; Slurm, sbatch, squeue, scontrol, scancel and the
nodes' pytest are real."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from slurm_cluster import root_cluster

from conftest import ROOT, run_pytest_child, suite_project
from pytest_mlperf.fleet import CONTROLLER_FLAGS, FleetCase, NodeCase, fleet_selection, node_arguments

SKU = "A100-SXM-80GBx8"
SELECT = "inference and rnnt and offline"  # two cases: rnnt Offline AccuracyOnly and PerformanceOnly, custom
PERF = "rnnt-Offline-PerformanceOnly-custom"
ACC = "rnnt-Offline-AccuracyOnly-custom"
NODES = [f"n{i}" for i in range(1, 9)]

CONFTEST = """
import json, os, time
from dataclasses import replace
from pathlib import Path

import pytest

NODE = os.environ.get("SLURMD_NODENAME")  # set on a fleet node (by slurmd), never on the controller
FAULTS = json.loads((Path(__file__).parent / "faults.json").read_text())


def pytest_sessionstart(session):
    seconds = FAULTS.get("sleep", {}).get(NODE)
    if seconds:
        time.sleep(seconds)


def pytest_mlperf_result(config, case, result):
    factor = FAULTS.get("slow", {}).get(NODE)
    if factor:
        result.metrics[:] = [replace(m, value=m.value * factor) if m.unit.endswith("/s") else m for m in result.metrics]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if NODE in FAULTS.get("vanish", []):
        os._exit(0)  # the job ends well, and no results file is written
"""


@pytest.fixture(scope="module")
def slurm():
    yield from root_cluster("mlperf-fleet")


def _project(tmp_path: Path, faults: dict) -> Path:
    project = suite_project(tmp_path, CONFTEST)
    (project / "faults.json").write_text(json.dumps(faults))
    return project


def _controller(slurm, project: Path, fixtures: Path, *args: str, nodes: str = "n[1-8]", background: bool = False):
    argv = [sys.executable, "-m", "pytest", "-m", SELECT, "--sku", SKU, f"--mlperf-results={fixtures}"]
    argv += ["--mlperf-fleet", "slurm", "--mlperf-fleet-nodes", nodes, "--mlperf-json=fleet.json", "-rA", *args]
    env = {**os.environ, "SLURM_CONF": str(slurm.conf)}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return run_pytest_child(argv, project, env, background=background, timeout=600)


def _outcomes(out: str) -> dict[str, str]:
    return dict((m[2], m[1]) for m in re.finditer(r"^(PASSED|FAILED|SKIPPED|ERROR) \S+?\[(\S+?)\]", out, re.M))


def _records(project: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads((project / "fleet.json").read_text())["results"]}


def _wait_running(slurm, node: str, timeout: float = 120) -> str:
    """The job id of the fleet job RUNNING on node."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = slurm.run("squeue", "--noheader", "--format=%i|%T|%N|%j").stdout
        for line in out.splitlines():
            job, state, where, name = line.split("|")
            if state == "RUNNING" and where == node and name.startswith("pytest-mlperf-fleet-"):
                return job
        time.sleep(0.3)
    raise AssertionError(f"no fleet job RUNNING on {node} within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    """A controller a failed test leaves running is stopped as a scheduler stops it (SIGTERM: it cancels its
    jobs), not killed (its jobs would stay queued)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _assert_clean(slurm) -> None:
    assert slurm.jobs() == [], f"jobs left in the queue: {slurm.jobs()}"


# ---- the acceptance run: eight nodes, one slow, one lost mid-run ----------------------------------------------
def test_eight_nodes_one_slow_one_lost(slurm, tmp_path, inference_fixtures):
    """8 nodes x 2 cases node tests plus 2 fleet tests: n3 (scaled to 70 %) is flagged by the performance case's
    fleet test, n5 is set DOWN while its job runs and its tests name NODE_FAIL; the other nodes pass."""
    project = _project(tmp_path, {"slow": {"n3": 0.7}, "sleep": {"n5": 300}})
    html = project / "report.html"
    proc = _controller(slurm, project, inference_fixtures, "--junitxml=junit.xml", f"--html={html}", background=True)
    try:
        _wait_running(slurm, "n5")
        slurm.set_state("n5", "down", "lost in test")
        out, _ = proc.communicate(timeout=300)
    finally:
        _stop(proc)
        slurm.reset_nodes()
    outcomes = _outcomes(out)
    assert len(outcomes) == 8 * 2 + 2, out
    for node in NODES:
        want = "FAILED" if node == "n5" else "PASSED"
        assert outcomes[f"{PERF}@{node}"] == want and outcomes[f"{ACC}@{node}"] == want, (node, out)
    assert outcomes[f"{PERF}@fleet"] == "FAILED" and outcomes[f"{ACC}@fleet"] == "PASSED"
    assert "SLOW NODES: n3 30.0% behind" in out
    assert re.search(r"n5: Slurm job \d+ ended NODE_FAIL \(exit [^)]*\): a node of the job was lost on n5", out), out
    assert proc.returncode == 1
    _assert_clean(slurm)

    records = _records(project)
    assert len(records) == 18
    n3 = records[f"{PERF}@n3"]
    assert n3["verdict"] == "VALID" and n3["info"]["fleet"]["node"] == "n3" and n3["info"]["fleet"]["slurm_state"]
    median = records[f"{PERF}@n1"]["metrics"][1]["value"]
    assert n3["metrics"][1]["value"] == pytest.approx(median * 0.7)
    assert records[f"{PERF}@n5"]["outcome"] == "failed" and records[f"{PERF}@n5"]["info"]["fleet"]["slurm_state"] == (
        "NODE_FAIL"
    )
    fleet = json.loads((project / "fleet.json").read_text())
    assert fleet["fleet"]["nodes"]["n5"]["slurm_state"] == "NODE_FAIL"
    peers = fleet["peers"][0]
    assert peers["kind"] == "node" and peers["order"][:2] == ["n5", "n3"] and list(peers["slow"]) == ["n3"]

    # the node's verdict, reason and metrics as JUnit properties of its own test
    suite = ElementTree.parse(project / "junit.xml").getroot()
    case = next(c for c in suite.iter("testcase") if c.get("name").endswith(f"[{PERF}@n3]"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["mlperf:node"] == "n3" and props["mlperf:verdict"] == "VALID" and "mlperf:slurm_job" in props
    assert float(props["result_samples_per_second"]) == pytest.approx(median * 0.7)
    lost = next(c for c in suite.iter("testcase") if c.get("name").endswith(f"[{PERF}@n5]"))
    assert {p.get("name"): p.get("value") for p in lost.iter("property")}["mlperf:slurm_state"] == "NODE_FAIL"

    # the report: the per-node table, outliers first
    page = html.read_text()
    table = page[page.index("MLPerf Fleet nodes") :]
    assert table.index(">n5<") < table.index(">n3<") < table.index(">n1<")

    # each node wrote its own JSON, JUnit and logs into the shared run folder
    run = Path(fleet["fleet"]["folder"])
    for node in NODES:
        if node != "n5":
            assert (run / node / "results.json").is_file() and (run / node / "junit.xml").is_file()


# ---- faults -------------------------------------------------------------------------------------------------
def test_down_drained_and_unknown_nodes_get_no_job(slurm, tmp_path, inference_fixtures):
    project = _project(tmp_path, {})
    slurm.set_state("n2", "down", "down in test")
    slurm.set_state("n4", "drain", "drained in test")
    try:
        result = _controller(slurm, project, inference_fixtures, nodes="n[1-4]")
    finally:
        slurm.reset_nodes()
    outcomes = _outcomes(result.stdout)
    assert outcomes[f"{PERF}@n1"] == outcomes[f"{PERF}@n3"] == "PASSED", result.stdout[-4000:]
    assert outcomes[f"{PERF}@n2"] == outcomes[f"{PERF}@n4"] == "FAILED", result.stdout[-4000:]
    assert "node n2 is down (sinfo): no job submitted" in result.stdout
    assert re.search(r"node n4 is drain\w* \(sinfo\): no job submitted", result.stdout)
    assert "submitted 2 of 4 node jobs" in result.stdout
    _assert_clean(slurm)

    unknown = _controller(slurm, project, inference_fixtures, nodes="n1,n9")
    assert unknown.returncode == 4 and "--mlperf-fleet-nodes n1,n9" in unknown.stderr or "n9" in unknown.stdout


def test_job_cancelled_from_outside(slurm, tmp_path, inference_fixtures):
    project = _project(tmp_path, {"sleep": {"n2": 300}})
    proc = _controller(slurm, project, inference_fixtures, nodes="n[1-2]", background=True)
    try:
        job = _wait_running(slurm, "n2")
        slurm.run("scancel", job)
        out, _ = proc.communicate(timeout=300)
    finally:
        _stop(proc)
    outcomes = _outcomes(out)
    assert outcomes[f"{PERF}@n1"] == "PASSED" and outcomes[f"{PERF}@n2"] == "FAILED"
    assert f"n2: Slurm job {job} ended CANCELLED" in out and "the job was cancelled" in out
    assert "fewer than two nodes have a figure" in out  # the fleet tests skip: one node is no fleet
    _assert_clean(slurm)


def test_job_past_its_time_limit(slurm, tmp_path, inference_fixtures):
    project = _project(tmp_path, {"sleep": {"n2": 600}})
    result = _controller(slurm, project, inference_fixtures, "--mlperf-fleet-walltime=1", nodes="n[1-2]")
    assert re.search(r"n2: Slurm job \d+ ended TIMEOUT .*the job ran past its walltime", result.stdout), result.stdout
    assert _outcomes(result.stdout)[f"{PERF}@n1"] == "PASSED"
    _assert_clean(slurm)


def test_a_node_whose_results_folder_stays_empty(slurm, tmp_path, inference_fixtures):
    project = _project(tmp_path, {"vanish": ["n2"]})
    result = _controller(slurm, project, inference_fixtures, nodes="n[1-2]")
    assert re.search(r"n2: job \d+ on n2 ended COMPLETED but wrote no \S+/n2/results.json", result.stdout)
    assert _outcomes(result.stdout)[f"{ACC}@n2"] == "FAILED"
    _assert_clean(slurm)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_cancels_every_job(slurm, tmp_path, inference_fixtures, signum):
    project = _project(tmp_path, {"sleep": {node: 300 for node in NODES}})
    proc = _controller(slurm, project, inference_fixtures, background=True)
    try:
        for node in NODES:
            _wait_running(slurm, node)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        _stop(proc)
    assert proc.returncode != 0 and "KeyboardInterrupt" in out
    _assert_clean(slurm)


def test_fleet_baseline_gates_each_node(slurm, tmp_path, inference_fixtures):
    """--mlperf-save keeps every node's records and the fleet's; a later run with --mlperf-baseline holds each
    node to its own record: the node that slowed down regresses, the others do not."""
    project = _project(tmp_path, {})
    saved = _controller(slurm, project, inference_fixtures, "--mlperf-save=fleet-before", nodes="n[1-3]")
    assert saved.returncode == 0, saved.stdout
    (project / "faults.json").write_text(json.dumps({"slow": {"n2": 0.9}}))
    gated = _controller(
        slurm,
        project,
        inference_fixtures,
        "--mlperf-baseline=fleet-before",
        "--mlperf-fail-on=throughput:5%",
        nodes="n[1-3]",
    )
    outcomes = _outcomes(gated.stdout)
    assert outcomes[f"{PERF}@n2"] == "FAILED" and outcomes[f"{PERF}@n1"] == outcomes[f"{PERF}@n3"] == "PASSED"
    assert "REGRESSED vs baseline fleet-before" in gated.stdout
    assert outcomes[f"{PERF}@fleet"] == "FAILED"  # and n2, 10 % below the other two, is behind their median
    _assert_clean(slurm)


# ---- without a cluster --------------------------------------------------------------------------------------
def test_node_arguments_drop_what_the_controller_keeps():
    args = [
        "suites/test_inference.py::test_inference[x]",
        "-m",
        "inference",
        "-kbert",
        "--sku",
        SKU,
        "-n",
        "8",
        "--junitxml=j.xml",
        "--html",
        "r.html",
        "--mlperf-json",
        "f.json",
        "--mlperf-fleet=slurm",
        "--mlperf-fleet-nodes",
        "n[1-8]",
        "--mlperf-save",
        "base",
        "--mlperf-duration=smoke",
        "-p",
        "no:randomly",
    ]
    positional = {"suites/test_inference.py::test_inference[x]"}
    assert node_arguments(args, positional) == [
        "suites/test_inference.py",
        "--sku",
        SKU,
        "-n",
        "8",
        "--mlperf-duration=smoke",
        "-p",
        "no:randomly",
    ]
    assert "--mlperf-fleet" in CONTROLLER_FLAGS and "--mlperf-each-gpu" not in CONTROLLER_FLAGS


def test_each_node_gets_the_cases_its_selected_tests_need():
    class Case:
        def __init__(self, case_id):
            self.id = case_id

    a, b = Case("a"), Case("b")
    picked = [NodeCase(a, "n1"), NodeCase(b, "n2"), FleetCase(b, ("n1", "n2", "n3"))]
    assert fleet_selection(picked) == {"n1": ["a", "b"], "n2": ["b"], "n3": ["b"]}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mlperf-fleet", "slurm"], "--mlperf-fleet slurm needs --mlperf-fleet-nodes HOSTLIST"),
        (["--mlperf-fleet", "slurm", "--mlperf-fleet-nodes", "n1", "--mlperf-each-gpu"], "--mlperf-each-gpu with"),
        (["--mlperf-fleet-nodes", "n 1"], "expected a Slurm host list"),
        (["--mlperf-spread", "1.5"], "must be a fraction above 0 and below 1"),
    ],
)
def test_fleet_usage_errors(suites, inference_fixtures, args, message):
    result = suites.runpytest(f"--mlperf-results={inference_fixtures}", "--sku", SKU, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_training_trials_and_scores_per_node(slurm, tmp_path, training_fixtures):
    """The training suite through a fleet: each node's trials and its MLPerf score become tests of their own,
    and the scores are compared across nodes."""
    project = _project(tmp_path, {})
    (project / "test_training.py").write_text((ROOT / "suites" / "test_training.py").read_text())
    tree = training_fixtures / "dgxa100_ngc22.09_pytorch"
    argv = [sys.executable, "-m", "pytest", "-m", "training", f"--mlperf-results={tree}", "test_training.py"]
    argv += ["--mlperf-fleet=slurm", "--mlperf-fleet-nodes=n[1-2]", "--mlperf-json=fleet.json", "-rA"]
    result = subprocess.run(
        argv,
        cwd=project,
        env={**os.environ, "SLURM_CONF": str(slurm.conf)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcomes = _outcomes(result.stdout)
    score = "bert-1x8x56x1-dgxa100_ngc22.09_pytorch"
    assert outcomes[f"{score}@n1"] == outcomes[f"{score}@n2"] == outcomes[f"{score}@fleet"] == "PASSED", result.stdout
    assert outcomes["bert-1x8x56x1-result_0@n2"] == "PASSED"
    records = _records(project)
    assert records[f"{score}@n1"]["verdict"] == "SCORED" and records[f"{score}@fleet"]["verdict"] == "FLEET OK"
    _assert_clean(slurm)
