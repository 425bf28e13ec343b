"""NVIDIA's BERT training on the nvidia backend: one node through a real Docker engine, several through a real
Slurm cluster that these tests start on this machine (munged, slurmctld, eight slurmd on loopback).

Stand-ins, at the outermost boundary only: NVIDIA's PyTorch image and its GPUs cannot exist here. The image is
a busybox rootfs whose `python -m torch.distributed.run` starts ranks like torchrun and whose run_and_time.sh
(tests/standin_training/) checks the mounts and replays published MLPerf logs from ../shared/fixtures/training
at a chosen pace; the Slurm job script is a stand-in run.sub that runs real srun steps on every node and
replays a log the same way; the GPUs are the fake libnvidia-ml.so.1 of test_gpu.py. The config files are
written from the catalog's numbers. Everything else is real: dockerd, the SDK calls, sbatch/squeue/scancel,
slurmctld's job states, the parsers, verdicts and scores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from engine import busybox_image, module_dockerd
from slurm_cluster import SlurmCluster, root_cluster
from test_bert_job_scripts import read_record, standin_environment

from conftest import A100X8, ROOT, bert_copy, fake_gpu_env, run_pytest_child
from pytest_mlperf import catalog
from pytest_mlperf.backends import BackendUnavailable
from pytest_mlperf.backends.nvidia_training import TrialProgress, config_environment
from pytest_mlperf.logs.mllog import parse_training_log
from pytest_mlperf.machine.datasets import BertData

STANDIN = ROOT / "tests" / "standin_training"
IMAGE = "pytest-mlperf-training-standin:test"
NVIDIA_1NODE = "dgxa100_ngc22.09_pytorch/bert/result_0.txt"  # success, run_stop - run_start 925.828 s
NVIDIA_8NODE = "dgxa100_n8_ngc22.09_pytorch/bert/result_1.txt"  # success, 145.289 s
ABORTED = "dgxh100_preview/bert/result_3.txt"  # run_stop aborted at eval_accuracy 0.71973


@pytest.fixture(scope="module")
def dockerd():
    yield from module_dockerd("training")


@pytest.fixture(scope="module")
def training_image(dockerd, training_fixtures, tmp_path_factory) -> str:
    return busybox_image(
        dockerd,
        tmp_path_factory.mktemp("rootfs"),
        IMAGE,
        files={
            "/usr/bin/python": STANDIN / "python",
            "/workspace/bert/run_and_time.sh": STANDIN / "run_and_time.sh",
            "/workspace/bert/input_preprocessing/prepare_data.sh": STANDIN / "prepare_data.sh",
        },
        trees={"/fixtures": training_fixtures},
        workdir="/workspace/bert",  # NVIDIA's Dockerfile: WORKDIR /workspace/bert
    )


@pytest.fixture(scope="module")
def slurm():
    yield from root_cluster("mlperf-slurm")


def write_checkout(
    code: Path,
    bert_code: Path,
    *,
    replay: str,
    seconds: float = 1,
    fail: str = "",
    fixtures: Path | None = None,
    standin_run_sub: bool = True,
):
    """A copy of NVIDIA's implementation's top-level files (config files, mounts.txt, run.sub, a30.sub, the
    run-and-time scripts) with the stand-ins' controls appended to each config file, which exports them to the
    trial as run_with_docker.sh exports the config's variables; run.sub replaced by the stand-in unless told."""
    bert_copy(bert_code, code)
    controls = [f"export STANDIN_REPLAY={replay}", f"export STANDIN_SECONDS={seconds}", "NOT_EXPORTED=1"]
    if fail:
        controls.append(f"export STANDIN_FAIL='{fail}'")
    if fixtures:
        controls.append(f"export STANDIN_FIXTURES={fixtures}")
    for config in catalog.load().training_configs.values():
        with (code / config.file).open("a") as fh:
            fh.write("\n" + "\n".join(controls) + "\n")
    if standin_run_sub:
        shutil.copy(STANDIN / "run.sub", code / "run.sub")
    return code


def prepared(data: Path) -> Path:
    subprocess.run(["sh", str(STANDIN / "prepare_data.sh"), "--outputdir", str(data)], check=True, capture_output=True)
    return data


# What a cluster pulls: pyxis and a30.sub's `docker run --pull=always` need a registry reference, not a local tag.
REGISTRY_IMAGE = "registry.example:5000/mlperf-nvidia:language_model"
# ...as enroot names it (run.sub's CONT) and as Docker does (a30.sub's): what the stand-in registry holds
REGISTRY = ("registry.example:5000#mlperf-nvidia:language_model", REGISTRY_IMAGE)


