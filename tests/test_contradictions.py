"""Files that contradict themselves or each other, built from copies of the published fixtures: each edit is one a
hostile or careless hand could make, and each must end in an error naming the files and the values, never in
PASS, VALID, CONVERGED or SCORED. The classes are those of the second round of hostile inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mlperf.backends import Artifacts
from pytest_mlperf.catalog import load
from pytest_mlperf.judge.evaluate import evaluate
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.loadgen import check_pair, parse_detail, parse_summary

A30 = "A30x8_TRT"
SERVER = "bert-99-Server-PerformanceOnly-custom"


def _case(sku: str, case_id: str):
    return next(c for c in load().inference_cases(sku) if c.id == case_id)


def _run(inference_fixtures: Path, tmp_path: Path, folder: str = f"{A30}/bert-99/Server/performance/run_1") -> Path:
    copy = tmp_path / "run"
    shutil.copytree(inference_fixtures / folder, copy)
    for path in copy.iterdir():
        path.chmod(0o644)
    return copy


def _detail_value(folder: Path, key: str, value: str) -> None:
    """Set one key of the detail log (every line that logs it), keeping the rest of the line as LoadGen wrote it."""
    path = folder / "mlperf_log_detail.txt"
    text, count = re.subn(rf'("key": "{re.escape(key)}", "value": )[^,]+,', rf"\g<1>{value},", path.read_text())
    assert count, f"{key} is not in {path}"
    path.write_text(text)


def _summary_value(folder: Path, label: str, value: str) -> None:
    path = folder / "mlperf_log_summary.txt"
    text, count = re.subn(rf"^(\s*{re.escape(label)}\s*:\s*).*$", rf"\g<1>{value}", path.read_text(), flags=re.M)
    assert count == 1, f"{label!r} is not once in {path}"
    path.write_text(text)


def _refused(folder: Path, case_id: str = SERVER, sku: str = "A30x8") -> str:
    with pytest.raises(ParseError) as caught:
        evaluate(_case(sku, case_id), Artifacts(folder))
    return str(caught.value)


# ---- 1. a LoadGen verdict its own figures contradict -------------------------------------------------------------
def test_the_published_pairs_agree_as_printed(inference_fixtures):
    """Every published summary and detail log of one run pass the pair check, the summary's two printed decimals
    against the detail log's six significant digits (11491.25 against 11491.3): the check refuses edits, not
    LoadGen's own rounding."""
    pairs = 0
    for summary in sorted(inference_fixtures.rglob("mlperf_log_summary.txt")):
        detail = summary.with_name("mlperf_log_detail.txt")
        if detail.exists():
            check_pair(parse_summary(summary), parse_detail(detail))
            pairs += 1
    assert pairs == 59  # every pair the fixtures hold (a fixture lost would show here)


def test_a_server_run_over_its_bound_is_not_valid_whatever_its_flags_say(inference_fixtures, tmp_path):
    """The detail log says VALID and performance constraints met, but its latency at the 99th percentile is over
    effective_target_latency_ns (the summary edited to match): LoadGen computed that flag from those figures, so
    the log contradicts itself."""
    run = _run(inference_fixtures, tmp_path)
    _detail_value(run, "result_99.00_percentile_latency_ns", "140000000")
    _summary_value(run, "99.00 percentile latency (ns)", "140000000")
    message = _refused(run)
    assert "mlperf_log_detail.txt" in message
    assert "result_perf_constraints_met is true but result_99.00_percentile_latency_ns 1.4e+08 > " in message
    assert "effective_target_latency_ns 1.3e+08" in message


def test_a_summary_alone_over_its_bound_is_not_valid(inference_fixtures, tmp_path):
    run = _run(inference_fixtures, tmp_path)
    (run / "mlperf_log_detail.txt").unlink()
    _summary_value(run, "99.00 percentile latency (ns)", "140000000")
    message = _refused(run)
    assert "mlperf_log_summary.txt: says 'Performance constraints satisfied : Yes' but its" in message
    assert "result_99.00_percentile_latency_ns 140000000 (line 28) is over its target_latency (ns) 130000000" in message


def test_min_queries_met_with_fewer_queries_than_the_minimum_is_refused(inference_fixtures, tmp_path):
    run = _run(inference_fixtures, tmp_path)
    _detail_value(run, "result_query_count", "1000")
    message = _refused(run)
    assert "result_min_queries_met is true but result_query_count 1000 < effective_min_query_count 270336" in message
    # and the other way: enough queries logged, the flag says not met
    run = _run(inference_fixtures, tmp_path / "2")
    _detail_value(run, "result_min_queries_met", "false")
    _detail_value(run, "result_validity", '"INVALID"')
    assert "result_min_queries_met is false but result_query_count 6.89475e+06 >=" in _refused(run)


def test_a_server_bound_held_at_another_percentile_is_not_the_rounds(inference_fixtures, tmp_path):
    """The 99th percentile is over the bound, and the log says the bound was held at the 50th: consistent in itself
    (LoadGen would say VALID at 0.5), but no MLPerf v2.0 Server result."""
    run = _run(inference_fixtures, tmp_path)
    _detail_value(run, "result_99.00_percentile_latency_ns", "140000000")
    _summary_value(run, "99.00 percentile latency (ns)", "140000000")
    _detail_value(run, "effective_target_latency_percentile", "0.5")
    message = _refused(run)
    assert "effective_target_latency_percentile is 0.5, the round's Server percentile is 0.99" in message
    assert SERVER in message


def test_a_stream_headline_at_another_percentile_is_not_the_rounds(inference_fixtures, tmp_path):
    run = _run(inference_fixtures, tmp_path, "A30x1_TRT/ssd-mobilenet/SingleStream/performance/run_1")
    _detail_value(run, "effective_target_latency_percentile", "0.5")
    message = _refused(run, "ssd-mobilenet-SingleStream-PerformanceOnly-lwis", "A30x1")
    assert "effective_target_latency_percentile is 0.5, the round's SingleStream percentile is 0.9" in message


