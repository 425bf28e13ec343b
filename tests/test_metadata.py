"""NVIDIA's other result files: the AccuracyOnly run's perf message, and the per-case metadata.json of its later
harness (v3.0 on), parsed strictly, named as VirtualClient names it, and held against LoadGen's logs and accuracy.txt
of the same case.

The metadata.json documents below follow the examples published with VirtualClient's MLPerf workload
(microsoft/VirtualClient, src/VirtualClient/VirtualClient.Actions.UnitTests/Examples/MLPerf/: Example_accuracy_summary1
.json and Example_performance_summary1.json) and NVIDIA's writer (mlcommons/inference_results_v3.1
closed/NVIDIA/code/actionhandler/run_harness.py). The LoadGen logs and accuracy.txt are the published fixtures; a
metadata.json set against them takes its figures from them (or changes one, to disagree).
"""

from __future__ import annotations

import codecs
import json
import math
import shutil
from pathlib import Path

import pytest
from fuzz_cases import METADATA_JSON, mutated, sound
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mlperf.backends import Artifacts
from pytest_mlperf.catalog import load
from pytest_mlperf.judge.evaluate import evaluate
from pytest_mlperf.logs import ParseError, kind_by_content
from pytest_mlperf.logs.accuracy import parse_accuracy
from pytest_mlperf.logs.harness import (
    NO_ACCURACY,
    NO_PERFORMANCE,
    parse_accuracy_message,
    parse_perf_message,
    parse_stdout,
    parse_summary_json,
)
from pytest_mlperf.logs.loadgen import parse_detail, parse_summary
from pytest_mlperf.logs.metadata import (
    AccuracyMetadata,
    PerformanceMetadata,
    cross_check,
    parse_metadata,
)

DGX = "DGX-A100_A100-SXM-80GBx8_TRT"
CONFIG = f"{DGX}-custom_k_99_MaxP-Offline"
VC_SYSTEM = "DGX-A100_A100-SXM4-40GBx8_TRT"
DETECTED = 'SystemConfiguration(host_cpu_conf=..., system_id="DGX-A100_A100-SXM4-40GBx8")'


def vc_accuracy() -> dict:
    """VirtualClient's Example_accuracy_summary1.json (detected_system shortened)."""
    return {
        "accuracy": [{"name": "F1", "pass": True, "threshold": 89.96526, "value": 90.2147015680108}],
        "accuracy_pass": True,
        "benchmark_full": "bert-99",
        "benchmark_short": "bert",
        "config_name": f"{VC_SYSTEM}-custom_k_99_MaxP-Offline",
        "detected_system": DETECTED,
        "effective_min_duration_ms": 600000,
        "effective_samples_per_query": 19800000,
        "satisfies_query_constraint": True,
        "scenario": "Offline",
        "scenario_key": "result_samples_per_second",
        "summary_string": "[PASSED] F1: 90.215 (Threshold=89.965)",
        "system_name": VC_SYSTEM,
        "tensorrt_version": "10.2.0",
        "test_mode": "AccuracyOnly",
    }


def vc_performance() -> dict:
    """VirtualClient's Example_performance_summary1.json (the fuzzing's seed): a --fast run, so VALID while NVIDIA's
    submission query constraint is not satisfied."""
    return {**json.loads(METADATA_JSON), "detected_system": DETECTED}