def _pytest(cwd: Path, env: dict, *args: str, background: bool = False, image: str = IMAGE):
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", f"--rootdir={cwd}"]
    cmd += ["-m", "training", "--sku=A100-SXM-80GBx8", f"--mlperf-image={image}", *args]
    return run_pytest_child(cmd, cwd, env, background, 300)


@pytest.fixture
def docker_run(dockerd, training_image, fake_nvml, tmp_path):
    def run(code: Path, data: Path, *args: str, background: bool = False):
        env = fake_gpu_env(fake_nvml, A100X8, DOCKER_HOST=dockerd.url)
        return _pytest(
            tmp_path,
            env,
            f"--mlperf-training-code={code}",
            f"--mlperf-bert-data={data}",
            "--mlperf-container-profile=minimal",
            "--mlperf-partial-scores",  # one or two trials a run here: their score is partial
            *args,
            background=background,
        )

    return run


@pytest.fixture
def slurm_run(slurm, tmp_path, training_fixtures):
    """The suite under --mlperf-launcher slurm, submitting NVIDIA's real run.sub (or a30.sub) from the given
    checkout, with the pyxis stand-ins first on PATH (test_bert_job_scripts.standin_environment): the registry
    holds REGISTRY_IMAGE, and run_pretraining.py replays `replay` over `seconds`."""

    def run(
        code: Path,
        data: Path,
        *args: str,
        background: bool = False,
        replay: str = NVIDIA_8NODE,
        seconds: float = 1,
        image: str = REGISTRY_IMAGE,
        logdir: Path | None = None,
        **extra: str,
    ):
        env = {
            **os.environ,
            "SLURM_CONF": str(slurm.conf),
            **standin_environment(tmp_path / "pyxis", code, training_fixtures, replay, seconds, REGISTRY),
            **extra,
        }
        return _pytest(
            tmp_path,
            env,
            f"--mlperf-training-code={code}",
            f"--mlperf-bert-data={data}",
            "--mlperf-launcher=slurm",
            f"--mlperf-training-logdir={logdir or tmp_path / 'logs'}",
            "--mlperf-partial-scores",  # one trial a run here: its score is partial
            *args,
            background=background,
            image=image,
        )

    return run


def _records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(path.read_text())["results"]}


def _metrics(record: dict) -> dict[str, float]:
    return {m["name"]: m["value"] for m in record["metrics"]}


# ---- pure parts ---------------------------------------------------------------------------------------------
def test_config_environment_is_what_the_config_file_exports(tmp_path, bert_code):
    code = write_checkout(tmp_path / "code", bert_code, replay=NVIDIA_1NODE)
    env = config_environment(code, catalog.load().training_config("1x8x56x1"))
    assert env["DGXNGPU"] == "8" and env["BATCHSIZE"] == "56" and env["MAX_STEPS"] == "6700"
    assert env["DGXSYSTEM"] == "DGXA100_1x8x56x1" and env["LR"] == "0.000425"
    assert "NOT_EXPORTED" not in env and "PWD" not in env and "PATH" not in env

    (code / "config_DGXA100_1x8x56x1.sh").write_text("export DGXNGPU=8\n")
    with pytest.raises(BackendUnavailable, match=r"config_DGXA100_1x8x56x1.sh: does not export BATCHSIZE"):
        config_environment(code, catalog.load().training_config("1x8x56x1"))
    (code / "config_DGXA100_1x8x56x1.sh").write_text("source /nonexistent/common.sh\n")
    with pytest.raises(BackendUnavailable, match=r"sourcing .*config_DGXA100_1x8x56x1.sh failed \(exit 1\)"):
        config_environment(code, catalog.load().training_config("1x8x56x1"))


def test_bert_data_check_names_what_is_missing_where(tmp_path):
    data = BertData(prepared(tmp_path / "data"))
    assert data.problems() == []
    (data.train_dir / "part_01234_of_04320.hdf").unlink()
    (data.phase1_dir / "bert_config.json").write_text("{not json")
    (data.eval_dir / "part_eval_10k.hdf5").write_bytes(b"")
    problems = data.problems(packed=True)
    assert problems == [
        f"{data.train_dir}: 4319 of 4320 training shards; missing part_01234_of_04320.hdf",
        f"{data.eval_dir / 'part_eval_10k.hdf5'}: empty (the 10k-sample eval set)",
        f"{data.phase1_dir / 'bert_config.json'}: not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))",
        f"{data.packed_dir}: no packed data (the packed configs need input_preprocessing/packed_data)",
    ]


