"""The CI gate: baselines and regressions, published references, fingerprints, telemetry, the HTML report in
headless Chromium, and the compare / merge CLI. Replays run over copies of ../shared/fixtures (copied into the
test's temporary folder, never into the repository); GPUs are the fake libnvidia-ml.so.1 of test_gpu.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_mlperf.cli import main as cli
from pytest_mlperf.report.html import metrics_table, summary_table
from pytest_mlperf.report.records import CaseRecord

SKU = "A100-SXM-80GBx8"
BERT_OFFLINE = "DGX-A100_A100-SXM-80GBx8_TRT/bert-99/Offline/performance/run_1"
BERT_CASE = "bert-99-Offline-PerformanceOnly-custom"


def _copy(inference_fixtures: Path, dest: Path) -> Path:
    shutil.copytree(inference_fixtures, dest, ignore=shutil.ignore_patterns("_other_submitters", "*.md"))
    return dest


def _scale(tree: Path, factor: float) -> float:
    """Scale bert-99 Offline's samples per second in both of LoadGen's logs; returns the new figure."""
    folder = tree / BERT_OFFLINE
    detail = (folder / "mlperf_log_detail.txt").read_text()
    old = float(re.search(r'"key": "result_samples_per_second", "value": ([0-9.e+]+)', detail).group(1))
    new = round(old * factor, 3)
    (folder / "mlperf_log_detail.txt").write_text(
        detail.replace(
            f'"key": "result_samples_per_second", "value": {old:g}',
            f'"key": "result_samples_per_second", "value": {new}',
        )
    )
    summary = (folder / "mlperf_log_summary.txt").read_text()
    (folder / "mlperf_log_summary.txt").write_text(
        re.sub(r"Samples per second: [0-9.]+", f"Samples per second: {new}", summary)
    )
    return new


def _replay(suites, tree: Path, *args: str):
    return suites.runpytest("-m", "inference", "--sku", SKU, f"--mlperf-results={tree}", *args)


def test_baseline_passes_twice_and_a_10pct_drop_fails_exactly_that_test(suites, inference_fixtures, tmp_path):
    tree = _copy(inference_fixtures, tmp_path / "tree")
    store = f"--mlperf-baseline-dir={tmp_path / 'baselines'}"
    first = _replay(suites, tree, "--mlperf-save=before", store, f"--mlperf-json={tmp_path / 'a.json'}")
    first.assert_outcomes(passed=28, skipped=4)
    assert (tmp_path / "baselines" / "before.json").is_file()
    gate = ("--mlperf-baseline=before", store, "--mlperf-fail-on=throughput:5%,latency:10%,accuracy:any")
    again = _replay(suites, tree, *gate)
    again.assert_outcomes(passed=28, skipped=4)

    _scale(tree, 0.9)
    worse = _replay(suites, tree, *gate, f"--mlperf-json={tmp_path / 'b.json'}", "--junitxml=g.xml")
    worse.assert_outcomes(passed=27, failed=1, skipped=4)
    worse.stdout.fnmatch_lines(
        [
            f"____*test_inference[[]{BERT_CASE}[]]*",
            "REGRESSED vs baseline before: result_samples_per_second: median 27971.4 -> 25174.3 samples/s; mean "
            "change -10.0 % (one run a side: no spread, the point rule), limit 5.0 %: regression (1 baseline run vs "
            "1), worse than throughput:5%",
        ]
    )
    worse.stdout.fnmatch_lines(
        [
            "*MLPerf baseline before*",
            f"REGRESSED  {BERT_CASE}  result_samples_per_second: median 27971.4 -> 25174.3 samples/s; mean change "
            "-10.0 % (*",
        ]
    )
    xml = (suites.path / "g.xml").read_text()
    assert "REGRESSED vs baseline before" in xml and 'name="mlperf:regressions"' in xml

    # the compare CLI says the same, and exits non-zero
    code = cli(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert code == 1
    assert cli(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0


def test_compare_cli_prints_the_regression(inference_fixtures, tmp_path, capsys, suites):
    tree = _copy(inference_fixtures, tmp_path / "tree")
    _replay(suites, tree, f"--mlperf-json={tmp_path / 'a.json'}").assert_outcomes(passed=28, skipped=4)
    _scale(tree, 0.9)
    _replay(suites, tree, f"--mlperf-json={tmp_path / 'b.json'}").assert_outcomes(passed=28, skipped=4)
    capsys.readouterr()
    assert cli(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert f"REGRESSED  {BERT_CASE}  result_samples_per_second: median 27971.4 -> 25174.3 samples/s; mean" in out
    assert "limit 5.0 %: regression (1 baseline run vs 1)" in out
    assert "1 of 28 cases regressed" in out  # the 4 cases neither run judged are not compared
    assert cli(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail-on=throughput:15%"]) == 0


def test_bad_baselines_and_gate_expressions_are_usage_errors(suites, inference_fixtures, tmp_path):
    tree = inference_fixtures
    store = tmp_path / "baselines"
    missing = _replay(suites, tree, "--mlperf-baseline=nope", f"--mlperf-baseline-dir={store}")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines([f"*--mlperf-baseline nope: no baseline at {store}/nope.json*"])

    store.mkdir()
    (store / "broken.json").write_text('{"results": [')
    broken = _replay(suites, tree, "--mlperf-baseline=broken", f"--mlperf-baseline-dir={store}")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    broken.stderr.fnmatch_lines([f"*--mlperf-baseline {store}/broken.json: not a pytest-mlperf results file*"])

    other = store / "a30.json"
    json.dump({"catalog": "inference v2.0; training v2.1", "sku": "A30x8", "results": []}, other.open("w"))
    sku = _replay(suites, tree, f"--mlperf-baseline={other}")
    assert sku.ret == pytest.ExitCode.USAGE_ERROR
    sku.stderr.fnmatch_lines(["*recorded for SKU 'A30x8', this run is 'A100-SXM-80GBx8'*"])
    json.dump({"catalog": "inference v1.1; training v1.1", "sku": SKU, "results": []}, other.open("w"))
    round_ = _replay(suites, tree, f"--mlperf-baseline={other}")
    round_.stderr.fnmatch_lines(["*recorded for MLPerf round 'inference v1.1; training v1.1'*"])

    for expr, said in (
        ("throughput", "'throughput' is not CLASS:LIMIT"),
        ("throughput:fast", "limit 'fast' of 'throughput' is not N% or 'any'"),
    ):
        bad = _replay(suites, tree, f"--mlperf-fail-on={expr}", f"--mlperf-baseline={other}")
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines([f"*{said}*"])
    alone = _replay(suites, tree, "--mlperf-fail-on=throughput:5%")
    alone.stderr.fnmatch_lines(["*--mlperf-fail-on needs --mlperf-baseline NAME|FILE*"])


def test_min_published_fails_a_node_below_the_published_figure(suites, inference_fixtures, tmp_path):
    tree = _copy(inference_fixtures, tmp_path / "tree")
    ok = _replay(suites, tree, "--mlperf-min-published=0.9", "--junitxml=p.xml")
    ok.assert_outcomes(passed=28, skipped=4)
    assert 'name="published_pct" value="100"' in (suites.path / "p.xml").read_text()
    _scale(tree, 0.8)
    slow = _replay(suites, tree, "--mlperf-min-published=0.9")
    slow.assert_outcomes(passed=27, failed=1, skipped=4)
    slow.stdout.fnmatch_lines(
        [f"*BELOW PUBLISHED: 80.0% of NVIDIA's published v2.0 figure for {BERT_CASE} (--mlperf-min-published 0.9)*"]
    )


def test_fleet_merge_marks_the_one_slow_node(suites, inference_fixtures, tmp_path, capsys):
    runs = []
    for node, factor in (("node-a", 1.0), ("node-b", 0.98), ("node-c", 0.8)):
        tree = _copy(inference_fixtures, tmp_path / node)
        if factor != 1.0:
            _scale(tree, factor)
        _replay(suites, tree, f"--mlperf-json={tmp_path / f'{node}.json'}").assert_outcomes(passed=28, skipped=4)
        runs.append(str(tmp_path / f"{node}.json"))
    capsys.readouterr()
    assert cli(["merge", *runs, "--spread=0.05"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"{BERT_CASE}\s+result_samples_per_second\s+27971.4\s+27412\S*\s+22377.1 SLOW", out), out
    assert (
        "SLOW NODE node-c (more than 5% behind the fleet median): bert-99-Offline-PerformanceOnly-custom 18.4% worse"
        in out
    )
    assert "SLOW NODE node-b" not in out and "SLOW NODE node-a" not in out
    assert cli(["merge", *runs[:2]]) == 0


def test_fingerprint_telemetry_and_throttling_with_a_fake_gpu(
    suites, inference_fixtures, tmp_path, fake_nvml, monkeypatch
):
    """Fake NVML: the fingerprint reaches JUnit, JSON and the HTML environment; telemetry is sampled during each
    test and a performance run that saw thermal throttling says so next to its verdict; a baseline from another
    driver and another GPU model is compared with a warning."""
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml))
    spec = (
        "count=8;name=NVIDIA A100-SXM4-80GB;memory_mib=81920;pci=0x20B210DE;power_w=400;driver=510.47.03;throttle=0x40"
    )
    monkeypatch.setenv("FAKE_NVML_SPEC", spec)
    store = f"--mlperf-baseline-dir={tmp_path / 'b'}"
    args = [
        "-m",
        "inference and bert",
        "--sku",
        SKU,
        f"--mlperf-results={inference_fixtures}",
        "--mlperf-telemetry-interval=0.05",
    ]
    first = suites.runpytest_subprocess(
        *args, "--mlperf-save=old", store, "--junitxml=f.xml", "--mlperf-json=f.json", "--html=f.html"
    )
    first.assert_outcomes(passed=16)
    xml = (suites.path / "f.xml").read_text()
    for field, value in (
        ("driver_version", "510.47.03"),
        ("gpu_count", "8"),
        ("vbios", "92.00.45.00.03"),
        ("ecc_mode", "1"),
    ):
        assert f'name="mlperf:fingerprint.{field}" value="{value}"' in xml
    assert 'name="mlperf:throttled" value="thermal"' in xml
    data = json.loads((suites.path / "f.json").read_text())
    assert data["fingerprint"]["gpu_names"] == "NVIDIA A100-SXM4-80GB" and data["fingerprint"]["kernel"]
    record = next(r for r in data["results"] if r["id"] == BERT_CASE)
    watched = record["info"]["telemetry"]
    assert watched["samples"] >= 2 and watched["throttle"] == ["thermal"]
    assert watched["stats"]["power_w"]["max"] <= 400 and watched["stats"]["temperature_c"]["max"] == 60
    first.stdout.fnmatch_lines([f"VALID*{BERT_CASE}: VALID*[[]throttled: thermal[]]"])
    html = (suites.path / "f.html").read_text()
    assert "MLPerf driver_version" in html and "throttling during this run: thermal" in html

    monkeypatch.setenv(
        "FAKE_NVML_SPEC", spec.replace("510.47.03", "525.60.13").replace("A100-SXM4-80GB", "A100 80GB PCIe")
    )
    second = suites.runpytest_subprocess(*args[:-1], "--mlperf-baseline=old", store, "--sku", SKU, "--html=s.html")
    second.stdout.fnmatch_lines(
        [
            "*MLPerf baseline old*",
            "fingerprint driver_version: 510.47.03 -> 525.60.13",
            "fingerprint gpu_names: NVIDIA A100-SXM4-80GB -> NVIDIA A100 80GB PCIe",
            "WARNING: more than the driver/firmware changed (gpu_names): this comparison is not a driver test",
        ]
    )
    html = (suites.path / "s.html").read_text()
    assert "Fingerprint differences from baseline old" in html and "<td>525.60.13</td>" in html
    assert "More than the driver/firmware changed (gpu_names)" in html


def test_report_text_is_escaped():
    record = {
        "id": "<b>case</b>",
        "outcome": "failed",
        "backend": "results",
        "reason": "NOT CONVERGED: <script>alert(1)</script>",
        "metrics": [{"name": "<i>m</i>", "value": 1.0, "unit": "<u>", "higher_is_better": True}],
        "info": {"compliance": {"status": "FAILED", "findings": ["<img src=x onerror=alert(2)>"], "known": []}},
    }
    record = CaseRecord.from_dict({**record, "verdict": "NOT CONVERGED"})
    table = metrics_table(record) + summary_table([record], {"host": "<h1>x</h1>"})
    for markup in ("<script>", "<img", "<b>case", "<i>m", "<h1>", "<u>"):
        assert markup not in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table and "&lt;img src=x onerror=alert(2)&gt;" in table


def test_html_report_renders_its_charts_in_headless_chromium(
    suites, inference_fixtures, tmp_path, fake_nvml, monkeypatch
):
    """The report opened in Debian's chromium, headless and offline: the charts are in the rendered page and
    the screenshot is kept with the test's output."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is needed (Debian: apt-get install chromium)")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml))
    monkeypatch.setenv("FAKE_NVML_SPEC", "count=8;throttle=0x4")
    tree = _copy(inference_fixtures, tmp_path / "tree")
    store = f"--mlperf-baseline-dir={tmp_path / 'b'}"
    base = ["-m", "inference and bert", "--sku", SKU, f"--mlperf-results={tree}", "--mlperf-telemetry-interval=0.02"]
    suites.runpytest_subprocess(*base, "--mlperf-save=old", store).assert_outcomes(passed=16)
    _scale(tree, 0.9)
    report = tmp_path / "report.html"
    run = suites.runpytest_subprocess(
        *base, "--mlperf-baseline=old", store, "--mlperf-fail-on=throughput:5%", f"--html={report}"
    )
    run.assert_outcomes(passed=15, failed=1)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ]
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert "Worst changes against the baseline" in dom and "mlperf-bars" in dom
    assert dom.count("mlperf-percentiles") >= 6 and "mlperf-telemetry" in dom
    assert "1 regressed" in dom and "throttling during this run: power" in dom
    print(f"screenshot of the report: {shot}")


