"""The plugin through pytester: options, markers, ids, skips, verdicts, JUnit properties, HTML and JSON.

These run the real suites (suites/*.py, copied into pytester's folder) against the published logs.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT

SUITES = ROOT / "suites"


def test_options_are_in_the_mlperf_group(suites):
    result = suites.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*MLPerf benchmarks (pytest-mlperf)*",
            "*--sku=NAME*",
            "*--mlperf-backend*",
            "*--mlperf-results=DIR*",
            "*--mlperf-json=PATH*",
            "*--mlperf-training-code=DIR*",
            "*--mlperf-nexp=N*",
            "*--mlperf-launcher*",
        ]
    )


def test_markers_are_registered(suites):
    result = suites.runpytest("--markers")
    for name in (
        "inference",
        "training",
        "bert",
        "rnnt",
        "ssd_mobilenet",
        "ssd_resnet34",
        "offline",
        "server",
        "singlestream",
        "multistream",
        "accuracy",
        "performance",
        "custom",
        "lwis",
        "triton",
    ):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}:*"])


def test_unknown_sku_is_a_usage_error_listing_known_skus(suites):
    result = suites.runpytest("--sku", "H100x8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sku: unknown SKU 'H100x8'; known SKUs: A100-SXM-80GBx8, A100-SXM-80GBx4,*"])


def test_missing_results_dir_is_a_usage_error(suites, tmp_path):
    result = suites.runpytest(f"--mlperf-results={tmp_path / 'nope'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--mlperf-results {tmp_path / 'nope'}: not a directory*"])


def test_nvidia_backend_needs_a_system_and_its_inputs(suites, tmp_path):
    result = suites.runpytest("--mlperf-backend", "nvidia")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mlperf-backend nvidia runs one system: name it with --sku NAME or --sku auto*"])
    result = suites.runpytest("--mlperf-backend", "nvidia", "--sku", "A30x8")
    result.stderr.fnmatch_lines(["*--mlperf-backend nvidia needs --mlperf-nvidia-code DIR*"])
    result = suites.runpytest("--mlperf-backend", "nvidia", "--sku", "A30x8", f"--mlperf-nvidia-code={tmp_path}")
    result.stderr.fnmatch_lines(["*--mlperf-backend nvidia needs --mlperf-scratch DIR*"])
    result = suites.runpytest(
        "--mlperf-backend",
        "nvidia",
        "--sku",
        "A30x8",
        f"--mlperf-nvidia-code={tmp_path}",
        f"--mlperf-scratch={tmp_path}",
    )
    result.stderr.fnmatch_lines(
        [
            f"*--mlperf-nvidia-code {tmp_path}: expected NVIDIA's closed/NVIDIA checkout there, "
            "but Makefile, code is missing*"
        ]
    )


def test_auto_picks_the_local_backend_without_a_gpu(suites):
    result = suites.runpytest("--collect-only", "-q", "-m", "inference", "--sku", "A2x2")
    result.stdout.fnmatch_lines(["*test_inference[[]bert-99-Server-PerformanceOnly-local[]]"])
    assert "lwis" not in result.stdout.str()  # NVIDIA's harness variants collapse into one local case
    result.stdout.fnmatch_lines(["16/27 tests collected (11 deselected)*"])  # the ten training trials and their score
    header = suites.runpytest("--co", "-m", "inference", "--sku", "A2x2")
    header.stdout.fnmatch_lines(["mlperf: backend local (auto: no NVIDIA GPU (NVML could not start*stand-in models*"])


def test_ids_follow_the_results_tree(suites, inference_fixtures):
    result = suites.runpytest(
        "--collect-only", "-q", "-m", "inference", "--sku", "A100-SXM-80GBx8", f"--mlperf-results={inference_fixtures}"
    )
    result.stdout.fnmatch_lines(
        [
            "test_inference.py::test_inference[bert-99-Offline-AccuracyOnly-custom]",
            "test_inference.py::test_inference[bert-99.9-Server-PerformanceOnly-triton]",
            "test_inference.py::test_inference[ssd-mobilenet-Offline-PerformanceOnly-lwis]",
        ]
    )
    result.stdout.fnmatch_lines(["32/37 tests collected (5 deselected)*"])  # 4 training configs and the scores
    assert "bert-99-Offline-AccuracyOnly-lwis" not in result.stdout.str()  # NVIDIA registers no LWIS BERT


def test_edge_sku_has_singlestream_and_multistream(suites, inference_fixtures):
    result = suites.runpytest(
        "--collect-only",
        "-q",
        "-m",
        "inference and multistream",
        "--sku",
        "A30x1",
        f"--mlperf-results={inference_fixtures}",
    )
    result.stdout.fnmatch_lines(
        [
            "*test_inference[[]ssd-mobilenet-MultiStream-AccuracyOnly-lwis[]]",
            "*test_inference[[]ssd-resnet34-MultiStream-PerformanceOnly-lwis[]]",
        ]
    )
    assert "Server" not in result.stdout.str()


def test_markers_slice_the_matrix(suites, inference_fixtures):
    result = suites.runpytest(
        "-m",
        "inference and bert and server and performance",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
    )
    # bert-99 and bert-99.9, custom and triton: what NVIDIA's configs register
    result.assert_outcomes(passed=4)


def test_replay_of_one_sku_passes_what_the_fixtures_prove(suites, inference_fixtures, tmp_path):
    xml, html, js = tmp_path / "r.xml", tmp_path / "r.html", tmp_path / "r.json"
    result = suites.runpytest(
        "-m",
        "inference",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
        f"--junitxml={xml}",
        f"--html={html}",
        f"--mlperf-json={js}",
        "-rs",
    )
    result.assert_outcomes(passed=28, skipped=4)
    result.stdout.fnmatch_lines(
        [
            "*no PerformanceOnly result for DGX-A100_A100-SXM-80GBx8_TRT-lwis_k_99_MaxP-Offline; looked for "
            f"{inference_fixtures}/DGX-A100_A100-SXM-80GBx8_TRT/ssd-mobilenet/Offline/performance/run_1*",
        ]
    )

    root = ET.parse(xml).getroot()
    suite_props = {p.get("name"): p.get("value") for p in root.find("testsuite").find("properties")}
    assert suite_props["mlperf:sku"] == "A100-SXM-80GBx8" and suite_props["mlperf:backend"] == "results"
    cases = {tc.get("name"): tc for tc in root.iter("testcase")}
    server = cases["test_inference[bert-99-Server-PerformanceOnly-custom]"]
    props = {p.get("name"): p.get("value") for p in server.iter("property")}
    assert props["DGX-A100_A100-SXM-80GBx8_TRT-custom_k_99_MaxP-Server-PerformanceMode"] == "1"
    assert float(props["result_scheduled_samples_per_sec"]) == pytest.approx(25792.11, rel=1e-5)
    assert float(props["result_99.00_percentile_latency_ns"]) == 86591792
    assert props["mlperf:verdict"] == "VALID"
    acc = {
        p.get("name"): p.get("value")
        for p in cases["test_inference[rnnt-Offline-AccuracyOnly-custom]"].iter("property")
    }
    assert float(acc["AccuracyValue"]) == pytest.approx(92.5545108119687)
    assert float(acc["ThresholdValue"]) == pytest.approx(91.6222725)
    for name, tc in cases.items():
        if tc.find("skipped") is None:
            assert any(p.get("name") == "mlperf:verdict" for p in tc.iter("property")), name

    data = json.loads(js.read_text())
    assert data["sku"] == "A100-SXM-80GBx8" and data["backend"] == "results"
    assert len(data["results"]) == 32
    by_id = {r["id"]: r for r in data["results"]}
    offline = by_id["bert-99-Offline-PerformanceOnly-custom"]
    metric = {m["name"]: m for m in offline["metrics"]}["result_samples_per_second"]
    assert metric["value"] == pytest.approx(27971.4, rel=1e-4)
    assert metric["unit"] == "samples/s" and metric["higher_is_better"] is True
    assert by_id["ssd-mobilenet-Offline-PerformanceOnly-lwis"]["outcome"] == "skipped"
    assert "looked for" in by_id["ssd-mobilenet-Offline-PerformanceOnly-lwis"]["reason"]

    page = html.read_text()
    assert "<h2>MLPerf results</h2>" in page and "mlperf-summary" in page
    assert "result_scheduled_samples_per_sec = 25,792.10 samples/s" in page  # summary table headline
    assert "PASS: 14, SKIPPED: 4, VALID: 14" in page
    tests = _html_tests(page)
    row = tests["test_inference.py::test_inference[bert-99-Server-PerformanceOnly-custom]"]
    assert "<td>VALID</td>" in row["resultsTableRow"]
    extra = row["extras"][0]["content"]
    assert "mlperf-metrics" in extra and "<td>result_scheduled_samples_per_sec</td>" in extra
    assert "25,792.10" in extra and "<td>samples/s</td><td>higher</td>" in extra
    acc = tests["test_inference.py::test_inference[bert-99-Offline-AccuracyOnly-custom]"]["extras"][0]["content"]
    assert "PASS: F1 90.381 &gt;= threshold 89.965" in acc


def _html_tests(page: str) -> dict:
    """pytest-html 4 keeps each test's row and extras in a JSON blob inside the page."""
    blob = json.loads(html_lib.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))
    return {test_id: runs[-1] for test_id, runs in blob["tests"].items()}