def write(folder: Path, data: dict, name: str = "metadata.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(data, indent=4, sort_keys=True))  # as NVIDIA's create_metadata_json writes it
    return path


# ---- the AccuracyOnly perf message ----------------------------------------------------------------------------------
def test_accuracy_only_perf_message_means_no_performance_result():
    message = parse_perf_message(NO_PERFORMANCE)
    assert (message.key, message.value, message.validity, message.accuracy_only) == (None, None, None, True)
    assert not parse_perf_message("result_samples_per_second: 27971.4, Result is VALID").accuracy_only
    with pytest.raises(ParseError, match="unrecognised perf result"):
        parse_perf_message("Cannot find performance result.")  # only NVIDIA's whole sentence


def test_accuracy_only_run_in_the_summary_json_and_the_printed_blocks(tmp_path):
    """code/main.py writes the harness's result string into perf_harness_summary.json whatever the mode; an
    AccuracyOnly config sits there beside performance ones."""
    server = f"{DGX}-custom_k_99_MaxP-Server"
    perf = tmp_path / "perf_harness_summary.json"
    perf.write_text(
        json.dumps(
            {
                CONFIG: {"bert-99": NO_PERFORMANCE},
                server: {"bert-99": "result_scheduled_samples_per_sec: 25792.1, Result is VALID"},
            }
        )
    )
    parsed = parse_summary_json(perf, "perf")
    assert parsed[CONFIG]["bert-99"].accuracy_only and parsed[server]["bert-99"].validity == "VALID"
    stdout = tmp_path / "stdout.txt"
    stdout.write_text(
        "======================= Perf harness results: =======================\n\n"
        f"{CONFIG}:\n    bert-99: {NO_PERFORMANCE}\n\n"
        "======================= Accuracy results: =======================\n\n"
        f"{CONFIG}:\n    bert-99: Accuracy = 90.381, Threshold = 89.965. Accuracy test PASSED.\n\n"
    )
    summary = parse_stdout(stdout)
    assert summary.perf[CONFIG]["bert-99"].value is None and summary.accuracy[CONFIG]["bert-99"].passed is True
    assert parse_accuracy_message(NO_ACCURACY).passed is None


def test_a_harness_message_that_is_not_a_string_is_refused(tmp_path):
    perf = tmp_path / "perf_harness_summary.json"
    perf.write_text(json.dumps({CONFIG: {"bert-99": 27971.4}}))
    with pytest.raises(ParseError, match=r"\[.*/bert-99\]: the message is float, not a string"):
        parse_summary_json(perf, "perf")


# ---- metadata.json: both kinds, as VirtualClient's examples are ------------------------------------------------------
def test_accuracy_metadata(tmp_path):
    meta = parse_metadata(write(tmp_path, vc_accuracy()))
    assert isinstance(meta, AccuracyMetadata) and meta.accuracy_pass and meta.effective_samples_per_query == 19800000
    assert [(s.name, s.passed, s.threshold, s.value) for s in meta.accuracy] == [
        ("F1", True, 89.96526, 90.2147015680108)
    ]
    assert meta.virtualclient_metrics() == {f"{VC_SYSTEM}-custom_k_99_MaxP-Offline-AccuracyMode": 1}
    failed = vc_accuracy() | {"accuracy_pass": False, "summary_string": "[FAILED] F1: 80.000 (Threshold=89.965)"}
    failed["accuracy"] = [{"name": "F1", "pass": False, "threshold": 89.96526, "value": 80.0}]
    assert parse_metadata(write(tmp_path, failed)).virtualclient_metrics() == {
        f"{VC_SYSTEM}-custom_k_99_MaxP-Offline-AccuracyMode": 0
    }


def test_performance_metadata(tmp_path):
    meta = parse_metadata(write(tmp_path, vc_performance()))
    assert isinstance(meta, PerformanceMetadata)
    assert (meta.result_validity, meta.result_value, meta.satisfies_query_constraint) == ("VALID", 25405.6, False)
    assert meta.virtualclient_metrics() == {f"{VC_SYSTEM}-custom_k_99_MaxP-Server-PerformanceMode": 1}
    single = vc_performance() | {
        "config_name": f"{VC_SYSTEM}-custom_k_99_MaxP-SingleStream",
        "scenario": "SingleStream",
        "scenario_key": "result_90.00_percentile_latency_ns",
        "result_90.00_percentile_latency_ns": 1924537,
        "result_validity": "INVALID",
        "summary_string": "result_90.00_percentile_latency_ns: 1924537, Result is INVALID",
    }
    meta = parse_metadata(write(tmp_path, single))
    assert meta.virtualclient_metrics() == {f"{VC_SYSTEM}-custom_k_99_MaxP-SingleStream-PerformanceMode": 0}
    assert meta.result_value == 1924537.0


def test_v3_files_without_the_later_keys_are_read(tmp_path):
    """v3.0/v3.1 write neither effective_min_duration_ms nor the query constraint's key."""
    data = vc_performance()
    for key in ("effective_min_duration_ms", "effective_min_query_count"):
        del data[key]
    meta = parse_metadata(write(tmp_path, data))
    assert meta.effective_min_duration_ms is None and meta.effective_min_query_count is None


def _without(key):
    return lambda d: d.pop(key)


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _entry(key, value):
    return lambda d: d["accuracy"][0].__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_without("accuracy"), "accuracy: missing"),
        (_without("accuracy_pass"), "accuracy_pass: missing"),
        (_without("config_name"), "config_name: missing"),
        (_without("detected_system"), "detected_system: missing"),
        (_without("tensorrt_version"), "tensorrt_version: missing"),
        (_set("accuracy", []), "accuracy: expected a non-empty list"),
        (_set("accuracy", {"F1": 90}), "accuracy: expected a non-empty list"),
        (_set("accuracy_pass", "true"), "accuracy_pass is 'true', not true or false"),
        (_set("accuracy_pass", 1), "accuracy_pass is 1, not true or false"),
        (_set("test_mode", "SubmissionRun"), "neither AccuracyOnly nor PerformanceOnly"),
        (_set("scenario", "Interactive"), "scenario is 'Interactive', not one of"),
        (_set("scenario_key", "result_completed_samples_per_sec"), "not LoadGen's result key for Offline"),
        (_set("system_name", "A30x8_TRT"), "config_name .* is not '<system_name>-<setting>-<scenario>'"),
        (_set("config_name", ""), "config_name is '', not a non-empty string"),
        (_set("effective_min_duration_ms", -1), "outside LoadGen's range"),
        (_set("effective_samples_per_query", 2**70), "outside LoadGen's range"),
        (_set("effective_samples_per_query", 1.5), "not a whole number"),
        (_set("satisfies_query_constraint", None), "satisfies_query_constraint is None, not true or false"),
        (_entry("value", None), r"accuracy\[0\].value is None, not a number"),
        (_entry("value", "90.2"), r"accuracy\[0\].value is '90.2', not a number"),
        (_entry("threshold", True), r"accuracy\[0\].threshold is True, not a number"),
        (_entry("value", -1.0), "an accuracy figure cannot be negative"),
        (_entry("pass", "yes"), r"accuracy\[0\].pass is 'yes'"),
        (_entry("name", 7), r"accuracy\[0\].name is 7"),
        # contradictions
        (_entry("pass", False), r"accuracy_pass is true but accuracy\[0\] \(F1\) failed"),
        (_entry("value", 80.0), "pass is true but value 80 < threshold 89.9653"),
        (_set("accuracy_pass", False), "accuracy_pass is false but every accuracy entry passed"),
        (lambda d: d["accuracy"].append(dict(d["accuracy"][0])), "a metric is scored twice"),
        (_set("summary_string", "[FAILED] F1: 90.215 (Threshold=89.965)"), "summary_string .* disagrees"),
        (_set("summary_string", "[PASSED] F1: 91.215 (Threshold=89.965)"), "summary_string .* disagrees"),
    ],
)
def test_accuracy_metadata_refused(tmp_path, edit, message):
    data = vc_accuracy()
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(ParseError, match=message) as info:
        parse_metadata(path)
    assert info.value.path == path and str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_without("result_validity"), "result_validity: missing"),
        (_without("result_completed_samples_per_sec"), "result_completed_samples_per_sec: missing, though"),
        (_without("early_stopping_met"), "early_stopping_met: missing"),
        (_without("satisfies_query_constraint"), "satisfies_query_constraint: missing"),
        (_set("result_validity", "valid"), "result_validity is 'valid'"),
        (_set("result_completed_samples_per_sec", "25405.6"), "is '25405.6', not a number"),
        (_set("result_completed_samples_per_sec", 0), "a rate must be above 0"),
        (_set("result_completed_samples_per_sec", -5.0), "a rate must be above 0"),
        (_set("result_completed_samples_per_sec", 10**400), "is not a number"),
        (_set("early_stopping_met", "True"), "early_stopping_met is 'True', not true or false"),
        (_set("accuracy_pass", True), "a PerformanceOnly run's file holds accuracy results"),
        (_set("early_stopping_met", False), "VALID but early_stopping_met is false"),
        (_set("summary_string", "result_completed_samples_per_sec: 25405.6, Result is INVALID"), "disagrees"),
        (_set("summary_string", "result_completed_samples_per_sec: 20000, Result is VALID"), "disagrees"),
        (_set("summary_string", "result_scheduled_samples_per_sec: 25405.6, Result is VALID"), "disagrees"),
    ],
)
def test_performance_metadata_refused(tmp_path, edit, message):
    data = vc_performance()
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(ParseError, match=message) as info:
        parse_metadata(path)
    assert info.value.path == path


