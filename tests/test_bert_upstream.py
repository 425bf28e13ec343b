"""The training backend's reading of NVIDIA's real v2.1 BERT implementation (../shared/upstream): the catalog's
configs against the config files, the job scripts' variables and mounts against what bash does with them, the
image NVIDIA's README tags, and the image references a cluster can pull.

The only stand-in here is `srun`, recorded instead of run, where run.sub is executed by bash on this machine to
see which variables it really reads: Slurm itself is exercised in test_nvidia_training.py and
test_bert_job_scripts.py."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from conftest import bert_copy, bert_data_root, training_backend
from pytest_mlperf import catalog
from pytest_mlperf.backends import BackendUnavailable
from pytest_mlperf.backends.bert_job import (
    DEFAULT_IMAGE,
    image_problem,
    job_image,
    missing_variables,
    walltime_minutes,
)
from pytest_mlperf.backends.nvidia_training import config_environment
from pytest_mlperf.catalog import nvidia_bert

RUN_SUB_NEEDS = {
    "CONT",
    "DGXSYSTEM",
    "NEXP",
    "DGXNNODES",
    "DGXNGPU",
    "BATCHSIZE",
    "GRADIENT_STEPS",
    "LR",
    "MAX_STEPS",
    "PHASE",
    "DATADIR",
    "DATADIR_PHASE2",
    "CHECKPOINTDIR_PHASE1",
    "EVALDIR",
    "UNITTESTDIR",
    "LOGDIR",
}


# ---- the catalog against the config files -------------------------------------------------------------------
def _packing_default(bert_code: Path) -> int:
    tree = ast.parse((bert_code / "run_pretraining.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.args
            and getattr(node.args[0], "value", None) == "--average_packing_rate"
        ):
            return next(k.value.value for k in node.keywords if k.arg == "default")
    raise AssertionError("run_pretraining.py has no --average_packing_rate")


def test_catalog_configs_are_the_config_files(bert_code):
    """Batch, accumulation, learning rate, step budget, nodes, GPUs, WALLTIME (NEXP=1), CUDA_VISIBLE_DEVICES,
    packing and the scripts each config runs with, read from NVIDIA's files. The packed config's global batch is
    multiplied by run_pretraining.py's --average_packing_rate default (EXTRA_PARAMS does not set it)."""
    packing = _packing_default(bert_code)
    assert packing == 2
    for config in catalog.load().training_configs.values():
        env = config_environment(bert_code, config, 1)
        assert int(env["BATCHSIZE"]) == config.batch_size and int(env["GRADIENT_STEPS"]) == config.gradient_steps
        assert float(env["LR"]) == config.learning_rate and int(env["MAX_STEPS"]) == config.max_steps
        assert int(env["DGXNNODES"]) == config.nodes and int(env["DGXNGPU"]) == config.gpus_per_node
        assert walltime_minutes(env["WALLTIME"]) == config.walltime_min, config.name
        assert env.get("CUDA_VISIBLE_DEVICES") == config.visible_devices
        packed = "--packed_samples" in env["EXTRA_PARAMS"]
        assert packed is config.packed and "--average_packing_rate" not in env["EXTRA_PARAMS"]
        assert config.average_packing_rate == (packing if packed else 1)
        assert (bert_code / config.job_script).is_file() and (bert_code / config.run_and_time).is_file()
    configs = catalog.load().training_configs
    assert configs["1x4x56x2"].walltime_min == 75  # WALLTIME=01:15:00, not 45 minutes
    assert configs["1x8x56x1"].walltime_min == 28  # WALLTIME=$(( NEXP * 23 + 5 ))
    assert configs["A30_1x2x224x14"].job_script == "a30.sub"
    assert configs["A30_1x2x224x14"].run_and_time == "a30-run_and_time.sh"
    assert configs["512x8x2x1_pack"].global_batch_size == 512 * 8 * 2 * packing


