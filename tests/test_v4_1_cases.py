"""The v4.1 cases each SKU collects: NVIDIA's v4.1 registered configs (benchmark x scenario x harness x accuracy
target x power setting) of the MLPerf suite of the system's category, read from NVIDIA's tree now, against the
ids a real pytest collection of the suites gives (a replay of an empty tree: the SKU's catalog cases, each
skipped)."""

from __future__ import annotations

import pytest

from pytest_mlperf import catalog
from pytest_mlperf.catalog import nvidia_tree_v4_1

V41 = catalog.load("inference-v4.1")
# MLCommons' submission checker, MODEL_CONFIG["v4.1"]: required-scenarios-datacenter / -edge ("resnet" there is
# the results tree's resnet50).
SUITE = {
    "datacenter": {
        **{b: {"Offline", "Server"} for b in ("resnet50", "retinanet", "stable-diffusion-xl", "mixtral-8x7b")},
        **{
            f"{b}-{level}": {"Offline", "Server"}
            for b in ("bert", "dlrm-v2", "gptj", "llama2-70b")
            for level in ("99", "99.9")
        },
        "3d-unet-99": {"Offline"},
        "3d-unet-99.9": {"Offline"},
    },
    "edge": {
        "resnet50": {"SingleStream", "MultiStream", "Offline"},
        "retinanet": {"SingleStream", "MultiStream", "Offline"},
        **{b: {"SingleStream", "Offline"} for b in ("bert-99", "3d-unet-99", "3d-unet-99.9", "gptj-99", "gptj-99.9")},
        "stable-diffusion-xl": {"SingleStream", "Offline"},
    },
}
SKUS = [sku for sku, system in V41.systems.items() if system.known_system and sku != "Orin"]  # Orin: below


@pytest.fixture(scope="module")
def registered(nvidia_tree_v41) -> list:
    return nvidia_tree_v4_1.registrations(nvidia_tree_v41)


def _expected(registered: list, system: catalog.System) -> set[str]:
    out = set()
    for reg in registered:
        if reg.known_system != system.known_system or reg.scenario not in SUITE[system.category].get(reg.benchmark, ()):
            continue
        for mode in catalog.MODES:
            out.add(
                "-".join(
                    [reg.benchmark, reg.scenario, mode, reg.harness] + ([reg.power] if reg.power != "MaxP" else [])
                )
            )
    return out


def _ids(run) -> set[str]:
    """The inference test ids of a --collect-only listing (pytest's tree form: <Function test_inference[ID]>)."""
    return {
        line.strip()[len("<Function test_inference[") : -2]
        for line in run.stdout.lines
        if "<Function test_inference[" in line
    }


@pytest.mark.parametrize("sku", SKUS)
def test_a_v41_sku_collects_nvidias_registered_configs_of_its_suite(suites, registered, sku, tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    run = suites.runpytest(
        "--sku", sku, "-m", "inference", "--mlperf-power", "all", f"--mlperf-results={empty}", "--collect-only"
    )
    ids = _ids(run)
    expected = _expected(registered, V41.system(sku))
    assert expected, sku
    assert ids == expected, (sorted(expected - ids)[:5], sorted(ids - expected)[:5])
    run.stdout.fnmatch_lines(
        [f"mlperf: round inference-v4.1 (inference-v2.0 has no case for {sku})"]
        if sku != "Orin"
        else ["mlperf: round inference-v2.0*"]
    )


def test_the_seed_orin_keeps_v20_and_asks_for_v41_by_name(suites, registered, tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    run = suites.runpytest(
        "--sku",
        "Orin",
        "--mlperf-round",
        "inference-v4.1",
        "-m",
        "inference",
        f"--mlperf-results={empty}",
        "--collect-only",
    )
    ids = _ids(run)
    maxp = {i for i in _expected(registered, V41.system("Orin")) if not i.endswith("MaxQ")}
    assert ids == maxp and any(i.startswith("gptj-99-SingleStream") for i in ids)
    run.stdout.fnmatch_lines(["mlperf: round inference-v4.1 (asked for)"])


def test_a_sku_the_round_lacks_is_refused_naming_the_rounds_that_have_it(suites):
    run = suites.runpytest("--sku", "A30x8", "--mlperf-round", "inference-v4.1")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*--mlperf-round: A30x8 has no case in inference-v4.1; it is in inference-v2.0*"])


def test_the_nvidia_backend_refuses_a_round_whose_code_it_does_not_run_yet(suites, tmp_path):
    """v4.1's cases replay and are judged; running NVIDIA's v4.1 container is not in this version: asked to, it
    says so before anything starts, naming the round, why it was chosen, and what does run."""
    run = suites.runpytest(
        "--sku", "H200-SXM-141GBx8", "--mlperf-backend", "nvidia", f"--mlperf-nvidia-code={tmp_path}"
    )
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(
        [
            "*the nvidia backend runs NVIDIA's inference-v2.0 code; this run's round is inference-v4.1 "
            "(inference-v2.0 has no case for H200-SXM-141GBx8), whose results replay with --mlperf-results DIR*"
        ]
    )
