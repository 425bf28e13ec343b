"""NVIDIA's v4.1 tree (../shared/upstream) read by nvidia_tree_v4_1: what its configs register for the v4.1
catalog's systems, checked against a table read by hand; nvidia_v4_1.json against what the refresh tool reads now;
every published case against the registrations; and the file and line named when a file has another shape.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT
from pytest_mlperf.catalog import load, split_system_name
from pytest_mlperf.catalog import nvidia_tree as v20
from pytest_mlperf.catalog import nvidia_tree_v4_1 as tree_mod

ROUND = "inference-v4.1"
C, L, T, TU = "custom", "lwis", "triton", "triton_unified"


@pytest.fixture(scope="module")
def regs(nvidia_tree_v41) -> list:
    return tree_mod.registrations(nvidia_tree_v41)


@pytest.fixture(scope="module")
def registered(regs) -> dict:
    return v20.matrix(regs)


def _tool():
    spec = importlib.util.spec_from_file_location(
        "refresh_nvidia_catalog", ROOT / "tools" / "refresh_nvidia_catalog.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _pairs(*items: str) -> list[list[str]]:
    """ "custom/MaxP" ... -> the matrix's sorted [harness, power] pairs."""
    return sorted(item.split("/") for item in items)


# Read by hand from configs/ (see the class names and decorators at each file's lines): benchmark -> scenario ->
# the [harness, power] pairs registered for the system.
HAND_CHECKED = {
    "H100_SXM_80GBx8": {
        "3d-unet-99": {"Offline": _pairs(f"{C}/MaxP", f"{C}/MaxQ", f"{T}/MaxP")},
        "3d-unet-99.9": {"Offline": _pairs(f"{C}/MaxP", f"{C}/MaxQ", f"{T}/MaxP")},
        "bert-99.9": {"Server": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},
        "llama2-70b-99.9": {"Server": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},  # class H100_SXM_80GB_TP2x4_*
        "mixtral-8x7b": {"Offline": _pairs(f"{C}/MaxP"), "Server": _pairs(f"{C}/MaxP")},
        "resnet50": {"Offline": _pairs(f"{L}/MaxP", f"{L}/MaxQ", f"{T}/MaxP")},
        "stable-diffusion-xl": {"Server": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},
    },
    "H200_SXM_141GBx8": {
        "3d-unet-99": {"Offline": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},
        "llama2-70b-99": {"Offline": _pairs(f"{C}/MaxP", f"{C}/MaxQ", f"{T}/MaxP")},
        "mixtral-8x7b": {"Server": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},
        "resnet50": {"Server": _pairs(f"{L}/MaxP", f"{L}/MaxQ")},
        "stable-diffusion-xl": {"Server": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},  # one class name, defined twice
    },
    "Orin": {
        "3d-unet-99.9": {"SingleStream": _pairs(f"{C}/MaxP", f"{C}/MaxQ")},
        "bert-99": {"Offline": _pairs(f"{C}/MaxP", f"{C}/MaxQ", f"{T}/MaxP", f"{TU}/MaxP")},
        "gptj-99.9": {"Offline": _pairs(f"{C}/MaxP"), "SingleStream": _pairs(f"{C}/MaxP")},
        "retinanet": {"MultiStream": _pairs(f"{L}/MaxP", f"{L}/MaxQ", f"{T}/MaxP")},
        "stable-diffusion-xl": {"SingleStream": _pairs(f"{C}/MaxP")},
    },
}
ALL_14 = {
    "3d-unet-99",
    "3d-unet-99.9",
    "bert-99",
    "bert-99.9",
    "dlrm-v2-99",
    "dlrm-v2-99.9",
    "gptj-99",
    "gptj-99.9",
    "llama2-70b-99",
    "llama2-70b-99.9",
    "mixtral-8x7b",
    "resnet50",
    "retinanet",
    "stable-diffusion-xl",
}


@pytest.mark.parametrize("known", sorted(HAND_CHECKED))
def test_registrations_match_the_hand_checked_table(registered, known):
    for bench, scenarios in HAND_CHECKED[known].items():
        for scenario, pairs in scenarios.items():
            assert registered[known][bench][scenario] == pairs, (known, bench, scenario)


