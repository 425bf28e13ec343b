"""The catalog: every system, benchmark, rule and training config of the seed, with NVIDIA's names."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_mlperf import catalog

SEED_SYSTEMS = {
    "A100-SXM-80GBx8": ("DGX-A100_A100-SXM-80GBx8", "datacenter", 8, "0x20B210DE"),
    "A100-SXM-80GBx4": ("DGX-Station-A100_A100-SXM-80GBx4", "datacenter", 4, "0x20B210DE"),
    "A100-PCIex8": ("A100-PCIe-80GBx8", "datacenter", 8, "0x20B510DE"),
    "A2x2": ("A2x2", "datacenter", 2, "0x25B610DE"),
    "A30x8": ("A30x8", "datacenter", 8, "0x20B710DE"),
    "A100-SXM-80GBx1": ("DGX-A100_A100-SXM-80GBx1", "edge", 1, "0x20B210DE"),
    "A100-PCIex1": ("A100-PCIe-80GBx1", "edge", 1, "0x20B510DE"),
    "A30x1": ("A30x1", "edge", 1, "0x20B710DE"),
    "A2x1": ("A2x1", "edge", 1, "0x25B610DE"),
    "Orin": ("Orin", "edge", 1, None),
    "Xavier-NX": ("Xavier_NX", "edge", 1, None),
}


@pytest.fixture(scope="module")
def cat() -> catalog.Catalog:
    return catalog.load()


def test_every_seed_system(cat):
    assert set(cat.systems) == set(SEED_SYSTEMS)
    for sku, (system_id, category, count, pci) in SEED_SYSTEMS.items():
        system = cat.system(sku)
        assert (system.system_id, system.category, system.count, system.gpu.pci_device_id) == (
            system_id,
            category,
            count,
            pci,
        )


def test_unknown_sku_lists_the_known_ones(cat):
    with pytest.raises(catalog.CatalogError, match="unknown SKU 'T4x8'; known SKUs: A100-SXM-80GBx8, "):
        cat.system("T4x8")


@pytest.mark.parametrize(
    "name,threshold",
    [
        ("bert-99", 89.96526),
        ("bert-99.9", 90.783126),
        ("rnnt", 91.6222725),
        ("ssd-mobilenet", 21.78),
        ("ssd-resnet34", 19.8),
    ],
)
def test_accuracy_thresholds(cat, name, threshold):
    assert cat.benchmark(name).threshold == pytest.approx(threshold, abs=1e-6)


def test_rules_of_the_round(cat):
    assert {b: cat.benchmark(b).server_latency_ms for b in ("bert-99", "rnnt", "ssd-resnet34")} == {
        "bert-99": 130,
        "rnnt": 1000,
        "ssd-resnet34": 100,
    }
    assert all(s.min_duration_ms == 600000 for s in cat.scenarios.values())
    assert cat.scenario("server").min_query_count == 270336
    assert cat.scenario("Offline").min_sample_count == 24576
    assert cat.scenario("SingleStream").min_query_count == 1024
    assert cat.scenario("Offline").min_query_count == 24576  # mlperf.conf's, which LoadGen counts in samples


def test_datacenter_matrix_is_what_nvidia_registers(cat):
    """The built-in matrix is NVIDIA's registrations (tests/test_nvidia_tree.py compares it with the tree itself):
    no LWIS BERT (configs/bert registers none), ssd-mobilenet on the DGX A100 only, MaxQ only when asked."""
    cases = cat.inference_cases("A100-SXM-80GBx8")
    names = {c.config_name for c in cases}
    for workload in ("custom_k_99_9_MaxP-Offline", "custom_k_99_MaxP-Server", "lwis_k_99_MaxP-Server"):
        assert any(n.endswith(workload) for n in names), workload
    assert "DGX-A100_A100-SXM-80GBx8_TRT_Triton-triton_k_99_9_MaxP-Server" in names
    assert len(cases) == 32 and len({c.id for c in cases}) == 32
    assert {c.mode for c in cases} == {"AccuracyOnly", "PerformanceOnly"} and {c.power for c in cases} == {"MaxP"}
    assert not any(c.scenario.name in ("SingleStream", "MultiStream") for c in cases)
    assert {c.harness for c in cases if c.benchmark.name == "ssd-mobilenet"} == {"lwis", "triton"}
    assert not any(c.benchmark.name == "ssd-mobilenet" for c in cat.inference_cases("A30x8"))
    maxq = cat.inference_cases("A100-SXM-80GBx8", powers=("MaxQ",))
    assert len(maxq) == 28 and all(c.id.endswith("-MaxQ") for c in maxq)


def test_edge_matrix(cat):
    cases = cat.inference_cases("Orin")
    assert {c.scenario.name for c in cases} == {"Offline", "SingleStream", "MultiStream"}
    assert not any(c.benchmark.name == "bert-99.9" or c.scenario.name == "Server" for c in cases)
    assert {c.benchmark.name for c in cases if c.scenario.name == "MultiStream"} == {"ssd-mobilenet", "ssd-resnet34"}


def test_each_category_is_nvidias_system_type(cat):
    """The category each system's suite follows is the system_type of NVIDIA's systems/<system name>.json for every
    variant of it (TRT, Triton, MaxQ), as the catalog keeps them (tests/test_nvidia_tree.py: as the tree has them)."""
    for sku, system in cat.systems.items():
        types = {t for name, t in cat.system_types.items() if catalog.split_system_name(name)[0] == system.system_id}
        assert types == {system.category}, sku


def test_the_suite_of_each_category(cat):
    """NVIDIA's skips by system type, as the catalog keeps them: the default leaves an edge system's Server and
    bert-99.9 out, and keeps the one recorded exception, ssd-mobilenet Offline on the DGX A100 x8."""
    edge, dgx = cat.system("A30x1"), cat.system("A100-SXM-80GBx8")
    outside = cat.outside_suite(edge, cat.inference_cases("A30x1"))
    assert set(outside) == {"Server", "bert-99.9"} and sum(map(len, outside.values())) == 22
    assert not any(c.scenario.name == "Server" or c.benchmark.name == "bert-99.9" for c in cat.inference_cases("Orin"))
    assert cat.outside_suite(dgx, cat.inference_cases("A100-SXM-80GBx8", ("MaxP", "MaxQ"))) == {}
    (exception,) = cat.suite_exceptions
    kept = [c for c in cat.inference_cases(exception.sku) if c.benchmark.name == exception.benchmark]
    assert {(c.scenario.name, c.harness) for c in kept} == {("Offline", "lwis"), ("Offline", "triton")}
    without = replace(cat, suite_exceptions=())
    assert all(without.suite_skip(dgx, c).source == "scripts/update_results.py:131" for c in kept)
    assert "seed's metric table" in exception.why


def test_case_names(cat):
    case = next(
        c
        for c in cat.inference_cases("A100-SXM-80GBx8")
        if c.benchmark.name == "bert-99.9"
        and c.scenario.name == "Server"
        and c.mode == "PerformanceOnly"
        and c.harness == "triton"
    )
    assert case.id == "bert-99.9-Server-PerformanceOnly-triton"
    assert case.config_name == "DGX-A100_A100-SXM-80GBx8_TRT_Triton-triton_k_99_9_MaxP-Server"
    assert case.markers == ("inference", "bert", "server", "performance", "triton")
    assert catalog.split_system_name("GX2570M6_A100-SXM4-40GBx8_TRT_MaxQ") == (
        "GX2570M6_A100-SXM4-40GBx8",
        None,
        "MaxQ",
    )
    assert catalog.system_name("A30x8", "triton", "MaxQ") == "A30x8_TRT_Triton_MaxQ"


def test_training_configs(cat):
    configs = cat.training_configs
    assert set(configs) == {"1x8x56x1", "1x4x56x2", "A30_1x2x224x14", "8x8x48x1", "512x8x2x1_pack"}
    assert configs["1x8x56x1"].global_batch_size == 448 and configs["1x8x56x1"].max_steps == 6700
    assert configs["1x4x56x2"].global_batch_size == 448 and configs["1x4x56x2"].gradient_steps == 2
    assert configs["8x8x48x1"].global_batch_size == 3072 and configs["8x8x48x1"].nodes == 8
    assert configs["A30_1x2x224x14"].gpus_per_node == 2 and configs["512x8x2x1_pack"].packed
    assert cat.training_target == 0.720
    assert [c.config.name for c in cat.training_cases("A100-SXM-80GBx8")] == [
        "1x8x56x1",
        "1x4x56x2",
        "8x8x48x1",
        "512x8x2x1_pack",
    ]
    assert cat.training_cases("A2x1") == [] and cat.training_cases("A100-SXM-80GBx4") == []
    assert cat.training_config_for(448, 1, 6700).name == "1x8x56x1"
    # packed: 512 x 8 x 2 samples of about 2 sequences each; the published log's global_batch_size is 16384
    assert configs["512x8x2x1_pack"].global_batch_size == 16384
    assert cat.training_config_for(16384, 1, 470).name == "512x8x2x1_pack"
    assert cat.training_config_for(768, 1, 3680) is None