@pytest.mark.parametrize(
    ("label", "value", "key", "theirs"),
    [
        ("Scheduled samples per second", "13000.00", "result_scheduled_samples_per_sec 13000.00 (line 7)", "11491.3"),
        (
            "99.00 percentile latency (ns)",
            "95000000",
            "result_99.00_percentile_latency_ns 95000000 (line 28)",
            "9.5667e+07",
        ),
        ("min_query_count", "1024", "effective_min_query_count 1024", "270336"),
        ("target_qps", "12000", "effective_target_qps 12000", "11500"),
        ("Min queries satisfied", "NO", "result_min_queries_met NO", "true"),
    ],
)
def test_a_summary_and_detail_log_that_disagree_are_not_judged(inference_fixtures, tmp_path, label, value, key, theirs):
    """One run's two files, one of them edited: the error names both files and both values."""
    run = _run(inference_fixtures, tmp_path)
    _summary_value(run, label, value)
    if label == "Min queries satisfied":
        _summary_value(run, "Result is", "INVALID")
    message = _refused(run)
    assert f"{run / 'mlperf_log_summary.txt'}: disagrees with {run / 'mlperf_log_detail.txt'}" in message
    assert f"{key} against {theirs}" in message


def test_a_rate_printed_twice_in_one_summary_says_one_value(tmp_path):
    """LoadGen 6 prints a Server run's completed rate as its headline and its scheduled rate in the stats; a summary
    that prints one figure twice with two values is refused where it happens."""
    path = tmp_path / "mlperf_log_summary.txt"
    path.write_text(
        "MLPerf Results Summary\nSUT name : S\nScenario : Offline\nMode     : PerformanceOnly\n"
        "Samples per second: 100.00\nResult is : VALID\n  Min duration satisfied : Yes\n"
        "  Min queries satisfied : Yes\n  Early stopping satisfied: Yes\nAdditional Stats\n"
        "Samples per second: 120.00\nTest Parameters Used\nsamples_per_query : 1\n"
        "No warnings encountered during test.\nNo errors encountered during test.\n"
    )
    with pytest.raises(ParseError, match=r"result_samples_per_second is printed as 100.00 \(line 5\) and as 120.00"):
        parse_summary(path)


# A consistent published pair, one of its files edited by one number or one word.
_EDITS = {
    "summary": [
        ("Scheduled samples per second", "{:.2f}"),
        ("99.00 percentile latency (ns)", "{:.0f}"),
        ("90.00 percentile latency (ns)", "{:.0f}"),
        ("min_query_count", "{:.0f}"),
        ("target_latency (ns)", "{:.0f}"),
        ("Result is", None),
        ("Performance constraints satisfied", None),
    ],
    "detail": [
        ("result_scheduled_samples_per_sec", "{:g}"),
        ("result_99.00_percentile_latency_ns", "{:.0f}"),
        ("result_query_count", "{:.0f}"),
        ("effective_min_query_count", "{:.0f}"),
        ("effective_target_latency_ns", "{:.0f}"),
        ("effective_target_latency_percentile", "{:g}"),
        ("result_validity", None),
        ("early_stopping_met", None),
    ],
}
_WORDS = {
    "Result is": ("VALID", "INVALID"),
    "Performance constraints satisfied": ("Yes", "NO"),
    "result_validity": ('"VALID"', '"INVALID"'),
    "early_stopping_met": ("true", "false"),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(
        [
            f"{A30}/bert-99/Server/performance/run_1",
            "DGX-A100_A100-SXM-80GBx8_TRT_MaxQ/bert-99/Server/performance/ranging",
        ]
    ),
    which=st.sampled_from(sorted(_EDITS)),
    pick=st.integers(min_value=0, max_value=7),
    factor=st.sampled_from([0.01, 0.5, 0.9, 0.99, 1.01, 1.1, 2.0, 100.0]),
    word=st.integers(min_value=0, max_value=1),
)
def test_one_edited_file_of_a_consistent_pair_is_refused(
    inference_fixtures, tmp_path_factory, source, which, pick, factor, word
):
    """Hypothesis: one number (times a factor at least 1 % away from 1) or one word changed in one file of a published
    pair, a VALID one (A30x8 bert-99 Server) or an INVALID one (the MaxQ ranging run, early stopping not met). Every
    figure and word edited here is one the other file also gives, or one the round fixes, or one LoadGen derives a
    flag from: any real change is refused. The one exception is result_query_count, which the v2.0 summary does
    not print: changed and still at or over the minimum, the verdict is the untouched pair's."""
    run = _run(inference_fixtures, tmp_path_factory.mktemp("pair"), source)
    case = _case("A100-SXM-80GBx8", SERVER)
    untouched = evaluate(case, Artifacts(run))
    edits = _EDITS[which]
    name, form = edits[pick % len(edits)]
    path = run / ("mlperf_log_summary.txt" if which == "summary" else "mlperf_log_detail.txt")
    before = path.read_text()
    if form is None:
        (_summary_value if which == "summary" else _detail_value)(run, name, _WORDS[name][word])
    elif which == "summary":
        old = float(re.search(rf"^\s*{re.escape(name)}\s*:\s*(\S+)", before, re.M)[1])
        _summary_value(run, name, form.format(old * factor))
    else:
        old = float(re.search(rf'"key": "{re.escape(name)}", "value": ([^,]+),', before)[1])
        _detail_value(run, name, form.format(old * factor))
    if path.read_text() == before:  # a word set to what it already said
        assert evaluate(case, Artifacts(run)).verdict == untouched.verdict
        return
    if name == "result_query_count" and factor >= 0.5:  # 0.5 x the fewest published still meets 270336
        result = evaluate(case, Artifacts(run))
        assert result.verdict == untouched.verdict
        return
    with pytest.raises(ParseError):
        evaluate(case, Artifacts(run))


# ---- 2. accuracy files that contradict themselves or each other --------------------------------------------------
def _accuracy_copy(inference_fixtures: Path, tmp_path: Path, bench: str, scenario: str = "Offline") -> Path:
    return _run(inference_fixtures, tmp_path, f"{DGX}/{bench}/{scenario}/accuracy")


DGX = "DGX-A100_A100-SXM-80GBx8_TRT"
COCO_AP = " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "


@pytest.mark.parametrize(("table", "line"), [("0.190", "mAP=20.116%"), ("0.201", "mAP=22.116%")])
def test_an_ssd_map_line_is_the_coco_tables_figure(inference_fixtures, tmp_path, table, line):
    """accuracy.txt's mAP= line is the COCO table's AP @[IoU=0.50:0.95 | area=all | maxDets=100] x 100: a failing
    table (0.190: 19.0 < 19.8) under a passing mAP line, or a mAP line raised over the table, is refused, as the WER
    line's accuracy is held to its word error rate."""
    run = _accuracy_copy(inference_fixtures, tmp_path, "ssd-resnet34")
    path = run / "accuracy.txt"
    text = path.read_text().replace(COCO_AP + "0.201", COCO_AP + table).replace("mAP=20.116%", line)
    path.write_text(text)
    message = _refused(run, "ssd-resnet34-Offline-AccuracyOnly-lwis", "A100-SXM-80GBx8")
    assert f"{path}:26: {line} is not the COCO table's AP {table} (line 14) x 100" in message


def test_the_published_coco_tables_agree_with_their_map_lines(inference_fixtures):
    from pytest_mlperf.logs.accuracy import parse_accuracy

    tables = [
        parse_accuracy(p).extra["coco_ap"] for p in sorted(inference_fixtures.rglob("accuracy.txt")) if "ssd" in str(p)
    ]
    assert len(tables) == 12 and set(tables) == {0.201, 0.229}


def _metadata(inference_fixtures: Path, folder: Path, **changes) -> None:
    from test_metadata import _accuracy_case, write

    _, data = _accuracy_case(inference_fixtures, "bert-99")  # the published bert-99 Offline accuracy run's figures
    entry = data["accuracy"][0]
    entry.update({k: v for k, v in changes.items() if k in entry})
    data.update({k: v for k, v in changes.items() if k not in entry})
    verdict = "PASSED" if entry["pass"] else "FAILED"
    data["summary_string"] = f"[{verdict}] F1: {entry['value']:.3f} (Threshold={entry['threshold']:.3f})"
    write(folder, data)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"pass": False, "accuracy_pass": False},
            "it says the run failed (F1), accuracy.txt beside it scores F1 90.3809 >= 89.9653",
        ),
        (
            {"threshold": 90.874 * 0.999, "pass": False, "accuracy_pass": False},
            "its F1 threshold is 90.7831, the case bert-99-Offline-AccuracyOnly-custom has 89.9653 (99% of 90.874)",
        ),
    ],
)
def test_metadata_that_fails_the_run_or_holds_another_target_stands_against_a_passing_accuracy_txt(
    inference_fixtures, tmp_path, changes, expected
):
    """metadata.json consistent in itself (its pass agrees with its own value and threshold), beside the published
    passing accuracy.txt: NVIDIA's checker failed the run, or held it to the 99.9 % target. Not judged."""
    run = _accuracy_copy(inference_fixtures, tmp_path, "bert-99")
    _metadata(inference_fixtures, run, **changes)
    message = _refused(run, "bert-99-Offline-AccuracyOnly-custom", "A100-SXM-80GBx8")
    assert "disagrees with the case or the logs beside it" in message
    assert message.startswith(f"{run / 'metadata.json'}: ") and expected in message


def _stamped(inference_fixtures: Path, tmp_path: Path, mode: str, message: str, bench: str = "bert-99"):
    """The published run laid out as NVIDIA's build/logs/<timestamp>/ with the harness's JSON summary beside it."""
    from pytest_mlperf.backends.results import ResultsBackend

    stamp = tmp_path / "logs" / "2022.02.13-11.54.08"
    sub = "performance/run_1" if mode == "PerformanceOnly" else "accuracy"
    folder = stamp / DGX / bench / "Offline"
    shutil.copytree(inference_fixtures / DGX / bench / "Offline" / sub, folder)
    config = f"{DGX}-custom_k_99_MaxP-Offline"
    name = "perf_harness_summary.json" if mode == "PerformanceOnly" else "accuracy_summary.json"
    (stamp / name).write_text(json.dumps({config: {bench: message}}))
    case = _case("A100-SXM-80GBx8", f"{bench}-Offline-{mode}-custom")
    return case, ResultsBackend(tmp_path / "logs", load()).run(case, tmp_path), stamp / name


@pytest.mark.parametrize(
    ("mode", "message", "expected"),
    [
        (
            "PerformanceOnly",
            "result_samples_per_second: 29000.0, Result is VALID",
            "says result_samples_per_second: 29000, {run}/mlperf_log_detail.txt says 27971.4",
        ),
        (
            "AccuracyOnly",
            "Accuracy = 90.900, Threshold = 89.965. Accuracy test PASSED.",
            "says Accuracy = 90.900, {run}/accuracy.txt scores F1 90.381",
        ),
        (
            "AccuracyOnly",
            "Accuracy = 90.381, Threshold = 90.783. Accuracy test FAILED.",
            "says Threshold = 90.783, the case's is 89.965 (99% of 90.874)",
        ),
    ],
)
def test_nvidias_json_summaries_give_the_figures_of_loadgens_files(
    inference_fixtures, tmp_path, mode, message, expected
):
    """perf_harness_summary.json and accuracy_summary.json give the figure main.py read from LoadGen's detail log
    and accuracy.txt, and the threshold of the case's target: a figure of another run, or a message against the
    other accuracy target, is refused, naming the JSON entry."""
    case, artifacts, path = _stamped(inference_fixtures, tmp_path, mode, message)
    with pytest.raises(ParseError) as caught:
        evaluate(case, artifacts)
    assert str(caught.value).startswith(f"{path} [")
    assert expected.format(run=artifacts.path) in str(caught.value)


def test_nvidias_json_summaries_of_the_same_run_are_judged(inference_fixtures, tmp_path):
    case, artifacts, _ = _stamped(
        inference_fixtures, tmp_path, "PerformanceOnly", "result_samples_per_second: 27971.4, Result is VALID"
    )
    assert evaluate(case, artifacts).verdict.label == "VALID"
    case, artifacts, _ = _stamped(
        inference_fixtures,
        tmp_path / "2",
        "AccuracyOnly",
        "Accuracy = 90.381, Threshold = 89.965. Accuracy test PASSED.",
    )
    assert evaluate(case, artifacts).verdict.label == "PASS"