def test_progress_says_eval_accuracy_against_the_target(training_fixtures):
    progress = TrialProgress(0.720)
    text = (training_fixtures / NVIDIA_1NODE).read_text()
    news = [progress.feed(text[i : i + 4096]) for i in range(0, len(text), 4096)]
    said = [n for n in news if n]
    run = parse_training_log(training_fixtures / NVIDIA_1NODE)
    last = run.evals[-1]
    assert said[-1] == f"; eval_accuracy {last.accuracy:.4f} / target 0.720 after {last.samples} samples"
    assert len(said) <= len(run.evals)  # at most one piece of news per chunk
    # two ranks' records on one line: the later one is the news; a value that is no number is passed over
    fresh = TrialProgress(0.720)
    joined = (
        ':::MLLOG {"key": "eval_accuracy", "value": 0.5, "metadata": {"epoch_num": 5}}'
        ':::MLLOG {"key": "eval_accuracy", "value": 0.71, "metadata": {"epoch_num": 9}}\n'
    )
    assert fresh.feed(joined) == "; eval_accuracy 0.7100 / target 0.720 after 9 samples"
    assert fresh.feed(':::MLLOG {"key": "eval_accuracy", "value": "high"}\n') is None


# ---- one node, Docker ---------------------------------------------------------------------------------------
def test_docker_trials_converge_and_are_scored(docker_run, dockerd, tmp_path, training_fixtures, bert_code):
    code = write_checkout(tmp_path / "code", bert_code, replay=NVIDIA_1NODE)
    data = prepared(tmp_path / "data")
    out = tmp_path / "out"
    result = docker_run(code, data, "--mlperf-nexp=2", "--mlperf-json=t.json", f"--mlperf-output={out}", "-s")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" not in result.stdout and "3 passed" in result.stdout  # two trials and their score
    records = _records(tmp_path / "t.json")
    trial = _metrics(records["bert-1x8x56x1-trial_1"])
    assert trial["time_to_train"] == pytest.approx(925.828) and trial["eval_mlm_accuracy"] >= 0.72
    score = records["bert-1x8x56x1"]
    assert score["verdict"] == "SCORED" and _metrics(score)["partial_score"] == pytest.approx(925.828 / 60)
    assert score["info"]["trials"] and "partial: 2 of the 10 runs" in score["reason"]
    logs = sorted((out / "training" / "1x8x56x1").glob("*_[12].log"))
    assert len(logs) == 2
    text = logs[0].read_text()
    # run_with_docker.sh's order: the host's caches dropped, cache_clear logged from the container, then the run
    assert text.count('"key": "cache_clear"') == 1 and text.index('"cache_clear"') < text.index('"init_start"')
    trial_exec = "$ python -m torch.distributed.run --standalone --no_python --nproc_per_node=8 ./run_and_time.sh\n"
    assert trial_exec in text and text.index('"cache_clear"') < text.index(trial_exec)
    # so the compliance checker finds the cache_clear the training rules require (only the known rename is left)
    assert records["bert-1x8x56x1-trial_1"]["info"]["compliance"]["status"] == "KNOWN RENAME ONLY"
    assert records["bert-1x8x56x1-trial_1"]["info"]["caches_cleared"] is True
    # streamed with progress: eval accuracy against the target, samples seen, elapsed time
    last = parse_training_log(training_fixtures / NVIDIA_1NODE).evals[-1]
    assert f"eval_accuracy {last.accuracy:.4f} / target 0.720 after {last.samples} samples" in result.stdout
    assert records["bert-1x8x56x1-trial_1"]["info"]["launcher"] == "docker"
    fingerprint = json.loads((tmp_path / "t.json").read_text())["fingerprint"]
    assert fingerprint["training_image"] == IMAGE and fingerprint["training_image_id"].startswith("sha256:")
    assert fingerprint["gpu_count"] == 8 and fingerprint["driver_version"]
    assert dockerd.ours() == []