def test_replay_of_every_system_fails_the_two_ranging_runs(suites, inference_fixtures):
    result = suites.runpytest("-m", "inference", f"--mlperf-results={inference_fixtures}")
    result.assert_outcomes(passed=57, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_inference[[]DGX-A100_A100-SXM-80GBx8_TRT_MaxQ/bert-99-Server-PerformanceOnly-custom-MaxQ-ranging[]]*",
            "*AssertionError: INVALID: early stopping not satisfied",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: INVALID: performance constraints not satisfied (p99 latency 1121.8 ms > target 1000 ms);"
            " early stopping not satisfied; LoadGen recommends: Reduce target QPS to improve latency.",
        ]
    )


def test_training_replay_passes_converged_and_fails_aborted(suites, training_fixtures, tmp_path):
    js = tmp_path / "t.json"
    # the checker on every trial here (the suites fixture turns it off where a test does not look at it)
    result = suites.runpytest(
        "-m", "training", f"--mlperf-results={training_fixtures}", f"--mlperf-json={js}", "--mlperf-compliance=auto"
    )
    # 32 trials (2 aborted) and 5 sets to score: three of 10 runs, two single aborted runs
    result.assert_outcomes(passed=33, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: NOT CONVERGED: run_stop status 'aborted', last eval_accuracy 0.71967 < 0.720 after "
            "3151872 samples",
            "*AssertionError: NOT CONVERGED: run_stop status 'aborted', last eval_accuracy 0.71973 < 0.720 after "
            "2697713 samples",
        ]
    )
    records = {r["id"]: r for r in json.loads(js.read_text())["results"]}
    fujitsu = {
        m["name"]: m["value"] for m in records["bert-1x8x56x1-gx_A100-SXMx8_pytorch_NGC_22.09/result_0"]["metrics"]
    }
    assert fujitsu["e2e_time"] == pytest.approx(1063.4499187469482)
    assert fujitsu["training_sequences_per_second"] == pytest.approx(2858.0708718125343)
    assert fujitsu["final_loss"] == 0.0 and fujitsu["raw_train_time"] == pytest.approx(1050.2188835144043)
    assert fujitsu["eval_mlm_accuracy"] == pytest.approx(0.7201793193817139)
    # measured from samples and MLLOG time, lower than the printed figure that assumes max_steps
    assert fujitsu["measured_sequences_per_second"] < fujitsu["training_sequences_per_second"]
    from pytest_mlperf.gate import compliance

    if compliance.installed():  # the checker's findings ride along with each trial
        found = records["bert-1x8x56x1-dgxa100_ngc22.09_pytorch/result_0"]["info"]["compliance"]
        assert found["status"] == "KNOWN RENAME ONLY" and found["known"] == [compliance.KNOWN_RENAME]
        assert records["bert-gbs768-dgxh100_preview/result_3"]["info"]["compliance"]["status"] == "FAILED"