def test_each_case_is_shown_against_what_nvidia_tuned_it_for(suites, inference_fixtures, tmp_path):
    """NVIDIA's user.conf for the DGX A100's bert-99 Server says target_qps 25800: the published run's scheduled
    25792.11 samples/s is 99.969 % of it, in the JSON, the JUnit properties and the report."""
    result = _replay(
        suites,
        inference_fixtures,
        "-k",
        "bert-99-Server-PerformanceOnly-custom",
        "--junitxml=t.xml",
        f"--mlperf-json={tmp_path / 't.json'}",
    )
    result.assert_outcomes(passed=1)
    record = json.loads((tmp_path / "t.json").read_text())["results"][0]
    tuned = next(m for m in record["metrics"] if m["name"] == "tuned_target_pct")
    assert tuned["value"] == pytest.approx(25792.11 / 25800 * 100) and tuned["metadata"]["target_qps"] == 25800
    assert 'name="tuned_target_pct" value="99.969' in (suites.path / "t.xml").read_text()
    html = metrics_table(CaseRecord.from_dict(record))
    assert "of the target NVIDIA tuned this case for (25,800 samples/s, user.conf)" in html


def test_a_case_nvidia_published_no_figure_for_says_so():
    """The published floor cannot judge a case NVIDIA never published (the DGX A100's ssd-mobilenet Offline is
    registered in configs/ but was not submitted): the report says so instead of passing over it in silence."""
    from pytest_mlperf.catalog import load
    from pytest_mlperf.gate.policy import Gate

    cat = load()
    cases = {c.id: c for c in cat.inference_cases(SKU)}
    unpublished, published = (
        cases["ssd-mobilenet-Offline-PerformanceOnly-lwis"],
        cases["bert-99-Offline-PerformanceOnly-custom"],
    )
    floor = Gate(cat, min_published=0.9, min_published_source="--mlperf-min-published 0.9")
    assert floor.reference_notes(unpublished, None) == [
        "NVIDIA published no inference v2.0 figure for DGX-A100_A100-SXM-80GBx8_TRT-lwis_k_99_MaxP-Offline; the "
        "published floor (--mlperf-min-published 0.9) does not apply to it"
    ]
    assert Gate(cat).reference_notes(unpublished, None) == [
        "NVIDIA published no inference v2.0 figure for DGX-A100_A100-SXM-80GBx8_TRT-lwis_k_99_MaxP-Offline"
    ]
    assert floor.reference_notes(published, None) == []
    assert floor.reference_notes(cases["ssd-mobilenet-Offline-AccuracyOnly-lwis"], None) == []
    record = CaseRecord("x", verdict="VALID", notes=floor.reference_notes(unpublished, None))
    assert "NVIDIA published no inference v2.0 figure" in metrics_table(record)
    from pytest_mlperf.report.junit import case_properties

    assert ("mlperf:note", record.notes[0]) in case_properties(record)