def test_valid_without_the_submission_query_constraint_is_no_contradiction(tmp_path):
    """NVIDIA's satisfies_query_constraint compares the query count with the submission minimum (a --fast run
    misses it); LoadGen's VALID does not depend on it."""
    assert parse_metadata(write(tmp_path, vc_performance())).result_validity == "VALID"


def test_an_invalid_run_may_miss_early_stopping(tmp_path):
    data = vc_performance() | {"result_validity": "INVALID", "early_stopping_met": False}
    data["summary_string"] = "result_completed_samples_per_sec: 25405.6, Result is INVALID"
    assert parse_metadata(write(tmp_path, data)).virtualclient_metrics() == {
        f"{VC_SYSTEM}-custom_k_99_MaxP-Server-PerformanceMode": 0
    }


def test_a_summary_string_in_another_wording_is_left_unread(tmp_path):
    data = vc_accuracy() | {"summary_string": "Accuracy run detected."}  # what v3.1 printed before scoring
    assert parse_metadata(write(tmp_path, data)).accuracy_pass


def test_a_hand_edited_file_whose_result_key_is_absent_is_refused(tmp_path):
    """PerfKitBenchmarker's test data (tests/data/mlperf_inference_metadata.json) is an Offline run whose
    scenario_key, result_samples_per_second, is not in the file (it carries Server's scheduled rate): NVIDIA never
    writes that (its summary_string reads the value under scenario_key)."""
    data = vc_performance() | {
        "config_name": "CloudL4x1_TRT-custom_k_99_MaxP-Offline",
        "system_name": "CloudL4x1_TRT",
        "scenario": "Offline",
        "scenario_key": "result_samples_per_second",
        "result_scheduled_samples_per_sec": 858.759,
        "summary_string": "result_samples_per_second: 858.759, Result is VALID",
    }
    del data["result_completed_samples_per_sec"]
    with pytest.raises(ParseError, match="result_samples_per_second: missing, though scenario_key names it"):
        parse_metadata(write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"scenario": NaN}', "non-finite number NaN"),
        ('{"scenario": Infinity}', "non-finite number Infinity"),
        ('{"scenario": -Infinity}', "non-finite number -Infinity"),
        ('{"scenario": 1e999}', "overflows"),
        ('{"a": 1, "a": 2}', "key 'a' twice"),
        ("[1, 2]", "expected a JSON object, found list"),
        ('"metadata"', "expected a JSON object, found str"),
        ("", "malformed JSON"),
        ("{", "malformed JSON"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_json_is_a_parse_error(tmp_path, text, message):
    path = tmp_path / "metadata.json"
    path.write_text(text)
    with pytest.raises(ParseError, match=message):
        parse_metadata(path)


def test_byte_order_marks_are_honoured(tmp_path):
    text = json.dumps(vc_accuracy())
    path = tmp_path / "metadata.json"
    for data in (codecs.BOM_UTF8 + text.encode(), text.encode("utf-16")):
        path.write_bytes(data)
        assert parse_metadata(path).accuracy_pass


def test_not_a_regular_file(tmp_path):
    with pytest.raises(ParseError, match="is a directory"):
        parse_metadata(tmp_path)
    with pytest.raises(ParseError, match="file not found"):
        parse_metadata(tmp_path / "absent.json")


# ---- held against LoadGen's logs and accuracy.txt of the same case --------------------------------------------------
def _perf_case(inference_fixtures, scenario: str = "Offline") -> tuple[Path, dict]:
    """The published run's folder and a metadata.json that says what its detail log says, as NVIDIA would write it."""
    folder = inference_fixtures / DGX / "bert-99" / scenario / "performance" / "run_1"
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    key = "result_samples_per_second" if scenario == "Offline" else "result_completed_samples_per_sec"
    value = detail.get(key)
    data = {
        "benchmark_full": "bert-99",
        "benchmark_short": "bert",
        "config_name": f"{DGX}-custom_k_99_MaxP-{scenario}",
        "detected_system": DETECTED,
        "early_stopping_met": detail.get("early_stopping_met"),
        "effective_min_duration_ms": detail.get("effective_min_duration_ms"),
        key: value,
        "result_validity": detail.validity,
        "satisfies_query_constraint": True,
        "scenario": scenario,
        "scenario_key": key,
        "summary_string": f"{key}: {value}, Result is {detail.validity}",
        "system_name": DGX,
        "tensorrt_version": "8.4.0",
        "test_mode": "PerformanceOnly",
    }
    query_key = "effective_samples_per_query" if scenario == "Offline" else "effective_min_query_count"
    data[query_key] = detail.get(query_key)
    return folder, data


def _logs(folder: Path) -> list:
    return [parse_detail(folder / "mlperf_log_detail.txt"), parse_summary(folder / "mlperf_log_summary.txt")]


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_metadata_agrees_with_the_published_logs(inference_fixtures, tmp_path, scenario):
    folder, data = _perf_case(inference_fixtures, scenario)
    meta = parse_metadata(write(tmp_path, data))
    for log in _logs(folder):
        assert cross_check(meta, log) == [], log.path


def test_a_figure_within_the_summarys_rounding_agrees(inference_fixtures, tmp_path):
    """The Server detail log keeps 6 digits (25790.4), its summary 2 decimals (25790.38)."""
    folder, data = _perf_case(inference_fixtures, "Server")
    data["result_completed_samples_per_sec"] *= 1 + 2e-6
    data["summary_string"] = (
        f"result_completed_samples_per_sec: {data['result_completed_samples_per_sec']}, Result is VALID"
    )
    meta = parse_metadata(write(tmp_path, data))
    assert [cross_check(meta, log) for log in _logs(folder)] == [[], []]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            {
                "result_samples_per_second": 28500.0,
                "summary_string": "result_samples_per_second: 28500.0, Result is VALID",
            },
            "result_samples_per_second: {meta} says 28500, {log} says 27971.4",
        ),
        (
            {"result_validity": "INVALID", "summary_string": "result_samples_per_second: 27971.4, Result is INVALID"},
            "result_validity: {meta} says INVALID, {log} says VALID",
        ),
        ({"effective_min_duration_ms": 60000}, "effective_min_duration_ms: {meta} says 60000, {log} says 600000"),
        (
            {
                "scenario": "Server",
                "config_name": f"{DGX}-custom_k_99_MaxP-Server",
                "scenario_key": "result_scheduled_samples_per_sec",
                "result_scheduled_samples_per_sec": 27971.4,
                "summary_string": "result_scheduled_samples_per_sec: 27971.4, Result is VALID",
            },
            "scenario: {meta} says Server, {log} says Offline",
        ),
    ],
)
def test_metadata_that_disagrees_with_the_published_logs(inference_fixtures, tmp_path, edit, expected):
    folder, data = _perf_case(inference_fixtures)
    meta = parse_metadata(write(tmp_path, data | edit))
    for log in _logs(folder):
        found = cross_check(meta, log)
        assert expected.format(meta=meta.path, log=log.path) in found, found


