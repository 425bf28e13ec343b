"""The nvidia backend against a real Docker engine (Debian docker.io; dockerd with vfs storage, no bridge, no
iptables), which these tests start.

Stand-ins, at the outermost boundary only. NVIDIA's image cannot exist here, so the image is built from a
busybox rootfs with this machine's GNU make and bash, which run NVIDIA's real Makefile (link_dirs,
generate_engines, run_harness); its `python3` (tests/standin_image/python3) plays NVIDIA's main.py, writing the
published logs of ../shared/fixtures in NVIDIA's build/logs layout, and its `make` plays the targets that need
the internet or TensorRT (build, the downloads, preprocessing). The GPUs are a fake libnvidia-ml.so.1 that the
real nvidia-ml-py reads (see test_gpu.py), beside a stand-in /proc (conftest.host_root) that shows NVIDIA's
system detection a DGX A100's CPUs and memory. Everything else is real: the daemon, the SDK calls, the
container, the execs, the Makefile, the parsers and verdicts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from xml.etree import ElementTree

import pytest
from engine import busybox_image, host_programs, module_dockerd

from conftest import A100X8, ROOT, fake_gpu_env, host_root, nvidia_checkout, run_pytest_child
from pytest_mlperf.machine.containers import LABEL_SESSION, LaunchSpec

IMAGE = "pytest-mlperf-standin:test"
STANDIN_PROGRAMS = ("make", "python3", "uname", "nvidia-smi")  # tests/standin_image/


@pytest.fixture(scope="module")
def dockerd():
    yield from module_dockerd("inference")


def _standin_files() -> dict[str, Path]:
    """The image's programs: GNU make and bash from this machine (with their libraries) to run NVIDIA's real
    Makefile, and the stand-ins of tests/standin_image for what needs NVIDIA's image or a GPU."""
    host = host_programs("bash", "make")
    bash, gmake = shutil.which("bash"), shutil.which("make")
    files = {path: source for path, source in host.items() if path not in (bash, gmake)}
    files.update({"/bin/bash": host[bash], "/usr/bin/gmake": host[gmake]})
    files.update({f"/usr/bin/{name}": ROOT / "tests" / "standin_image" / name for name in STANDIN_PROGRAMS})
    return files


@pytest.fixture(scope="module")
def standin_image(dockerd, inference_fixtures, tmp_path_factory) -> str:
    return busybox_image(
        dockerd,
        tmp_path_factory.mktemp("rootfs"),
        IMAGE,
        files=_standin_files(),
        trees={"/fixtures": inference_fixtures},
    )


@pytest.fixture
def checkout(tmp_path, nvidia_tree) -> tuple[Path, Path]:
    """NVIDIA's checkout (its real Makefile, configs/, code/common/) and an empty scratch folder."""
    return nvidia_checkout(nvidia_tree, tmp_path)


def _run(
    dockerd,
    fake_nvml,
    cwd: Path,
    code: Path,
    scratch: Path,
    *args: str,
    timeout: int = 300,
    background: bool = False,
    sku: str = "A100-SXM-80GBx8",
    gpus: str = A100X8,
    root: Path | None = None,
):
    root = root or host_root(cwd / "host")
    env = fake_gpu_env(fake_nvml, gpus, DOCKER_HOST=dockerd.url, PYTEST_MLPERF_SYSROOT=str(root))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "suites"),
        "-p",
        "no:cacheprovider",
        f"--rootdir={cwd}",
        "--mlperf-backend=nvidia",
        f"--sku={sku}",
        f"--mlperf-nvidia-code={code}",
        f"--mlperf-scratch={scratch}",
        f"--mlperf-image={IMAGE}",
        "--mlperf-container-profile=minimal",
        *args,
    ]
    return run_pytest_child(cmd, cwd, env, background, timeout)


@pytest.fixture
def nv(dockerd, standin_image, fake_nvml, checkout, tmp_path):
    """pytest on the nvidia backend with the stand-in image, in a fresh process (so the fake NVML loads); keyword
    arguments choose the SKU, the fake GPUs and the stand-in host root."""
    code, scratch = checkout

    def run(*args: str, background: bool = False, **machine):
        return _run(dockerd, fake_nvml, tmp_path, code, scratch, *args, background=background, **machine)

    return run


def _records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(path.read_text())["results"]}