# ---- 3. a Server peak no search supports -------------------------------------------------------------------------
def _search_record(**changes) -> dict:
    """What NVIDIA's backend would write after searching the A30x8 bert-99 Server case up to its published 11500."""
    from pytest_mlperf.backends.search import NVIDIA_METHOD

    record = {
        "peak_qps": 11500.0,
        "upper_qps": 12000.0,
        "bracket": round(12000 / 11500 - 1, 4),
        "stopped_by": None,
        "steps": [
            {"target_qps": 11000.0, "valid": True, "seconds": 61.2},
            {"target_qps": 12000.0, "valid": False, "seconds": 60.8},
            {"target_qps": 11500.0, "valid": True, "seconds": 61.0},
        ],
        "method": NVIDIA_METHOD,
        "start_qps": 11000.0,
        "confirmed_qps": 11500.0,
        "confirm_runs": 1,
        "description": "peak 11500 QPS after 3 runs, the next load tried (12000) was INVALID",
        "step_logs": ["search-01.log", "search-02.log", "search-03.log"],
    }
    record.update(changes)
    return record


def _searched(inference_fixtures: Path, tmp_path: Path, record: dict) -> Path:
    run = _run(inference_fixtures, tmp_path)
    (run / "server_search.json").write_text(json.dumps(record))
    return run


def test_a_search_its_steps_support_gives_the_peak(inference_fixtures, tmp_path):
    run = _searched(inference_fixtures, tmp_path, _search_record(description="<b>peak 99999 QPS</b>"))
    result = evaluate(_case("A30x8", SERVER), Artifacts(run))
    assert result.verdict.label == "VALID"
    assert [m.value for m in result.metrics if m.name == "peak_server_qps"] == [11500.0]
    # The description is rebuilt from the checked figures: the file's own text is nowhere.
    shown = result.info["server_search"]["description"]
    assert shown == "peak 11500 QPS after 3 runs, the next load tried (12000) was INVALID"
    assert "99999" not in result.verdict.reason and "<b>" not in repr(result.info) and shown in result.verdict.reason


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": [], "peak_qps": None, "upper_qps": None, "bracket": None}, "the search has no steps"),
        ({"peak_qps": 12500.0, "confirmed_qps": 12500.0}, "peak_qps is 12500.0, its steps give 11500.0"),
        (
            {
                "steps": [
                    {"target_qps": 11500.0, "valid": True, "seconds": 60.0},
                    {"target_qps": 11000.0, "valid": False, "seconds": 60.0},
                ],
                "upper_qps": 11000.0,
                "bracket": None,
            },
            "a VALID step at 11500 QPS is at or above an INVALID one at 11000",
        ),
        ({"confirmed_qps": 11400.0}, "confirmed_qps is 11400, not the load of confirming run 1 from the peak 11500"),
        ({"confirmed_qps": 10925.0, "confirm_runs": 3}, "not the load of confirming run 3 from the peak 11500"),
        ({"steps": [{"target_qps": "11000", "valid": True, "seconds": 1.0}]}, "steps[1].target_qps is '11000'"),
        ({"steps": [{"target_qps": 11000.0, "valid": "yes", "seconds": 1.0}]}, "steps[1].valid is 'yes'"),
        ({"steps": [["11000", True]]}, "steps[1] is not an object"),
        ({"bracket": 0.5}, "bracket is 0.5, its peak and upper bound give 0.0434"),
        ({"method": "<i>trust me</i>"}, "method is '<i>trust me</i>', not a search this project runs"),
        ({"stopped_by": "luck"}, "stopped_by is 'luck'"),
        ({"confirm_runs": 7}, "confirm_runs is 7, not a count of 1 to 3"),
    ],
)
def test_a_search_record_its_steps_do_not_support_is_refused(inference_fixtures, tmp_path, changes, message):
    run = _searched(inference_fixtures, tmp_path, _search_record(**changes))
    assert f"{run / 'server_search.json'}: " in _refused(run)
    assert message in _refused(run)


def test_the_confirming_run_ran_at_the_confirmed_load_to_the_query(inference_fixtures, tmp_path):
    """Both of the run's files say 11560 QPS (half a percent over the confirmed 11500): the confirming run is not the
    peak's. NVIDIA's harness runs whole QPS, so more than half a query a second apart is another load."""
    run = _searched(inference_fixtures, tmp_path, _search_record())
    _detail_value(run, "effective_target_qps", "11560")
    _summary_value(run, "target_qps", "11560")
    result = evaluate(_case("A30x8", SERVER), Artifacts(run))
    assert result.verdict.label == "INVALID"
    assert "the confirming run ran at 11560 QPS, not at the searched peak 11500" in result.verdict.reason
    assert not [m for m in result.metrics if m.name == "peak_server_qps"]


_SEARCH_FIELDS = ["peak_qps", "upper_qps", "confirmed_qps", "bracket", "confirm_runs", "step0", "step1", "step2"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(_SEARCH_FIELDS),
    factor=st.sampled_from([0.5, 0.9, 0.99, 1.01, 1.1, 2.0]),
    flip=st.booleans(),
)
def test_a_search_record_edited_in_one_field_never_reports_a_peak_its_steps_do_not_hold(
    inference_fixtures, tmp_path_factory, field, factor, flip
):
    """Hypothesis: one field of a consistent record scaled, or one step's verdict flipped. The judge refuses it, or
    reports the untouched peak (an edit that leaves the steps' story whole: a lower VALID step moved lower)."""
    record = _search_record()
    if field.startswith("step"):
        step = record["steps"][int(field[-1])]
        if flip:
            step["valid"] = not step["valid"]
        else:
            step["target_qps"] = round(step["target_qps"] * factor, 3)
    elif field == "confirm_runs":
        record[field] = 2 if flip else 3
    else:
        record[field] = record[field] * factor
    run = _searched(inference_fixtures, tmp_path_factory.mktemp("search"), record)
    try:
        result = evaluate(_case("A30x8", SERVER), Artifacts(run))
    except ParseError:
        return
    peaks = [m.value for m in result.metrics if m.name == "peak_server_qps"]
    assert peaks in ([], [11500.0]), (field, factor, flip, peaks)
    lower_valid_step_still_lower = (field, flip) == ("step0", False) and 11000 * factor < 11500
    assert lower_valid_step_still_lower, (field, factor, flip, peaks)