def test_a_result_key_the_log_lacks_is_a_disagreement(inference_fixtures, tmp_path):
    """An Offline LoadGen log has no completed-samples rate: metadata.json claiming one was not made from it."""
    folder, data = _perf_case(inference_fixtures, "Server")
    server = parse_metadata(write(tmp_path, data))
    offline = inference_fixtures / DGX / "bert-99" / "Offline" / "performance" / "run_1"
    found = cross_check(server, parse_detail(offline / "mlperf_log_detail.txt"))
    assert any("has no such figure" in line for line in found) and any("scenario:" in line for line in found)


def _accuracy_case(inference_fixtures, benchmark: str = "bert-99") -> tuple[Path, dict]:
    folder = inference_fixtures / DGX / benchmark / "Offline" / "accuracy"
    result = parse_accuracy(folder / "accuracy.txt")
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    name = {"F1": "F1", "100-WER": "WER"}[result.metric]
    threshold = {"F1": 90.874 * 0.99, "WER": (100 - 7.45225) * 0.99}[name]
    short = benchmark.split("-99")[0]
    data = vc_accuracy() | {
        "accuracy": [{"name": name, "pass": True, "threshold": threshold, "value": result.value}],
        "benchmark_full": benchmark,
        "benchmark_short": short,
        "config_name": f"{DGX}-custom_k_99_MaxP-Offline",
        "system_name": DGX,
        "summary_string": f"[PASSED] {name}: {result.value:.3f} (Threshold={threshold:.3f})",
        "effective_min_duration_ms": detail.get("effective_min_duration_ms"),
        "effective_samples_per_query": detail.get("effective_samples_per_query"),
    }
    return folder, data