def test_docker_aborted_trial_fails_and_so_does_the_score(docker_run, dockerd, tmp_path, bert_code):
    code = write_checkout(tmp_path / "code", bert_code, replay=ABORTED)
    result = docker_run(code, prepared(tmp_path / "data"))
    assert result.returncode == 1
    assert "NOT CONVERGED: run_stop status 'aborted', last eval_accuracy 0.71973 < 0.720" in result.stdout
    assert "INVALID: not converged: bert-1x8x56x1-trial_1 (NOT CONVERGED)" in result.stdout
    assert dockerd.ours() == []


def test_docker_trial_that_crashes_fails_with_its_last_lines(docker_run, dockerd, tmp_path, bert_code):
    code = write_checkout(
        tmp_path / "code", bert_code, replay=NVIDIA_1NODE, fail="CUDA error: an illegal memory access"
    )
    result = docker_run(code, prepared(tmp_path / "data"))
    assert result.returncode == 1
    assert "bert-1x8x56x1-trial_1: the trial ended (exit status 1) without a run_stop; last lines of" in result.stdout
    assert "stand-in failure: CUDA error: an illegal memory access" in result.stdout
    assert "INVALID: not converged: bert-1x8x56x1-trial_1" in result.stdout
    assert dockerd.ours() == []


def test_docker_trial_past_its_timeout_is_stopped(docker_run, dockerd, tmp_path, bert_code):
    code = write_checkout(tmp_path / "code", bert_code, replay=NVIDIA_1NODE, seconds=60)
    result = docker_run(code, prepared(tmp_path / "data"), "--mlperf-step-timeout=3")
    assert result.returncode == 1
    assert "bert-1x8x56x1-trial_1: timed out after 3 s; the container was stopped" in result.stdout
    assert dockerd.ours() == []


def test_missing_data_is_prepared_in_the_container_once_and_resumes_after_a_failure(
    docker_run, dockerd, tmp_path, bert_code
):
    code = write_checkout(tmp_path / "code", bert_code, replay=NVIDIA_1NODE)
    data = tmp_path / "data"
    data.mkdir()
    (data / ".standin-prepare").write_text("fail")
    failed = docker_run(code, data)
    assert failed.returncode == 1
    assert "prepare_data.sh ended with exit status 4; still missing:" in failed.stdout
    assert "2000 of 4320 training shards; missing part_02000_of_04320.hdf, part_02001_of_04320.hdf" in failed.stdout
    assert not (data / ".pytest-mlperf" / "prepare_data.stamp").exists()

    (data / ".standin-prepare").unlink()
    resumed = docker_run(code, data, "--mlperf-json=r.json")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert (data / ".pytest-mlperf" / "prepare_data.stamp").exists()
    assert BertData(data).problems() == []

    again = docker_run(code, data, "-s")
    assert again.returncode == 0 and "prepare_data" not in again.stdout  # ready data is not prepared twice
    assert dockerd.ours() == [] and not list(data.rglob("*.lock"))


def test_usage_errors_name_the_input(docker_run, tmp_path, bert_code):
    code = write_checkout(tmp_path / "code", bert_code, replay=NVIDIA_1NODE)
    data = prepared(tmp_path / "data")
    no_data = docker_run(code, tmp_path / "nowhere")
    assert no_data.returncode == 4 and f"--mlperf-bert-data {tmp_path / 'nowhere'}: not a directory" in no_data.stderr
    multi = docker_run(code, data, "--mlperf-nodes=8")
    assert multi.returncode == 4
    assert "config 8x8x48x1 runs on 8 nodes: use --mlperf-launcher slurm (docker runs one node)" in multi.stderr
    (code / "run_and_time.sh").unlink()
    broken = docker_run(code, data)
    assert broken.returncode == 4 and "but run_and_time.sh is missing" in broken.stderr
    unknown = docker_run(code, data, "--mlperf-training-config=9x9")
    assert unknown.returncode == 4 and "--mlperf-training-config: unknown training config '9x9'" in unknown.stderr


# ---- several nodes, Slurm: NVIDIA's run.sub itself, pyxis stood in for ----------------------------------------
def _slurm_checkout(tmp_path: Path, training_fixtures: Path, bert_code: Path, replay: str = NVIDIA_8NODE, **kw):
    return write_checkout(
        tmp_path / "code", bert_code, replay=replay, fixtures=training_fixtures, standin_run_sub=False, **kw
    )


def _pyxis_calls(tmp_path: Path) -> list[dict]:
    return read_record(tmp_path / "pyxis" / "record.jsonl")