def test_same_verdicts_and_metrics_as_replaying_the_fixtures(dockerd, checkout, tmp_path, inference_fixtures, nv):
    code, scratch = checkout
    result = nv(
        "-m",
        "inference and (rnnt or ssd_resnet34 or bert)",
        "--mlperf-json=nv.json",
        "--junitxml=nv.xml",
        "-q",
    )
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "suites"),
            "-p",
            "no:cacheprovider",
            f"--rootdir={tmp_path}",
            "-m",
            "inference and (rnnt or ssd_resnet34 or bert)",
            "--sku=A100-SXM-80GBx8",
            f"--mlperf-results={inference_fixtures}",
            "--mlperf-json=replay.json",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    nvidia, published = _records(tmp_path / "nv.json"), _records(tmp_path / "replay.json")
    judged = {i for i, r in published.items() if r["outcome"] != "skipped"}
    assert len(judged) == 28, replay.stdout[-2000:]
    for case_id in judged:
        ours, theirs = nvidia[case_id], published[case_id]
        assert (ours["outcome"], ours["verdict"], ours["reason"]) == (
            theirs["outcome"],
            theirs["verdict"],
            theirs["reason"],
        ), case_id
        assert ours["metrics"] == theirs["metrics"], case_id
    # the cases are the checkout's registrations: no LWIS BERT (configs/bert registers none), and all judged
    assert not [i for i in nvidia if i.endswith("-lwis") and i.startswith("bert")]
    assert set(nvidia) == set(published) and result.returncode == 0, result.stdout[-2000:]
    # NVIDIA's steps ran once each, remembered by stamps
    stamps = sorted(p.name for p in (scratch / ".pytest-mlperf").glob("*.stamp"))
    assert stamps == sorted(
        f"{m}.{s}.stamp"
        for m in ("bert", "rnnt", "ssd-resnet34")
        for s in ("download_data", "download_model", "preprocess_data")
    )
    assert (code / "build" / ".pytest-mlperf" / "build.stamp").exists()
    assert not list(scratch.rglob("*.lock")) and not list(code.rglob("*.lock"))  # locks leave no files
    assert dockerd.ours() == []


