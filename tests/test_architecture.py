"""The rooms' contracts: backend choice as a table, options that name their own flag, a backend supplied from a
user's conftest, markers from the catalog, and a header computed once under xdist."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mlperf import catalog
from pytest_mlperf.backends.choice import ChoiceError, choose_inference, choose_training
from pytest_mlperf.cli import main as cli
from pytest_mlperf.options import Options, add_gate_options, flag
from pytest_mlperf.session import Cleanup

TREE = Path("/data/results")


@pytest.mark.parametrize(
    ("given", "gpus", "system", "backend", "why"),
    [
        ({}, None, False, "local", "auto: no NVIDIA GPU (no driver)"),
        ({}, "8x NVIDIA A100", True, "local", "auto: 8x NVIDIA A100 found, but no --mlperf-nvidia-code"),
        ({"backend": "local"}, "8x NVIDIA A100", True, "local", "--mlperf-backend local"),
        ({"results": TREE}, None, False, "results", f"--mlperf-results {TREE}"),
        ({"backend": "results", "results": TREE}, None, True, "results", f"--mlperf-results {TREE}"),
        ({"nvidia_code": Path("/nv")}, "8x NVIDIA A100", True, "nvidia", ""),
        ({"backend": "nvidia", "nvidia_code": Path("/nv")}, None, True, "nvidia", ""),
        (
            {"backend": "nvidia", "training_code": Path("/t")},
            None,
            True,
            "none",
            "inference on the nvidia backend needs",
        ),
    ],
)
def test_inference_backend_choice(given, gpus, system, backend, why):
    choice = choose_inference(Options(**given), gpus, "no driver", system)
    assert choice.backend == backend and choice.why.startswith(why)


@pytest.mark.parametrize(
    ("given", "system", "message"),
    [
        ({"backend": "results"}, True, "--mlperf-backend results needs --mlperf-results DIR"),
        ({"backend": "local", "results": TREE}, True, "cannot be combined with --mlperf-backend local"),
        ({"backend": "nvidia", "nvidia_code": Path("/nv")}, False, "name it with --sku NAME or --sku auto"),
    ],
)
def test_contradicting_options_name_no_backend(given, system, message):
    with pytest.raises(ChoiceError, match=message):
        choose_inference(Options(**given), None, "no driver", system)


@pytest.mark.parametrize(
    ("given", "inference", "backend", "shared"),
    [
        ({"results": TREE}, "results", "results", True),
        ({}, "local", "local", True),
        ({"training_code": Path("/t")}, "local", "nvidia-training", False),
        ({"nvidia_code": Path("/nv")}, "nvidia", "none", False),
    ],
)
def test_training_backend_choice(given, inference, backend, shared):
    options = Options(**given)
    choice = choose_training(options, choose_inference(options, None, "no driver", True))
    assert (choice.backend, choice.shared) == (backend, shared)
    if backend == "none":
        assert choice.name == inference and "needs --mlperf-training-code DIR" in choice.why


def test_a_bad_value_names_the_flag_that_carried_it(suites, tmp_path, capsys):
    """argparse reports the value's error against the flag it came with: the CLI's own --fail-on, pytest's
    --mlperf-fail-on; the value parsers never spell a flag themselves."""
    run = tmp_path / "a.json"
    run.write_text(json.dumps({"catalog": "c", "sku": None, "results": []}))
    with pytest.raises(SystemExit) as exited:
        cli(["compare", str(run), str(run), "--fail-on", "bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --fail-on: 'bogus' is not CLASS:LIMIT (e.g. throughput:5%)" in err and "--mlperf" not in err

    result = suites.runpytest("--mlperf-fail-on=bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --mlperf-fail-on: 'bogus' is not CLASS:LIMIT (e.g. throughput:5%)*"])
    result = suites.runpytest("--mlperf-nexp=0")
    result.stderr.fnmatch_lines(["*argument --mlperf-nexp: '0': must be 1 or more*"])


def test_option_families_serve_both_faces():
    parser = argparse.ArgumentParser()
    add_gate_options(parser.add_argument, prefix="--", only=("fail_on", "expect_change"))
    args = parser.parse_args(["--fail-on", "throughput:5%,accuracy:any", "--expect-change", "vbios"])
    assert [rule.describe() for rule in args.mlperf_fail_on] == ["throughput:5%", "accuracy:any"]
    assert args.mlperf_expect_change == ("vbios",)
    assert flag("fail_on") == "--mlperf-fail-on" and flag("fail_on", prefix="--") == "--fail-on"
    assert flag("sku") == "--sku"  # the documented spelling; --mlperf-sku is the canonical one


def test_sku_has_a_canonical_name_and_keeps_the_documented_one(suites, inference_fixtures):
    for spelling in ("--mlperf-sku", "--sku"):
        result = suites.runpytest(
            "-m", "inference and rnnt", spelling, "A100-SXM-80GBx8", f"--mlperf-results={inference_fixtures}"
        )
        result.assert_outcomes(passed=4)


TOY_BACKEND = """
import json
from pathlib import Path

from pytest_mlperf.backends import Artifacts, BackendBase


