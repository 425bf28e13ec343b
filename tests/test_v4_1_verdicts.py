"""The v4.1 round's catalog data and its accuracy and latency rules, held against NVIDIA's v4.1 tree: its system
list (each SKU's KnownSystem and system id, its GPU's PCI id and power limit), every published v4.1 case (each
accuracy.txt passes all its rules, each summary is VALID), and mutated copies that break one rule each and must
fail naming it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pytest_mlperf import catalog
from pytest_mlperf.judge.verdict import accuracy_verdict, performance_verdict
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.loadgen import parse_summary

V41 = catalog.load("inference-v4.1")


def _add_systems(tree: Path) -> dict[str, tuple[str, str, list[int]]]:
    """system_list.py's add_systems calls: KnownSystem format -> (system id format, the GPU member, counts)."""
    source = (tree / "code/common/systems/system_list.py").read_text()
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "add_systems" and len(node.args) >= 5:
            name, system_id, _cpu, gpu, counts = node.args[:5]
            if isinstance(name, ast.Constant) and isinstance(counts, ast.List):
                out[name.value] = (system_id.value, ast.unparse(gpu), [c.value for c in counts.elts])
    return out


def _known_gpus(tree: Path) -> dict[str, str]:
    """known_hardware.py's KnownGPU members, each as its source text."""
    source = (tree / "code/common/systems/known_hardware.py").read_text()
    known = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == "KnownGPU")
    return {
        node.targets[0].id: ast.get_source_segment(source, node.value)
        for node in known.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def test_each_v41_system_is_the_one_nvidias_system_list_names(nvidia_tree_v41):
    systems, gpus = _add_systems(nvidia_tree_v41), _known_gpus(nvidia_tree_v41)
    for sku, system in V41.systems.items():
        if not system.known_system:  # B200: results only in v4.1, no KnownSystem in NVIDIA's code
            assert sku.startswith("B200") and not re.search(
                "B200", (nvidia_tree_v41 / "code/common/systems/system_list.py").read_text()
            )
            continue
        count = system.count if system.known_system != "Orin" else 1
        fmt = next(f for f in systems if f.format(count) == system.known_system)
        id_fmt, gpu_member, counts = systems[fmt]
        assert id_fmt.format(count) == system.system_id and count in counts, sku
        gpu_text = gpus[gpu_member.removeprefix("KnownGPU.").removesuffix(".value")]
        if system.gpu.pci_device_id:
            assert f'"{system.gpu.pci_device_id[2:6]}"' in gpu_text, sku  # 0x<device>10DE
        if system.gpu.max_power_w:
            assert re.search(rf"max_power_limit\s*=\s*{system.gpu.max_power_w:g}\.0", gpu_text), sku


def _published(tree: Path, leaf: str, name: str):
    for path in sorted((tree / "results").glob(f"*/*/*/{leaf}/{name}")):
        bench_dir = path.parents[len(Path(leaf).parts)].parent
        yield path, V41.benchmark(bench_dir.name), V41.scenario(path.parents[len(Path(leaf).parts)].name)


def test_every_published_v41_accuracy_passes_every_rule_of_its_benchmark(nvidia_tree_v41):
    seen = set()
    for path, bench, _scenario in _published(nvidia_tree_v41, "accuracy", "accuracy.txt"):
        verdict = accuracy_verdict(parse_accuracy(path), bench)
        assert verdict.ok and verdict.label == "PASS", (path, verdict.reason)
        seen.add(bench.name)
    assert len(seen) == 14


def test_every_published_v41_summary_is_valid_under_the_rounds_rules(nvidia_tree_v41):
    for path, bench, scenario in _published(nvidia_tree_v41, "performance/run_1", "mlperf_log_summary.txt"):
        verdict = performance_verdict(parse_summary(path), None, scenario, bench)
        assert verdict.ok and verdict.label == "VALID", (path, verdict.reason)


def _mutated(tree: Path, tmp_path: Path, case: str, edits: list[tuple[str, str]]) -> Path:
    text = (tree / "results" / case).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / Path(case).name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("case", "edits", "rule"),
    [
        (  # ROUGE-2 below 99 % of llama2-70b's 22.0352
            "H200-SXM-141GBx8_TRT/llama2-70b-99/Offline/accuracy/accuracy.txt",
            [("'rouge2': 22.1578", "'rouge2': 21.5")],
            "ROUGE2 21.5 < 21.81 (99% of 22.0352)",
        ),
        (  # ROUGE-1 at 99 % passes llama2-70b-99 but not its 99.9 % twin
            "H200-SXM-141GBx8_TRT/llama2-70b-99.9/Offline/accuracy/accuracy.txt",
            [("'rouge1': 44.", "'rouge1': 44.1")],
            "ROUGE1 44.1",
        ),
        (  # tokens per sample under 90 % of 294.45 (the dictionary kept consistent: gen_tok_len follows)
            "H200-SXM-141GBx8_TRT/llama2-70b-99/Offline/accuracy/accuracy.txt",
            [
                ("'gen_tok_len': 7157751", "'gen_tok_len': 2457600"),
                ("'tokens_per_sample': 291.2", "'tokens_per_sample': 100.0"),
            ],
            "TOKENS_PER_SAMPLE 100 < 265 (90% of 294.45, at most 110%)",
        ),
        (  # and over 110 %
            "H200-SXM-141GBx8_TRT/mixtral-8x7b/Offline/accuracy/accuracy.txt",
            [
                ("'gen_tok_len': 2189050", "'gen_tok_len': 3000000"),
                ("'tokens_per_sample': 145.9", "'tokens_per_sample': 200.0"),
            ],
            "TOKENS_PER_SAMPLE 200 > upper limit 160.5",
        ),
        (  # mixtral's GSM8K part
            "H200-SXM-141GBx8_TRT/mixtral-8x7b/Offline/accuracy/accuracy.txt",
            [("'gsm8k': 73.1", "'gsm8k': 70.0")],
            "gsm8k 70 < 73.04 (99% of 73.78)",
        ),
        (  # SDXL's CLIP above its range: a higher score is not better here
            "H200-SXM-141GBx8_TRT/stable-diffusion-xl/Offline/accuracy/accuracy.txt",
            [("'CLIP_SCORE': 31.78", "'CLIP_SCORE': 31.98")],
            "CLIP_SCORE 31.98 > upper limit 31.81 (MLPerf's range)",
        ),
        (  # and its FID below
            "H200-SXM-141GBx8_TRT/stable-diffusion-xl/Offline/accuracy/accuracy.txt",
            [("'FID_SCORE': 23.6", "'FID_SCORE': 22.6")],
            "FID_SCORE 22.6",
        ),
        (  # a ROUGE dictionary without GPT-J's generated length
            "H200-SXM-141GBx8_TRT/gptj-99/Offline/accuracy/accuracy.txt",
            [(", 'gen_len': 4114386", "")],
            "accuracy.txt gives no GEN_LEN",
        ),
        (
            "H200-SXM-141GBx8_TRT/3d-unet-99.9/Offline/accuracy/accuracy.txt",
            [("mean = 0.86", "mean = 0.85"), ("kidney = 0.93", "kidney = 0.91")],
            "DICE 0.85",
        ),
    ],
)
def test_an_accuracy_that_breaks_one_rule_fails_naming_it(nvidia_tree_v41, tmp_path, case, edits, rule):
    path = _mutated(nvidia_tree_v41, tmp_path, case, edits)
    bench = V41.benchmark(Path(case).parts[1])
    verdict = accuracy_verdict(parse_accuracy(path), bench)
    assert not verdict.ok and verdict.label == "FAIL"
    assert rule in verdict.reason