def test_what_each_system_registers_and_what_it_does_not(nvidia_tree_v41, regs, registered):
    """The shape of each spot-checked system's registrations: the x8 datacenter systems have all 14 benchmarks
    and no SingleStream or MultiStream, Orin has no 99.9 BERT nor any datacenter-only model; the per-harness
    totals are the survey's."""
    assert set(registered["H100_SXM_80GBx8"]) == set(registered["H200_SXM_141GBx8"]) == ALL_14
    for known in ("H100_SXM_80GBx8", "H200_SXM_141GBx8"):
        assert {s for sc in registered[known].values() for s in sc} == {"Offline", "Server"}, known
    assert set(registered["H200_SXM_141GBx8"]["3d-unet-99"]) == {"Offline"}
    assert set(registered["Orin"]) == {
        "3d-unet-99",
        "3d-unet-99.9",
        "bert-99",
        "gptj-99",
        "gptj-99.9",
        "resnet50",
        "retinanet",
        "stable-diffusion-xl",
    }
    assert Counter(r.harness for r in regs) == {C: 568, T: 301, L: 198, TU: 151, "hetero": 48}
    assert tree_mod.harness_names(nvidia_tree_v41) == {
        "Custom": C,
        "LWIS": L,
        "Triton": T,
        "TritonUnified": TU,
        "HeteroMIG": "hetero",
    }
    names = tree_mod.benchmark_names(nvidia_tree_v41)
    assert {n for ns in names.values() for n in ns} == ALL_14
    assert set(names) == set(tree_mod.MODELS)


def test_a_class_name_defined_twice_registers_both(regs):
    """stable-diffusion-xl Server's H200_SXM_141GBx8 is MaxP at line 95 and MaxQ at 103 (based on the first);
    3d-unet SingleStream's Orin_NX_HighAccuracy is MaxP at 520 (on Orin_NX) and MaxQ at 525 (on Orin_NX_MaxQ)."""
    sdxl = {
        r.source: r
        for r in regs
        if r.config_class == "H200_SXM_141GBx8" and (r.model, r.scenario) == ("stable-diffusion-xl", "Server")
    }
    assert sorted(sdxl) == [f"configs/stable-diffusion-xl/Server/__init__.py:{n}" for n in (103, 95)]
    maxp, maxq = (sdxl[f"configs/stable-diffusion-xl/Server/__init__.py:{n}"] for n in (95, 103))
    assert (maxp.power, maxq.power) == ("MaxP", "MaxQ")
    assert maxp.known_system == maxq.known_system == "H200_SXM_141GBx8"
    assert (maxp.fields["server_target_qps"], maxq.fields["server_target_qps"]) == (16.9, 13)
    assert "power_limit" not in maxp.fields and maxq.fields["power_limit"] == 450
    assert maxq.fields["sdxl_batcher_time_limit"] == 5  # inherited from the MaxP definition, not from x1's 3
    unet = [
        (r.source, r.power, r.level, r.known_system)
        for r in regs
        if r.config_class == "Orin_NX_HighAccuracy" and (r.model, r.scenario) == ("3d-unet", "SingleStream")
    ]
    assert unet == [
        ("configs/3d-unet/SingleStream/__init__.py:520", "MaxP", "99.9", "Orin_NX"),
        ("configs/3d-unet/SingleStream/__init__.py:525", "MaxQ", "99.9", "Orin_NX"),
    ]


def test_fields_computed_from_other_classes(regs):
    """`offline_expected_qps = GH200_144GB_aarch64x1.offline_expected_qps * 2` (llama2-70b Offline) is evaluated,
    not left at the base's value; a field set to None unsets the base's."""
    qps = {
        r.config_class: r.fields["offline_expected_qps"]
        for r in regs
        if (r.model, r.scenario) == ("llama2-70b", "Offline") and r.config_class.startswith("GH200_144GB_aarch64x")
    }
    assert qps["GH200_144GB_aarch64x2"] == 2 * qps["GH200_144GB_aarch64x1"] == 29
    bert = next(r for r in regs if r.source == "configs/bert/Server/__init__.py:103")
    assert bert.fields["gpu_batch_size"] == {"bert": 512} and bert.benchmark == "bert-99.9"
    resnet = {r.config_class: r for r in regs if (r.model, r.scenario) == ("resnet50", "Offline")}
    assert "numa_config" in resnet["A100_PCIe_80GBx8"].fields  # its MaxQ class sets it to None (line 228)
    assert "numa_config" not in resnet["A100_PCIe_80GBx8_MaxQ"].fields


