"""The catalog against NVIDIA's real v2.0 tree (../shared/upstream): the cases its configs register for each
seed system, its published figures, its tuned user.conf settings and the round's mlperf.conf; and the cases
pytest collects for each SKU, from the built-in catalog and from a checkout given with --mlperf-nvidia-code.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import ROOT, collect_inference_ids
from pytest_mlperf.catalog import load, split_system_name
from pytest_mlperf.catalog import nvidia_tree as tree_mod

SKUS = tuple(load().systems)


@pytest.fixture(scope="module")
def registered(nvidia_tree) -> dict:
    return nvidia_tree_matrix(nvidia_tree)


def nvidia_tree_matrix(tree: Path) -> dict:
    return tree_mod.matrix(tree_mod.registrations(tree))


def _expected(registered: dict, sku: str, powers: tuple[str, ...]) -> set[str]:
    """Test ids NVIDIA's registrations give a SKU: benchmark x scenario x mode x harness (x MaxQ)."""
    cat = load()
    out = set()
    for bench, scenarios in registered.get(cat.system(sku).known_system, {}).items():
        for scenario, pairs in scenarios.items():
            for harness, power in pairs:
                if power in powers:
                    for mode in ("AccuracyOnly", "PerformanceOnly"):
                        out.add("-".join([bench, scenario, mode, harness] + (["MaxQ"] if power == "MaxQ" else [])))
    return out