LLM_SERVER = "H200-SXM-141GBx8_TRT/llama2-70b-99/Server/performance/run_1/mlperf_log_summary.txt"


@pytest.mark.parametrize(
    ("line", "value", "rule"),
    [
        ("99.00 percentile first token latency (ns)   : 452744202", "2452744202", "TTFT p99 2452.7 ms > bound 2000 ms"),
        ("99.00 percentile time to output token (ns)   : 146040006", "246040006", "TPOT p99 246.0 ms > bound 200 ms"),
    ],
)
def test_an_llm_server_run_over_a_token_latency_bound_is_invalid_naming_it(
    nvidia_tree_v41, tmp_path, line, value, rule
):
    """LoadGen's own VALID does not hold against its own figures: a p99 over the bound is INVALID, and the reason
    says which bound and that the files contradict themselves."""
    label = line.split(":")[0]
    path = _mutated(nvidia_tree_v41, tmp_path, LLM_SERVER, [(line, f"{label}: {value}")])
    verdict = performance_verdict(parse_summary(path), None, V41.scenario("Server"), V41.benchmark("llama2-70b-99"))
    assert not verdict.ok and verdict.label == "INVALID"
    assert rule in verdict.reason and "contradict" in verdict.reason


def test_an_llm_server_run_loadgen_calls_invalid_names_the_token_bound_it_broke(nvidia_tree_v41, tmp_path):
    path = _mutated(
        nvidia_tree_v41,
        tmp_path,
        LLM_SERVER,
        [
            ("Result is : VALID", "Result is : INVALID"),
            ("Performance constraints satisfied : Yes", "Performance constraints satisfied : NO"),
            (
                "99.00 percentile first token latency (ns)   : 452744202",
                "99.00 percentile first token latency (ns)   : 3452744202",
            ),
        ],
    )
    verdict = performance_verdict(parse_summary(path), None, V41.scenario("Server"), V41.benchmark("llama2-70b-99"))
    assert not verdict.ok
    assert (
        "performance constraints not satisfied" in verdict.reason
        and "TTFT p99 3452.7 ms > bound 2000 ms" in verdict.reason
    )