@pytest.mark.parametrize("benchmark", ["bert-99", "rnnt"])
def test_accuracy_metadata_agrees_with_the_published_accuracy_run(inference_fixtures, tmp_path, benchmark):
    folder, data = _accuracy_case(inference_fixtures, benchmark)
    meta = parse_metadata(write(tmp_path, data))
    assert cross_check(meta, parse_accuracy(folder / "accuracy.txt")) == []
    for log in _logs(folder):  # an accuracy run's summary holds only its counts; its detail log says AccuracyOnly
        assert cross_check(meta, log) == [], log.path


def test_accuracy_metadata_that_disagrees_with_accuracy_txt(inference_fixtures, tmp_path):
    folder, data = _accuracy_case(inference_fixtures)
    result = parse_accuracy(folder / "accuracy.txt")
    data["accuracy"][0]["value"] = 91.0
    data["summary_string"] = "[PASSED] F1: 91.000 (Threshold=89.965)"
    meta = parse_metadata(write(tmp_path, data))
    assert cross_check(meta, result) == [f"F1: {meta.path} says 91, {result.path} says 90.3809"]
    data["accuracy"][0]["name"] = "mAP"
    data["summary_string"] = "[PASSED] mAP: 91.000 (Threshold=89.965)"
    meta = parse_metadata(write(tmp_path, data))
    assert cross_check(meta, result) == [f"accuracy metric: {result.path} scores F1, {meta.path} scores only mAP"]