def test_skus_map_to_configs_as_nvidias_files_say(bert_code):
    """1x4x56x2 sources config_DGXA100_4gpu_common.sh (two 64-core sockets, CUDA_VISIBLE_DEVICES=0,1,2,3): four
    GPUs of a DGX A100, not a DGX Station A100 (the catalog's A100-SXM-80GBx4). The READMEs name the DGX A100
    configs and the 2xA30 one."""
    text = (bert_code / "config_DGXA100_1x4x56x2.sh").read_text()
    assert "config_DGXA100_4gpu_common.sh" in text
    common = config_environment(bert_code, catalog.load().training_config("1x4x56x2"))
    assert (common["DGXNSOCKET"], common["DGXSOCKETCORES"]) == ("2", "64")
    cat = catalog.load()
    assert cat.system("A100-SXM-80GBx4").known_system == "A100_SXM_80GB_ROx4"  # NVIDIA's DGX Station A100
    assert "1x4x56x2" in cat.training_systems["A100-SXM-80GBx8"]
    assert "A100-SXM-80GBx4" not in cat.training_systems
    readmes = {p.name: p.read_text() for p in bert_code.glob("README_*.md")}
    assert "config_DGXA100_1x8x56x1.sh" in readmes["README_dgxa100_ngc22.09_pytorch.md"]
    assert "config_DGXA100_8x8x48x1.sh" in readmes["README_dgxa100_n8_ngc22.09_pytorch.md"]
    assert "config_DGXA100_512x8x2x1_pack.sh" in readmes["README_dgxa100_n512_ngc22.09_pytorch.md"]
    assert "2xA30" in readmes["README_2xa30_ngc22.09_pytorch.md"]


def test_the_backend_takes_walltime_and_gpus_from_the_config_file(bert_code, tmp_path):
    """A trial of 1x4x56x2 may run 75 minutes (its WALLTIME); it runs on GPUs 0-3 of the node."""
    four = training_backend(bert_code, tmp_path, "1x4x56x2")
    assert four.walltime_min == 75 and four.timeout == 75 * 60 and four.gpus == (0, 1, 2, 3)
    eight = training_backend(bert_code, tmp_path, "1x8x56x1")
    assert eight.walltime_min == 28 and eight.gpus is None
    assert training_backend(bert_code, tmp_path, "1x8x56x1", gpus=(4, 5)).gpus == (4, 5)
    a30 = training_backend(bert_code, tmp_path, "A30_1x2x224x14")
    argv, env = a30.trial_command(7)
    assert argv[-2:] == ["--nproc_per_node=2", "./a30-run_and_time.sh"] and env["SEED"] == "7"


def test_the_docker_launch_needs_mounts_txt_not_the_job_scripts(bert_code, tmp_path):
    """The docker launcher reads mounts.txt as run_with_docker.sh does; a checkout without run_with_docker.sh and
    run.sub (a site's trimmed copy) launches the same container."""
    code = bert_copy(bert_code, tmp_path / "code")
    (code / "run_with_docker.sh").unlink()
    (code / "run.sub").unlink()
    trimmed = training_backend(code, tmp_path / "a", "1x8x56x1").mounts()
    full = training_backend(bert_code, tmp_path / "a", "1x8x56x1").mounts()
    assert trimmed == full and set(full) == {
        "/workspace/data",
        "/workspace/data_phase2",
        "/workspace/phase1",
        "/workspace/evaldata",
        "/workspace/unit_test_data",
    }


def test_the_default_image_is_the_one_nvidias_readme_builds(bert_code, tmp_path):
    """`docker build --pull -t <registry>/mlperf-nvidia:language_model .` and `CONT=mlperf-nvidia:language_model`:
    the default is that tag, so an image the user built by the README is used, not rebuilt under another name."""
    readme = (bert_code / "README.md").read_text()
    assert f"CONT={DEFAULT_IMAGE} " in readme and f"/{DEFAULT_IMAGE} ." in readme
    assert training_backend(bert_code, tmp_path, "1x8x56x1").image == DEFAULT_IMAGE


# ---- what the job scripts read ----------------------------------------------------------------------------
def test_mounts_are_read_as_the_scripts_read_them(bert_code):
    targets = {m.variable: m.target for m in nvidia_bert.mounts(bert_code, "run.sub")}
    assert targets == {
        "DATADIR": "/workspace/data",
        "DATADIR_PHASE2": "/workspace/data_phase2",
        "CHECKPOINTDIR_PHASE1": "/workspace/phase1",
        "EVALDIR": "/workspace/evaldata",
        "UNITTESTDIR": "/workspace/unit_test_data",
        "LOGDIR": "/results",
    }
    docker = {m.variable: m.target for m in nvidia_bert.mounts(bert_code, "run_with_docker.sh")}
    assert docker == {k: v for k, v in targets.items() if k != "LOGDIR"}  # run_with_docker.sh mounts no /results
    a30 = {m.variable: m.target for m in nvidia_bert.mounts(bert_code, "a30.sub")}
    assert a30 == docker and all(m.origin.startswith("a30.sub:") for m in nvidia_bert.mounts(bert_code, "a30.sub"))
    assert nvidia_bert.preload_folder(bert_code, "run.sub") == "/lustre/fsw/containers"


