"""Hostile, broken and contradictory results trees, built from the published fixtures the way a careless copy, a
broken disk or a malicious folder name would build them. Each test asserts the exact outcome: this test fails
with this reason, this is a usage error naming this path; never just "does not crash"."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT
from pytest_mlperf.cli import main as cli
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.loadgen import parse_summary
from pytest_mlperf.report.records import write_json

SKU = "A100-SXM-80GBx8"
DGX = "DGX-A100_A100-SXM-80GBx8_TRT"
NVIDIA_1NODE = "dgxa100_ngc22.09_pytorch"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def _replay(suites, tree: Path, *args: str):
    return suites.runpytest(f"--mlperf-results={tree}", "--sku", SKU, *args)


def _dgx(inference_fixtures: Path, tmp_path: Path, *benchmarks: str) -> Path:
    tree = tmp_path / "tree"
    for bench in benchmarks:
        _copy(inference_fixtures / DGX / bench, tree / DGX / bench)
    return tree


# ---- 1. folder and content disagree ---------------------------------------------------------------------------
def test_offline_logs_in_a_server_folder_are_an_error_naming_both(suites, inference_fixtures, tmp_path):
    tree = _dgx(inference_fixtures, tmp_path, "bert-99")
    server = tree / DGX / "bert-99" / "Server" / "performance" / "run_1"
    shutil.rmtree(server)
    _copy(tree / DGX / "bert-99" / "Offline" / "performance" / "run_1", server)
    result = _replay(suites, tree, "-k", "bert-99-Server-PerformanceOnly-custom", "--mlperf-min-published=0.9")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*{server}: the logs' scenario is Offline, the case bert-99-Server-PerformanceOnly-custom has Server*"]
    )


def test_rnnt_logs_under_bert_are_an_error_naming_both(suites, inference_fixtures, tmp_path):
    tree = _dgx(inference_fixtures, tmp_path, "bert-99", "rnnt")
    for scenario in ("Server", "Offline"):
        folder = tree / DGX / "bert-99" / scenario / "performance" / "run_1"
        shutil.rmtree(folder)
        _copy(tree / DGX / "rnnt" / scenario / "performance" / "run_1", folder)
    accuracy = tree / DGX / "bert-99" / "Offline" / "accuracy" / "accuracy.txt"
    shutil.copy(tree / DGX / "rnnt" / "Offline" / "accuracy" / "accuracy.txt", accuracy)
    result = _replay(suites, tree, "-k", "bert-99- and custom and not Server-Accuracy")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*the logs' Server latency bound is 1000 ms, the case bert-99-Server-PerformanceOnly-custom has 130 ms*",
            "*the logs' sut_name 'RNNT SERVER' is rnnt's, not bert-99's (the case bert-99-Offline-PerformanceOnly-*",
            "*accuracy.txt scores 100-WER, the case bert-99-Offline-AccuracyOnly-custom is scored by F1*",
        ]
    )


# ---- 2. and 3. trials that cannot be read, and other benchmarks' logs ------------------------------------------------
def test_unreadable_trials_count_against_the_score(suites, training_fixtures, tmp_path):
    """Ten trials, two of them emptied: the set still has ten, two not converged, so MLPerf's rule makes it
    INVALID (it was 'olympic mean of 6 of 8')."""
    tree = _copy(training_fixtures / NVIDIA_1NODE, tmp_path / "t" / NVIDIA_1NODE)
    for name in ("result_3.txt", "result_7.txt"):
        (tree / "bert" / name).write_text("")
    result = _replay(suites, tree.parent, "-m", "training")
    result.assert_outcomes(passed=8, failed=3, skipped=3)  # skipped: the SKU's three other configs, no logs here
    result.stdout.fnmatch_lines_random(
        [
            "*bert-1x8x56x1-dgxa100_ngc22.09_pytorch/result_3*no MLLOG lines: not an MLPerf training log*",
            "*INVALID: 2 of 10 runs did not converge (at most one may)*",
        ]
    )


def test_another_benchmarks_log_is_not_a_bert_trial(suites, training_fixtures, tmp_path):
    tree = _copy(training_fixtures / NVIDIA_1NODE, tmp_path / "t" / NVIDIA_1NODE)
    _edit(
        tree / "bert" / "result_4.txt",
        '"submission_benchmark", "value": "bert"',
        '"submission_benchmark", "value": "resnet"',
    )
    result = _replay(suites, tree.parent, "-m", "training", "-rs")
    # nine trials pass; their score is partial (nine of ten), which fails; skipped: the resnet log, and the SKU's
    # three other configs
    result.assert_outcomes(passed=9, failed=1, skipped=4)
    result.stdout.fnmatch_lines_random(
        [
            "*result_4.txt: submission_benchmark 'resnet': not a BERT trial*",
            "*PARTIAL: 9 of the 10 runs an MLPerf BERT score needs*olympic mean of 7 of 9 runs*",
        ]
    )
    accepted = _replay(suites, tree.parent, "-m", "score", "--mlperf-partial-scores")
    accepted.assert_outcomes(passed=1)
    accepted.stdout.fnmatch_lines(["*SCORED*(partial: 9 of the 10 runs*accepted by --mlperf-partial-scores)*"])


# ---- 4. values out of their domain ---------------------------------------------------------------------------------
# (accuracy.txt figures out of 0-100, Infinity, 1e999 and an inconsistent WER: tests/test_malformed.py)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"key": "eval_accuracy", "value": 0.7',
            '"key": "eval_accuracy", "value": 1.5',
            "eval_accuracy is 1.5*, outside 0 to 1",
        ),
        (
            '"key": "eval_accuracy", "value": 0.7',
            '"key": "eval_accuracy", "value": Infinity',
            "non-finite number Infinity",
        ),
        ('"time_ms": 16', '"time_ms": NaN', "non-finite number NaN"),
    ],
)
def test_training_values_out_of_their_domain_fail_the_trial(suites, training_fixtures, tmp_path, old, new, message):
    tree = _copy(training_fixtures / NVIDIA_1NODE, tmp_path / "t" / NVIDIA_1NODE)
    _edit(tree / "bert" / "result_0.txt", old, new)
    result = _replay(suites, tree.parent, "-m", "training", "-k", "result_0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*result_0.txt:*{message}*"])


def test_run_stop_before_run_start_is_a_parse_error(suites, training_fixtures, tmp_path):
    tree = _copy(training_fixtures / NVIDIA_1NODE, tmp_path / "t" / NVIDIA_1NODE)
    log = tree / "bert" / "result_0.txt"
    lines = log.read_text().splitlines(keepends=True)
    start = next(i for i, x in enumerate(lines) if '"key": "run_start"' in x)
    stop = next(i for i, x in enumerate(lines) if '"key": "run_stop"' in x)
    start_ms = json.loads(lines[start].split(":::MLLOG", 1)[1])["time_ms"]
    lines[stop] = re.sub(r'"time_ms": [0-9.]+', f'"time_ms": {start_ms - 1000}', lines[stop])
    log.write_text("".join(lines))
    result = _replay(suites, tree.parent, "-m", "training", "-k", "result_0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*comes before run_start*"])


def test_the_results_json_is_strict_json(suites, inference_fixtures, tmp_path):
    result = _replay(suites, inference_fixtures, "-m", "inference and rnnt", f"--mlperf-json={tmp_path / 'r.json'}")
    result.assert_outcomes(passed=4)

    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token}")

    json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json(tmp_path / "bad.json", {"value": float("nan")})
    assert not list(tmp_path.glob(".bad.json.*"))


# ---- 5. contradictions ------------------------------------------------------------------------------------------
def test_a_summary_that_contradicts_itself_is_an_error(suites, inference_fixtures, tmp_path):
    tree = _dgx(inference_fixtures, tmp_path, "bert-99")
    folder = tree / DGX / "bert-99" / "Server" / "performance" / "run_1"
    (folder / "mlperf_log_detail.txt").unlink()  # a summary-only folder
    _edit(
        folder / "mlperf_log_summary.txt",
        "Performance constraints satisfied : Yes",
        "Performance constraints satisfied : NO",
    )
    result = _replay(suites, tree, "-k", "bert-99-Server-PerformanceOnly-custom")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*says 'Result is : VALID' but also 'Performance constraints satisfied : NO'*"])


def test_conflicting_duplicates_are_errors(inference_fixtures, tmp_path):
    src = inference_fixtures / DGX / "bert-99" / "Server" / "performance" / "run_1"
    summary = tmp_path / "mlperf_log_summary.txt"
    text = (src / "mlperf_log_summary.txt").read_text()
    summary.write_text(text.replace("Result is : VALID", "Result is : INVALID\nResult is : VALID"))
    with pytest.raises(ParseError, match=r"'Result is' appears twice: 'INVALID' \(line \d+\) and 'VALID'"):
        parse_summary(summary)
    detail = tmp_path / "mlperf_log_detail.txt"
    lines = (src / "mlperf_log_detail.txt").read_text().splitlines(keepends=True)
    at = next(i for i, x in enumerate(lines) if '"result_validity"' in x)
    lines.insert(at, lines[at].replace('"VALID"', '"INVALID"'))
    detail.write_text("".join(lines))
    from pytest_mlperf.logs.loadgen import parse_detail

    with pytest.raises(ParseError, match=r"result_validity logged twice: 'INVALID' \(line \d+\) and 'VALID'"):
        parse_detail(detail)
    lines = (src / "mlperf_log_detail.txt").read_text().splitlines(keepends=True)
    lines[at] = lines[at].replace('"value": "VALID"', '"value": "VALID", "value": "INVALID"')
    detail.write_text("".join(lines))
    with pytest.raises(ParseError, match="key 'value' twice with different values"):
        parse_detail(detail)


# ---- 6. gates switched off ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"result_samples_per_second", "value": 106753',
            '"result_samples_per_second", "value": NaN',
            "non-finite number NaN",
        ),
        ("Samples per second: ", "Samples per second: 0 # ", "Samples per second is 0: a rate must be above 0"),
    ],
)
def test_a_nan_or_zero_rate_is_never_valid(suites, inference_fixtures, tmp_path, old, new, message):
    tree = _dgx(inference_fixtures, tmp_path, "rnnt")
    folder = tree / DGX / "rnnt" / "Offline" / "performance" / "run_1"
    name = "mlperf_log_detail.txt" if "result_" in old else "mlperf_log_summary.txt"
    if name == "mlperf_log_summary.txt":
        (folder / "mlperf_log_detail.txt").unlink()
        text = (folder / name).read_text()
        line = next(x for x in text.splitlines() if x.startswith("Samples per second"))
        (folder / name).write_text(text.replace(line, "Samples per second: 0"))
    else:
        _edit(folder / name, old, new)
    result = _replay(suites, tree, "-k", "rnnt-Offline-PerformanceOnly", "--mlperf-min-published=0.5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", "not a pytest-mlperf results file (non-finite number NaN)"),
        ("1e999", "not a pytest-mlperf results file (number 1e999 overflows)"),
        ("0", "is 0: a change from it cannot be measured, so it cannot gate"),
        ('"fast"', "'fast' is not a number"),
    ],
)
def test_a_baseline_that_cannot_gate_is_a_usage_error(suites, inference_fixtures, tmp_path, value, message):
    base = tmp_path / "base.json"
    first = _replay(suites, inference_fixtures, "-m", "inference and rnnt", f"--mlperf-json={base}")
    first.assert_outcomes(passed=4)
    text = base.read_text()
    rate = re.search(r'"name": "result_samples_per_second",\s*"value": ([0-9.e+]+)', text)
    base.write_text(text[: rate.start(1)] + value + text[rate.end(1) :])
    result = _replay(suites, inference_fixtures, "-m", "inference and rnnt", f"--mlperf-baseline={base}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--mlperf-baseline {base}: *{message}*"])


def test_merge_takes_the_median_of_sound_nodes_and_names_the_bad_one(suites, inference_fixtures, tmp_path, capsys):
    runs = []
    for node in ("a", "b", "c"):
        path = tmp_path / f"{node}.json"
        _replay(suites, inference_fixtures, "-m", "inference and rnnt and offline", f"--mlperf-json={path}")
        data = json.loads(path.read_text())
        data["host"] = node
        path.write_text(json.dumps(data))
        runs.append(str(path))
    bad = Path(runs[2])
    bad.write_text(re.sub(r'("name": "result_samples_per_second",\s*"value": )[0-9.]+', r"\g<1>0", bad.read_text()))
    assert cli(["merge", *runs]) == 1
    out = capsys.readouterr().out
    assert f"BAD NODE {bad}: " in out and "no node more than 5% behind the fleet median" in out
    with pytest.raises(SystemExit) as exited:
        cli(["merge", *runs, "--spread", "-1"])
    assert exited.value.code == 2 and "must be a fraction above 0 and below 1" in capsys.readouterr().err


# ---- 7. baselines lost -----------------------------------------------------------------------------------------------
STOP_AFTER_ONE = """
import pytest