# ---- 4. a gate that loses cases ----------------------------------------------------------------------------------
def _record(
    case: str, verdict: str | None = "VALID", *metrics: dict, outcome: str = "passed", reason: str = ""
) -> dict:
    record = {"id": case, "outcome": outcome, "reason": reason}
    if verdict is not None:
        record.update(verdict=verdict, ok=verdict == "VALID", kind="inference", metrics=list(metrics))
    return record


def _throughput(value: float, name: str = "result_samples_per_second", unit: str = "samples/s") -> dict:
    return {"name": name, "value": value, "unit": unit, "higher_is_better": True}


def _compare(tmp_path: Path, before: list[dict], after: list[dict], *args: str, capsys=None) -> tuple[int, str]:
    from pytest_mlperf.cli import main as cli

    for name, records in (("a.json", before), ("b.json", after)):
        (tmp_path / name).write_text(json.dumps({"catalog": "v2.0", "sku": "A100-SXM-80GBx8", "results": records}))
    code = cli(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("now", "message"),
    [
        (
            _throughput(27971.4, unit="queries/s"),
            "NOT COMPARABLE: result_samples_per_second is in samples/s in the baseline, queries/s now",
        ),
        (
            _throughput(27971.4, name="result_completed_samples_per_sec"),
            "NOT COMPARABLE: result_samples_per_second (samples/s) is in the baseline, not in this run: it was "
            "renamed or is gone",
        ),
    ],
)
def test_a_gated_metric_renamed_or_in_another_unit_is_not_comparable_and_fails(tmp_path, capsys, now, message):
    """Before, the baseline's figure and this run's compared nothing and the case printed "ok"."""
    code, out = _compare(
        tmp_path,
        [_record(BERT := "bert-99-Offline-PerformanceOnly-custom", "VALID", _throughput(27971.4))],
        [_record(BERT, "VALID", now)],
        "--fail-on=throughput:5%",
        capsys=capsys,
    )
    assert code == 1 and f"REGRESSED  {BERT}" in out and message in out


def test_a_judged_case_skipped_failed_or_missing_now_fails_compare(tmp_path, capsys):
    cases = [f"bert-99-{s}-PerformanceOnly-custom" for s in ("Offline", "Server")] + [
        "rnnt-Offline-AccuracyOnly-custom"
    ]
    before = [_record(case, "VALID", _throughput(100.0)) for case in cases]
    after = [
        _record(cases[0], "VALID", _throughput(100.0)),
        _record(cases[1], None, outcome="skipped", reason="no result found under /x"),
    ]
    code, out = _compare(tmp_path, before, after, "--fail-on=throughput:5%", capsys=capsys)
    assert code == 1
    assert f"LOST {cases[1]} (VALID in the baseline): skipped: no result found under /x" in out
    assert f"LOST {cases[2]} (VALID in the baseline): not run" in out
    assert "0 of 1 cases regressed; the gate lost 2" in out


def test_a_gate_that_compared_nothing_fails_compare(tmp_path, capsys):
    records = [_record("bert-99-Offline-PerformanceOnly-custom", "VALID", _throughput(100.0))]
    code, out = _compare(tmp_path, records, records, "--fail-on=time:5%", capsys=capsys)
    assert code == 1 and "NOTHING COMPARED: no metric of 1 matching case(s) is gated by time:5%" in out
    code, out = _compare(tmp_path, records, records, "--fail-on=throughput:5%", capsys=capsys)
    assert code == 0, out


def test_a_case_the_baseline_judged_and_this_run_skips_fails_the_run(suites, inference_fixtures, tmp_path):
    """In the run: the baseline's bert-99 Offline run is gone from the tree, so its test is skipped (nothing to
    judge), and every other case passes the gate. The run fails, naming the case and why."""
    tree = tmp_path / "tree"
    for bench in ("bert-99", "rnnt"):
        shutil.copytree(inference_fixtures / DGX / bench, tree / DGX / bench)
    store = f"--mlperf-baseline-dir={tmp_path / 'baselines'}"
    args = ("-m", "inference", "--sku", "A100-SXM-80GBx8", f"--mlperf-results={tree}", "-k", "custom", store)
    suites.runpytest(*args, "--mlperf-save=before").assert_outcomes(passed=8, skipped=4)
    shutil.rmtree(tree / DGX / "bert-99" / "Offline" / "performance")
    gated = suites.runpytest(
        *args, "--mlperf-baseline=before", "--mlperf-fail-on=throughput:5%", f"--mlperf-json={tmp_path / 'r.json'}"
    )
    gated.assert_outcomes(passed=7, skipped=5)
    assert gated.ret == 1
    gated.stdout.fnmatch_lines(
        [
            "*LOST vs baseline before: bert-99-Offline-PerformanceOnly-custom (VALID in the baseline): skipped: *",
            "MLPerf: the gate lost or compared nothing, so this run fails",
        ]
    )
    assert json.loads((tmp_path / "r.json").read_text())["gate_failures"][0].startswith(
        "LOST vs baseline before: bert-99"
    )


# ---- 5 and 6. merge that depends on file names and order; fleet node records that lie ----------------------------
CONFIG = f"{DGX}-custom_k_99_MaxP"
OFFLINE = "bert-99-Offline-PerformanceOnly-custom"
ACCURACY = "bert-99-Offline-AccuracyOnly-custom"


def _node_records(
    rate: float = 27971.4, f1: float = 90.3809, valid: bool = True, threshold: float = 90.874 * 0.99
) -> list[dict]:
    """A node's records of the published DGX A100 bert-99 Offline runs, as this project writes them."""
    label = "VALID" if valid else "INVALID"
    passed = f1 >= threshold
    perf = _record(
        OFFLINE,
        label,
        {"name": f"{CONFIG}-Offline-PerformanceMode", "value": float(valid), "unit": "VALID/INVALID"},
        {"name": "result_completed_samples_per_sec", "value": rate * 2, "unit": "samples/s", "higher_is_better": True},
        _throughput(rate),
    )
    accuracy = _record(
        ACCURACY,
        "PASS" if passed else "FAIL",
        {"name": f"{CONFIG}-Offline-AccuracyMode", "value": float(passed), "unit": "PASS/FAIL"},
        {"name": "AccuracyValue", "value": f1, "unit": "F1", "higher_is_better": True},
        {"name": "ThresholdValue", "value": threshold, "unit": "F1"},
        {"name": "AccuracyThresholdRatio", "value": f1 / threshold, "unit": "ratio", "higher_is_better": True},
    )
    accuracy["ok"] = passed
    return [perf, accuracy]