def test_training_replay_scores_each_set_as_mlperf_does(suites, training_fixtures, tmp_path):
    """The olympic mean of run_stop - run_start over 10 runs: 16.88 min for NVIDIA's one node, 2.497 for eight
    (REFERENCE and the fixtures' PROVENANCE, which checked them against mlcommons/logging's summarizer)."""
    js = tmp_path / "s.json"
    result = suites.runpytest(
        "-m", "training and score", f"--mlperf-results={training_fixtures}", f"--mlperf-json={js}", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=3, failed=2)
    records = {r["id"]: r for r in json.loads(js.read_text())["results"] if r.get("kind") == "training-score"}
    scores = {key: {m["name"]: m["value"] for m in r["metrics"]} for key, r in records.items()}
    assert round(scores["bert-1x8x56x1-dgxa100_ngc22.09_pytorch"]["mlperf_score"], 2) == 16.88
    assert round(scores["bert-8x8x48x1-dgxa100_n8_ngc22.09_pytorch"]["mlperf_score"], 3) == 2.497
    assert round(scores["bert-1x8x56x1-gx_A100-SXMx8_pytorch_NGC_22.09"]["mlperf_score"], 2) == 17.30
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: INVALID: not converged: bert-gbs768-dgxh100_preview/result_3 (NOT CONVERGED)",
            "*SCORED*bert-1x8x56x1-dgxa100_ngc22.09_pytorch: SCORE 16.882 min: olympic mean of 8 of 10 runs "
            "(fastest 15.43 and slowest 18.53 dropped)",
        ]
    )