def test_slurm_eight_node_trial_converges(slurm, slurm_run, tmp_path, training_fixtures, bert_code):
    """NVIDIA's run.sub, submitted by the plugin, runs on 8 nodes x 8 tasks: every variable it reads is set
    (UNITTESTDIR too), every mount source exists on every node, and its tee'd log reaches the submit host's
    LOGDIR, where the plugin judges it."""
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code)
    out = tmp_path / "out"
    data = prepared(tmp_path / "data")
    result = slurm_run(code, data, "--mlperf-nodes=8", "--mlperf-json=s.json", f"--mlperf-output={out}")
    assert result.returncode == 0, result.stdout[-3000:]
    records = _records(tmp_path / "s.json")
    trial = records["bert-8x8x48x1-trial_1"]
    assert _metrics(trial)["time_to_train"] == pytest.approx(145.289)
    assert trial["info"]["slurm_state"] == "COMPLETED" and trial["info"]["launcher"] == "slurm"
    assert "_job_output" not in trial["info"] and Path(trial["info"]["slurm_output"]).exists()
    log = Path(trial["artifacts"][0])
    assert log.parent == tmp_path / "logs" and log.name.endswith("_1.log")
    text = log.read_text()
    assert "Beginning trial 1 of 1" in text and "0: :::MLLOG" in text  # run.sub's own line; srun -l prefixes
    assert len([line for line in text.splitlines() if '"key": "cache_clear"' in line]) == 8  # one per node
    mounts = [c for c in _pyxis_calls(tmp_path) if c.get("tool") == "pyxis" and c.get("mounts")]
    assert mounts and all(m["exists"] for c in mounts for m in c["mounts"])
    targets = {m["dst"]: m["src"] for c in mounts for m in c["mounts"]}
    assert targets["/workspace/unit_test_data"] == str(data / "unit_test")
    assert targets["/results"] == str(tmp_path / "logs")
    # CONT as an enroot URI: `registry.example:5000/...` would be a Docker Hub repository to pyxis
    pulled = {c["image"] for c in _pyxis_calls(tmp_path) if c.get("tool") == "pyxis" and c.get("image")}
    assert pulled == {"registry.example:5000#mlperf-nvidia:language_model"}
    assert records["bert-8x8x48x1"]["verdict"] == "SCORED"
    assert slurm.jobs() == []


def test_slurm_job_for_more_nodes_than_the_cluster_has_fails_fast(
    slurm, slurm_run, tmp_path, training_fixtures, bert_code
):
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code)
    started = time.monotonic()
    result = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-training-config=512x8x2x1_pack")
    assert result.returncode == 1
    assert "needs 512 nodes; the default partition has 8 (sinfo): not submitted" in result.stdout, result.stdout[-3000:]
    assert time.monotonic() - started < 60 and slurm.jobs() == []


def test_a_variable_the_job_script_reads_unset_is_refused_by_name(
    slurm, slurm_run, tmp_path, training_fixtures, bert_code
):
    """A mounts.txt line whose variable nobody sets would hand pyxis an empty mount source, and run.sub (no
    pipefail) would end COMPLETED without a run: nothing is submitted, and the refusal names it and its line."""
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code)
    lines = (code / "mounts.txt").read_text().split("\n")
    lines.insert(5, "${SCRATCHDIR}:/workspace/scratch")  # after the five mounts (a blank line before it would be
    (code / "mounts.txt").write_text("\n".join(lines))  # refused too: run.sub would hand pyxis an empty entry)
    result = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8")
    assert result.returncode == 1
    where = "mounts.txt:6 (mount source ${SCRATCHDIR}:/workspace/scratch)"
    assert f"not submitted: run.sub needs SCRATCHDIR (read at {where})" in result.stdout, result.stdout[-3000:]
    assert _pyxis_calls(tmp_path) == [] and slurm.jobs() == []


def test_a_relative_mount_source_is_refused_by_name(slurm, slurm_run, tmp_path, training_fixtures, bert_code):
    """pyxis mounts absolute paths only; a caller's UNITTESTDIR=unit (relative) is named, nothing submitted."""
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code)
    result = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8", UNITTESTDIR="unit")
    assert result.returncode == 1
    assert "run.sub's mount sources must be absolute paths: UNITTESTDIR='unit' (mounts.txt:5)" in result.stdout
    assert _pyxis_calls(tmp_path) == [] and slurm.jobs() == []