def _node_file(folder: Path, records: list[dict], sku: str = "A100-SXM-80GBx8", host: str = "ci") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps({"catalog": "inference-v2.0", "sku": sku, "host": host, "results": records}))
    return path


def _merge(capsys, *paths: Path) -> tuple[int, str]:
    from pytest_mlperf.cli import main as cli

    code = cli(["merge", *map(str, paths), "--spread=0.05"])
    return code, capsys.readouterr().out


def test_the_fleets_own_layout_names_nodes_by_folder(tmp_path, capsys):
    """Three `<node>/results.json` files from one host: the folders name the nodes, the slow one is marked, and
    the figure compared is Offline's samples/s, not the first metric a record lists."""
    paths = [_node_file(tmp_path / n, _node_records(r)) for n, r in (("n1", 27971.4), ("n2", 27900.0), ("n3", 24000))]
    code, out = _merge(capsys, *paths)
    assert code == 1, out
    assert f"{OFFLINE}  result_samples_per_second" in out and "result_completed_samples_per_sec" not in out
    assert "SLOW NODE n3 (more than 5% behind the fleet median): " in out


def test_files_no_name_tells_apart_are_refused(tmp_path, capsys):
    path = _node_file(tmp_path / "n1", _node_records())
    code, out = _merge(capsys, path, path)
    assert (
        code == 1
        and f"BAD FLEET: no name tells these files' nodes apart (host, file name or folder): {path} given twice" in out
    )


def test_other_skus_or_rounds_are_never_one_median(tmp_path, capsys):
    a = _node_file(tmp_path / "n1", _node_records())
    b = _node_file(tmp_path / "n2", _node_records(), sku="A100-SXM-80GBx4")
    code, out = _merge(capsys, a, b)
    assert code == 1 and "MIXED SKUS (n1: A100-SXM-80GBx8, n2: A100-SXM-80GBx4)" in out


def test_a_node_whose_cases_are_invalid_is_a_failing_node(tmp_path, capsys):
    """Its INVALID figure never joins the median, and the node fails the fleet."""
    paths = [
        _node_file(tmp_path / f"n{i}", _node_records(27971.4, 89.0 if i == 3 else 90.3809, i != 3)) for i in (1, 2, 3)
    ]
    code, out = _merge(capsys, *paths)
    assert code == 1, out
    assert f"FAILED NODE n3: 2 case(s) did not pass: {OFFLINE} INVALID, {ACCURACY} FAIL" in out


def _lie(records: list[dict], case: str, name: str, value) -> list[dict]:
    for record in records:
        if record["id"] == case:
            for metric in record["metrics"]:
                if metric["name"] == name:
                    metric["value"] = value
    return records


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: _lie(r, OFFLINE, f"{CONFIG}-Offline-PerformanceMode", 0.0),
            f"BAD RECORD n2 {OFFLINE}: {CONFIG}-Offline-PerformanceMode is 0 under the verdict VALID",
        ),
        (
            lambda r: _node_records(f1=90.9, threshold=90.874 * 0.999),  # a bert-99.9 record, consistent in itself
            f"BAD RECORD n2 {ACCURACY}: ThresholdValue 90.7831 is not the case's threshold 89.9653 (99%)",
        ),
        (
            lambda r: _lie(r, ACCURACY, "AccuracyValue", 120.0),
            f"BAD RECORD n2 {ACCURACY}: AccuracyValue 120 is outside 0-100: not an accuracy",
        ),
        (
            lambda r: [
                {**r[0], "metrics": [*r[0]["metrics"], _throughput(40000.0)]},
                r[1],
            ],
            f"BAD RECORD n2 {OFFLINE}: result_samples_per_second is given twice, as 27971.4 and 40000",
        ),
        (
            lambda r: [{**r[0], "metrics": [_throughput(27971.4, unit="queries/s")]}, r[1]],
            f"INCOMPARABLE {OFFLINE}: n2 reports unit 'queries/s', n1 'samples/s': no one median",
        ),
    ],
)
def test_a_node_record_that_lies_is_refused_naming_the_node_and_field(tmp_path, capsys, edit, message):
    paths = [_node_file(tmp_path / "n1", _node_records()), _node_file(tmp_path / "n2", edit(_node_records()))]
    paths.append(_node_file(tmp_path / "n3", _node_records()))
    code, out = _merge(capsys, *paths)
    assert code == 1 and message in out, out


# ---- 7. MLLOG that converges on an eval it did not make ----------------------------------------------------------
NVIDIA_1NODE = "dgxa100_ngc22.09_pytorch/bert/result_0.txt"  # converged: 0.72071 at its last eval
GX = "gx_A100-SXMx8_pytorch_NGC_22.09/bert/result_4.txt"  # with its {'e2e_time': ...} summary line


def _trial(training_fixtures: Path, tmp_path: Path, name: str = NVIDIA_1NODE) -> Path:
    path = tmp_path / "result_0.txt"
    path.write_text((training_fixtures / name).read_text())
    return path


def _training_verdict(path: Path):
    from pytest_mlperf.judge.verdict import training_verdict
    from pytest_mlperf.logs.mllog import parse_training_log

    return training_verdict(parse_training_log(path), 0.720)


def test_an_eval_after_run_stop_does_not_count(training_fixtures, tmp_path):
    """An aborted trial (0.71967 at run_stop) with a passing eval appended after its run_stop: still not converged,
    and the verdict names the late eval."""
    path = _trial(training_fixtures, tmp_path, "16xXE8545x4A100-SXM-40GB/bert/result_5.txt")
    text = path.read_text().replace('"status": "aborted"', '"status": "success"')
    late = (
        ' 0: :::MLLOG {"namespace": "", "time_ms": 1665666900000, "event_type": "POINT_IN_TIME", "key": '
        '"eval_accuracy", "value": 0.7301, "metadata": {"file": "x.py", "lineno": 1, "epoch_num": 3300000}}\n'
    )
    path.write_text(text + late)
    verdict = _training_verdict(path)
    assert verdict.label == "NOT CONVERGED"
    assert (
        "eval_accuracy 0.73010 (line " in verdict.reason
        and "is logged after run_stop and does not count" in verdict.reason
    )