class ToyBackend(BackendBase):
    '''Writes a LoadGen summary of its own for every case it is asked for: a stand-in for a lab's own runner.'''

    name = "toy"

    def __init__(self, context):
        super().__init__(context.output)
        self.catalog = context.catalog

    def cases(self, kind, catalog_cases):
        if kind != "inference":
            return []
        return [c for c in self.catalog.local_cases("Toy") if c.scenario.name == "Offline"][:2]

    def run(self, case, workdir):
        folder = self.output / case.results_dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "mlperf_log_summary.txt").write_text(SUMMARY.format(mode=case.mode))
        return Artifacts(folder, info={"toy": True})

    def describe(self):
        return "a toy backend from conftest.py"

    def identity(self):
        return {"image": "toy:1"}


def pytest_mlperf_make_backend(config, kind, options, context):
    return ToyBackend(context) if kind == "inference" else None
"""

TOY_SUMMARY = (
    "================================================\nMLPerf Results Summary\n"
    "================================================\nSUT name : Toy\nScenario : Offline\nMode     : {mode}\n"
    "Samples per second: 1234.5\nResult is : VALID\n  Min duration satisfied : Yes\n"
    "  Min queries satisfied : Yes\n  Early stopping satisfied: Yes\n"
    "================================================\nAdditional Stats\n"
    "================================================\nMin latency (ns)                : 100\n\n"
    "================================================\nTest Parameters Used\n"
    "================================================\nsamples_per_query : 1\n\n"
    "No warnings encountered during test.\n\nNo errors encountered during test.\n"
)


def test_a_conftest_supplies_a_backend_through_the_hook(suites, tmp_path):
    """A user's conftest.py supplies the inference backend through pytest_mlperf_make_backend: the suites run
    on it, the header names it, its identity reaches the fingerprint, and training keeps the plugin's choice."""
    suites.makeconftest(TOY_BACKEND + f"\nSUMMARY = {TOY_SUMMARY!r}\n")
    out = tmp_path / "out"
    result = suites.runpytest("-m", "inference and performance", f"--mlperf-output={out}", "--mlperf-json=t.json")
    # deselected: the accuracy case, the ten local training trials and their score
    result.assert_outcomes(passed=1, deselected=12)
    result.stdout.fnmatch_lines(
        [
            "mlperf: backend toy (supplied by a conftest (pytest_mlperf_make_backend); a toy backend from conftest.py)",
            "mlperf: training backend local (*",
            "VALID*bert-99-Offline-PerformanceOnly-local*",
        ]
    )
    data = json.loads((suites.path / "t.json").read_text())
    assert data["backend"] == "toy" and data["fingerprint"]["image"] == "toy:1"
    record = data["results"][0]
    assert record["backend"] == "toy" and record["info"]["toy"] is True
    assert record["metrics"][1] == {
        "name": "result_samples_per_second",
        "value": 1234.5,
        "unit": "samples/s",
        "higher_is_better": True,
        "metadata": {},
    }
    assert (out / "Toy_Local" / "bert-99" / "Offline" / "performance" / "run_1" / "mlperf_log_summary.txt").exists()


def test_markers_come_from_the_catalog(suites):
    """Every marker a case can carry is registered from the catalog's own entries, with --strict-markers on."""
    cat = catalog.load()
    names = {
        m
        for b in cat.benchmarks.values()
        for m in catalog.InferenceCase("S", b, cat.scenario("Offline"), "AccuracyOnly", "custom").markers
    }
    assert names <= set(cat.marker_help)
    result = suites.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.ssd_resnet34: SSD-ResNet34 object detection (ssd-resnet34)*"])


COUNTING = """
import os
from pytest_mlperf.gate import fingerprint

_real = fingerprint.fingerprint


def counting(*args, **kwargs):
    with open(os.environ["FINGERPRINTS"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    return _real(*args, **kwargs)


fingerprint.fingerprint = counting
"""


def test_under_xdist_the_header_is_computed_once(suites, inference_fixtures, tmp_path, monkeypatch):
    """The controller reads NVML, git and Docker for the fingerprint once and hands the header to its workers."""
    counted = tmp_path / "fingerprints.txt"
    monkeypatch.setenv("FINGERPRINTS", str(counted))
    suites.makeconftest(COUNTING)
    result = suites.runpytest_subprocess(
        "-n", "2", "-m", "inference and rnnt", "--sku", "A100-SXM-80GBx8", f"--mlperf-results={inference_fixtures}"
    )
    result.assert_outcomes(passed=4)
    assert len(counted.read_text().splitlines()) == 1


EXITING = """
import sys
from pytest_mlperf.session import Cleanup

cleanup = Cleanup(lambda: print("closed at exit"))
cleanup.install()
cleanup.install()
if sys.argv[1] == "restore":
    cleanup.restore()
"""


def test_clean_up_is_installed_once_and_restored_at_the_end():
    """SIGTERM unwinds like Ctrl-C while a backend holds containers or jobs; the handler and the atexit hook go
    in once, however often asked, and come out at the end (the previous handler back, nothing left to run)."""
    before = signal.getsignal(signal.SIGTERM)
    cleanup = Cleanup(lambda: None)
    cleanup.install()
    cleanup.install()
    assert signal.getsignal(signal.SIGTERM) is not before
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    cleanup.restore()
    assert signal.getsignal(signal.SIGTERM) is before
    for how, said in (("keep", "closed at exit\n"), ("restore", "")):
        run = subprocess.run([sys.executable, "-c", EXITING, how], capture_output=True, text=True, check=True)
        assert run.stdout == said  # once, not twice; nothing after restore()