def test_the_v20_catalog_keeps_its_one_score_rule():
    v20 = catalog.load()
    assert v20.inference_round == "inference v2.0" and V41.inference_round == "inference v4.1"
    bert = v20.benchmark("bert-99")
    assert bert.targets == () and [t.metric for t in bert.accuracy_targets] == ["F1"]
    assert bert.threshold == pytest.approx(90.874 * 0.99)
    with pytest.raises(catalog.CatalogError, match="unknown round 'inference-v9'"):
        catalog.load("inference-v9")


def test_the_rounds_scenario_rules_are_those_nvidias_mlperf_conf_copies_state(nvidia_tree_v41):
    """Each figure v4.1's mlperf.conf states for every model (min_duration, the latency percentile, MultiStream's
    min_query_count) is the catalog's; the ones it leaves to each model or to LoadGen keep the round file's."""
    from pytest_mlperf.catalog import nvidia_tree_v4_1

    tree_rules = nvidia_tree_v4_1.mlperf_conf(nvidia_tree_v41)
    for name, scenario in V41.scenarios.items():
        stated = tree_rules[name]
        assert scenario.min_duration_ms == stated["min_duration"]
        assert scenario.target_latency_percentile == (
            None if name == "Offline" else stated["target_latency_percentile"] / 100
        )
        if "min_query_count" in stated:
            assert scenario.min_query_count == stated["min_query_count"]


def test_a_harness_that_said_failed_fails_a_case_its_rules_would_pass(nvidia_tree_v41):
    """NVIDIA's harness reads the same accuracy.txt against the same rules: where its message says FAILED, the case
    is FAIL even though every rule holds on the file (one of the two is another run's)."""
    from pytest_mlperf.logs.harness import AccuracyMessage

    path = nvidia_tree_v41 / "results" / "H200-SXM-141GBx8_TRT/llama2-70b-99/Offline/accuracy/accuracy.txt"
    bench = V41.benchmark("llama2-70b-99")
    result = parse_accuracy(path)
    assert accuracy_verdict(result, bench, AccuracyMessage(44.563, None, True)).ok
    failed = accuracy_verdict(result, bench, AccuracyMessage(44.563, None, False))
    assert not failed.ok and failed.label == "FAIL" and "NVIDIA's harness said Accuracy test FAILED" in failed.reason