def test_built_in_catalog_is_the_tree(nvidia_tree_v41):
    """nvidia_v4_1.json is what tools/refresh_nvidia_catalog.py --round inference-v4.1 reads from the tree."""
    cat = load(ROUND)
    written = json.dumps(_tool().catalog_data_v4_1(nvidia_tree_v41, cat), indent=1, sort_keys=True) + "\n"
    packaged_text = (ROOT / "pytest_mlperf" / "catalog" / "nvidia_v4_1.json").read_text()
    assert packaged_text == written
    packaged = json.loads(packaged_text)
    known = {s.known_system for s in cat.systems.values() if s.known_system}
    assert set(packaged["matrix"]) == known and all(packaged["matrix"].values())
    ids = {s.system_id for s in cat.systems.values()}
    assert {split_system_name(name)[0] for name in packaged["published"]} <= ids
    assert packaged["published"]["B200-SXM-180GBx1_TRT"]  # published, though NVIDIA's code has no KnownSystem
    assert packaged["published_tokens"]["H200-SXM-141GBx8_TRT"]["llama2-70b-99"]["Offline"] > 0
    assert "resnet50" not in packaged["published_tokens"]["H200-SXM-141GBx8_TRT"]
    assert packaged["system_types"]["Orin_TRT"] == "edge"
    assert packaged["mlperf_conf"]["MultiStream"]["min_query_count"] == 662


def test_every_published_case_is_registered(nvidia_tree_v41):
    """results/<system>/<benchmark>/<Scenario> of each system with a KnownSystem is a registered case of that
    system, for the harness and power its name says (_Triton, _MaxQ; otherwise the benchmark's default)."""
    cat = load(ROUND)
    matrix = json.loads((ROOT / "pytest_mlperf" / "catalog" / "nvidia_v4_1.json").read_text())["matrix"]
    checked, missing = 0, []
    for case in sorted((nvidia_tree_v41 / "results").glob("*/*/*")):
        if not case.is_dir():
            continue
        system_id, harness, power = split_system_name(case.parent.parent.name)
        system = cat.system_by_id(system_id)
        if system is None or not system.known_system:
            continue
        bench, scenario = case.parent.name, case.name
        harness = harness or cat.benchmark(bench).default_harness
        checked += 1
        if [harness, power] not in matrix[system.known_system].get(bench, {}).get(scenario, []):
            missing.append((case.relative_to(nvidia_tree_v41).as_posix(), harness, power))
    assert not missing
    assert checked == 104  # the 108 published cases but B200's 4


# ---- files of another shape ---------------------------------------------------------------------------------------


def _checkout(tree: Path, folder: Path, model: str, scenario: str) -> Path:
    """A checkout holding constants.py and one benchmark's base and scenario files, copied from the tree."""
    code = folder / "closed-NVIDIA"
    (code / "code" / "common").mkdir(parents=True)
    shutil.copy(tree / tree_mod.CONSTANTS, code / tree_mod.CONSTANTS)
    (code / "configs" / model / scenario).mkdir(parents=True)
    shutil.copy(tree / "configs" / model / "__init__.py", code / "configs" / model / "__init__.py")
    shutil.copy(
        tree / "configs" / model / scenario / "__init__.py", code / "configs" / model / scenario / "__init__.py"
    )
    return code


def _line(text: str, fragment: str) -> int:
    return text.splitlines().index(fragment) + 1


BROKEN = [
    # (what is replaced, by what, the line named (by its text after the change), the message)
    (
        "    system = KnownSystem.H200_SXM_141GBx1\n",
        "",
        "class H200_SXM_141GBx1(ServerGPUBaseConfig):",
        "H200_SXM_141GBx1 is registered but names no KnownSystem",
    ),
    (
        "class ServerGPUBaseConfig(GPUBaseConfig):",
        "class ServerGPUBaseConfig(BaseConfig):",
        "class ServerGPUBaseConfig(BaseConfig):",
        "ServerGPUBaseConfig's base BaseConfig is not a class this file binds",
    ),
    (
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99, PowerSetting.MaxQ)\n"
        "class H200_SXM_141GBx8(H200_SXM_141GBx8):",
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99_9, PowerSetting.MaxQ)\n"
        "class H200_SXM_141GBx8(H200_SXM_141GBx8):",
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99_9, PowerSetting.MaxQ)",
        "k_99_9 for stable-diffusion-xl, which G_HIGH_ACC_ENABLED_BENCHMARKS does not list",
    ),
    (
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99, PowerSetting.MaxQ)\n"
        "class H200_SXM_141GBx8(H200_SXM_141GBx8):",
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99, PowerSetting.MaxP)\n"
        "class H200_SXM_141GBx8(H200_SXM_141GBx8):",
        "class H200_SXM_141GBx8(H200_SXM_141GBx8):",
        "H200_SXM_141GBx8 registers the same case as configs/stable-diffusion-xl/Server/__init__.py:95",
    ),
    (
        'GPUBaseConfig = import_module("configs.stable-diffusion-xl").GPUBaseConfig',
        'GPUBaseConfig = import_module("configs.gptj").GPUBaseConfig',
        'GPUBaseConfig = import_module("configs.gptj").GPUBaseConfig',
        "imports configs.gptj; a stable-diffusion-xl config reads configs.stable-diffusion-xl",
    ),
    (
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99, PowerSetting.MaxP)\n"
        "class L40Sx1(ServerGPUBaseConfig):",
        "@ConfigRegistry.register(HarnessType.Bogus, AccuracyTarget.k_99, PowerSetting.MaxP)\n"
        "class L40Sx1(ServerGPUBaseConfig):",
        "@ConfigRegistry.register(HarnessType.Bogus, AccuracyTarget.k_99, PowerSetting.MaxP)",
        "unknown workload setting Bogus, k_99, MaxP",
    ),
]