def pytest_runtest_teardown(item, nextitem):
    raise KeyboardInterrupt("the operator pressed Ctrl-C")
"""


def test_a_stopped_save_leaves_the_baseline_whole_and_a_gate_says_what_it_did_not_find(
    suites, inference_fixtures, tmp_path
):
    store = f"--mlperf-baseline-dir={tmp_path / 'b'}"
    full = _replay(suites, inference_fixtures, "-m", "inference", store, "--mlperf-save=night")
    full.assert_outcomes(passed=28, skipped=4)
    saved = tmp_path / "b" / "night.json"
    before = saved.read_text()
    suites.makeconftest(STOP_AFTER_ONE)
    stopped = suites.runpytest_subprocess(
        f"--mlperf-results={inference_fixtures}", "--sku", SKU, "-m", "inference", store, "--mlperf-save=night"
    )
    assert stopped.ret == pytest.ExitCode.INTERRUPTED
    assert saved.read_text() == before
    partial = json.loads((tmp_path / "b" / "night.partial.json").read_text())
    assert len(partial["results"]) == 1
    stopped.stdout.fnmatch_lines(["*baseline saved: *night.partial.json (the run stopped early*"])

    (suites.path / "conftest.py").unlink()
    gated = _replay(suites, inference_fixtures, "-m", "inference", store, "--mlperf-baseline=night.partial")
    gated.stdout.fnmatch_lines(["*WARNING: 27 of 32 cases are not in baseline night.partial: nothing gates them*"])


def test_concurrent_saves_never_share_a_temporary_file(tmp_path):
    path, errors = tmp_path / "same.json", []

    def save(n: int) -> None:
        try:
            for i in range(20):
                write_json(path, {"writer": n, "round": i, "results": []})
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and json.loads(path.read_text())["results"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["same.json"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(id=["a", "list"]), "results[0].id is ['a', 'list'], not a case id"),
        (lambda r: r["metrics"][1].pop("name"), "results[0].metrics[1] has no name"),
        (
            lambda r: r["metrics"].__setitem__(1, {**r["metrics"][1], "higher_is_better": "yes"}),
            "results[0].metrics[1] (",
        ),
        (lambda r: r.update(metrics="none"), "results[0].metrics is not a list"),
    ],
)
def test_a_hand_edited_baseline_is_a_usage_error_naming_the_field(suites, inference_fixtures, tmp_path, edit, message):
    base = tmp_path / "base.json"
    _replay(suites, inference_fixtures, "-m", "inference and rnnt", f"--mlperf-json={base}").assert_outcomes(passed=4)
    data = json.loads(base.read_text())
    edit(data["results"][0])
    base.write_text(json.dumps(data))
    result = _replay(suites, inference_fixtures, "-m", "inference and rnnt", f"--mlperf-baseline={base}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--mlperf-baseline {base}: {message}" in "\n".join(result.errlines)


# ---- 8. and 9. injection ------------------------------------------------------------------------------------------
EVIL = 'X"><img src=x onerror=alert(1)>'


def test_folder_names_never_reach_the_report_as_markup(suites, inference_fixtures, training_fixtures, tmp_path):
    tree = tmp_path / "tree"
    _copy(inference_fixtures / DGX / "rnnt" / "Offline", tree / f"{DGX}{EVIL}" / "rnnt" / "Offline")
    _copy(training_fixtures / "dgxh100_preview", tree / EVIL)
    result = suites.runpytest(f"--mlperf-results={tree}", "--html=r.html", "--junitxml=r.xml", "-p", "no:randomly")
    html = (suites.path / "r.html").read_text()
    assert "<img src=x" not in html and "onerror=alert(1)>" not in html
    ids = [tc.get("name") for tc in ET.parse(suites.path / "r.xml").getroot().iter("testcase")]
    assert ids and all(re.fullmatch(r"test_\w+\[[A-Za-z0-9._+@/=~-]+\]", i) for i in ids), ids
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)


def test_control_characters_never_reach_junit_names(suites, inference_fixtures, training_fixtures, tmp_path):
    tree = tmp_path / "tree"
    _copy(inference_fixtures / DGX / "rnnt" / "Offline", tree / f"{DGX}\x07bell" / "rnnt" / "Offline")
    trial = _copy(training_fixtures / "16xXE8545x4A100-SXM-40GB", tree / "dell")
    _edit(trial / "bert" / "result_5.txt", "'final_loss'", "'final\x1b[31m_loss'", count=-1)
    suites.runpytest(f"--mlperf-results={tree}", "--junitxml=r.xml")
    root = ET.parse(suites.path / "r.xml").getroot()  # parses: no control character in a name or a value
    names = [p.get("name") for p in root.iter("property")]
    assert names and all(re.fullmatch(r"[A-Za-z0-9_.:/%@+-]+", n) for n in names)
    assert any(
        "run summary line has a key that is not a plain name" in (f.get("message") or "") for f in root.iter("failure")
    )


# ---- 10. 11. hangs and crashes -------------------------------------------------------------------------------------
def test_a_huge_line_parses_in_linear_time(tmp_path):
    """The summary's key:value split was a backtracking regex: 64 KB of spaces took 8.8 s, 1 MB tens of
    minutes. A hang detector with a wide margin, not a speed target (benchmarks/fuzz_parsers.py measures)."""
    path = tmp_path / "mlperf_log_summary.txt"
    path.write_text(
        "Result is" + " " * (1 << 20) + "x\nNo warnings encountered during test.\nNo errors encountered during test.\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", f"from pytest_mlperf.logs.loadgen import parse_summary; parse_summary({str(path)!r})"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr


def test_special_files_named_like_logs_fail_their_case_and_never_hang(suites, inference_fixtures, tmp_path):
    tree = _dgx(inference_fixtures, tmp_path, "rnnt")
    fifo = tree / DGX / "rnnt" / "Offline" / "performance" / "run_1" / "mlperf_log_summary.txt"
    fifo.unlink()
    os.mkfifo(fifo)
    (tree / DGX / "rnnt" / "Offline" / "performance" / "run_1" / "mlperf_log_detail.txt").unlink()
    folder = tree / DGX / "rnnt" / "Server" / "performance" / "run_1"
    (folder / "mlperf_log_detail.txt").unlink()
    (folder / "mlperf_log_summary.txt").unlink()
    (folder / "mlperf_log_summary.txt").mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={tmp_path}", "-p", "no:cacheprovider"]
        + [f"--mlperf-results={tree}", "--sku", SKU, "-m", "inference and rnnt and performance"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout[-3000:]
    assert "mlperf_log_summary.txt: is not a regular file (a FIFO, socket or device), so it is not read" in run.stdout
    assert "mlperf_log_summary.txt: is a directory, expected a log file" in run.stdout


def test_an_unreadable_log_or_folder_fails_its_case(suites, inference_fixtures, tmp_path):
    """Root reads any file, so as root the replay runs without the capabilities that let it (setpriv drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): the file is as unreadable to it as to anyone else."""
    tree = _dgx(inference_fixtures, tmp_path, "rnnt")
    log = tree / DGX / "rnnt" / "Offline" / "performance" / "run_1" / "mlperf_log_detail.txt"
    folder = tree / DGX / "rnnt" / "Server" / "performance" / "run_1"
    os.chmod(log, 0)
    os.chmod(folder, 0)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root, this test needs setpriv (util-linux) to run the replay without CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    run = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "suites"),
            f"--rootdir={tmp_path}",
            "-p",
            "no:cacheprovider",
        ]
        + [f"--mlperf-results={tree}", "--sku", SKU, "-m", "inference and rnnt"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout[-3000:] + run.stderr[-2000:]
    os.chmod(folder, 0o755)
    assert f"{log}: cannot open: Permission denied" in run.stdout
    assert f"{folder}: cannot read the folder: Permission denied" in run.stdout
    assert "2 failed, 2 passed" in run.stdout


def test_a_truncated_harness_json_fails_only_its_cases(suites, inference_fixtures, tmp_path):
    stamp = tmp_path / "build" / "logs" / "2022.02.20-10.11.12"
    _copy(inference_fixtures / DGX / "rnnt" / "Offline" / "performance" / "run_1", stamp / DGX / "rnnt" / "Offline")
    (stamp / "perf_harness_summary.json").write_text('{"' + DGX + '-custom_k_99_MaxP-Offline": {"rnnt": "result_sam')
    result = suites.runpytest(f"--mlperf-results={tmp_path / 'build' / 'logs'}", "-m", "inference")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf_harness_summary.json:1: malformed JSON (Unterminated string*"])


def test_a_results_root_that_is_a_symlink_loop_is_a_usage_error(suites, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = suites.runpytest(f"--mlperf-results={loop}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--mlperf-results {loop}: not a directory*"])


# ---- 12. and 13. nothing checked, and harness logs taken for trials -------------------------------------------------
def test_a_gate_that_checks_nothing_fails(suites, inference_fixtures, tmp_path):
    (tmp_path / "empty").mkdir()
    empty = suites.runpytest(f"--mlperf-results={tmp_path / 'empty'}")
    assert empty.ret == pytest.ExitCode.TESTS_FAILED
    empty.stdout.fnmatch_lines(["*MLPerf: none of the * cases came to a verdict, so this run fails*"])
    other = suites.runpytest(f"--mlperf-results={inference_fixtures}", "--sku", "A2x1", "-m", "inference")
    assert other.ret == pytest.ExitCode.TESTS_FAILED
    other.stdout.fnmatch_lines(["*none of the * cases came to a verdict*looked for*"])


def test_a_harness_log_in_an_inference_tree_is_not_a_training_trial(suites, inference_fixtures, tmp_path):
    tree = _dgx(inference_fixtures, tmp_path, "rnnt")
    run = tree / DGX / "rnnt" / "Offline" / "performance" / "run_1"
    (run / "run_harness.log").write_text((run / "mlperf_log_detail.txt").read_text())
    result = suites.runpytest(f"--mlperf-results={tree}", "-m", "training", "-rs")
    result.assert_outcomes(skipped=2)  # the trial and score placeholders: no trial in this tree
    result.stdout.fnmatch_lines(["*no training cases for this run on the results backend*"])
    assert "run_harness" not in result.stdout.str()


# ---- 14. 15. 16. the CLI, encodings, what reports echo ---------------------------------------------------------------
def test_metrics_reports_a_broken_case_and_goes_on(inference_fixtures, tmp_path, capsys):
    tree = _dgx(inference_fixtures, tmp_path, "rnnt")
    (tree / DGX / "rnnt" / "Server" / "accuracy" / "accuracy.txt").write_text("mAP=nope%\n")
    assert cli(["metrics", str(tree)]) == 2
    captured = capsys.readouterr()
    cases = {json.loads(line)["case"] for line in captured.out.splitlines()}
    assert len(cases) == 3 and "malformed mAP line" in captured.err


def test_an_output_path_that_cannot_be_written_is_refused_at_the_start(suites, inference_fixtures, tmp_path):
    (tmp_path / "r.json").mkdir()
    result = _replay(suites, inference_fixtures, f"--mlperf-json={tmp_path / 'r.json'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--mlperf-json {tmp_path / 'r.json'}: is a directory*"])


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_an_accuracy_file_with_a_byte_order_mark_is_read(inference_fixtures, tmp_path, encoding):
    src = inference_fixtures / DGX / "rnnt" / "Offline" / "accuracy" / "accuracy.txt"
    path = tmp_path / "accuracy.txt"
    path.write_text(src.read_text(), encoding=encoding)
    assert parse_accuracy(path).value == parse_accuracy(src).value


def test_what_reports_echo_is_capped_and_cleaned(suites, inference_fixtures, tmp_path):
    tree = _dgx(inference_fixtures, tmp_path, "rnnt")
    accuracy = tree / DGX / "rnnt" / "Offline" / "accuracy" / "accuracy.txt"
    accuracy.write_text("mAP=" + "\x1b[31m9" * (1 << 20) + "%\n")
    result = _replay(suites, tree, "-k", "rnnt-Offline-AccuracyOnly", "--junitxml=r.xml", "--html=r.html")
    result.assert_outcomes(failed=1)
    out = "\n".join(result.outlines)
    assert "\x1b[31m" not in out and "more characters)" in out and len(out) < 200_000
    assert len((suites.path / "r.xml").read_text()) < 200_000 and len((suites.path / "r.html").read_text()) < 2_000_000


# ---- 17. where the trials ran --------------------------------------------------------------------------------------
def test_scores_do_not_depend_on_the_workers(training_fixtures, tmp_path):
    """The serial run's scores and verdicts, under -n 2 and -n 4 (--dist loadgroup no longer groups with
    pytest 9.2, so trials and their score land on different workers)."""
    outcomes = []
    for workers in ("0", "2", "4"):
        out = tmp_path / f"r{workers}.json"
        subprocess.run(
            [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={tmp_path}", "-p", "no:cacheprovider"]
            + ["-m", "training", f"--mlperf-results={training_fixtures}", "-n", workers, f"--mlperf-json={out}"]
            + ["--mlperf-compliance=off"],  # the checker's findings are not what is compared here
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        records = json.loads(out.read_text())["results"]
        outcomes.append(
            sorted((r["id"], r.get("verdict"), [m["value"] for m in r.get("metrics", [])]) for r in records)
        )
    assert len(outcomes[0]) == 37 and outcomes[0] == outcomes[1] == outcomes[2]
    scores = {case: verdict for case, verdict, _ in outcomes[0] if case.count("/") == 0}
    assert scores["bert-1x8x56x1-dgxa100_ngc22.09_pytorch"] == "SCORED"