def test_training_replay_for_a_sku_matches_configs_by_recipe(suites, training_fixtures):
    result = suites.runpytest(
        "-m", "training", "--sku", "A100-SXM-80GBx8", f"--mlperf-results={training_fixtures}", "-rs"
    )
    # 1x8x56x1: NVIDIA + Fujitsu (20); 8x8x48x1: NVIDIA 8-node (10) + Dell's aborted run; 1x4x56x2 and
    # 512x8x2x1_pack: none. Scores: three sets of 10 pass, Dell's single aborted run does not.
    result.assert_outcomes(passed=33, failed=2, skipped=2)
    result.stdout.fnmatch_lines(["*no trial log in * with config 512x8x2x1_pack's recipe (global_batch_size=16384,*"])


def test_a_sku_nvidia_published_no_training_config_for_says_so(suites, training_fixtures):
    """The DGX Station A100 (A100-SXM-80GBx4) has no v2.1 BERT config of NVIDIA's: 1x4x56x2 is four GPUs of a DGX
    A100. The skip says so, and the run fails for want of a verdict."""
    result = suites.runpytest(
        "-m", "training", "--sku", "A100-SXM-80GBx4", f"--mlperf-results={training_fixtures}", "-rs"
    )
    assert result.ret == 1
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*no training cases for system A100-SXM-80GBx4*: NVIDIA published no v2.1 BERT*"])


def test_corrupt_log_fails_naming_file_and_line(suites, inference_fixtures, tmp_path):
    tree = tmp_path / "tree"
    src = inference_fixtures / "DGX-A100_A100-SXM-80GBx8_TRT/rnnt/Offline/performance/run_1"
    dst = tree / "DGX-A100_A100-SXM-80GBx8_TRT/rnnt/Offline/performance/run_1"
    dst.mkdir(parents=True)
    (dst / "mlperf_log_summary.txt").write_text((src / "mlperf_log_summary.txt").read_text())
    lines = (src / "mlperf_log_detail.txt").read_text().splitlines(keepends=True)
    lines[9] = lines[9][: len(lines[9]) // 2] + "\n"
    (dst / "mlperf_log_detail.txt").write_text("".join(lines))
    result = suites.runpytest("-m", "inference", f"--mlperf-results={tree}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*cannot judge *rnnt-Offline-PerformanceOnly-custom: {dst}/mlperf_log_detail.txt:10: malformed MLLOG record*"]
    )
    assert "VALID" not in result.stdout.str().split("MLPerf verdicts")[-1].replace("INVALID", "")


