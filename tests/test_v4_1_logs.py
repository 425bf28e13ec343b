"""LoadGen 4.x summaries and the v4.1 accuracy.txt formats, read from NVIDIA's published v4.1 results (every case
of them) and from mutated copies. The expected figures come from an independent reading: the regular expressions
MLCommons' v4.1 submission checker uses for each score (ACC_PATTERN), written out here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.loadgen import parse_summary

# MLCommons' submission checker (v4.1): each score's pattern, applied to every line, the first match counting.
CHECKER_PATTERNS = {
    "acc": r"^accuracy=([\d\.]+).*",
    "AUC": r"^AUC=([\d\.]+).*",
    "mAP": r"^mAP=([\d\.]+).*",
    "F1": r"^{[\"\']exact_match[\"\']\:\s*[\d\.]+,\s*[\"\']f1[\"\']\:\s*([\d\.]+)}",
    "DICE": r"Accuracy\:\s*mean\s*=\s*([\d\.]+).*",
    "ROUGE1": r".*'rouge1':\s([\d.]+).*",
    "ROUGE2": r".*'rouge2':\s([\d.]+).*",
    "ROUGEL": r".*'rougeL':\s([\d.]+).*",
    "ROUGELSUM": r".*'rougeLsum':\s([\d.]+).*",
    "GEN_LEN": r".*'gen_len':\s([\d.]+).*",
    "TOKENS_PER_SAMPLE": r".*'tokens_per_sample':\s([\d.]+).*",
    "CLIP_SCORE": r".*'CLIP_SCORE':\s([\d.]+).*",
    "FID_SCORE": r".*'FID_SCORE':\s([\d.]+).*",
    "gsm8k": r".*'gsm8k':\s([\d.]+).*",
    "mbxp": r".*'mbxp':\s([\d.]+).*",
}


def _checker_scores(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in path.read_text().splitlines():
        for name, pattern in CHECKER_PATTERNS.items():
            match = re.match(pattern, line)
            if match and name not in found:
                found[name] = float(match.group(1))
    return found


def _cases(tree: Path, leaf: str, name: str) -> list[Path]:
    return sorted((tree / "results").glob(f"*/*/*/{leaf}/{name}"))


def test_every_published_v41_accuracy_file_gives_the_checkers_scores(nvidia_tree_v41):
    files = _cases(nvidia_tree_v41, "accuracy", "accuracy.txt")
    assert len(files) == 108
    metrics = set()
    for path in files:
        result = parse_accuracy(path)
        expected = _checker_scores(path)
        assert expected, path
        assert {k: v for k, v in result.scores.items() if k in expected} == expected, path
        assert result.hash is not None and len(result.hash) == 64
        metrics.add(result.metric)
    assert metrics == {"acc", "AUC", "mAP", "F1", "DICE", "ROUGE1", "FID_SCORE"}


def test_every_published_v41_summary_parses_with_its_token_figures(nvidia_tree_v41):
    files = _cases(nvidia_tree_v41, "performance/run_1", "mlperf_log_summary.txt")
    assert len(files) == 108
    for path in files:
        summary = parse_summary(path)
        bench = path.parts[-5]
        assert summary.validity == "VALID" and summary.headline is not None
        expected_headline = {
            "Offline": "result_samples_per_second",
            "Server": "result_completed_samples_per_sec",
            "SingleStream": "result_90.00_percentile_latency_ns",
        }[summary.scenario]
        assert summary.headline[0] == expected_headline
        llm = bench.startswith(("llama2", "mixtral", "gptj")) and summary.scenario != "SingleStream"
        assert (summary.tokens is not None) == llm, path
        if bench.startswith(("llama2", "mixtral")) and summary.scenario == "Server":
            assert summary.tokens[0] == "result_completed_tokens_per_second"
            assert set(summary.token_early_stopping) == {"TTFT", "TPOT"}
            assert summary.figures["result_completed_tokens_per_second"][0] == f"{summary.tokens[1]:.2f}"
            ttft = float(summary.figures["result_first_token_99.00_percentile_latency_ns"][0])
            tpot = float(summary.figures["result_time_per_output_token_99.00_percentile_ns"][0])
            assert 0 < ttft < float(summary.params["ttft_latency (ns)"])
            assert 0 < tpot < float(summary.params["tpot_latency (ns)"])
        if llm and bench.startswith("gptj"):  # inferred: the samples rate x the round's 69 tokens a sample
            assert "inferred" in summary.tokens[0]
            assert summary.tokens[1] == pytest.approx(summary.headline[1] * 69, rel=1e-3)


LLM = "H200-SXM-141GBx8_TRT/mixtral-8x7b/Offline/accuracy/accuracy.txt"
SDXL = "H200-SXM-141GBx8_TRT/stable-diffusion-xl/Offline/accuracy/accuracy.txt"
DICE = "H200-SXM-141GBx8_TRT/3d-unet-99/Offline/accuracy/accuracy.txt"
AUC = "H200-SXM-141GBx8_TRT/dlrm-v2-99/Offline/accuracy/accuracy.txt"
TOP1 = "H200-SXM-141GBx8_TRT/resnet50/Offline/accuracy/accuracy.txt"
LLM_SERVER = "H200-SXM-141GBx8_TRT/llama2-70b-99/Server/performance/run_1/mlperf_log_summary.txt"


@pytest.mark.parametrize(
    ("source", "old", "new", "message"),
    [
        (LLM, "'tokens_per_sample': 145.9", "'tokens_per_sample': 160.0", "tokens_per_sample is not gen_tok_len"),
        (LLM, "'rouge2': 23.2496", "'rouge2': float('nan')", "malformed ROUGE dictionary"),
        (LLM, "'rouge1': 45.3568", "'rouge1': 145.3568", "rouge1 is 145.357, outside 0-100"),
        (LLM, "'gsm8k': 73.1", "'gsm8k': -1", "gsm8k is -1, outside 0-100"),
        (LLM, "'gen_num': 15000", "'gen_num': 15000.5", "gen_num is 15000.5: a count is a whole number"),
        (LLM, "'rougeL': 30.3171, ", "", "ROUGE dictionary lacks rougeL"),
        (LLM, "'mbxp': 59.9", "'mbxp': True", "mbxp is True, not a finite number"),
        (LLM, "'rouge1': 45.3568", "'rouge1': __import__('os').getpid()", "malformed ROUGE dictionary"),
        (SDXL, "'CLIP_SCORE': 31.78", "'CLIP_SCORE': 131.78", "CLIP_SCORE is 131.783, outside 0-100"),
        (SDXL, "'FID_SCORE': 23.6", "'FID_SCORE': -23.6", "FID_SCORE is -23.6161: a distance cannot be negative"),
        (SDXL, ", 'CLIP_SCORE': 31.783374754488467", "", "SDXL scores lack CLIP_SCORE"),
        (DICE, "mean = 0.86112", "mean = 0.90112", "DICE mean 0.90112 is not the mean of kidney and tumor"),
        (DICE, "kidney = 0.9346", "kidney = 1.9346", "kidney is 1.9346, outside 0-1"),
        (AUC, "accuracy=96.605%", "accuracy=97.605%", "accuracy=97.605% is not good/total"),
        (AUC, "AUC=80.166%", "AUC=180.166%", "AUC is 180.166, outside 0-100"),
        (TOP1, "good=38038", "good=58038", "good=58038 of total=50000 is not a share"),
        (TOP1, "accuracy=76.076%", "accuracy=76.076", "malformed top-1 line"),
    ],
)
def test_a_mutated_v41_accuracy_file_is_refused_naming_what_is_wrong(
    nvidia_tree_v41, tmp_path, source, old, new, message
):
    text = (nvidia_tree_v41 / "results" / source).read_text()
    assert old in text
    path = tmp_path / "accuracy.txt"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        parse_accuracy(path)
    assert caught.value.line is not None or "lacks" not in message


def test_two_different_hash_lines_are_refused_and_a_doubled_one_is_a_copy(nvidia_tree_v41, tmp_path):
    text = (nvidia_tree_v41 / "results" / TOP1).read_text()
    digest = text.splitlines()[-1]
    doubled, other = tmp_path / "doubled.txt", tmp_path / "other.txt"
    doubled.write_text(text + digest + "\n")
    other.write_text(text + "hash=" + "0" * 64 + "\n")
    assert parse_accuracy(doubled).hash == digest.removeprefix("hash=")
    with pytest.raises(ParseError, match="a second, different hash line"):
        parse_accuracy(other)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("Completed tokens per second: 29228.22", "Completed tokens per second: 29228.23", "is printed as"),
        ("Completed tokens per second: 29228.22", "Completed tokens per second: -5", "a rate must be above 0"),
        (
            "Completed tokens per second: 29228.22\n",
            "Completed tokens per second: 29228.22\nTokens per second: 29228.22\n",
            "a second token rate",
        ),
        ("TPOT Early Stopping Result:", "TTFT Early Stopping Result:", "a second 'TTFT Early Stopping Result:'"),
        (
            "99.00 percentile first token latency (ns)   : 452744202",
            "99.00 percentile first token latency (ns)   : nan",
            "not a finite number",
        ),
        ("Mode     : PerformanceOnly\n", "Mode     : PerformanceOnly\nSamples per second: 3\n", "a second headline"),
    ],
)
def test_a_mutated_llm_summary_is_refused_naming_what_is_wrong(nvidia_tree_v41, tmp_path, old, new, message):
    text = (nvidia_tree_v41 / "results" / LLM_SERVER).read_text()
    assert old in text
    path = tmp_path / "mlperf_log_summary.txt"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_summary(path)
