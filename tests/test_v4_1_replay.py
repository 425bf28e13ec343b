"""A replay of NVIDIA's published v4.1 results through the suites, as users run it (a child pytest over the real
suites): the round follows the tree, every published case passes with its summary's own headline figure, and copies
broken one rule each fail naming that rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_mlperf.logs.loadgen import parse_summary


def test_the_published_v41_results_replay_as_published(suites, nvidia_tree_v41, tmp_path):
    results = nvidia_tree_v41 / "results"
    out = tmp_path / "r.json"
    run = suites.runpytest("-m", "inference", f"--mlperf-results={results}", f"--mlperf-json={out}", "--junitxml=j.xml")
    run.assert_outcomes(passed=216)
    run.stdout.fnmatch_lines(["mlperf: round inference-v4.1 (the results tree's benchmarks are inference-v4.1's*"])
    data = json.loads(out.read_text())
    assert data["round"] == "inference-v4.1" and data["catalog"].startswith("inference v4.1")
    assert 'name="mlperf:round" value="inference-v4.1"' in (suites.path / "j.xml").read_text()
    perf = [r for r in data["results"] if "PerformanceOnly" in r["id"]]
    assert len(perf) == 108
    for record in perf:
        summary = parse_summary(Path(record["artifacts"][0]))
        figures = {m["name"]: m["value"] for m in record["metrics"]}
        assert figures[summary.headline[0]] == summary.headline[1], record["id"]
        if summary.tokens is not None:
            assert figures[summary.tokens[0]] == summary.tokens[1]
        config = record["info"]["config_name"]
        assert figures[f"{config}-PerformanceMode"] == 1.0  # VirtualClient's metric name for the config
    accuracy = [r for r in data["results"] if "AccuracyOnly" in r["id"]]
    assert len(accuracy) == 108 and all(r["verdict"] == "PASS" for r in accuracy)


BROKEN = {
    # case folder -> (file, old, new, the rule the failure must name)
    "H200-SXM-141GBx8_TRT/llama2-70b-99/Server/performance/run_1": (
        "mlperf_log_summary.txt",
        "99.00 percentile first token latency (ns)   : 452744202",
        "99.00 percentile first token latency (ns)   : 2452744202",
        "TTFT p99 2452.7 ms > bound 2000 ms (MLPerf's LLM token-latency rule)",
    ),
    "H200-SXM-141GBx8_TRT/stable-diffusion-xl/Offline/accuracy": (
        "accuracy.txt",
        "'CLIP_SCORE': 31.78",
        "'CLIP_SCORE': 31.98",
        "CLIP_SCORE 31.98 > upper limit 31.81 (MLPerf's range)",
    ),
    "H200-SXM-141GBx8_TRT/gptj-99/Offline/accuracy": (
        "accuracy.txt",
        "'rouge1': 43.1017",
        "'rouge1': 42.1017",
        "ROUGE1 42.1 < 42.56 (99% of 42.9865)",
    ),
    "H200-SXM-141GBx8_TRT/llama2-70b-99/Offline/accuracy": (
        "accuracy.txt",
        "'gen_tok_len': 7157751, 'tokens_per_sample': 291.2",
        "'gen_tok_len': 8603136, 'tokens_per_sample': 350.1",
        "TOKENS_PER_SAMPLE 350.1 > upper limit 323.9",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_copy_broken_against_one_rule_fails_naming_it(suites, nvidia_tree_v41, tmp_path, case):
    name, old, new, rule = BROKEN[case]
    tree = tmp_path / "results"
    shutil.copytree(nvidia_tree_v41 / "results" / Path(case).parents[-2], tree / Path(case).parents[-2])
    target = tree / case / name
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    run = suites.runpytest("-m", "inference", f"--mlperf-results={tree}")
    outcomes = run.parseoutcomes()
    assert outcomes.get("failed") == 1, outcomes
    run.stdout.fnmatch_lines([f"*{rule}*"])


def test_a_v41_skus_replay_is_100_percent_of_what_nvidia_published(suites, nvidia_tree_v41, tmp_path):
    """The catalog's published v4.1 figures are the summaries' own: a replay of them for the SKU is 100 % of
    published, case by case (Triton's too), and the tuned targets of NVIDIA's user.conf are beside them."""
    out = tmp_path / "h200.json"
    run = suites.runpytest(
        "--sku",
        "H200-SXM-141GBx8",
        "-m",
        "inference and performance",
        f"--mlperf-results={nvidia_tree_v41 / 'results'}",
        f"--mlperf-json={out}",
    )
    run.assert_outcomes(passed=30)
    for record in json.loads(out.read_text())["results"]:
        figures = {m["name"]: m for m in record["metrics"]}
        assert figures["published_pct"]["value"] == pytest.approx(100.0), record["id"]
        assert "tuned_target_pct" in figures, record["id"]


def test_another_submitters_v41_tree_is_judged_under_its_own_system_name(suites, nvidia_tree_v41, tmp_path):
    """A v4.1 results tree of a system NVIDIA's catalog does not know (another submitter's, or a fleet's own): its
    cases are judged by the round's rules under the tree's own system name, with no published figure to hold."""
    tree = tmp_path / "results"
    for bench in ("llama2-70b-99", "stable-diffusion-xl"):
        shutil.copytree(
            nvidia_tree_v41 / "results" / "H200-SXM-141GBx8_TRT" / bench, tree / "Acme-HGX-H200x8_TRT" / bench
        )
    out = tmp_path / "r.json"
    run = suites.runpytest("-m", "inference", f"--mlperf-results={tree}", f"--mlperf-json={out}")
    run.assert_outcomes(passed=8)
    records = json.loads(out.read_text())["results"]
    assert all(r["id"].startswith("Acme-HGX-H200x8_TRT/") for r in records)
    llm = next(r for r in records if r["id"] == "Acme-HGX-H200x8_TRT/llama2-70b-99-Server-PerformanceOnly-custom")
    names = {m["name"] for m in llm["metrics"]}
    assert {"result_completed_tokens_per_second", "result_first_token_99.00_percentile_latency_ns"} <= names
    assert "published_pct" not in names


def test_a_v20_baseline_cannot_gate_a_v41_run(suites, nvidia_tree_v41, inference_fixtures, tmp_path):
    """Baselines carry their round: one saved from a v2.0 replay is refused by a v4.1 run, naming both rounds."""
    store = f"--mlperf-baseline-dir={tmp_path / 'store'}"
    saved = suites.runpytest(
        "-m", "inference", "--sku", "Orin", f"--mlperf-results={inference_fixtures}", store, "--mlperf-save=orin"
    )
    assert saved.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), saved.stdout.str()[-1500:]
    gated = suites.runpytest(
        "-m",
        "inference",
        "--sku",
        "Orin",
        "--mlperf-round",
        "inference-v4.1",
        f"--mlperf-results={nvidia_tree_v41 / 'results'}",
        store,
        "--mlperf-baseline=orin",
    )
    assert gated.ret == pytest.ExitCode.USAGE_ERROR
    gated.stderr.fnmatch_lines(
        ["*recorded for MLPerf round 'inference v2.0; training v2.1', this run is 'inference v4.1; training v2.1'*"]
    )