def test_user_hook_can_drop_cases(suites, inference_fixtures):
    suites.makeconftest("""
        def pytest_mlperf_modify_cases(config, kind, cases):
            if kind == "inference":
                cases[:] = [c for c in cases if c.harness != "lwis"]
    """)
    result = suites.runpytest("-m", "inference", "--sku", "A100-SXM-80GBx8", f"--mlperf-results={inference_fixtures}")
    result.assert_outcomes(passed=24, skipped=2)


def test_user_hook_sees_each_result(suites, inference_fixtures):
    suites.makeconftest("""
        from pytest_mlperf.judge.metrics import Metric
        def pytest_mlperf_result(config, case, result):
            result.metrics.append(Metric("site_tag", 7.0, "", None))
    """)
    result = suites.runpytest(
        "-m",
        "inference and rnnt and offline",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
        "--junitxml=x.xml",
    )
    result.assert_outcomes(passed=2)
    props = [p.get("name") for p in ET.parse(suites.path / "x.xml").getroot().iter("property")]
    assert props.count("site_tag") == 2


def test_xdist_workers_report_the_same_results(suites, inference_fixtures, tmp_path):
    js = tmp_path / "x.json"
    result = suites.runpytest_subprocess(
        "-n",
        "2",
        "-m",
        "inference",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
        f"--mlperf-json={js}",
    )
    result.assert_outcomes(passed=28, skipped=4)
    records = json.loads(js.read_text())["results"]
    assert len(records) == 32 and sum(r["outcome"] == "passed" for r in records) == 28


def test_runs_without_pytest_html(suites, inference_fixtures):
    result = suites.runpytest(
        "-p",
        "no:html",
        "-m",
        "inference and rnnt",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
    )
    result.assert_outcomes(passed=4)


def test_suites_are_readable_one_function_each():
    # inference: one function; training: the trial and the score across trials
    for name, marker, functions in (("test_inference.py", "inference", 1), ("test_training.py", "training", 2)):
        text = (SUITES / name).read_text()
        assert text.count("def test_") == functions and text.count(f"@pytest.mark.{marker}") == functions
        assert text.count("assert result.verdict.ok, result.verdict.reason") == functions


def test_results_dir_relative_to_invocation(suites, inference_fixtures):
    link = suites.path / "published"
    link.symlink_to(inference_fixtures)
    result = suites.runpytest("-m", "inference and ssd_mobilenet", "--sku", "A30x1", "--mlperf-results=published")
    result.assert_outcomes(passed=6, skipped=6)  # NVIDIA registers Triton for the A30x1; the fixtures have none
    assert Path(link).is_symlink()


def test_results_tree_as_a_bare_word_is_refused_wherever_it_sits(suites, inference_fixtures):
    """pytest reads a two-word option value that names a folder as a test path when it picks its rootdir and
    config file: the tree's location would decide them (the tree itself, which would get a cache, or a common
    ancestor such as /tmp, which drops the project's ini). Refused in every layout, with the tests named or not,
    and before anything is replayed or written."""
    for named in ([], [str(suites.path)]):
        result = suites.runpytest(*named, "-m", "inference", "--mlperf-results", str(inference_fixtures))
        assert result.ret == pytest.ExitCode.USAGE_ERROR, named
        result.stderr.fnmatch_lines(
            [
                f"*--mlperf-results {inference_fixtures}: pytest reads a plugin option's value written as a "
                f"separate word as a test path *write --mlperf-results={inference_fixtures} (one word), or run "
                "'pytest-mlperf run ...', which joins them*"
            ]
        )
        assert not (inference_fixtures / ".pytest_cache").exists()


def test_a_suite_with_no_cases_skips_saying_why(suites, inference_fixtures):
    result = suites.runpytest("-m", "training", "--sku", "A2x1", f"--mlperf-results={inference_fixtures}", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*no training cases for system A2x1 on the results backend (--mlperf-results *",
            "*no training scores for system A2x1 on the results backend (--mlperf-results *",
        ]
    )