def test_a_log_folder_the_nodes_do_not_see_is_refused_before_submission(
    slurm, slurm_run, tmp_path, training_fixtures, bert_code
):
    """LOGDIR in a node-local folder (here a tmpfs each node mounts over it): run.sub would tee the log on the
    batch node and every other node would fail to mount it at /results. A short srun over the job's node count
    finds it first: the refusal names the folder and the nodes, and no job is submitted."""
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code)
    local = slurm.private_dir / f"logs-{tmp_path.name}"
    result = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8", logdir=local)
    assert result.returncode == 1
    assert "not submitted: run.sub mounts and logs to folders every node must see:" in result.stdout
    assert f"{local} (the submit host's file .pytest-mlperf-probe-" in result.stdout
    assert "is not visible on n1, n2, n3, n4, n5, n6, n7, n8" in result.stdout
    assert "name a shared folder with --mlperf-training-logdir" in result.stdout
    calls = _pyxis_calls(tmp_path)
    assert calls and all(c["tool"] == "srun" and "pytest-mlperf-probe" in " ".join(c["argv"]) for c in calls)
    assert not list(local.glob(".pytest-mlperf-probe-*")) and slurm.jobs() == []


def test_a_local_image_tag_is_refused_for_pyxis(slurm, slurm_run, tmp_path, training_fixtures, bert_code):
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code)
    result = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8", image="mlperf-nvidia:language_model")
    assert result.returncode == 4
    assert "--mlperf-image mlperf-nvidia:language_model: pyxis (srun --container-image) would pull" in result.stderr
    assert slurm.jobs() == []


def test_a_job_that_completes_without_a_run_is_reported_with_its_output(
    slurm, slurm_run, tmp_path, training_fixtures, bert_code
):
    """run.sub has no pipefail: a training step that fails still ends the job COMPLETED. The trial fails saying
    there was no run_stop, quoting the log's and the job output's last lines."""
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code, replay="no/such/log.txt")
    result = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8")
    assert result.returncode == 1
    assert "ended COMPLETED" in result.stdout and "without a run_stop" in result.stdout, result.stdout[-3000:]
    assert "last lines of the job's output" in result.stdout
    assert slurm.jobs() == []


def test_the_a30_config_goes_through_a30_sub(slurm, slurm_run, tmp_path, training_fixtures, bert_code):
    """a30.sub, not run.sub: it starts Docker on the node (stood in for) and runs a30-run_and_time.sh. As
    published its cache-clear step calls mlperf_logger.log_event, which NVIDIA's mlperf_logger.py does not
    define, and pipefail ends the job there: the trial fails with that line. With CLEAR_CACHES=0 it trains (and
    logs no cache_clear)."""
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code, replay=NVIDIA_1NODE)
    data = prepared(tmp_path / "data")
    args = ("--mlperf-training-config=A30_1x2x224x14", "--mlperf-json=a.json")
    failed = slurm_run(code, data, *args, replay=NVIDIA_1NODE)
    assert failed.returncode == 1
    assert "ended FAILED" in failed.stdout and "has no attribute 'log_event'" in failed.stdout, failed.stdout[-3000:]
    scripts = [c for c in _pyxis_calls(tmp_path) if c.get("tool") == "docker" and "run" in c.get("argv", [])[:1]]
    assert scripts, "a30.sub started no container"
    trained = slurm_run(code, data, *args, replay=NVIDIA_1NODE, CLEAR_CACHES="0")
    assert trained.returncode == 0, trained.stdout[-3000:]
    trial = _records(tmp_path / "a.json")["bert-A30_1x2x224x14-trial_1"]
    assert _metrics(trial)["time_to_train"] == pytest.approx(925.828)
    assert '"cache_clear"' not in Path(trial["artifacts"][0]).read_text()
    assert slurm.jobs() == []


def _submit_script(launcher, folder: Path, body: str, *, nodes: int, job_name: str) -> str:
    """A shell job script in folder (body after the #! line), submitted through the launcher: one task a node, a
    5-minute limit, its output in folder/job.out."""
    script = folder / "job.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return launcher.submit(
        script,
        nodes=nodes,
        tasks_per_node=1,
        walltime="5",
        job_name=job_name,
        output=folder / "job.out",
        env={},
        cwd=folder,
    )