def test_the_test_mode_must_agree(inference_fixtures, tmp_path):
    acc_folder, acc_data = _accuracy_case(inference_fixtures)
    perf_folder, perf_data = _perf_case(inference_fixtures)
    accuracy_meta = parse_metadata(write(tmp_path, acc_data, "acc.json"))
    perf_meta = parse_metadata(write(tmp_path, perf_data, "perf.json"))
    for log in _logs(perf_folder):
        assert f"test mode: {accuracy_meta.path} says AccuracyOnly, {log.path} says PerformanceOnly" in cross_check(
            accuracy_meta, log
        )
    for log in _logs(acc_folder):
        assert f"test mode: {perf_meta.path} says PerformanceOnly, {log.path} says AccuracyOnly" in cross_check(
            perf_meta, log
        )
    assert cross_check(perf_meta, parse_accuracy(acc_folder / "accuracy.txt")) == [
        f"test mode: {perf_meta.path} says PerformanceOnly, {acc_folder / 'accuracy.txt'} is an accuracy run's score"
    ]


# ---- hostile inputs: every failure a ParseError ---------------------------------------------------------------------
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
HOSTILE = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        1e308,
        -1e308,
        10**30,
        2**64,
        -(2**63),
        0,
        -1,
        0.0,
        True,
        False,
        None,
        "",
        "NaN",
        "VALID",
        "x" * 5000,
        [],
        {},
        [{"name": "F1"}],
        {"pass": True},
        "\x1b[31mred\x1b[0m",
    ]
)