@pytest.mark.parametrize("old, new, line_text, message", BROKEN, ids=lambda v: "")
def test_a_broken_config_file_is_named(nvidia_tree_v41, tmp_path, old, new, line_text, message):
    code = _checkout(nvidia_tree_v41, tmp_path, "stable-diffusion-xl", "Server")
    path = code / "configs" / "stable-diffusion-xl" / "Server" / "__init__.py"
    text = path.read_text()
    assert text.count(old) == 1
    text = text.replace(old, new)
    path.write_text(text)
    line = _line(text, line_text)
    with pytest.raises(tree_mod.TreeError) as caught:
        tree_mod.registrations(code, ("stable-diffusion-xl",))
    assert str(caught.value) == f"configs/stable-diffusion-xl/Server/__init__.py:{line}: {message}"


def test_a_checkout_without_constants_or_with_unreadable_python_is_named(nvidia_tree_v41, tmp_path):
    code = _checkout(nvidia_tree_v41, tmp_path, "stable-diffusion-xl", "Server")
    (code / "configs" / "stable-diffusion-xl" / "Server" / "__init__.py").write_text("class broken(:\n")
    with pytest.raises(tree_mod.TreeError, match=r"Server/__init__.py: cannot be read as Python"):
        tree_mod.registrations(code, ("stable-diffusion-xl",))
    (code / tree_mod.CONSTANTS).unlink()
    with pytest.raises(tree_mod.TreeError, match=r"code/common/constants.py: missing"):
        tree_mod.registrations(code, ("stable-diffusion-xl",))


def _measurements(tree: Path, code: Path, cases: list[str]) -> list[Path]:
    conf = tree / "measurements" / "Orin_TRT" / "gptj-99" / "SingleStream" / "mlperf.conf"
    out = []
    for case in cases:
        (code / "measurements" / case).mkdir(parents=True)
        out.append(Path(shutil.copy(conf, code / "measurements" / case / "mlperf.conf")))
    return out


def test_the_rounds_rules_from_every_copy(nvidia_tree_v41, tmp_path):
    """Copies that agree give the v4.1 rules; two that differ are both named; a case folder without one, or a
    line of another shape, is named too."""
    rules = tree_mod.mlperf_conf(nvidia_tree_v41)
    assert rules["MultiStream"] == {
        "min_duration": 600000,
        "min_query_count": 662,
        "samples_per_query": 8,
        "target_latency": 80,
        "target_latency_percentile": 99,
    }
    assert rules["Server"]["target_latency_percentile"] == 99 and rules["SingleStream"]["min_duration"] == 600000
    code = tmp_path / "closed-NVIDIA"
    first, second = _measurements(nvidia_tree_v41, code, ["A_TRT/gptj-99/Offline", "B_TRT/gptj-99/Server"])
    assert tree_mod.mlperf_conf(code) == rules
    second.write_text(
        second.read_text().replace("*.MultiStream.samples_per_query = 8", "*.MultiStream.samples_per_query = 9")
    )
    with pytest.raises(tree_mod.TreeError) as caught:
        tree_mod.mlperf_conf(code)
    assert str(caught.value) == (
        "measurements/B_TRT/gptj-99/Server/mlperf.conf differs from measurements/A_TRT/gptj-99/Offline/mlperf.conf"
    )
    second.unlink()
    with pytest.raises(tree_mod.TreeError, match=r"B_TRT/gptj-99/Server/mlperf.conf: cannot be read"):
        tree_mod.mlperf_conf(code)
    second.write_text(first.read_text())
    first.write_text(first.read_text() + "*.Offline.min_duration 600000\n")
    second.write_text(first.read_text())
    line = len(first.read_text().splitlines())
    with pytest.raises(tree_mod.TreeError, match=rf"A_TRT/gptj-99/Offline/mlperf.conf:{line}: not model.Scenario"):
        tree_mod.mlperf_conf(code)
    with pytest.raises(tree_mod.TreeError, match="no <system>/<benchmark>/<Scenario>/ folders"):
        tree_mod.mlperf_conf(tmp_path / "empty")