def test_run_args_and_logs_kept(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    out = tmp_path / "kept"
    result = nv(
        "-k",
        "bert-99.9-Server-PerformanceOnly-triton",
        f"--mlperf-output={out}",
        "--mlperf-server-target-qps=11000",
        "--mlperf-json=r.json",
        "-q",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    kept = out / "DGX-A100_A100-SXM-80GBx8_TRT_Triton" / "bert-99.9" / "Server" / "performance" / "run_1"
    log = (kept / "run_harness.log").read_text()
    line = re.search(r"^\$ make run_harness (.*)$", log, re.M).group(1)
    stamp = re.search(r"--log_dir=/work/build/logs/(\S+)", line).group(1)
    assert line == (
        "--old-file=link_dirs RUN_ARGS=--benchmarks=bert --scenarios=server --harness_type=triton "
        "--accuracy_target=0.999 --power_setting=MaxP --test_mode=PerformanceOnly "
        f"--log_dir=/work/build/logs/{stamp} --fast --server_target_qps=11000 LOG_DIR=/work/build/logs/{stamp}"
    )
    assert [p.name for p in (code / "build" / "logs").iterdir()] == [stamp]  # one folder: LOG_DIR is ours
    # NVIDIA's Makefile ran: its run_harness recipe tees main.py's output into $(LOG_DIR)/stdout.txt, and
    # link_dirs linked build/data to the scratch folder
    tee = (code / "build" / "logs" / stamp / "stdout.txt").read_text()
    assert "[stand-in main.py] Result: result_scheduled_samples_per_sec: 11197.41, Result is VALID" in tee
    assert (code / "build" / "data").resolve() == (scratch / "data").resolve()
    assert "NVIDIA_VISIBLE_DEVICES=all" in log
    assert "Perf harness results:" in log and (kept / "mlperf_log_detail.txt").exists()
    record = _records(tmp_path / "r.json")["bert-99.9-Server-PerformanceOnly-triton"]
    assert record["verdict"] == "VALID" and str(kept / "run_harness.log") in record["artifacts"]
    engines = list((code / "build" / ".pytest-mlperf" / "engines").glob("*.stamp"))
    assert [p.name for p in engines] == ["bert-DGX-A100_A100-SXM-80GBx8_TRT_Triton-triton_k_99_9_MaxP-Server.stamp"]


def test_failing_step_shows_its_last_lines_and_leaves_no_stamp(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    (code / ".standin" / "fail").write_text("preprocess_data\n")
    result = nv("-k", "rnnt-Offline-PerformanceOnly", "-q")
    assert result.returncode == 1
    assert "make preprocess_data failed with exit status 2" in result.stdout
    assert "[stand-in] preprocess_data: failing on request" in result.stdout
    assert (scratch / ".pytest-mlperf" / "rnnt.download_data.stamp").exists()
    assert not (scratch / ".pytest-mlperf" / "rnnt.preprocess_data.stamp").exists()
    assert dockerd.ours() == []


def test_step_timeout_stops_the_container(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    (code / ".standin" / "hang").write_text("run_harness\n")
    result = nv(
        "-k",
        "rnnt-Offline-PerformanceOnly",
        "--mlperf-step-timeout=5",
        "-q",
    )
    assert result.returncode == 1
    assert "make run_harness: timed out after 5 s; the container was stopped" in result.stdout
    assert dockerd.ours() == []


def test_missing_image_is_a_clear_error(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    result = nv(
        "-k",
        "rnnt-Offline-PerformanceOnly",
        "--mlperf-image=no-such-image:1",
        "-q",
    )
    assert result.returncode == 1
    assert "image 'no-such-image:1' is not on this Docker engine" in result.stdout
    assert dockerd.ours() == []


def test_wrong_inputs_are_usage_errors(dockerd, fake_nvml, checkout, tmp_path):
    code, scratch = checkout
    result = _run(dockerd, fake_nvml, tmp_path, tmp_path / "nowhere", scratch)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--mlperf-nvidia-code {tmp_path / 'nowhere'}: not a directory" in result.stderr
    (code / "Makefile").unlink()
    result = _run(dockerd, fake_nvml, tmp_path, code, scratch)
    assert (
        f"--mlperf-nvidia-code {code}: expected NVIDIA's closed/NVIDIA checkout there, but Makefile is missing"
        in result.stderr
    )


def test_killed_container_and_interrupted_run_leave_nothing(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    (code / ".standin" / "delay").write_text("4\n")
    proc = nv("-k", "rnnt-Offline", "-q", background=True)
    _wait_for_container(dockerd)
    for container in dockerd.client().containers.list(filters={"label": LABEL_SESSION}):
        container.kill()  # the container dies mid-run
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "the container went away mid-run (killed, or out of memory?)" in out, out[-3000:]
    assert dockerd.ours() == []

    proc = nv("-k", "rnnt-Offline", "-q", background=True)
    _wait_for_container(dockerd)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "KeyboardInterrupt" in out
    assert dockerd.ours() == []

    proc = nv("-k", "rnnt-Offline", "-q", background=True)
    _wait_for_container(dockerd)
    proc.send_signal(signal.SIGTERM)  # a cancelled CI job
    proc.communicate(timeout=120)
    assert dockerd.ours() == []


def test_crashed_session_is_cleaned_by_the_next(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    (code / ".standin" / "delay").write_text("4\n")
    proc = nv("-k", "rnnt-Offline-PerformanceOnly", "-q", background=True)
    _wait_for_container(dockerd)
    proc.send_signal(signal.SIGKILL)  # no cleanup can run
    proc.communicate(timeout=60)
    assert len(dockerd.ours()) == 1
    (code / ".standin" / "delay").write_text("0\n")
    result = nv("-k", "rnnt-Offline-PerformanceOnly", "-q", "-s")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "removed containers of dead sessions: mlperf-inference-" in result.stdout
    assert dockerd.ours() == []


def test_dockerd_stopped_mid_session(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    (code / ".standin" / "delay").write_text("6\n")
    proc = nv("-k", "rnnt-Offline-PerformanceOnly", "-q", background=True)
    _wait_for_container(dockerd)
    dockerd.stop()
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        dockerd.start()  # the next session removes what the engine kept of the dead one
    assert proc.returncode == 1, out[-2000:]
    assert "lost the exec stream" in out or "cannot read the exit code" in out or "went away" in out, out[-3000:]
    (code / ".standin" / "delay").write_text("0\n")
    result = nv("-k", "rnnt-Offline-PerformanceOnly", "-q")
    assert result.returncode == 0, result.stdout[-2000:]
    assert dockerd.ours() == []


def test_launch_flags_follow_nvidia(tmp_path):
    """What the nvidia profile asks of the engine (it cannot be granted in this sandbox: no GPUs, no memlock)."""
    spec = LaunchSpec(image="img", name="n", code_dir=tmp_path / "code", scratch_dir=tmp_path / "scratch")
    kwargs = spec.run_kwargs("abc")
    assert kwargs["device_requests"][0]["Count"] == -1 and kwargs["device_requests"][0]["Capabilities"] == [["gpu"]]
    assert kwargs["shm_size"] == "32g" and kwargs["ulimits"][0]["Name"] == "memlock"
    assert kwargs["ulimits"][0]["Soft"] == -1 and kwargs["cap_add"] == ["SYS_ADMIN", "SYS_TIME"]
    assert kwargs["security_opt"] == ["seccomp=unconfined"] and kwargs["network_mode"] == "host"
    assert kwargs["volumes"][str(tmp_path / "code")]["bind"] == "/work" and kwargs["working_dir"] == "/work"
    assert kwargs["volumes"][str(tmp_path / "scratch")]["bind"] == str(tmp_path / "scratch")
    assert kwargs["environment"]["MLPERF_SCRATCH_PATH"] == str(tmp_path / "scratch")
    assert kwargs["user"] == f"{os.getuid()}:{os.getgid()}" and kwargs["labels"][LABEL_SESSION] == "abc"
    minimal = LaunchSpec(image="img", name="n", code_dir=tmp_path, scratch_dir=tmp_path, profile="minimal")
    assert "device_requests" not in minimal.run_kwargs("abc")


def _wait_for_container(dockerd, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dockerd.ours():
            time.sleep(1.5)  # let it get into a make step
            return
        time.sleep(0.2)
    raise AssertionError("no container appeared")


def test_xdist_workers_never_run_a_step_twice(dockerd, checkout, tmp_path, nv):
    code, scratch = checkout
    result = nv("-n", "2", "-k", "rnnt", "--mlperf-json=x.json", "-q")
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(_records(tmp_path / "x.json")) == 4
    for kind in ("models", "data", "preprocessed_data"):
        runs = (scratch / kind / "rnnt" / "stand-in").read_text().splitlines()
        assert len(runs) == 1, (kind, runs)  # two workers, one run of each step
    assert dockerd.ours() == []


def test_missing_image_names_nvidias_make_targets(dockerd, standin_image, fake_nvml, checkout, tmp_path):
    """Without --mlperf-image the backend uses NVIDIA's image name and, when it is missing, says which make
    targets of the checkout build it (docker/Dockerfile.x86_64 cannot be built outside NVIDIA: TRT_DEB_URL)."""
    code, scratch = checkout
    env = fake_gpu_env(
        fake_nvml, A100X8, DOCKER_HOST=dockerd.url, PYTEST_MLPERF_SYSROOT=str(host_root(tmp_path / "host"))
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "suites"),
        "-p",
        "no:cacheprovider",
        f"--rootdir={tmp_path}",
        "--mlperf-backend=nvidia",
        "--sku=A100-SXM-80GBx8",
        f"--mlperf-nvidia-code={code}",
        f"--mlperf-scratch={scratch}",
        "--mlperf-container-profile=minimal",
        "-k",
        "rnnt-Offline-AccuracyOnly",
        "-q",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    from pytest_mlperf.backends.nvidia_inference import default_image

    assert f"image '{default_image()}' is not on this Docker engine" in result.stdout
    assert "make build_docker NO_BUILD=1" in result.stdout and "make docker_add_user" in result.stdout
    assert dockerd.ours() == []


A30X8 = "count=8;name=NVIDIA A30;memory_mib=24576;pci=0x20B710DE;power_w=165"


def test_a_host_nvidias_detection_will_not_match_stops_before_anything_runs(dockerd, checkout, tmp_path, nv):
    """NVIDIA's system list wants an AMD EPYC 7742 and 0.5 TiB for the A30x8 (code/common/systems/
    system_list.py): on a Xeon its main.py would log 'did not match any known systems' and exit 0. The backend
    predicts that from the checkout's own list and stops first: no container, no step, no stamp."""
    code, scratch = checkout
    xeon = host_root(tmp_path / "xeon", cpu="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", memtotal_kb=1_056_000_000)
    result = nv("-k", "rnnt-Offline-AccuracyOnly", "-q", sku="A30x8", gpus=A30X8, root=xeon)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "NVIDIA's system detection will not run this host as A30x8 (A30x8)" in result.stdout
    assert "AMD EPYC 7742" in result.stdout and "Intel(R) Xeon(R) Gold 6338" in result.stdout
    assert "code/common/systems/system_list.py:" in result.stdout
    assert not (scratch / ".pytest-mlperf").exists() and not (code / "build").exists()
    assert dockerd.ours() == []
    small = host_root(tmp_path / "small", memtotal_kb=24_684_096)  # this sandbox's memory, under the 30 GiB rule
    result = nv("-k", "rnnt-Offline-AccuracyOnly", "-q", root=small)
    assert result.returncode == 1 and "needs at least 30 GiB memory for A100_SXM_80GBx8" in result.stdout


def test_a_one_gpu_sku_runs_on_the_gpu_it_is_given(dockerd, checkout, tmp_path, nv):
    """A100-SXM-80GBx1 on an 8-GPU DGX: refused against all eight, run on the one --mlperf-gpus names, which
    alone goes into the container (NVIDIA_VISIBLE_DEVICES, as launch_docker passes it), and which NVIDIA's
    detection then sees as its A100_SXM_80GBx1."""
    code, scratch = checkout
    (code / ".standin" / "system").write_text("DGX-A100_A100-SXM-80GBx1\n")
    case = "ssd-mobilenet-Offline-PerformanceOnly-lwis"
    whole = nv("-k", case, "-q", sku="A100-SXM-80GBx1")
    assert whole.returncode == 1
    assert "--sku A100-SXM-80GBx1 expects 1x" in whole.stdout and "8 GPU(s), expected 1" in whole.stdout
    one = nv("-k", case, "-q", "--mlperf-gpus=5", "--mlperf-json=one.json", sku="A100-SXM-80GBx1")
    assert one.returncode == 0, one.stdout[-3000:]
    record = _records(tmp_path / "one.json")[case]
    assert record["verdict"] == "VALID"
    log = Path(next(a for a in record["artifacts"] if a.endswith("run_harness.log"))).read_text()
    assert "[stand-in] NVIDIA_VISIBLE_DEVICES=5" in log
    missing = nv("-k", case, "-q", "--mlperf-gpus=9", sku="A100-SXM-80GBx1")
    assert missing.returncode == 4 and "--mlperf-gpus: GPU 9 not found: this machine has GPUs 0, 1" in missing.stderr
    assert dockerd.ours() == []


def test_a_failed_accuracy_check_is_a_fail_verdict_with_its_figures(dockerd, checkout, tmp_path, nv):
    """NVIDIA's main.py raises on a FAILED accuracy check, so make run_harness fails; the run's logs are still
    judged: FAIL, with the value and the threshold, and kept like any other. (The stand-in image writes the
    published accuracy.txt with its value lowered by 5 points: no real failing NVIDIA run is published.)"""
    code, scratch = checkout
    (code / ".standin" / "accuracy_fail").write_text("yes\n")
    result = nv("-k", "rnnt-Offline-AccuracyOnly-custom", "-q", "--mlperf-json=acc.json")
    assert result.returncode == 1
    record = _records(tmp_path / "acc.json")["rnnt-Offline-AccuracyOnly-custom"]
    assert record["verdict"] == "FAIL" and record["outcome"] == "failed"
    metrics = {m["name"]: m["value"] for m in record["metrics"]}
    # the DGX A100's published rnnt accuracy, 92.5545108..., less 5 as awk prints it
    assert metrics["AccuracyValue"] == pytest.approx(87.5545, abs=1e-4)
    assert metrics["ThresholdValue"] == pytest.approx(92.54775 * 0.99)
    assert "FAIL:" in record["reason"]
    assert record["info"]["run_harness_exit_status"] == 2  # GNU make's status for a failed recipe
    assert Path(record["artifacts"][0]).parent.name == "accuracy"
    assert dockerd.ours() == []


def test_a_harness_that_fails_otherwise_is_no_verdict_even_with_passing_logs(dockerd, checkout, tmp_path, nv):
    """Only NVIDIA's own accuracy failure makes a failed run_harness judgeable: a crash after a passing
    accuracy.txt was written is a failed step, never PASS."""
    code, scratch = checkout
    (code / ".standin" / "crash").write_text("yes\n")
    result = nv("-k", "rnnt-Offline-AccuracyOnly-custom", "-q", "--mlperf-json=crash.json")
    assert result.returncode == 1
    record = _records(tmp_path / "crash.json")["rnnt-Offline-AccuracyOnly-custom"]
    assert record["outcome"] == "failed" and "verdict" not in record
    assert (
        "make run_harness failed with exit status 2" in result.stdout and "KeyError: 'stand-in crash'" in result.stdout
    )
    assert dockerd.ours() == []


def _intervals(timeline: list[str]) -> list[tuple[int, int, str, str]]:
    """(start line, end line, what, GPUs) of each make step the stand-in recorded (a token of its own pairs the
    two lines; GPUs: the NVIDIA_VISIBLE_DEVICES of its container); every step that started ended."""
    starts, out = {}, []
    for number, line in enumerate(timeline):
        kind, target, mode, token, visible = line.split()
        if kind == "start":
            assert token not in starts, line
            starts[token] = (number, f"{target} {mode}", visible)
        else:
            begin, what, seen = starts.pop(token)
            assert seen == visible, line
            out.append((begin, number, what, visible))
    assert starts == {}, starts
    return out


def test_nothing_else_runs_while_a_performance_run_measures(dockerd, checkout, tmp_path, nv):
    """Two xdist workers, each with its own container on the same GPUs: every step either side of the other's
    performance run_harness, never inside it (the stand-in make notes each step's start and end)."""
    code, scratch = checkout
    (code / ".standin" / "delay").write_text("1\n")
    (code / ".standin" / "timeline").write_text("")
    result = nv("-n", "2", "-m", "rnnt or ssd_resnet34", "-q")
    assert result.returncode == 0, result.stdout[-3000:]
    steps = _intervals((code / ".standin" / "timeline").read_text().splitlines())
    measured = [(a, b) for a, b, what, _ in steps if what == "run_harness PerformanceOnly"]
    assert len(measured) == 6 and len(steps) > len(measured)  # rnnt x2, ssd-resnet34 lwis/triton x2
    for begin, end in measured:
        inside = [what for a, b, what, _ in steps if (a, b) != (begin, end) and (begin < a < end or begin < b < end)]
        assert inside == [], (begin, end, inside)
    assert dockerd.ours() == []


def test_each_gpu_runs_every_case_on_every_gpu_side_by_side(dockerd, checkout, tmp_path, nv):
    """--mlperf-each-gpu with a one-GPU SKU (A100-SXM-80GBx1) on an 8-GPU DGX A100, under eight xdist workers:
    each case runs once per GPU (case@gpuN), every step of it in a container that sees that GPU alone, under
    that GPU's lease, so no two workers ever use one GPU at once while different GPUs run side by side. The
    image is the stand-in (its make notes each step's start and end with the NVIDIA_VISIBLE_DEVICES of its
    container) and the eight A100-SXM4-80GB are the fake NVML library's, which gives each its own UUID and
    serial. The x1 system's only published logs are ssd-mobilenet's, without Triton: two cases, sixteen tests."""
    code, scratch = checkout
    (code / ".standin" / "system").write_text("DGX-A100_A100-SXM-80GBx1\n")
    (code / ".standin" / "delay").write_text("2\n")  # every step takes 2 s: the workers' run_harness steps meet
    (code / ".standin" / "timeline").write_text("")
    out = tmp_path / "kept"
    result = nv(
        "-n",
        "8",
        "-m",
        "inference and ssd_mobilenet and offline",
        "-k",
        "lwis",
        "--mlperf-each-gpu",
        f"--mlperf-output={out}",
        "--mlperf-json=each.json",
        "--junitxml=each.xml",
        "-q",
        sku="A100-SXM-80GBx1",
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    records = _records(tmp_path / "each.json")
    cases = ("ssd-mobilenet-Offline-AccuracyOnly-lwis", "ssd-mobilenet-Offline-PerformanceOnly-lwis")
    assert sorted(records) == sorted(f"{case}@gpu{n}" for case in cases for n in range(8))
    for case_id, record in records.items():
        n = int(case_id.rsplit("@gpu", 1)[1])
        assert record["outcome"] == "passed" and record["verdict"] in ("VALID", "PASS"), (case_id, record["reason"])
        assert record["info"]["gpu"] == {
            "index": n,
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": f"GPU-fa4e0000-0000-0000-0000-{n:012d}",
            "serial": f"1650121000{n:03d}",
        }, case_id
        if "telemetry" in record["info"]:
            assert record["info"]["telemetry"]["gpus"] == [n], case_id
        # its logs are kept under gpuN/, and its container saw its GPU alone
        log = Path(next(a for a in record["artifacts"] if a.endswith("run_harness.log")))
        assert log.is_relative_to(out / f"gpu{n}"), (case_id, log)
        assert re.findall(r"^\[stand-in\] NVIDIA_VISIBLE_DEVICES=(\S+)$", log.read_text(), re.M) == [str(n)]
    assert len({r["info"]["gpu"]["uuid"] for r in records.values()}) == 8
    assert len({r["info"]["gpu"]["serial"] for r in records.values()}) == 8
    assert any("telemetry" in r["info"] for r in records.values()), "no record carries telemetry"
    # the JUnit report names each test's GPU as its record does
    testcases = list(ElementTree.parse(tmp_path / "each.xml").iter("testcase"))
    assert len(testcases) == 16
    for testcase in testcases:
        n = int(testcase.get("name").rsplit("@gpu", 1)[1].rstrip("]"))
        props = {p.get("name"): p.get("value") for p in testcase.iter("property")}
        assert props["mlperf:gpu_index"] == str(n), testcase.get("name")
        assert props["mlperf:gpu_uuid"] == f"GPU-fa4e0000-0000-0000-0000-{n:012d}", testcase.get("name")
        assert props["mlperf:gpu_serial"] == f"1650121000{n:03d}", testcase.get("name")
    # the GPUs compared: the same published logs on each, so none behind
    (peers,) = json.loads((tmp_path / "each.json").read_text())["peers"]
    assert peers["kind"] == "GPU" and peers["order"] == [f"gpu{n}" for n in range(8)] and peers["slow"] == {}
    assert {name: (p["passed"], p["failed"]) for name, p in peers["peers"].items()} == {
        f"gpu{n}": (2, 0) for n in range(8)
    }
    assert "MLPerf GPUs of this node" in result.stdout

    # every step ran in one GPU's container, and a GPU's steps one after another, never two workers' at once
    steps = _intervals((code / ".standin" / "timeline").read_text().splitlines())
    assert {visible for *_, visible in steps} == {str(n) for n in range(8)}, steps
    harness = [(a, b, visible) for a, b, what, visible in steps if what.startswith("run_harness ")]
    assert sorted(visible for *_, visible in harness) == sorted(str(n) for n in range(8) for _ in cases)
    for n in range(8):
        mine = sorted((a, b) for a, b, _, visible in steps if visible == str(n))
        for (_, end), (begin, _) in pairwise(mine):
            assert end < begin, (n, mine)
    # and the GPUs' measurements ran side by side: some two GPUs' run_harness steps overlapped
    assert any(g != h and a < d and c < b for a, b, g in harness for c, d, h in harness), harness
    assert dockerd.ours() == []


def test_each_gpu_lease_keeps_a_second_worker_off_a_busy_gpu(dockerd, checkout, tmp_path, nv):
    """Two xdist workers, each given one accuracy run pinned to the same GPU (--mlperf-each-gpu --mlperf-gpus=3).
    Accuracy runs only share the GPUs otherwise, so what keeps them apart is the test's lease of its GPU: the
    second worker's test waits until the first's has ended, steps and all. The image is the stand-in (its make
    notes each step's start and end with its container's NVIDIA_VISIBLE_DEVICES) and the GPUs are the fake
    NVML library's eight A100-SXM4-80GB."""
    code, scratch = checkout
    (code / ".standin" / "system").write_text("DGX-A100_A100-SXM-80GBx1\n")
    (code / ".standin" / "delay").write_text("2\n")
    (code / ".standin" / "timeline").write_text("")
    result = nv(
        "-n",
        "2",
        "-m",
        "inference and ssd_mobilenet",
        "-k",
        "lwis and AccuracyOnly and (Offline or SingleStream)",
        "--mlperf-each-gpu",
        "--mlperf-gpus=3",
        "--mlperf-json=lease.json",
        "-v",
        sku="A100-SXM-80GBx1",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    records = _records(tmp_path / "lease.json")
    cases = ("ssd-mobilenet-Offline-AccuracyOnly-lwis@gpu3", "ssd-mobilenet-SingleStream-AccuracyOnly-lwis@gpu3")
    assert sorted(records) == sorted(cases)
    assert all(r["outcome"] == "passed" and r["info"]["gpu"]["index"] == 3 for r in records.values())
    # one test on each worker (xdist hands two tests to two workers one each), both on GPU 3
    workers = re.findall(r"^\[(gw\d)\] .*PASSED .*@gpu3\]\s*$", result.stdout, re.M)
    assert sorted(workers) == ["gw0", "gw1"], result.stdout[-3000:]
    steps = _intervals((code / ".standin" / "timeline").read_text().splitlines())
    assert {visible for *_, visible in steps} == {"3"}
    assert sorted(what for _, _, what, _ in steps if what.startswith("run_harness")) == ["run_harness AccuracyOnly"] * 2
    for (_, end), (begin, _) in pairwise(sorted((a, b) for a, b, _, _ in steps)):
        assert end < begin, steps  # one step at a time on GPU 3: never both workers'
    assert dockerd.ours() == []


SEARCHED = "bert-99-Server-PerformanceOnly-custom"  # NVIDIA's tuned target (user.conf): 25800 QPS
CAPACITY = 20000  # what the stand-in lets hold: below the tuned target, so the search starts INVALID and brackets


def _harness_calls(tmp_path: Path, code: Path) -> tuple[list[str], list[Path]]:
    """The RUN_ARGS of each `make run_harness` of a performance run, in order (the stand-in make's timeline and
    the search's logs in the child's basetemp), and the search's step logs."""
    timeline = (code / ".standin" / "timeline").read_text().splitlines()
    starts = [line for line in timeline if line.startswith("start run_harness PerformanceOnly ")]
    return starts, sorted((tmp_path / "child").rglob("search-*.log"))


def _make_line(log: Path) -> str:
    return re.search(r"^\$ make run_harness (.*)$", log.read_text(), re.M).group(1)


def test_server_search_brackets_the_capacity_and_confirms_the_peak(dockerd, checkout, tmp_path, nv):
    """--mlperf-server-search on a Server case: short runs of NVIDIA's harness at fixed --server_target_qps from
    NVIDIA's tuned target, judged VALID or INVALID by their LoadGen logs, then one confirming run at the peak. The
    image is a stand-in whose main.py logs a run at the load asked for and INVALID above .standin/server_capacity
    (p99 over the bound, as LoadGen would say it); NVIDIA's Makefile and argument parser are real."""
    from pytest_mlperf.backends.search import SearchBounds, find_peak

    code, scratch = checkout
    (code / ".standin" / "server_capacity").write_text(f"{CAPACITY}\n")
    (code / ".standin" / "timeline").write_text("")
    out = tmp_path / "kept"
    result = nv(
        "-k",
        SEARCHED,
        "--mlperf-server-search",
        f"--mlperf-output={out}",
        "--mlperf-json=search.json",
        f"--basetemp={tmp_path / 'child'}",
        "-q",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    record = _records(tmp_path / "search.json")[SEARCHED]
    assert record["outcome"] == "passed" and record["verdict"] == "VALID", record["reason"]
    metrics = {m["name"]: m for m in record["metrics"]}
    peak = metrics["peak_server_qps"]
    assert peak["unit"] == "queries/s" and CAPACITY * (1 - 0.05) <= peak["value"] <= CAPACITY, peak
    search = record["info"]["server_search"]
    steps = search["steps"]
    assert {s["valid"] for s in steps} == {True, False}, steps
    assert steps[0]["target_qps"] == 25800 and steps[0]["valid"] is False  # NVIDIA's tuned target: over capacity
    assert all(s["valid"] == (round(s["target_qps"]) <= CAPACITY) for s in steps), steps
    # the steps are the search's own against this capacity: the backend added and dropped none
    expected = find_peak(lambda qps: qps <= CAPACITY, 25800.0, SearchBounds(), quantize=lambda qps: float(round(qps)))
    assert [s["target_qps"] for s in steps] == [s.to_dict()["target_qps"] for s in expected.steps]
    assert search["stopped_by"] is None and search["bracket"] <= 0.02 and search["confirm_runs"] == 1
    assert search["confirmed_qps"] == peak["value"] == round(search["peak_qps"])
    assert search["upper_qps"] > CAPACITY and "peak Server load peak" in record["reason"]
    # one make run_harness per step and one to confirm, within the run bound and its confirming runs
    starts, logs = _harness_calls(tmp_path, code)
    assert len(logs) == len(steps) and len(starts) == len(steps) + search["confirm_runs"] <= 10 + 3, (starts, logs)
    # each step ran NVIDIA's harness short (--fast) at its own load, a whole number in RUN_ARGS
    for step, log in zip(steps, logs, strict=True):
        line = _make_line(log)
        assert f" --fast --server_target_qps={round(step['target_qps'])} LOG_DIR=" in line, (step, line)
    # the case's logs are the confirming run's: at the peak, and as LoadGen would log it there
    kept = out / "DGX-A100_A100-SXM-80GBx8_TRT" / "bert-99" / "Server" / "performance" / "run_1"
    assert f" --server_target_qps={int(peak['value'])} LOG_DIR=" in _make_line(kept / "run_harness.log")
    detail = (kept / "mlperf_log_detail.txt").read_text()
    assert f'"key": "effective_target_qps", "value": {int(peak["value"])},' in detail
    assert f"target_qps : {int(peak['value'])}" in (kept / "mlperf_log_summary.txt").read_text()
    assert json.loads((kept / "server_search.json").read_text()) == {k: search[k] for k in search}
    assert str(kept / "server_search.json") in record["artifacts"]
    scheduled = metrics["result_scheduled_samples_per_sec"]["value"]
    assert scheduled == pytest.approx(peak["value"], rel=0.01)  # the scheduled rate follows the load
    assert dockerd.ours() == []


def test_server_search_stops_at_the_run_bound(dockerd, checkout, tmp_path, nv):
    """--mlperf-search-runs=2: the tuned target (INVALID over the stand-in's capacity) and one step down (VALID)
    bracket the peak, and the bound stops the bisection there; the confirming run holds at the lower end."""
    code, scratch = checkout
    (code / ".standin" / "server_capacity").write_text(f"{CAPACITY}\n")
    (code / ".standin" / "timeline").write_text("")
    result = nv(
        "-k",
        SEARCHED,
        "--mlperf-server-search",
        "--mlperf-search-runs=2",
        "--mlperf-json=bound.json",
        f"--basetemp={tmp_path / 'child'}",
        "-q",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    record = _records(tmp_path / "bound.json")[SEARCHED]
    search = record["info"]["server_search"]
    assert [(s["target_qps"], s["valid"]) for s in search["steps"]] == [(25800, False), (17200, True)]
    assert search["stopped_by"] == "runs" and "stopped by the run bound" in record["reason"], record["reason"]
    metrics = {m["name"]: m["value"] for m in record["metrics"]}
    assert record["verdict"] == "VALID" and metrics["peak_server_qps"] == 17200, record["reason"]
    starts, logs = _harness_calls(tmp_path, code)
    assert len(logs) == 2 and len(starts) == 3, (starts, logs)
    assert dockerd.ours() == []