@st.composite
def hostile_document(draw) -> bytes:
    """A valid document of either kind, then keys dropped, values replaced by hostile ones (NaN and Infinity written
    as the bare tokens Python's json emits), an accuracy entry damaged, and the bytes BOM-marked or re-encoded."""
    data = draw(st.sampled_from([vc_accuracy, vc_performance]))()
    keys = sorted(data)
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        data.pop(key, None)
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        data[key] = draw(HOSTILE)
    if draw(st.booleans()) and isinstance(data.get("accuracy"), list) and data["accuracy"]:
        entry = data["accuracy"][0]
        entry[draw(st.sampled_from(["name", "pass", "threshold", "value"]))] = draw(HOSTILE)
    text = json.dumps(data, allow_nan=True)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


def _parse_or_refuse(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        record = parse_metadata(path)
    except ParseError:
        return
    sound(record)
    if isinstance(record, PerformanceMetadata):
        assert record.result_validity in ("VALID", "INVALID") and record.result_value >= 0
        assert not (record.result_validity == "VALID" and not record.early_stopping_met)
    else:
        assert record.accuracy and record.accuracy_pass == all(s.passed for s in record.accuracy)
    assert set(record.virtualclient_metrics().values()) <= {0.0, 1.0}


@FUZZ
@given(data=hostile_document())
def test_hostile_metadata_parses_or_says_why(tmp_path_factory, data):
    _parse_or_refuse(tmp_path_factory.mktemp("meta") / "metadata.json", data)


@FUZZ
@given(
    data=st.sampled_from([vc_accuracy, vc_performance]).flatmap(lambda f: mutated(json.dumps(f(), indent=4).encode()))
)
def test_broken_metadata_parses_or_says_why(tmp_path_factory, data):
    """The house mutations (tests/fuzz_cases.py): truncated, lines duplicated, swapped or joined, numbers made NaN,
    Infinity, negative or huge, CRLF, BOM, UTF-16, random bytes."""
    _parse_or_refuse(tmp_path_factory.mktemp("meta") / "metadata.json", data)


@FUZZ
@given(data=st.binary(max_size=4096) | hostile_document())
def test_sniffing_any_bytes_never_raises(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("sniff") / "node7.bin"
    path.write_bytes(data)
    found = kind_by_content(path)
    assert found is None or isinstance(found[1], str)


def _judged(inference_fixtures, tmp_path, edit=None):
    """The published bert-99 Offline run copied with a metadata.json beside it, judged as the plugin judges it."""
    folder, data = _perf_case(inference_fixtures)
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    if edit is not None:
        edit(data)
    write(copy, data)
    case = next(
        c for c in load().inference_cases("A100-SXM-80GBx8") if c.id == "bert-99-Offline-PerformanceOnly-custom"
    )
    return copy, evaluate(case, Artifacts(copy))


def test_a_judged_case_holds_its_metadata_to_the_logs(inference_fixtures, tmp_path):
    """Where NVIDIA's harness wrote a metadata.json, the verdict stands only when it is the case's and agrees with
    LoadGen's files; a contradiction is no verdict at all, naming the file."""
    folder, result = _judged(inference_fixtures, tmp_path)
    assert result.verdict.label == "VALID" and folder / "metadata.json" in result.artifacts

    def claim(value: float, validity: str):
        """A file consistent in itself that says another result than the logs."""

        def edit(data: dict) -> None:
            data.update(result_samples_per_second=value, result_validity=validity)
            data["summary_string"] = f"result_samples_per_second: {value}, Result is {validity}"

        return edit

    for edit, said in (
        (claim(27971.4, "INVALID"), "result_validity: .*says INVALID"),
        (claim(30000.0, "VALID"), "result_samples_per_second: .* says 30000"),
        (_set("config_name", f"{DGX}-custom_k_99_9_MaxP-Offline"), "config_name is .*custom_k_99_9_MaxP-Offline"),
        (_set("benchmark_full", "bert-99.9"), "benchmark_full is bert-99.9, the case"),
    ):
        with pytest.raises(ParseError, match=said) as info:
            _judged(inference_fixtures, tmp_path / said[:12].replace(" ", "_"), edit)
        assert str(info.value.path).endswith("metadata.json")
