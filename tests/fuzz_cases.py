"""What the parser fuzzing shares (tests/test_fuzz.py runs a few examples, benchmarks/fuzz_parsers.py thousands):
seeds from the published fixtures, their mutations, and the check every outcome must pass.

An input gives either a record whose every number is finite and in its domain, or a ParseError; never another
exception.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import math
import re
import time
from pathlib import Path

from hypothesis import strategies as st

from pytest_mlperf.catalog import load
from pytest_mlperf.cli import READERS
from pytest_mlperf.judge.evaluate import evaluate
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.harness import parse_stdout, parse_summary_json
from pytest_mlperf.logs.loadgen import parse_detail, parse_summary
from pytest_mlperf.logs.metadata import parse_metadata
from pytest_mlperf.logs.mllog import parse_training_log, parse_training_runs

DGX = "DGX-A100_A100-SXM-80GBx8_TRT"
PERF = f"{DGX}/bert-99/Server/performance/run_1"
CONFIG = f"{DGX}-custom_k_99_MaxP-Server"
HARNESS_JSON = f'{{"{CONFIG}": {{"bert": "result_scheduled_samples_per_sec: 25002.3, Result is VALID"}}}}\n'
# VirtualClient's Example_performance_summary1.json (microsoft/VirtualClient), as NVIDIA's v3.0+ harness writes it
METADATA_JSON = json.dumps(
    {
        "benchmark_full": "bert-99",
        "benchmark_short": "bert",
        "config_name": "DGX-A100_A100-SXM4-40GBx8_TRT-custom_k_99_MaxP-Server",
        "detected_system": "SystemConfiguration(...)",
        "early_stopping_met": True,
        "effective_min_duration_ms": 600000,
        "effective_min_query_count": 100,
        "result_completed_samples_per_sec": 25405.6,
        "result_validity": "VALID",
        "satisfies_query_constraint": False,
        "scenario": "Server",
        "scenario_key": "result_completed_samples_per_sec",
        "summary_string": (
            "result_completed_samples_per_sec: 25405.6, Result is VALID, 10-min runtime requirement met: True"
        ),
        "system_name": "DGX-A100_A100-SXM4-40GBx8_TRT",
        "tensorrt_version": "10.2.0",
        "test_mode": "PerformanceOnly",
    },
    indent=4,
)
# VirtualClient's v2.0-era files: every scenario's key, Triton, both verdicts, each mode's no-result message
PERF_ROWS_JSON = json.dumps(
    {
        f"{DGX}-custom_k_99_MaxP-Offline": {
            "bert": "result_samples_per_second: 27971.4, Result is VALID",
            "rnnt": "Cannot find performance result. Maybe you are running in AccuracyOnly mode.",
        },
        f"{DGX}_Triton-triton_k_99_9_MaxP-Server": {
            "bert": "result_scheduled_samples_per_sec: 4751.78, Result is INVALID"
        },
        "DGX-A100_A100-SXM-80GBx1_TRT-lwis_k_99_MaxP-SingleStream": {
            "ssd-mobilenet": "result_90.00_percentile_latency_ns: 289704, Result is VALID"
        },
        "DGX-A100_A100-SXM-80GBx1_TRT-lwis_k_99_MaxP-MultiStream": {
            "ssd-mobilenet": "result_99.00_percentile_per_query_latency_ns: 458950, Result is VALID"
        },
    },
    indent=4,
)
ACCURACY_ROWS_JSON = json.dumps(
    {
        f"{DGX}-custom_k_99_MaxP-Offline": {"bert": "Accuracy = 90.381, Threshold = 89.965. Accuracy test PASSED."},
        f"{DGX}-custom_k_99_9_MaxP-Offline": {"bert": "Accuracy = 90.723, Threshold = 90.783. Accuracy test FAILED."},
        f"{DGX}-custom_k_99_MaxP-Server": {"bert": "No accuracy results in PerformanceOnly mode."},
    },
    indent=4,
)
STDOUT = (
    "make[1]: Leaving directory\n"
    "======================= Perf harness results: =======================\n\n"
    f"{CONFIG}:\n    bert: result_scheduled_samples_per_sec: 25002.3, Result is VALID\n\n"
    "======================= Accuracy results: =======================\n\n"
    f"{CONFIG}:\n    bert: No accuracy results in PerformanceOnly mode.\n\n"
)


V41_ACCURACY = {
    "llm": "H200-SXM-141GBx8_TRT/mixtral-8x7b/Offline",
    "sdxl": "H200-SXM-141GBx8_TRT/stable-diffusion-xl/Offline",
    "dice": "H200-SXM-141GBx8_TRT/3d-unet-99/Offline",
    "auc": "H200-SXM-141GBx8_TRT/dlrm-v2-99/Offline",
}
V41_LLM_SERVER = "H200-SXM-141GBx8_TRT/llama2-70b-99/Server"
PERCENT_SCORES = {"F1", "mAP", "100-WER", "acc", "AUC", "ROUGE1", "ROUGE2", "ROUGEL", "ROUGELSUM", "gsm8k", "mbxp"}
PERCENT_SCORES |= {"CLIP_SCORE", "exact_match", "word_error_rate", "accuracy", "coco_ap"}
UNIT_SCORES = {"DICE", "kidney", "tumor"}


def seeds(shared: Path) -> dict[str, tuple[str, bytes]]:
    """parser name -> (file name to write, seed bytes): real published logs, or the documented format where
    the fixtures hold none (NVIDIA's harness JSON and console blocks)."""
    inference, training = shared / "fixtures" / "inference", shared / "fixtures" / "training"
    v41 = shared / "upstream" / "inference_results_v4.1" / "closed" / "NVIDIA" / "results"
    fujitsu = training / "gx_A100-SXMx8_pytorch_NGC_22.09" / "bert"
    return {
        "summary": ("mlperf_log_summary.txt", (inference / PERF / "mlperf_log_summary.txt").read_bytes()),
        "detail": ("mlperf_log_detail.txt", (inference / PERF / "mlperf_log_detail.txt").read_bytes()),
        "accuracy": ("accuracy.txt", (inference / DGX / "rnnt/Offline/accuracy/accuracy.txt").read_bytes()),
        # v4.1's formats: an LLM's ROUGE dictionary (mixtral's, with GSM8K, MBXP and tokens per sample), SDXL's FID
        # and CLIP, 3d-unet's DICE; a LoadGen 4.x LLM Server summary with its token rates and TTFT/TPOT blocks
        **{
            f"accuracy_v41_{name}": ("accuracy.txt", (v41 / case / "accuracy/accuracy.txt").read_bytes())
            for name, case in V41_ACCURACY.items()
        },
        "summary_v41_llm": (
            "mlperf_log_summary.txt",
            (v41 / V41_LLM_SERVER / "performance/run_1/mlperf_log_summary.txt").read_bytes(),
        ),
        "training": ("result_5.txt", (training / "16xXE8545x4A100-SXM-40GB/bert/result_5.txt").read_bytes()),
        "harness_json": ("perf_harness_summary.json", HARNESS_JSON.encode()),
        "stdout": ("stdout.txt", STDOUT.encode()),
        "metadata": ("metadata.json", METADATA_JSON.encode()),
        # two published trials end to end, each with its summary line, as VirtualClient captures a config's trials
        "training_runs": (
            "capture.log",
            (fujitsu / "result_0.txt").read_bytes() + (fujitsu / "result_1.txt").read_bytes(),
        ),
        "perf_json_rows": ("perf_harness_summary.json", PERF_ROWS_JSON.encode()),
        "accuracy_json_rows": ("accuracy_summary.json", ACCURACY_ROWS_JSON.encode()),
    }


PARSERS = {
    "summary": parse_summary,
    "detail": parse_detail,
    "accuracy": parse_accuracy,
    **{f"accuracy_v41_{name}": parse_accuracy for name in V41_ACCURACY},
    "summary_v41_llm": parse_summary,
    "training": parse_training_log,
    "harness_json": lambda path: parse_summary_json(path, "perf"),
    "stdout": parse_stdout,
    "metadata": parse_metadata,
    "training_runs": parse_training_runs,
    # the CLI's rows too: the metric builders behind them run on what the parser let through
    "perf_json_rows": lambda path: list(READERS["perf_harness_summary"](path, {})),
    "accuracy_json_rows": lambda path: list(READERS["accuracy_summary"](path, {})),
}

NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
STRANGE_NUMBERS = ["NaN", "Infinity", "-Infinity", "nan", "inf", "-1", "-0.5", "0", "1e999", "-1e999", "5000", "1e308"]
KEY_RE = re.compile(r'"key": "[a-z_0-9.]+"')


@st.composite
def mutated(draw, seed: bytes, depth: int = 0) -> bytes:
    """One of the ways a careless copy, a broken disk or a hand edit breaks a log, sometimes several at once."""
    op = draw(
        st.sampled_from(["truncate", "duplicate", "swap", "number", "crlf", "bom", "utf16", "join", "rename", "bytes"])
    )
    text = seed.decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True) or [""]
    pick = st.integers(0, len(lines) - 1)
    if op == "truncate":
        out = seed[: draw(st.integers(0, len(seed)))]
    elif op == "duplicate":
        i = draw(pick)
        out = "".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :]).encode()
    elif op == "swap":
        i, j = draw(pick), draw(pick)
        lines[i], lines[j] = lines[j], lines[i]
        out = "".join(lines).encode()
    elif op == "number":
        found = list(NUMBER_RE.finditer(text))
        if not found:
            return seed
        match = found[draw(st.integers(0, len(found) - 1))]
        out = (text[: match.start()] + draw(st.sampled_from(STRANGE_NUMBERS)) + text[match.end() :]).encode()
    elif op == "crlf":
        out = text.replace("\n", "\r\n").encode()
    elif op == "bom":
        out = codecs.BOM_UTF8 + seed
    elif op == "utf16":
        out = text.encode("utf-16")
    elif op == "join":
        i = draw(st.integers(0, max(0, len(lines) - 2)))
        lines[i : i + 2] = ["".join(lines[i : i + 2]).replace("\n", " ", 1)]
        out = "".join(lines).encode()
    elif op == "rename":
        keys = KEY_RE.findall(text)
        if not keys:
            return seed
        old = draw(st.sampled_from(keys))
        out = text.replace(
            old, f'"key": "{draw(st.sampled_from(["x", "result_validity", "run_stop", "sut_name"]))}"'
        ).encode()
    else:
        out = draw(st.binary(max_size=2048))
    if depth < 2 and draw(st.booleans()):
        return draw(mutated(out, depth + 1))
    return out