def test_built_in_catalog_is_the_tree(nvidia_tree):
    """nvidia_v2_0.json is what tools/refresh_nvidia_catalog.py reads from the tree, nothing more or less."""
    cat = load()
    spec = importlib.util.spec_from_file_location(
        "refresh_nvidia_catalog", ROOT / "tools" / "refresh_nvidia_catalog.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    written = json.dumps(tool.catalog_data(nvidia_tree, cat), indent=1, sort_keys=True) + "\n"
    packaged_text = (ROOT / "pytest_mlperf" / "catalog" / "nvidia_v2_0.json").read_text()
    assert packaged_text == written
    packaged = json.loads(packaged_text)
    assert set(packaged["matrix"]) == {s.known_system for s in cat.systems.values()}
    assert all(packaged["matrix"].values()), "every seed system has registered cases"
    assert {s["source"] for s in packaged["suite_skips"]} == {
        f"scripts/update_results.py:{n}" for n in (126, 131, 137, 142)
    }
    assert {split_system_name(name)[0] for name in packaged["system_types"]} == {
        s.system_id for s in cat.systems.values()
    }


@pytest.mark.parametrize("sku", SKUS)
def test_each_sku_has_exactly_the_registered_cases(registered, sku):
    cat = load()
    for powers in (("MaxP",), ("MaxQ",), ("MaxP", "MaxQ")):
        ids = {c.id for c in cat.inference_cases(sku, powers)}
        assert ids == _expected(registered, sku, powers), (sku, powers)


def test_registrations_read_what_the_files_say(nvidia_tree, registered):
    """Facts read by hand from configs/: no LWIS BERT config anywhere; ssd-mobilenet registered for the DGX A100
    x8 alone among the datacenter systems; the A30x8's MaxQ is rnnt and ssd-resnet34 Server only."""
    assert not any(
        h == "lwis"
        for s in registered.values()
        for b, sc in s.items()
        if b.startswith("bert")
        for p in sc.values()
        for h, _ in p
    )
    datacenter = ("A100_SXM_80GBx8", "A100_SXM_80GB_ROx4", "A100_PCIe_80GBx8", "A2x2", "A30x8")
    assert [k for k in datacenter if "ssd-mobilenet" in registered[k]] == ["A100_SXM_80GBx8"]
    maxq = {(b, s) for b, sc in registered["A30x8"].items() for s, p in sc.items() if any(w == "MaxQ" for _, w in p)}
    assert maxq == {("rnnt", "Offline"), ("rnnt", "Server"), ("ssd-resnet34", "Server")}
    reg = next(r for r in tree_mod.registrations(nvidia_tree) if r.config_class == "A100_SXM_80GBx8")
    assert reg.fields["system"] == "KnownSystem.A100_SXM_80GBx8" and reg.source.startswith("configs/bert/Offline")


def test_a_broken_config_file_is_named(tmp_path, nvidia_tree):
    bad = tmp_path / "configs" / "bert" / "Offline"
    bad.mkdir(parents=True)
    (bad / "__init__.py").write_text(
        "@ConfigRegistry.register(HarnessType.Custom, AccuracyTarget.k_99, PowerSetting.MaxP)\n"
        "class X(Base):\n    pass\n"
    )
    with pytest.raises(tree_mod.TreeError, match=r"configs/bert/Offline/__init__.py:2: X is registered but names no"):
        tree_mod.registrations(tmp_path)
    (bad / "__init__.py").write_text("def broken(:\n")
    with pytest.raises(tree_mod.TreeError, match="cannot be read as Python"):
        tree_mod.registrations(tmp_path)


def test_published_figures_are_all_of_nvidias(nvidia_tree):
    """Every VALID run_1 summary of the seed systems' results is in the catalog, with the scenario's figure."""
    cat = load()
    summaries = [
        p
        for p in (nvidia_tree / "results").glob("*/*/*/performance/run_1/mlperf_log_summary.txt")
        if p.parents[3].name in cat.benchmarks
    ]
    valid = [p for p in summaries if "Result is : VALID" in p.read_text()]
    counted = sum(len(s) for b in cat.published.values() for s in b.values())
    assert counted == len(valid) and counted > 170
    orin = cat.published_figure("Orin_TRT", "ssd-mobilenet", "MultiStream")
    text = (
        nvidia_tree / "results/Orin_TRT/ssd-mobilenet/MultiStream/performance/run_1/mlperf_log_summary.txt"
    ).read_text()
    assert f"99th percentile latency (ns) : {orin}" in text
    for system in ("A100-PCIe-80GBx8_TRT", "DGX-Station-A100_A100-SXM-80GBx4_TRT", "A2x2_TRT", "Xavier_NX_TRT"):
        assert cat.published.get(system), system
    assert cat.published_figure("DGX-A100_A100-SXM-80GBx8_TRT", "bert-99", "Server") == 25792.11


def test_tuned_settings_and_the_rounds_rules(nvidia_tree):
    cat = load()
    assert cat.tuned_settings("DGX-A100_A100-SXM-80GBx8_TRT", "bert-99", "Server")["target_qps"] == 25800
    orin = cat.tuned_settings("Orin_TRT", "ssd-mobilenet", "MultiStream")
    assert orin["target_latency"] == pytest.approx(2.08) and "target_qps" not in orin  # the Server line is not its
    conf = cat.mlperf_conf
    assert conf["Offline"]["min_query_count"] == cat.scenario("Offline").min_sample_count == 24576
    for name in ("Server", "SingleStream", "MultiStream"):
        assert conf[name]["min_query_count"] == cat.scenario(name).min_query_count, name
        assert conf[name]["min_duration"] == cat.scenario(name).min_duration_ms, name
    assert conf["Offline"]["min_duration"] == cat.scenario("Offline").min_duration_ms


@pytest.mark.parametrize("sku", SKUS)
def test_collect_only_lists_the_registered_cases(registered, nvidia_tree, sku, tmp_path):
    """`pytest suites -m inference --sku X --collect-only --mlperf-all-configs` on the nvidia backend with NVIDIA's
    checkout: the cases come from the checkout's own configs, every one registered; replaying a results tree for
    the SKU lists the catalog's, the same. (Without the flag: tests/test_suite_selection.py.)"""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    nvidia = collect_inference_ids(
        ["--sku", sku, "--mlperf-backend=nvidia", f"--mlperf-nvidia-code={nvidia_tree}", f"--mlperf-scratch={scratch}"]
        + ["--mlperf-all-configs"],
        tmp_path,
    )
    assert nvidia == _expected(registered, sku, ("MaxP",))
    replay = collect_inference_ids(
        ["--sku", sku, f"--mlperf-results={nvidia_tree / 'results'}", "--mlperf-power=all", "--mlperf-all-configs"],
        tmp_path,
    )
    assert replay == _expected(registered, sku, ("MaxP", "MaxQ"))


def test_cases_come_from_the_given_checkout(nvidia_tree, tmp_path):
    """A checkout whose configs register less (a site's trimmed copy) gives fewer cases: the checkout decides."""
    code = tmp_path / "closed-NVIDIA"
    (code / "code").mkdir(parents=True)
    (code / "Makefile").write_text("# not run: collection only\n")
    (code / "configs" / "rnnt" / "Offline").mkdir(parents=True)
    (code / "configs" / "rnnt" / "__init__.py").write_text((nvidia_tree / "configs/rnnt/__init__.py").read_text())
    (code / "configs" / "rnnt" / "Offline" / "__init__.py").write_text(
        (nvidia_tree / "configs/rnnt/Offline/__init__.py").read_text()
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ids = collect_inference_ids(
        ["--sku", "A30x8", "--mlperf-backend=nvidia", f"--mlperf-nvidia-code={code}", f"--mlperf-scratch={scratch}"],
        tmp_path,
    )
    assert ids == {"rnnt-Offline-AccuracyOnly-custom", "rnnt-Offline-PerformanceOnly-custom"}