def test_sbatch_refusal_is_reported(slurm, tmp_path):
    """EnforcePartLimits=ALL makes sbatch itself refuse an impossible job; its words reach the user."""
    from pytest_mlperf.machine.slurm import SlurmError, SlurmLauncher

    launcher = SlurmLauncher()  # submit() straight away: no require_nodes() check before sbatch
    os.environ["SLURM_CONF"] = str(slurm.conf)
    try:
        with pytest.raises(SlurmError, match=r"sbatch refused big: .*Node count specification invalid"):
            _submit_script(launcher, tmp_path, "true", nodes=9, job_name="big")
    finally:
        del os.environ["SLURM_CONF"]
    assert slurm.jobs() == []


def test_a_controller_that_does_not_answer_is_not_taken_for_an_ended_job(slurm, tmp_path, monkeypatch):
    """squeue fails while slurmctld does not answer (stopped with SIGSTOP for 25 s, past squeue's 10 s message
    timeout, as a controller too busy to answer would be): the launcher asks again and follows the job to its real
    end. It used to take a failing squeue for a job that had left the queue, end the follow early and leave the
    job running (a CI run once found one left behind a cancelled test)."""
    from pytest_mlperf.machine.slurm import SlurmError, SlurmLauncher

    failures: list[str] = []

    class Counting(SlurmLauncher):  # the real launcher, noting each squeue that failed
        def queue_states(self, job_ids):
            try:
                return super().queue_states(job_ids)
            except SlurmError as exc:
                failures.append(str(exc))
                raise

    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    launcher = Counting(poll=0.5)
    job = _submit_script(launcher, tmp_path, "sleep 40\necho finished", nodes=1, job_name="mlperf-bert-patience")
    _wait_for_job(slurm)
    ctld = next(proc for proc in slurm.procs if Path(proc.args[0]).name == "slurmctld")
    ctld.send_signal(signal.SIGSTOP)
    resume = threading.Timer(25, ctld.send_signal, (signal.SIGCONT,))
    resume.start()
    try:
        end = launcher.follow(job, timeout=300)
    finally:
        resume.cancel()
        ctld.send_signal(signal.SIGCONT)
    assert end.state == "COMPLETED" and (tmp_path / "job.out").read_text().strip() == "finished", end
    assert failures, "squeue never failed while slurmctld was stopped: the test proved nothing"
    assert slurm.jobs() == []


def _wait_for_job(slurm: SlurmCluster, state: str = "RUNNING", timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in slurm.run("squeue", "--noheader", "--format=%i %T %j").stdout.splitlines():
            job, job_state, name = line.split()
            if job_state == state and name.startswith("mlperf-bert"):  # not the short srun probe before it
                return job
        time.sleep(0.3)
    raise AssertionError(f"no {state} job within {timeout} s")


def test_slurm_job_cancelled_from_outside_fails_clearly(slurm, slurm_run, tmp_path, training_fixtures, bert_code):
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code, seconds=120)
    proc = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8", background=True)
    job = _wait_for_job(slurm)
    slurm.run("scancel", job)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"Slurm job {job} ended CANCELLED" in out and "the job was cancelled" in out
    assert slurm.jobs() == []


def test_slurm_node_lost_mid_run_fails_clearly(slurm, slurm_run, tmp_path, training_fixtures, bert_code):
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code, seconds=120)
    proc = slurm_run(code, prepared(tmp_path / "data"), "--mlperf-nodes=8", background=True)
    try:
        job = _wait_for_job(slurm)
        slurm.set_state("n3", "down", "lost in test")
        out, _ = proc.communicate(timeout=120)
    finally:
        slurm.reset_nodes()
    assert proc.returncode == 1
    assert f"Slurm job {job} ended NODE_FAIL" in out and "a node of the job was lost" in out
    assert slurm.jobs() == []


@pytest.mark.parametrize("how", ["timeout", "interrupt"])
def test_slurm_job_is_cancelled_on_timeout_and_interrupt(slurm, slurm_run, tmp_path, training_fixtures, how, bert_code):
    code = _slurm_checkout(tmp_path, training_fixtures, bert_code, seconds=120)
    data = prepared(tmp_path / "data")
    if how == "timeout":
        result = slurm_run(code, data, "--mlperf-nodes=8", "--mlperf-step-timeout=4")
        assert result.returncode == 1 and "ran past 4 s; cancelled it" in result.stdout
    else:
        proc = slurm_run(code, data, "--mlperf-nodes=8", background=True)
        _wait_for_job(slurm)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "KeyboardInterrupt" in out
    assert slurm.jobs() == []