def test_ranks_that_disagree_on_an_eval_are_refused(training_fixtures, tmp_path):
    from pytest_mlperf.logs.mllog import parse_training_log

    path = _trial(training_fixtures, tmp_path, "16xXE8545x4A100-SXM-40GB/bert/result_5.txt")
    lines = path.read_text().splitlines()
    evals = [line for line in lines if '"eval_accuracy"' in line]
    forged = re.sub(r'"value": [0-9.]+', '"value": 0.75', evals[-1].replace(" 0: ", " 3: ", 1))
    path.write_text("\n".join([*lines, forged]) + "\n")
    with pytest.raises(ParseError, match=r"rank 3 logs eval_accuracy 0.75 at epoch_num 3151872, rank 0 0.719666"):
        parse_training_log(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "'e2e_time': 922.7222995758057",
            "'e2e_time': 300.0",
            "e2e_time 300.0 s is shorter than run_stop - run_start (906.7 s)",
        ),
        (
            "'raw_train_time': 910.2224271297455",
            "'raw_train_time': 1900.0",
            "raw_train_time 1900.0 s is longer than e2e_time",
        ),
        (
            '"key": "eval_samples", "value": 10000',
            '"key": "eval_samples", "value": 100',
            "eval_samples is 100, the benchmark evaluates on 10000",
        ),
    ],
)
def test_a_trial_log_that_contradicts_itself_is_named_in_the_verdict(training_fixtures, tmp_path, old, new, message):
    path = _trial(training_fixtures, tmp_path, GX)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    verdict = _training_verdict(path)
    assert verdict.label == "NOT CONVERGED" and message in verdict.reason


# ---- 8. a score from copies --------------------------------------------------------------------------------------
def test_a_score_of_copies_of_one_trial_is_refused(suites, training_fixtures, tmp_path):
    """Ten copies of one converged trial, named result_0 ... result_9 like a published set: no score."""
    tree = tmp_path / "tree" / "dgxa100_ngc22.09_pytorch" / "bert"
    tree.mkdir(parents=True)
    for n in range(10):
        (tree / f"result_{n}.txt").write_text((training_fixtures / NVIDIA_1NODE).read_text())
    result = suites.runpytest("-m", "training", f"--mlperf-results={tmp_path / 'tree'}", "-k", "score")
    result.stdout.fnmatch_lines(
        ["*INVALID: copies of one run are not trials: *result_1* is *result_0* again (same seed *"]
    )
    assert result.ret == 1


# ---- properties of classes 2 and 4-8: one edit of one file of a consistent pair never passes -------------------------
def _failing_ssd(inference_fixtures: Path, tmp_path: Path) -> Path:
    """The published ssd-resnet34 Offline accuracy run made to fail consistently: table and mAP line both 19.0."""
    run = _accuracy_copy(inference_fixtures, tmp_path, "ssd-resnet34")
    path = run / "accuracy.txt"
    path.write_text(
        path.read_text().replace(COCO_AP + "0.201", COCO_AP + "0.190").replace("mAP=20.116%", "mAP=19.016%")
    )
    return run


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["table", "line"]), value=st.floats(min_value=0.0, max_value=100.0))
def test_one_edited_figure_of_a_failing_coco_run_never_passes(inference_fixtures, tmp_path_factory, which, value):
    """Class 2, Hypothesis: a failing ssd accuracy run (19.0 < 19.8), its COCO table's AP or its mAP line set to
    any figure: FAIL, or refused as a contradiction; never PASS."""
    run = _failing_ssd(inference_fixtures, tmp_path_factory.mktemp("ssd"))
    case = _case("A100-SXM-80GBx8", "ssd-resnet34-Offline-AccuracyOnly-lwis")
    assert evaluate(case, Artifacts(run)).verdict.label == "FAIL"
    path = run / "accuracy.txt"
    text = path.read_text()
    if which == "table":
        text = text.replace(COCO_AP + "0.190", COCO_AP + f"{value / 100:.3f}")
    else:
        text = text.replace("mAP=19.016%", f"mAP={value:.3f}%")
    path.write_text(text)
    try:
        verdict = evaluate(case, Artifacts(run)).verdict
    except ParseError:
        return
    assert verdict.label == "FAIL", (which, value, verdict)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(["accuracy.txt f1", "metadata pass", "metadata value", "metadata threshold"]),
    value=st.floats(min_value=0.0, max_value=100.0),
)
def test_one_edited_file_of_a_failing_accuracy_pair_never_passes(inference_fixtures, tmp_path_factory, which, value):
    """Class 2, Hypothesis: a bert-99 accuracy run failing in both its files (accuracy.txt F1 89.0, metadata.json
    saying failed at the case's threshold), one of the two edited: never PASS."""
    run = _accuracy_copy(inference_fixtures, tmp_path_factory.mktemp("bert"), "bert-99")
    accuracy = run / "accuracy.txt"
    accuracy.write_text(accuracy.read_text().replace('"f1": 90.38087866142499', '"f1": 89.0'))
    meta = {"value": 89.0, "pass": False, "accuracy_pass": False}
    case = _case("A100-SXM-80GBx8", "bert-99-Offline-AccuracyOnly-custom")
    _metadata(inference_fixtures, run, **meta)
    assert evaluate(case, Artifacts(run)).verdict.label == "FAIL"
    if which == "accuracy.txt f1":
        accuracy.write_text(accuracy.read_text().replace('"f1": 89.0', f'"f1": {value!r}'))
    elif which == "metadata pass":
        _metadata(inference_fixtures, run, **{**meta, "pass": True, "accuracy_pass": True})
    elif which == "metadata value":
        _metadata(inference_fixtures, run, **{**meta, "value": value})
    else:
        _metadata(inference_fixtures, run, **{**meta, "threshold": value})
    try:
        verdict = evaluate(case, Artifacts(run)).verdict
    except ParseError:
        return
    assert verdict.label == "FAIL", (which, value, verdict)