def sound(value, where: str = "record") -> None:
    """Every number reachable from a parsed record is finite (bools and ints included, as floats)."""
    if isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value!r}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            sound(getattr(value, field.name), f"{where}.{field.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            sound(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for number, item in enumerate(value):
            sound(item, f"{where}[{number}]")


def in_domain(name: str, record) -> None:
    """What each record's meaning asks of its numbers, checked apart from the parser's own rules."""
    if name.startswith("accuracy") and not name.endswith("_rows"):
        for key, value in record.scores.items():
            if key in PERCENT_SCORES:
                assert 0 <= value <= 100, (key, value)
            elif key in UNIT_SCORES:
                assert 0 <= value <= 1, (key, value)
            else:
                assert value >= 0, (key, value)  # counts, FID, tokens per sample
    elif name.startswith("summary") and record.headline is not None:
        key, value = record.headline
        assert value >= 0 and (value > 0 or key.endswith("_ns"))
        assert record.tokens is None or record.tokens[1] > 0
    elif name == "training":
        assert all(0 <= e.accuracy <= 1 for e in record.evals)
        assert record.run_stop_ms >= record.run_start_ms
    elif name == "training_runs":
        assert record
        for run in record:
            in_domain("training", run)
    elif name.endswith("_json_rows"):
        for row in record:
            if row["name"].endswith(("-PerformanceMode", "-AccuracyMode")):
                assert row["value"] in (0.0, 1.0)
            elif row["name"] == "ThresholdValue":
                assert row["value"] > 0
            elif row["unit"] == "ns" or row["name"].startswith("result_"):
                assert row["value"] >= 0


def check(name: str, path: Path, data: bytes) -> float:
    """Write the input, parse it, hold the outcome to the rules; the seconds the parse took."""
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        record = PARSERS[name](path)
    except ParseError:
        return time.perf_counter() - start
    took = time.perf_counter() - start
    sound(record)
    in_domain(name, record)
    return took


def check_evaluate(folder: Path, name: str, data: bytes) -> float:
    """A Server performance case whose summary or detail log is broken: a verdict with finite metrics, or a
    ParseError."""
    (folder / name).write_bytes(data)
    cat = load()
    case = next(c for c in cat.inference_cases("A100-SXM-80GBx8") if c.id == "bert-99-Server-PerformanceOnly-custom")
    from pytest_mlperf.backends import Artifacts

    start = time.perf_counter()
    try:
        result = evaluate(case, Artifacts(folder))
    except ParseError:
        return time.perf_counter() - start
    took = time.perf_counter() - start
    sound(result.metrics)
    assert result.verdict.label in ("VALID", "INVALID")
    return took