def test_requirements_of_run_sub(bert_code):
    need = nvidia_bert.requirements(bert_code, "run.sub", "run_and_time.sh")
    assert set(need) == RUN_SUB_NEEDS
    assert need["UNITTESTDIR"] == "mounts.txt:5 (mount source ${UNITTESTDIR}:/workspace/unit_test_data)"
    assert need["CONT"].startswith("run.sub:") and "${CONT:?}" in need["CONT"]
    a30 = nvidia_bert.requirements(bert_code, "a30.sub", "a30-run_and_time.sh")
    assert set(a30) == RUN_SUB_NEEDS - {"NEXP", "DGXNNODES", "LOGDIR"}  # a30.sub defaults NEXP and LOGDIR
    assert missing_variables({"UNITTESTDIR": "mounts.txt:5"}, {"UNITTESTDIR": ""}) == [
        "UNITTESTDIR (read at mounts.txt:5)"
    ]


RECORDING_SRUN = """#!/bin/sh
# Stand-in for srun, for this test only: records its arguments (unit-separated, one call a record) and succeeds.
for a in "$@"; do printf '%s\\037' "$a"; done >> "$RECORD"
printf '\\036' >> "$RECORD"
"""


def _run_sub_env(bert_code: Path, tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(RECORDING_SRUN)
    (bin_dir / "srun").chmod(0o755)
    env = config_environment(bert_code, catalog.load().training_config("8x8x48x1"), 1)
    data = bert_data_root(tmp_path)
    env.update(
        PATH=f"{bin_dir}:/usr/bin:/bin",
        RECORD=str(tmp_path / "record"),
        CONT="registry.example:5000/mlperf-nvidia:language_model",
        NEXP="1",
        LOGDIR=str(tmp_path / "logs"),
        DATADIR=str(data / "hdf5/training-4320/hdf5_4320_shards_varlength"),
        DATADIR_PHASE2=str(data / "hdf5/training-4320/hdf5_4320_shards_varlength"),
        EVALDIR=str(data / "hdf5/eval_varlength"),
        CHECKPOINTDIR_PHASE1=str(data / "phase1"),
        UNITTESTDIR=str(tmp_path / "unit"),
        SLURM_JOB_NUM_NODES="8",
        SLURM_JOBID="42",
        SLURM_JOB_ID="42",
        SLURM_JOB_NODELIST="n[1-8]",
    )
    return env


def _run_sub(code: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    record = Path(env["RECORD"])
    record.write_text("")
    argv = ["bash", str(code / "run.sub")]
    proc = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, timeout=60)
    calls = [c.split("\x1f")[:-1] for c in record.read_text().split("\x1e") if c]
    return proc, calls


def _mount_sources(calls: list[list[str]]) -> list[str]:
    sources = []
    for call in calls:
        for arg in call:
            if arg.startswith("--container-mounts="):
                sources += [pair.split(":")[0] for pair in arg.split("=", 1)[1].split(",")]
    return sources


def test_run_sub_executed_by_bash_reads_exactly_what_the_backend_requires(bert_code, tmp_path):
    """run.sub run by bash (srun recorded): with every required variable set it runs through, every mount source
    it hands to srun is a path; without any one of them it dies naming it (set -u, `:?`), or — the mounts.txt
    variables, which envsubst turns into nothing — hands pyxis an empty mount source while the job goes on (no
    pipefail: the job would end COMPLETED without a run)."""
    env = _run_sub_env(bert_code, tmp_path)
    code = bert_copy(bert_code, tmp_path / "code")
    proc, calls = _run_sub(code, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sources = _mount_sources(calls)
    assert sources and all(s.startswith("/") for s in sources)
    assert any(c[-1] == "run_and_time.sh" for c in calls)
    required = nvidia_bert.requirements(bert_code, "run.sub", "run_and_time.sh")
    for name in sorted(required):
        if name in ("GRADIENT_STEPS", "LR", "MAX_STEPS", "PHASE"):
            continue  # read by run_and_time.sh inside the container, which the recorded srun does not start
        short = {k: v for k, v in env.items() if k != name}
        proc, calls = _run_sub(code, short)
        died = proc.returncode != 0 and re.search(rf"\b{name}\b.*(unbound variable|not set)", proc.stderr)
        empty = "" in _mount_sources(calls)
        if name == "LOGDIR":  # run.sub's default: ./results beside the code, which the backend never relies on
            assert proc.returncode == 0 and list((code / "results").glob("*_1.log"))
            continue
        assert died or empty, f"{name}: run.sub neither failed nor left a mount source empty"
        if empty:
            assert proc.returncode == 0  # no pipefail: nothing stops the job script itself


# ---- image references a cluster can use -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "script", "ok"),
    [
        ("mlperf-nvidia:language_model", "run.sub", False),
        ("nvidia/pytorch:22.09-py3", "run.sub", False),
        ("nvcr.io/nvidia/pytorch:22.09-py3", "run.sub", True),
        ("nvcr.io#nvidia/pytorch:22.09-py3", "run.sub", True),
        ("nvcr.io#nvidia/pytorch:22.09-py3", "a30.sub", False),
        ("registry.example:5000/mlperf-nvidia:language_model", "run.sub", True),
        ("localhost/mlperf-nvidia:language_model", "a30.sub", True),
        ("docker.io/someone/mlperf-nvidia:language_model", "a30.sub", True),
        ("mlperf-nvidia:language_model", "a30.sub", False),
        ("/shared/bert.sqsh", "a30.sub", False),
        ("/nonexistent/bert.sqsh", "run.sub", False),
        ("/etc/hostname", "run.sub", False),
    ],
)
def test_image_references_a_job_script_can_pull(image, script, ok):
    assert (image_problem(image, script) is None) is ok


@pytest.mark.parametrize(
    ("image", "script", "cont"),
    [
        ("nvcr.io/nvidia/pytorch:22.09-py3", "run.sub", "nvcr.io#nvidia/pytorch:22.09-py3"),
        ("registry.example:5000/bert:lm", "run.sub", "registry.example:5000#bert:lm"),
        ("docker.io/someone/mlperf-nvidia:language_model", "run.sub", "someone/mlperf-nvidia:language_model"),
        ("nvcr.io#nvidia/pytorch:22.09-py3", "run.sub", "nvcr.io#nvidia/pytorch:22.09-py3"),
        ("/shared/bert.sqsh", "run.sub", "/shared/bert.sqsh"),
        ("nvcr.io/nvidia/pytorch:22.09-py3", "a30.sub", "nvcr.io/nvidia/pytorch:22.09-py3"),
    ],
)
def test_cont_is_an_enroot_uri_for_run_sub_and_a_docker_reference_for_a30_sub(image, script, cont):
    """enroot (pyxis's --container-image, run.sub's `enroot import docker://${CONT}`) reads `host/repo` as a Docker
    Hub repository named host/repo: the registry is set off by '#'. a30.sub's `docker run` takes the usual form."""
    assert job_image(image, script) == cont


def test_a_squashfs_file_is_a_pyxis_image(tmp_path):
    squash = tmp_path / "bert.sqsh"
    squash.write_bytes(b"hsqs")
    assert image_problem(str(squash), "run.sub") is None
    why = image_problem("mlperf-nvidia:language_model", "run.sub")
    assert "from Docker Hub, not from this machine's Docker engine" in why and "enroot import" in why


def test_slurm_refuses_a_local_tag_before_anything_is_submitted(bert_code, tmp_path):
    if nvidia_bert_slurm_missing():
        pytest.skip("the Slurm client commands are not installed")
    with pytest.raises(BackendUnavailable, match=r"--mlperf-image mlperf-nvidia:language_model: pyxis"):
        training_backend(bert_code, tmp_path, "8x8x48x1", launcher="slurm")


def nvidia_bert_slurm_missing() -> bool:
    from pytest_mlperf.machine.slurm import available

    return available() is not None


@pytest.mark.parametrize(("text", "minutes"), [("01:15:00", 75), ("28", 28), ("04:00:00", 240), ("1-00:00:00", 1440)])
def test_walltime_as_sbatch_reads_it(text, minutes):
    assert walltime_minutes(text) == minutes


def test_walltime_that_is_not_a_slurm_time_is_named():
    with pytest.raises(ValueError, match=r"WALLTIME 'soon' is not a Slurm time"):
        walltime_minutes("soon")