_GATED = _throughput(27971.4)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from([_GATED["name"], "result_completed_samples_per_sec", "samples_per_second"]),
    unit=st.sampled_from(["samples/s", "queries/s", "", "ms"]),
    higher=st.sampled_from([True, False, None]),
    factor=st.floats(min_value=0.5, max_value=1.5),
    dropped=st.booleans(),
    limit=st.sampled_from([0.02, 0.05, 0.10]),
)
def test_a_gated_metric_edited_in_one_way_is_compared_or_fails(name, unit, higher, factor, dropped, limit):
    """Class 4, Hypothesis: this run's record of a case, its gated figure renamed, in another unit or direction,
    scaled, or gone: the comparison passes only when the figure is the baseline's own (same name, unit and
    direction) and within the limit."""
    from pytest_mlperf.gate.baseline import Rule, compare_records

    before = _record(OFFLINE, "VALID", dict(_GATED))
    metric = {"name": name, "value": 27971.4 * factor, "unit": unit, "higher_is_better": higher}
    after = _record(OFFLINE, "VALID", *([] if dropped else [metric]))
    comp = compare_records(before, after, [Rule("throughput", limit)])
    same = not dropped and (name, unit, higher) == (_GATED["name"], "samples/s", True)
    if not comp.regressed:
        assert same and factor >= 1 - limit - 1e-9, (name, unit, higher, factor, dropped, comp.regressions)
        assert comp.gated == 1
    elif same and factor >= 1 - limit + 1e-9:
        raise AssertionError(f"a figure {factor:.4f} of the baseline's regressed at {limit}: {comp.regressions}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations([0, 1, 2, 3]), slow=st.sampled_from([27971.4, 24000.0]))
def test_merge_does_not_depend_on_the_order_of_its_files(tmp_path_factory, capsys, order, slow):
    """Class 5, Hypothesis: the same four node files in any order give the same exit and the same lines."""
    base = tmp_path_factory.mktemp("fleet")
    rates = [27971.4, 27900.0, slow, 27950.0]
    paths = [_node_file(base / f"n{i + 1}", _node_records(rate)) for i, rate in enumerate(rates)]
    reference = _merge(capsys, *paths)
    shuffled = _merge(capsys, *[paths[i] for i in order])
    assert shuffled[0] == reference[0] == (1 if slow < 27000 else 0)
    assert sorted(shuffled[1].splitlines()) == sorted(reference[1].splitlines())


_FIELDS = [
    (OFFLINE, f"{CONFIG}-Offline-PerformanceMode"),
    (OFFLINE, "result_samples_per_second"),
    (ACCURACY, f"{CONFIG}-Offline-AccuracyMode"),
    (ACCURACY, "AccuracyValue"),
    (ACCURACY, "ThresholdValue"),
    (ACCURACY, "AccuracyThresholdRatio"),
]


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(_FIELDS),
    value=st.sampled_from([0.0, 1.0, 50.0, 89.0, 89.9653, 90.3809, 90.7831, 100.0, 120.0, 27971.4, -1.0]),
    flip=st.booleans(),
)
def test_a_node_record_edited_in_one_field_is_refused_or_still_true(field, value, flip):
    """Class 6, Hypothesis: a node's consistent records, one metric set to another value (or its verdict flipped):
    either refused, or what it says still holds: its state metric is its verdict, an accuracy verdict is its value
    against the case's threshold, and a VALID performance record has a positive figure."""
    from pytest_mlperf.judge.verdict import record_problem

    cases = {c.id: c for c in load().inference_cases("A100-SXM-80GBx8")}
    records = {r["id"]: r for r in _lie(_node_records(), field[0], field[1], value)}
    record = records[field[0]]
    if flip:
        record["ok"] = not record["ok"]
        record["verdict"] = {"VALID": "INVALID", "INVALID": "VALID", "PASS": "FAIL", "FAIL": "PASS"}[record["verdict"]]
    if record_problem(cases[record["id"]], record) is not None:
        return
    metrics = {m["name"]: m["value"] for m in record["metrics"]}
    state = next(v for k, v in metrics.items() if k.endswith("Mode"))
    assert state == float(record["ok"]), record
    if record["id"] == ACCURACY:
        threshold = cases[ACCURACY].benchmark.threshold
        assert (metrics["AccuracyValue"] >= threshold) == record["ok"], record
    elif record["ok"]:
        assert metrics["result_samples_per_second"] > 0, record


ABORTED = "16xXE8545x4A100-SXM-40GB/bert/result_5.txt"  # run_stop aborted, last eval 0.71967 at epoch 3151872


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    forged=st.lists(
        st.tuples(
            st.sampled_from(["after run_stop", "another rank, same eval", "another rank, new eval"]),
            st.floats(min_value=0.5, max_value=0.99),
        ),
        min_size=1,
        max_size=3,
    ),
    success=st.booleans(),
)
def test_evals_the_run_did_not_make_never_converge_it(training_fixtures, tmp_path_factory, forged, success):
    """Class 7, Hypothesis: an aborted trial (last eval 0.71967), its run_stop perhaps relabelled success, with
    forged evals appended: after run_stop, or from a rank other than 0 (at rank 0's last eval, or at a point rank 0
    never logged). None of them counts: NOT CONVERGED, or the log is refused; never CONVERGED."""
    path = _trial(training_fixtures, tmp_path_factory.mktemp("mllog"), ABORTED)
    text = path.read_text()
    if success:
        text = text.replace('"status": "aborted"', '"status": "success"')
    stop = int(re.search(r'"time_ms": (\d+), "event_type": "INTERVAL_END", "key": "run_stop"', text)[1])
    lines = []
    for kind, value in forged:
        rank, time_ms, epoch = {
            "after run_stop": (0, stop + 1000, 3400000),
            "another rank, same eval": (3, stop - 8000, 3151872),
            "another rank, new eval": (5, stop - 1000, 3300000),
        }[kind]
        lines.append(
            f' {rank}: :::MLLOG {{"namespace": "", "time_ms": {time_ms}, "event_type": "POINT_IN_TIME", '
            f'"key": "eval_accuracy", "value": {value!r}, "metadata": {{"file": "x.py", "lineno": 1, '
            f'"epoch_num": {epoch}}}}}'
        )
    path.write_text(text + "\n".join(lines) + "\n")
    try:
        verdict = _training_verdict(path)
    except ParseError:
        return
    assert verdict.label == "NOT CONVERGED", (forged, success, verdict.reason)
