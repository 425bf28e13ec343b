"""Truncated and malformed logs raise ParseError naming the file (and line); they never yield a verdict.

Each broken input is a real published log, cut or damaged in a temporary copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.harness import parse_accuracy_message, parse_perf_message, parse_stdout, parse_summary_json
from pytest_mlperf.logs.loadgen import parse_detail, parse_summary
from pytest_mlperf.logs.mllog import parse_training_log

PERF = "DGX-A100_A100-SXM-80GBx8_TRT/bert-99/Server/performance/run_1"
ACC = "DGX-A100_A100-SXM-80GBx8_TRT/bert-99/Server/accuracy"
TRIAL = "dgxa100_ngc22.09_pytorch/bert/result_0.txt"


def _copy(src: Path, dst: Path, edit) -> Path:
    lines = src.read_text().splitlines(keepends=True)
    dst.write_text("".join(edit(lines)))
    return dst


def _raises(fn, path: Path, message: str, line: int | None = None) -> ParseError:
    with pytest.raises(ParseError) as info:
        fn(path)
    err = info.value
    assert err.path == path and message in str(err)
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}:" if line else f"{path}:")
    return err


def test_summary_cut_in_half(inference_fixtures, tmp_path):
    src = inference_fixtures / PERF / "mlperf_log_summary.txt"
    dst = _copy(src, tmp_path / "mlperf_log_summary.txt", lambda lines: lines[: len(lines) // 2])
    _raises(parse_summary, dst, "truncated summary")


def test_summary_without_result_line(inference_fixtures, tmp_path):
    src = inference_fixtures / PERF / "mlperf_log_summary.txt"
    dst = _copy(src, tmp_path / "mlperf_log_summary.txt", lambda ls: [x for x in ls if not x.startswith("Result is")])
    _raises(parse_summary, dst, "no 'Result is' line")


def test_summary_with_garbled_number(inference_fixtures, tmp_path):
    src = inference_fixtures / PERF / "mlperf_log_summary.txt"
    dst = _copy(src, tmp_path / "mlperf_log_summary.txt", lambda ls: [x.replace("57144171", "57l44171") for x in ls])
    number = next(i for i, x in enumerate(src.read_text().splitlines(), 1) if "57144171" in x)
    _raises(parse_summary, dst, "'57l44171' is not a number", line=number)


def test_summary_with_unknown_validity(inference_fixtures, tmp_path):
    src = inference_fixtures / PERF / "mlperf_log_summary.txt"
    dst = _copy(src, tmp_path / "mlperf_log_summary.txt", lambda ls: [x.replace(": VALID", ": MAYBE") for x in ls])
    _raises(parse_summary, dst, "neither VALID nor INVALID", line=8)


def test_detail_with_broken_json_line(inference_fixtures, tmp_path):
    src = inference_fixtures / PERF / "mlperf_log_detail.txt"

    def damage(lines):
        lines[4] = lines[4][:60] + "\n"
        return lines

    dst = _copy(src, tmp_path / "mlperf_log_detail.txt", damage)
    _raises(parse_detail, dst, "malformed MLLOG record", line=5)


def test_detail_cut_before_the_result(inference_fixtures, tmp_path):
    src = inference_fixtures / PERF / "mlperf_log_detail.txt"
    dst = _copy(src, tmp_path / "mlperf_log_detail.txt", lambda ls: [x for x in ls if '"result_' not in x])
    _raises(parse_detail, dst, "a performance run without result_validity")


def test_detail_that_is_not_a_loadgen_log(tmp_path):
    dst = tmp_path / "mlperf_log_detail.txt"
    dst.write_text("hello\n")
    _raises(parse_detail, dst, "no MLLOG lines")


def test_missing_file_is_named(tmp_path):
    _raises(parse_summary, tmp_path / "absent.txt", "file not found")


def test_accuracy_without_a_score(inference_fixtures, tmp_path):
    src = inference_fixtures / "DGX-A100_A100-SXM-80GBx8_TRT/ssd-resnet34/Offline/accuracy/accuracy.txt"
    dst = _copy(src, tmp_path / "accuracy.txt", lambda ls: [x for x in ls if not x.startswith("mAP=")])
    _raises(parse_accuracy, dst, "no accuracy score")


@pytest.mark.parametrize(
    "bad,message",
    [
        ("mAP=twenty%\n", "malformed mAP line"),
        ('{"exact_match": 83.1, "f1": }\n', "malformed SQuAD score line"),
        ("Word Error Rate: 7.4%, accuracy=\n", "malformed WER line"),
        ("hash=XYZ\n", "malformed hash line"),
        ('{"exact_match": 83.0, "f1": Infinity}\n', "malformed SQuAD score line"),
        ('{"exact_match": 83.0, "f1": 1e999}\n', "malformed SQuAD score line"),
        ('{"exact_match": 83.0, "f1": 5000}\n', "f1 is 5000, outside 0-100"),
        ('{"exact_match": -1, "f1": 90.0}\n', "exact_match is -1, outside 0-100"),
        ("mAP=150.0%\n", "mAP is 150, outside 0-100"),
        ("Word Error Rate: 50.0%, accuracy=99.0%\n", "accuracy 99% is not 100 - Word Error Rate (50%)"),
    ],
)
def test_accuracy_malformed_lines(tmp_path, bad, message):
    dst = tmp_path / "accuracy.txt"
    dst.write_text("loading annotations into memory...\n" + bad)
    _raises(parse_accuracy, dst, message, line=2)


def test_training_log_cut_before_run_stop(training_fixtures, tmp_path):
    src = training_fixtures / TRIAL
    dst = _copy(src, tmp_path / "result_0.txt", lambda ls: ls[: len(ls) - 3])
    _raises(parse_training_log, dst, "no run_stop event")


def test_training_log_with_text_accuracy(training_fixtures, tmp_path):
    src = training_fixtures / TRIAL
    lines = src.read_text().splitlines(keepends=True)
    number = next(i for i, x in enumerate(lines, 1) if '"eval_accuracy"' in x)
    dst = _copy(
        src,
        tmp_path / "result_0.txt",
        lambda ls: [
            re.sub(r'"value": ([0-9.]+)', r'"value": "\1%"', x) if i == number - 1 else x for i, x in enumerate(ls)
        ],
    )
    _raises(parse_training_log, dst, "eval_accuracy: '0.3781895339488983%' is not a number", line=number)


def test_training_log_without_mllog(tmp_path):
    dst = tmp_path / "result_0.txt"
    dst.write_text("+ set -x\nSTARTING TIMING RUN\n")
    _raises(parse_training_log, dst, "no MLLOG lines")


def test_training_summary_line_malformed(training_fixtures, tmp_path):
    src = training_fixtures / "gx_A100-SXMx8_pytorch_NGC_22.09/bert/result_0.txt"
    lines = src.read_text().splitlines(keepends=True)
    number = next(i for i, x in enumerate(lines, 1) if x.startswith("{'e2e_time'"))
    dst = _copy(
        src, tmp_path / "result_0.txt", lambda ls: [x.replace("'final_loss': 0.0", "'final_loss': nan") for x in ls]
    )
    _raises(parse_training_log, dst, "malformed run summary line", line=number)


def test_harness_messages_reject_garbage():
    with pytest.raises(ParseError, match="unrecognised perf result"):
        parse_perf_message("result_samples_per_second: lots, Result is VALID")
    with pytest.raises(ParseError, match="unrecognised accuracy result"):
        parse_accuracy_message("Accuracy = 90.1. Accuracy test PASSED.")


def test_harness_json_malformed(tmp_path):
    path = tmp_path / "perf_harness_summary.json"
    path.write_text('{"X-custom_k_99_MaxP-Offline": {"bert": "result_samples_per_second: 1.0, Result is VALID"')
    _raises(lambda p: parse_summary_json(p, "perf"), path, "malformed JSON", line=1)
    path.write_text('{"X-custom_k_99_MaxP-Offline": {"bert": "no idea"}}')
    with pytest.raises(ParseError, match=r"\[X-custom_k_99_MaxP-Offline/bert\].*unrecognised perf result"):
        parse_summary_json(path, "perf")


def test_harness_stdout_without_blocks(tmp_path):
    path = tmp_path / "stdout.txt"
    path.write_text("[I] Building engines\nmake: *** [run_harness] Error 1\n")
    _raises(parse_stdout, path, "the run did not finish")
