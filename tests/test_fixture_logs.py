"""The parsers and verdicts against every published MLPerf log in ../shared/fixtures.

Expected values come from the fixtures' PROVENANCE.md tables, which a separate helper wrote when the
files were copied from mlcommons/inference_results_v2.0 and training_results_v2.1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from provenance import inference_accuracy_rows, inference_perf_rows, training_rows

from conftest import shared_dir
from pytest_mlperf import catalog, cli
from pytest_mlperf.catalog import split_system_name
from pytest_mlperf.judge.verdict import accuracy_verdict, performance_verdict, training_verdict
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.harness import parse_accuracy_message
from pytest_mlperf.logs.loadgen import parse_detail, parse_summary
from pytest_mlperf.logs.mllog import parse_training_log

SHARED = shared_dir()
INFERENCE = SHARED / "fixtures" / "inference" if SHARED else None
TRAINING = SHARED / "fixtures" / "training" if SHARED else None
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="published MLPerf fixture logs not found (set PYTEST_MLPERF_SHARED; looked in ../shared)"
)


TRAINING_FILE = "local file (under fixtures/training/)"


def _rows(reader, root):
    return reader(root) if root is not None else []


def _bool(text: str) -> bool | None:
    return {"True": True, "False": False}.get(text)


@needs_shared
@pytest.mark.parametrize("row", _rows(inference_perf_rows, INFERENCE), ids=lambda r: r["dir"])
def test_performance_dir(row):
    folder = INFERENCE / row["dir"]
    summary = parse_summary(folder / "mlperf_log_summary.txt")
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    assert detail.validity == summary.validity == row["result_validity"]
    assert detail.scenario == summary.scenario == row["scenario"]
    assert detail.mode == summary.mode == "PerformanceOnly"
    assert float(detail.get(row["metric key"])) == pytest.approx(float(row["metric value"]), rel=1e-4)
    assert summary.headline[0] == row["metric key"]
    assert summary.headline[1] == pytest.approx(float(row["metric value"]), rel=1e-4)
    assert detail.get("result_99.00_percentile_latency_ns") == int(row["p99 latency ns"])
    for key in ("early_stopping_met", "min_duration_met", "min_queries_met", "perf_constraints_met"):
        expected = _bool(row[key])
        detail_key = key if key == "early_stopping_met" else f"result_{key}"
        if expected is None:
            assert detail_key not in detail.values
        else:
            assert detail.flags[detail_key] is expected
            assert summary.flags[detail_key] is expected
    cat = catalog.load()
    bench = cat.benchmark(Path(row["dir"]).parts[-4])
    verdict = performance_verdict(summary, detail, cat.scenario(row["scenario"]), bench)
    assert verdict.label == row["result_validity"]
    assert verdict.ok is (row["result_validity"] == "VALID")


@needs_shared
@pytest.mark.parametrize("row", _rows(inference_accuracy_rows, INFERENCE), ids=lambda r: r["dir"])
def test_accuracy_dir(row):
    folder = INFERENCE / row["dir"]
    result = parse_accuracy(folder / "accuracy.txt")
    assert result.value == pytest.approx(float(row["value"]), rel=1e-9)
    assert {"F1": "F1", "mAP": "mAP", "WER": "100-WER"}[row["metric"]] == result.metric
    # The accuracy run's LoadGen logs hold settings and warnings only.
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    assert detail.mode == "AccuracyOnly" and detail.validity is None
    summary = parse_summary(folder / "mlperf_log_summary.txt")
    assert not summary.is_performance
    bench = catalog.load().benchmark(Path(row["dir"]).parts[-3])
    assert bench.threshold == pytest.approx(float(row["threshold"]), abs=1e-6)
    verdict = accuracy_verdict(result, bench)
    harness = parse_accuracy_message(row["derived harness string"])
    assert verdict.ok is harness.passed is True
    assert harness.value == pytest.approx(result.value, abs=5e-4)


@needs_shared
@pytest.mark.parametrize("row", _rows(training_rows, TRAINING), ids=lambda r: r[TRAINING_FILE])
def test_training_log(row):
    run = parse_training_log(TRAINING / row[TRAINING_FILE])
    assert run.status == row["run_stop status"]
    assert run.time_to_train_s == pytest.approx(float(row["run_stop-run_start (s)"]), abs=1e-3)
    assert (run.summary is not None) is (row["e2e summary line"] == "yes")
    verdict = training_verdict(run, 0.720)
    assert verdict.ok is (row["run_stop status"] == "success")
    if run.summary:
        # REFERENCE: e2e_time > raw_train_time > run_stop - run_start; final_loss is always 0.0.
        assert run.summary["e2e_time"] > run.summary["raw_train_time"] > run.time_to_train_s
        assert run.summary["final_loss"] == 0.0


@needs_shared
def test_rank_prefixed_log_parses_like_plain():
    """The Dell log carries ' N: ' srun rank prefixes on every line."""
    path = TRAINING / "16xXE8545x4A100-SXM-40GB/bert/result_5.txt"
    mllog = [line for line in path.read_text().splitlines() if ":::MLLOG" in line]
    prefixed = [line for line in mllog if re.match(r"^\s*\d+: :::MLLOG ", line)]
    assert len(prefixed) > 100 and any("eval_accuracy" in line for line in prefixed)
    run = parse_training_log(path)
    assert run.platform == "16xXE8545x4A100-SXM4-40GB" and run.nodes == 16
    assert run.last_accuracy == pytest.approx(0.71967, abs=1e-5)
    verdict = training_verdict(run, 0.720)
    assert not verdict.ok and "'aborted'" in verdict.reason and "0.71967 < 0.720" in verdict.reason


@needs_shared
def test_records_that_ranks_wrote_onto_one_line_are_each_read(tmp_path):
    """Ranks that share one stdout (torchrun in a container) can join two records on a line
    (`...}:::MLLOG {...`): the published NVIDIA log with every pair of its MLLOG lines joined that way reads as
    the same run, event for event; a record cut short by the join is still an error naming its line."""
    from pytest_mlperf.logs import ParseError
    from pytest_mlperf.logs.mllog import iter_events

    path = TRAINING / "dgxa100_ngc22.09_pytorch/bert/result_0.txt"
    lines = [line[line.index(":::MLLOG") :] for line in path.read_text().splitlines() if ":::MLLOG" in line]
    joined = ["".join(lines[i : i + 2]) for i in range(0, len(lines), 2)]
    assert joined[0].count(":::MLLOG") == 2 and "}:::MLLOG {" in joined[0]
    copy = tmp_path / "joined.txt"
    copy.write_text("\n".join(joined) + "\n")
    assert [(e.key, e.value, e.time_ms) for e in iter_events(copy)] == [
        (e.key, e.value, e.time_ms) for e in iter_events(path)
    ]
    plain, merged = parse_training_log(path), parse_training_log(copy)
    assert (merged.status, merged.last_accuracy, merged.time_to_train_s) == (
        plain.status,
        plain.last_accuracy,
        plain.time_to_train_s,
    )
    assert merged.status == "success" and merged.last_accuracy >= 0.720
    cut = lines[0][: lines[0].index('"key"')] + lines[1]  # a record cut short where the next one starts
    copy.write_text(cut + "\n")
    with pytest.raises(ParseError, match=r"joined.txt:1: malformed MLLOG record"):
        list(iter_events(copy))
    copy.write_text(lines[0] + " stray text" + lines[1] + "\n")
    with pytest.raises(ParseError, match=r"joined.txt:1: text after an MLLOG record"):
        list(iter_events(copy))


@needs_shared
def test_olympic_scores_match_provenance():
    """Scores recomputed from the published sets: 16.8821 min (1 node) and 2.4974 min (8 nodes)."""
    for folder, expected in (("dgxa100_ngc22.09_pytorch", 16.8821), ("dgxa100_n8_ngc22.09_pytorch", 2.4974)):
        logs = (TRAINING / folder / "bert").glob("*.txt")
        minutes = sorted(parse_training_log(p).time_to_train_s / 60 for p in logs)
        assert len(minutes) == 10
        assert sum(minutes[1:-1]) / 8 == pytest.approx(expected, abs=1e-4)


@needs_shared
def test_every_fixture_file_is_read():
    """Each published file, one by one, through the CLI's per-file reader: none is left unread."""
    files = [p for p in sorted((SHARED / "fixtures").rglob("*")) if p.is_file() and p.name != "PROVENANCE.md"]
    assert len(files) == 178  # 146 inference + 32 training files, as PROVENANCE.md lists them
    rows = inference_perf_rows(INFERENCE) + inference_accuracy_rows(INFERENCE)
    covered_dirs = {INFERENCE / r["dir"] for r in rows}
    for path in files:
        rows = list(cli.file_metrics(path))
        json.dumps(rows)
        assert rows, f"no metrics read from {path}"
        if path.name == "mlperf_log_summary.txt" and path.parent.name == "accuracy":
            # accuracy-mode summaries hold only the warning/error counts
            assert [r["name"] for r in rows] == ["loadgen_warnings", "loadgen_errors"]
        if INFERENCE in path.parents:
            assert path.parent in covered_dirs, f"{path} is in no PROVENANCE row"


@needs_shared
def test_system_names_of_the_tree_split_into_catalog_ids():
    cat = catalog.load()
    names = {p.name for p in INFERENCE.iterdir() if p.is_dir() and not p.name.startswith("_")}
    for name in names:
        system_id, harness, power = split_system_name(name)
        assert cat.system_by_id(system_id) is not None, name
        assert harness == ("triton" if "_Triton" in name else None)
        assert power == ("MaxQ" if name.endswith("_MaxQ") else "MaxP")
