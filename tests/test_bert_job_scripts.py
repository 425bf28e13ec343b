"""NVIDIA's real BERT job scripts, run.sub and a30.sub, submitted unchanged to the real test Slurm cluster (munged,
slurmctld and eight slurmd on loopback, tests/slurm_cluster.py) as NVIDIA's README says: source a config file,
add the variables, sbatch the script from the implementation folder (run.sub reads mounts.txt from there).

Stand-ins, only where the real thing cannot exist here (tests/standin_pyxis/bin, first on PATH in the job's
environment; sbatch --export=ALL carries PATH into the batch script and srun into every step): pyxis/enroot (an
srun wrapper that runs the real srun with a step program doing what pyxis does on each node: image import, named
containers per job and node, mount sources that must exist on that node, the working directory), Docker on the
node for a30.sub, the image's python (run_pretraining.py replays a published log; anything else is the real
interpreter with NVIDIA's mlperf_logger.py and a stand-in for NVIDIA's mlperf_common), torchrun, bindpcie,
nvidia-smi, ibv_devinfo, sudo (the page-cache drop is host administration) and enroot. Everything else is real:
sbatch and slurmctld's job states, srun's task placement and labels, bash running NVIDIA's scripts and their
run_and_time.sh, envsubst on mounts.txt, tee into LOGDIR, mlperf_logging's logger and compliance checker, and
this repository's log parser. The data is a tiny tree with the real names.

A node-local folder is modelled too: every slurmd runs in a mount namespace of its own with a private tmpfs over
one host folder, which the submit host sees as it is and each node sees empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from docker_cli import config_exports
from slurm_cluster import SlurmCluster, missing_tools, module_cluster

from conftest import ROOT
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.mllog import iter_events, parse_training_log

STANDIN = ROOT / "tests" / "standin_pyxis"
STANDIN_BIN = STANDIN / "bin"
CONT = "mlperf-nvidia:language_model"  # the image name of NVIDIA's README, "pushed" to the stand-in registry
NVIDIA_8NODE = "dgxa100_n8_ngc22.09_pytorch/bert/result_1.txt"  # success, 8 cache_clear lines, 145.289 s
NVIDIA_1NODE = "dgxa100_ngc22.09_pytorch/bert/result_0.txt"  # success, 925.828 s
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


# ---- helpers other tests can import ------------------------------------------------------------------------
def standin_environment(
    work: Path,
    code: Path,
    fixtures: Path,
    replay: str,
    seconds: float = 1,
    registry: tuple[str, ...] = (CONT,),
    path: str | None = None,
) -> dict[str, str]:
    """The variables a submission needs to use the stand-ins: PATH with tests/standin_pyxis/bin first, the record
    file (work/record.jsonl) and state folder (work/state) every node shares, the images that "exist in the
    registry", NVIDIA's implementation folder as the image's /workspace/bert, the real interpreter, and the
    published log that run_pretraining.py replays (fixtures/replay, over `seconds`)."""
    (work / "state").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{STANDIN_BIN}:{path if path is not None else os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYXIS_STANDIN_RECORD": str(work / "record.jsonl"),
        "PYXIS_STANDIN_STATE": str(work / "state"),
        "PYXIS_STANDIN_REGISTRY": " ".join(registry),
        "PYXIS_STANDIN_CODE": str(code),
        "PYXIS_STANDIN_PYTHON": sys.executable,
        "STANDIN_FIXTURES": str(fixtures),
        "STANDIN_REPLAY": replay,
        "STANDIN_SECONDS": str(seconds),
    }


def read_record(path: Path) -> list[dict]:
    """The stand-ins' calls, in order: one dict per line of PYXIS_STANDIN_RECORD (tool, host, node, job, step,
    time, and per tool: argv; srun's container options; pyxis's per-node outcome with each mount's existence)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bert_data(root: Path) -> dict[str, str]:
    """A tiny data tree with the real names (shards as input_preprocessing/shuffle_samples_write.py writes them,
    the 10k eval set, the phase-1 checkpoint and config), and the variables NVIDIA's README passes for it."""
    train = root / "hdf5" / "training-4320" / "hdf5_4320_shards_varlength"
    evald, phase1, unit = root / "hdf5" / "eval_varlength", root / "phase1", root / "unit_test"
    for folder in (train, evald, phase1, unit, root / "checkpoints"):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        (train / f"part_{i:05d}_of_04320.hdf").write_bytes(b"shard\n")
    (evald / "part_eval_10k.hdf5").write_bytes(b"eval\n")
    (phase1 / "model.ckpt-28252.pt").write_bytes(b"checkpoint\n")
    (phase1 / "bert_config.json").write_text('{"hidden_size": 1024}\n')
    return {
        "DATADIR": str(train),
        "DATADIR_PHASE2": str(train),
        "EVALDIR": str(evald),
        "CHECKPOINTDIR": str(root / "checkpoints"),
        "CHECKPOINTDIR_PHASE1": str(phase1),
        "UNITTESTDIR": str(unit),
    }


@dataclass
class Job:
    id: str
    state: str
    exit_code: str
    info: dict[str, str]  # scontrol show job's fields
    output: str  # the batch script's stdout and stderr (sbatch --output)
    seconds: float  # from sbatch to the end seen by the test


def submit(
    slurm: SlurmCluster,
    code: Path,
    script: str,
    env: dict[str, str],
    sbatch_args: list[str],
    output: Path,
    timeout: float = 90,
) -> Job:
    """sbatch SCRIPT from the implementation folder with this environment (sbatch --export=ALL, the default), the
    output to `output` (the implementation folder is NVIDIA's, not ours to write in), and wait for the end."""
    started = time.monotonic()
    env = {**env, "SLURM_CONF": str(slurm.conf)}
    argv = ["sbatch", "--parsable", f"--output={output}", *sbatch_args, script]
    done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"sbatch refused: {done.stderr}"
    job = done.stdout.strip().split(";")[0]
    deadline = started + timeout
    while True:
        info = job_info(slurm, job)
        if info.get("JobState") in TERMINAL:
            break
        if time.monotonic() > deadline:
            slurm.run("scancel", job)
            raise AssertionError(f"job {job} still {info.get('JobState')} after {timeout:.0f} s")
        time.sleep(0.3)
    output = Path(str(output).replace("%j", job))
    text = output.read_text(errors="replace") if output.exists() else ""
    return Job(job, info["JobState"], info.get("ExitCode", ""), info, text, time.monotonic() - started)


def job_info(slurm: SlurmCluster, job: str) -> dict[str, str]:
    line = slurm.run("scontrol", "show", "job", "--oneliner", job).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", line))


# ---- the cluster and the submissions ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm():
    missing = [tool for tool in ("unshare", "envsubst", "bash") if shutil.which(tool) is None] + missing_tools()
    if missing or os.geteuid() != 0:
        pytest.skip(
            f"a Slurm cluster with node-local folders is started as root from Debian's packages; missing: "
            f"{missing or 'root'}"
        )
    pid = os.getpid()
    yield from module_cluster(
        Path(f"/tmp/mlperf-slurm-bert-{pid}"),
        Path(f"/tmp/mlperf-nodetmp-{pid}"),
    )


@dataclass
class Submission:
    work: Path
    env: dict[str, str]
    logdir: Path
    output: Path

    @property
    def record(self) -> list[dict]:
        return read_record(self.work / "record.jsonl")


@pytest.fixture
def submission(tmp_path, bert_code, training_fixtures):
    """The environment of a README submission: the caller's, the config's exports, the README's variables (data,
    CONT), NEXP and LOGDIR (a folder on the submit host), and the stand-ins' settings."""

    def make(config: str, replay: str = NVIDIA_8NODE, seconds: float = 1, drop=(), **extra: str) -> Submission:
        work = tmp_path / "work"
        logdir = tmp_path / "logs"
        env = {
            **os.environ,
            **config_exports(bert_code, config),
            "CONT": CONT,
            **bert_data(tmp_path / "data"),
            "NEXP": "1",
            "LOGDIR": str(logdir),
            **standin_environment(work, bert_code, training_fixtures, replay, seconds),
            **extra,
        }
        for name in drop:
            env.pop(name, None)
        return Submission(work, env, logdir, tmp_path / "slurm-%j.out")

    return make


def run_sub(slurm: SlurmCluster, code: Path, sub: Submission) -> Job:
    """README.md's `sbatch -N${DGXNNODES} --ntasks-per-node=${DGXNGPU} --time=${WALLTIME} run.sub`."""
    e = sub.env
    args = [f"-N{e['DGXNNODES']}", f"--ntasks-per-node={e['DGXNGPU']}", f"--time={e['WALLTIME']}"]
    return submit(slurm, code, "run.sub", e, args, sub.output)


def trial_log(sub: Submission) -> Path:
    return sub.logdir / f"{sub.env['DATESTAMP']}_1.log"


def pyxis_steps(record: list[dict], job: Job) -> dict[str, list[dict]]:
    """The pyxis stand-in's per-node outcomes of a job, by step id."""
    steps: dict[str, list[dict]] = {}
    for entry in record:
        if entry["tool"] == "pyxis" and entry["job"] == job.id:
            steps.setdefault(entry["step"], []).append(entry)
    return steps


def training_step(steps: dict[str, list[dict]]) -> list[dict]:
    """The per-node outcomes of run.sub's training step (srun -l ... run_and_time.sh)."""
    return [e for entries in steps.values() for e in entries if e["command"] == ["run_and_time.sh"]]


def cache_clear_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if '"key": "cache_clear"' in line]


# ---- run.sub, pyxis ----------------------------------------------------------------------------------------
def test_run_sub_on_eight_nodes_converges_and_its_log_reaches_the_submit_host(
    slurm, bert_code, submission, training_fixtures
):
    sub = submission("config_DGXA100_8x8x48x1.sh", seconds=2, DATESTAMP="n8")
    job = run_sub(slurm, bert_code, sub)
    assert (job.state, job.exit_code) == ("COMPLETED", "0:0"), job.output[-3000:]
    assert "unbound variable" not in job.output and " not set" not in job.output  # every variable it needs is set
    # what run.sub's #SBATCH lines and the config's SBATCH_NETWORK=sharp come to on this cluster
    assert job.info["NodeList"] == "n[1-8]" and job.info["NumTasks"] == "64" and job.info["NumCPUs"] == "64"
    assert job.info["OverSubscribe"] == "NO"  # --exclusive: the nodes are the job's alone
    assert job.info["MinMemoryNode"] == "0"  # --mem=0: all of each node's memory (not a consumable resource here)
    assert job.info["Network"] == "sharp"  # sbatch takes SBATCH_NETWORK; no switch plugin here acts on it

    log = trial_log(sub)
    run = parse_training_log(log)
    assert run.status == "success" and run.last_accuracy >= 0.720
    assert run.time_to_train_s == pytest.approx(145.289)
    text = log.read_text()
    assert "Beginning trial 1 of 1" in text and f":::DLPAL {CONT} {job.id} 8 n[1-8]" in text
    assert len(re.findall(r"^Clearing cache on ", text, re.M)) == 8  # each node's hostname: all are this machine
    # the cache_clear lines are the ones NVIDIA's mlperf_logger.py printed on each node (srun --ntasks=8, no -l),
    # written now by the real mlperf_logging, as in the published log: file <string>, line 3 of the -c code
    cleared = cache_clear_lines(text)
    assert len(cleared) == 8 and all(line.startswith(":::MLLOG {") for line in cleared)
    events = [e for e in iter_events(log) if e.key == "cache_clear"]
    assert [e.metadata for e in events] == [{"file": "<string>", "lineno": 3}] * 8
    assert all(e.time_ms > (time.time() - 600) * 1000 for e in events)  # logged now, not replayed
    assert len(cache_clear_lines((training_fixtures / NVIDIA_8NODE).read_text())) == 8  # as NVIDIA's own run
    assert " 0: :::MLLOG" in text and "run_stop" in text  # rank 0's replay, labelled by srun -l

    record = sub.record
    steps = pyxis_steps(record, job)
    # step 0 created the named container on every node; the training step ran on all 8, in that container
    assert sorted(e["node"] for e in steps["0"]) == slurm.node_names
    assert {e["container"] for e in steps["0"]} == {"created"}
    training = training_step(steps)
    assert sorted(e["node"] for e in training) == slurm.node_names
    for entry in training:
        assert entry["ok"] and entry["workdir"] == "/workspace/bert" and entry["command"] == ["run_and_time.sh"]
        assert {m["dst"] for m in entry["mounts"]} == {
            "/workspace/data",
            "/workspace/data_phase2",
            "/workspace/phase1",
            "/workspace/evaldata",
            "/workspace/unit_test_data",
            "/results",
        }
        assert all(m["exists"] for m in entry["mounts"]), entry["mounts"]
    results = {m["src"] for e in training for m in e["mounts"] if m["dst"] == "/results"}
    assert results == {str(sub.logdir)}
    drops = [e for e in record if e["tool"] == "sudo" and e["job"] == job.id]
    assert sorted(e["node"] for e in drops) == slurm.node_names
    assert {tuple(e["argv"]) for e in drops} == {("/sbin/sysctl", "vm.drop_caches=3")}

    # run.sub's compliance step: python3 -m mlperf_logging.compliance_checker in the container, on the log
    compliance = (sub.logdir / "compliance_n8.out").read_text()
    assert f"Running compliance on file: {log}" in compliance
    assert "SUCCESS" in compliance or "FAILED" in compliance  # the verdict of the installed mlperf-logging
    assert slurm.jobs() == []


def test_run_sub_on_one_node(slurm, bert_code, submission):
    sub = submission("config_DGXA100_1x8x56x1.sh", replay=NVIDIA_1NODE, DATESTAMP="n1")
    job = run_sub(slurm, bert_code, sub)
    assert (job.state, job.exit_code) == ("COMPLETED", "0:0"), job.output[-3000:]
    assert job.info["NodeList"] == "n1" and job.info["NumTasks"] == "8"
    run = parse_training_log(trial_log(sub))
    assert run.status == "success" and run.last_accuracy >= 0.720
    assert run.time_to_train_s == pytest.approx(925.828)
    text = trial_log(sub).read_text()
    assert len(cache_clear_lines(text)) == 1 and "0: :::MLLOG" in text
    steps = pyxis_steps(sub.record, job)
    training = training_step(steps)
    assert [e["node"] for e in training] == ["n1"] and all(m["exists"] for m in training[0]["mounts"])


def test_run_sub_without_unittestdir_completes_without_a_run_stop(slurm, bert_code, submission):
    """mounts.txt has ${UNITTESTDIR}:/workspace/unit_test_data; envsubst makes it ':/workspace/unit_test_data',
    pyxis refuses the option in srun itself, the training step never starts, and run.sub (set -eux, no pipefail:
    `( ... ) |& tee` takes tee's status) carries on to a COMPLETED job."""
    sub = submission("config_DGXA100_8x8x48x1.sh", DATESTAMP="nounit", drop=("UNITTESTDIR",))
    job = run_sub(slurm, bert_code, sub)
    assert (job.state, job.exit_code) == ("COMPLETED", "0:0")
    text = trial_log(sub).read_text()
    assert ",:/workspace/unit_test_data," in text
    assert "srun: error: pyxis: --container-mounts: invalid format " in text
    assert "srun: error: Invalid --container-mounts argument: " in text
    assert "run_stop" not in text and "run_start" not in text
    with pytest.raises(ParseError, match="no run_start event"):
        parse_training_log(trial_log(sub))
    steps = pyxis_steps(sub.record, job)
    mounted = {m["dst"] for entries in steps.values() for e in entries for m in e["mounts"]}
    assert mounted == {"/results"}  # only the compliance step's mount: the training step never started


def test_run_sub_with_logdir_in_a_node_local_folder_leaves_the_log_on_the_node(slurm, bert_code, submission):
    """LOGDIR under a folder every node has its own of (a node-local /tmp): run.sub's mkdir and tee run on the
    batch node, so the log stays there; the other nodes have no such folder, so pyxis cannot mount it as /results
    and their ranks never start; rank 0 waits for them in vain. No pipefail: the job still ends COMPLETED."""
    logdir = slurm.private_dir / "logs"
    sub = submission(
        "config_DGXA100_8x8x48x1.sh", DATESTAMP="private", LOGDIR=str(logdir), STANDIN_RENDEZVOUS_SECONDS="3"
    )
    sub.logdir = logdir
    job = run_sub(slurm, bert_code, sub)
    assert (job.state, job.exit_code) == ("COMPLETED", "0:0")
    assert not logdir.exists()  # nothing reached the submit host
    steps = pyxis_steps(sub.record, job)
    training = {e["node"]: e for e in training_step(steps)}
    assert training["n1"]["ok"]
    for node in slurm.node_names[1:]:
        entry = training[node]
        assert not entry["ok"] and entry["error"] == "container start failed with error code: 1"
        assert [m["dst"] for m in entry["mounts"] if not m["exists"]] == ["/results"]
    assert f"enroot-mount: failed to mount: {logdir} at " in job.output
    assert "torch.distributed.init_process_group: 8 of 64 ranks joined within 3 s" in job.output
    # the log is on n1, in n1's own folder
    on_n1 = slurm.run("srun", "-w", "n1", "-N1", "cat", str(logdir / "private_1.log"))
    assert on_n1.returncode == 0 and "Beginning trial 1 of 1" in on_n1.stdout and "run_stop" not in on_n1.stdout
    assert slurm.run("srun", "-w", "n2", "-N1", "ls", str(logdir)).returncode != 0


def test_run_sub_with_an_image_the_registry_lacks_fails_at_the_import(slurm, bert_code, submission):
    sub = submission("config_DGXA100_1x8x56x1.sh", DATESTAMP="noimage", CONT="mlperf-nvidia:no_such_tag")
    job = run_sub(slurm, bert_code, sub)
    assert job.state == "FAILED" and job.exit_code == "1:0"
    assert "slurmstepd: error: pyxis: failed to import docker image" in job.output
    assert "manifests/no_such_tag returned error code: 404 Not Found" in job.output
    assert not trial_log(sub).exists()  # set -e ends run.sub before the trial


def test_run_sub_with_the_readmes_variables_only_stops_at_nexp(slurm, bert_code, submission):
    """The README's command line passes CONT and the data folders, not NEXP, which run.sub requires."""
    sub = submission("config_DGXA100_1x8x56x1.sh", drop=("NEXP", "UNITTESTDIR"), DATESTAMP="readme")
    job = run_sub(slurm, bert_code, sub)
    assert job.state == "FAILED" and job.exit_code == "1:0"
    assert "NEXP: NEXP not set" in job.output
    assert not sub.logdir.exists() and sub.record == []


# ---- a30.sub, Docker on the node ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def a30_jobs(slurm, bert_code, training_fixtures, tmp_path_factory) -> dict[str, tuple[Job, Submission]]:
    """Both a30.sub jobs at once (the script sleeps 30 s after docker run), as README_2xa30 submits them
    (`sbatch -N $DGXNNODES -t $WALLTIME`): CLEAR_CACHES as the script defaults it (1), and CLEAR_CACHES=0."""
    subs = {}
    for clear in ("default", "0"):
        base = tmp_path_factory.mktemp(f"a30-{clear}")
        env = {
            **os.environ,
            **config_exports(bert_code, "config_A30_1x2x224x14.sh"),
            "CONT": CONT,
            **bert_data(base / "data"),
            "LOGDIR": str(base / "logs"),
            "DATESTAMP": f"a30{clear}",
            **standin_environment(base / "work", bert_code, training_fixtures, NVIDIA_1NODE),
        }
        if clear == "0":
            env["CLEAR_CACHES"] = "0"
        subs[clear] = Submission(base / "work", env, base / "logs", base / "slurm-%j.out")
    with ThreadPoolExecutor(len(subs)) as pool:
        futures = {
            clear: pool.submit(
                submit,
                slurm,
                bert_code,
                "a30.sub",
                sub.env,
                [f"-N{sub.env['DGXNNODES']}", f"-t{sub.env['WALLTIME']}"],
                sub.output,
                120,
            )
            for clear, sub in subs.items()
        }
        return {clear: (future.result(), subs[clear]) for clear, future in futures.items()}


def test_a30_sub_with_cache_clearing_dies_at_nvidias_mlperf_logger_call(a30_jobs):
    """a30.sub's cache-clear step calls mlperf_logger.log_event and mlperf_logger.constants, which NVIDIA's
    mlperf_logger.py does not define (it exports `mllogger`); set -euxo pipefail ends the job there."""
    job, sub = a30_jobs["default"]
    assert job.state == "FAILED" and job.exit_code == "1:0"
    text = trial_log(sub).read_text()
    assert "AttributeError: module 'mlperf_logger' has no attribute 'log_event'" in text
    assert "torchrun" not in text and "run_start" not in text
    assert [e["argv"] for e in sub.record if e["tool"] == "sudo"] == [["/sbin/sysctl", "vm.drop_caches=3"]]
    assert "+ docker container rm -f bert." in job.output  # the EXIT trap removed the container


def test_a30_sub_without_cache_clearing_converges(a30_jobs, bert_code):
    job, sub = a30_jobs["0"]
    assert (job.state, job.exit_code) == ("COMPLETED", "0:0"), job.output[-3000:]
    assert job.info["NodeList"] == "n1"
    run = parse_training_log(trial_log(sub))
    assert run.status == "success" and run.last_accuracy >= 0.720
    text = trial_log(sub).read_text()
    assert cache_clear_lines(text) == []  # not cleared, not logged
    # MLPERF_HOST_OS: the \$ in a30.sub's command substitution leaves the variables unexpanded
    assert "${PRETTY_NAME} / ${DGX_PRETTY_NAME:-???} ${DGX_OTA_VERSION:-${DGX_SWBUILD_VERSION:-???}}" in text
    docker = [e["argv"] for e in sub.record if e["tool"] == "docker"]
    run_argv = next(argv for argv in docker if argv[0] == "run")
    assert run_argv[:3] == ["run", "--gpus", "all"] and "--pull=always" in run_argv
    volumes = dict(v.removeprefix("--volume=").split(":")[::-1] for v in run_argv if v.startswith("--volume="))
    assert volumes == {
        "/workspace/data": sub.env["DATADIR"],
        "/workspace/data_phase2": sub.env["DATADIR_PHASE2"],
        "/workspace/phase1": sub.env["CHECKPOINTDIR_PHASE1"],
        "/workspace/evaldata": sub.env["EVALDIR"],
        "/workspace/unit_test_data": sub.env["UNITTESTDIR"],
    }
    assert not any("/results" in v for v in volumes)  # LOGDIR is not mounted: only tee writes the log
    exec_argv = next(argv for argv in docker if argv[0] == "exec" and "--env-file" in argv)
    torchrun = ["torchrun", "--standalone", "--no_python", "--nproc_per_node=2", "./a30-run_and_time.sh"]
    assert exec_argv[exec_argv.index("torchrun") :] == torchrun
    name = next(arg for arg in run_argv if arg.startswith("--name=")).removeprefix("--name=")
    assert docker[-1] == ["container", "rm", "-f", name]  # the EXIT trap


def test_a30_sub_as_its_readme_says_stops_at_unittestdir(slurm, bert_code, tmp_path, training_fixtures):
    """README_2xa30 passes no UNITTESTDIR (and names run.sub); a30.sub has set -u and mounts ${UNITTESTDIR}."""
    env = {
        **os.environ,
        **config_exports(bert_code, "config_A30_1x2x224x14.sh"),
        "CONT": CONT,
        **bert_data(tmp_path / "data"),
        "LOGDIR": str(tmp_path / "logs"),
        **standin_environment(tmp_path / "work", bert_code, training_fixtures, NVIDIA_1NODE),
    }
    env.pop("UNITTESTDIR")
    output = tmp_path / "slurm.out"
    job = submit(slurm, bert_code, "a30.sub", env, [f"-N{env['DGXNNODES']}", f"-t{env['WALLTIME']}"], output)
    assert job.state == "FAILED" and job.exit_code == "1:0"
    assert "UNITTESTDIR: unbound variable" in job.output
    assert read_record(tmp_path / "work" / "record.jsonl") == []  # before any docker call


# ---- the stand-ins themselves ------------------------------------------------------------------------------
def _standin(tmp_path: Path, code: Path, fixtures: Path, *argv: str, cwd: Path | None = None, **extra: str):
    env = {**os.environ, **standin_environment(tmp_path / "work", code, fixtures, NVIDIA_1NODE, 0), **extra}
    return subprocess.run(list(argv), cwd=cwd or tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_python_standin_checks_the_data_run_pretraining_reads(tmp_path, bert_code, training_fixtures):
    data = bert_data(tmp_path / "data")
    mounts = (
        f"/workspace/data_phase2={data['DATADIR_PHASE2']},/workspace/phase1={data['CHECKPOINTDIR_PHASE1']},"
        f"/workspace/evaldata={data['EVALDIR']}"
    )
    argv = [
        str(STANDIN_BIN / "python"),
        "-u",
        "/workspace/bert/run_pretraining.py",
        "--input_dir=/workspace/data_phase2",
        "--init_checkpoint=/workspace/phase1/model.ckpt-28252.pt",
        "--eval_dir=/workspace/evaldata",
        "--bert_config_path=/workspace/phase1/bert_config.json",
    ]
    ok = _standin(tmp_path, bert_code, training_fixtures, *argv, PYXIS_STANDIN_MOUNTS=mounts, RANK="0")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(":::MLLOG ") and '"cache_clear"' not in ok.stdout and "run_stop" in ok.stdout
    other = _standin(tmp_path, bert_code, training_fixtures, *argv, PYXIS_STANDIN_MOUNTS=mounts, RANK="3")
    assert other.returncode == 0 and other.stdout == ""

    for shard in Path(data["DATADIR_PHASE2"]).iterdir():
        shard.rename(shard.with_name(shard.name.replace("part_", "shard_")))
    bad = _standin(tmp_path, bert_code, training_fixtures, *argv, PYXIS_STANDIN_MOUNTS=mounts, RANK="0")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == (
        "stand-in run_pretraining.py: --input_dir=/workspace/data_phase2: no regular file named *part_* "
        f"(host path {data['DATADIR_PHASE2']})\n"
    )
    unmounted = _standin(tmp_path, bert_code, training_fixtures, *argv, RANK="0")
    assert unmounted.returncode == 1 and "no such directory (host path /workspace/data_phase2)" in unmounted.stderr


def test_python_standin_runs_the_real_interpreter_with_nvidias_code(tmp_path, bert_code, training_fixtures):
    out = _standin(
        tmp_path,
        bert_code,
        training_fixtures,
        str(STANDIN_BIN / "python3"),
        "-c",
        "import sys, mlperf_logger; print(mlperf_logger.__file__); print(sys.argv[1])",
        "/workspace/bert/run.sub",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(bert_code / "mlperf_logger.py"), str(bert_code / "run.sub")]


def test_docker_standin_refuses_what_docker_would(tmp_path, bert_code, training_fixtures):
    def docker(*argv: str, **extra: str):
        return _standin(tmp_path, bert_code, training_fixtures, str(STANDIN_BIN / "docker"), *argv, **extra)

    data = tmp_path / "data"
    data.mkdir()
    base = ["run", "--rm", "--detach", "--name=c1"]
    empty = docker(*base, "--volume=:/workspace/unit_test_data", CONT, "sleep", "infinity")
    assert empty.returncode == 125 and "invalid spec: :/workspace/unit_test_data: empty section" in empty.stderr
    missing = docker(*base, f"--volume={tmp_path / 'nowhere'}:/workspace/data", CONT, "sleep", "infinity")
    assert missing.returncode == 125 and f"bind source {tmp_path / 'nowhere'} (for /workspace/data)" in missing.stderr
    unknown = docker(*base, "--pull=always", "nvcr.io/nvidia/pytorch:99.99-py3", "sleep", "infinity")
    assert unknown.returncode == 125 and "pull access denied for nvcr.io/nvidia/pytorch" in unknown.stderr
    assert docker("exec", "c1", "true").stderr == "Error response from daemon: No such container: c1\n"

    started = docker(*base, f"--volume={data}:/workspace/data", CONT, "sleep", "infinity")
    assert started.returncode == 0, started.stderr
    names = docker("exec", "c1", "bash", "-c", "compgen -e").stdout.split()
    assert {"PYTORCH_VERSION", "PYTHONPATH", "PATH", "HOME"} <= set(names) and "PYXIS_STANDIN_MOUNTS" in names
    envfile = tmp_path / "env"
    envfile.write_text("FROM_CALLER\nNOT_SET_ANYWHERE\nGIVEN=here\n")
    shown = docker(
        "exec",
        f"--env-file={envfile}",
        "c1",
        "bash",
        "-c",
        'echo "$FROM_CALLER $GIVEN ${NOT_SET_ANYWHERE-unset} $PWD"',
        FROM_CALLER="caller",
    )
    assert shown.stdout == f"caller here unset {bert_code}\n"
    assert docker("container", "rm", "-f", "c1").returncode == 0 and docker("exec", "c1", "true").returncode == 1
    assert [r["argv"][0] for r in read_record(tmp_path / "work" / "record.jsonl")][:3] == ["run", "run", "run"]


def test_pyxis_standin_needs_the_named_container_and_the_mount_sources_on_each_node(
    slurm, tmp_path, bert_code, training_fixtures
):
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"srun --ntasks=2 --container-name=never_created true\n"
        f"srun --ntasks=2 --container-image={CONT} --container-name=c true\n"
        f"srun --ntasks=2 --container-name=c --container-mounts={slurm.private_dir}:/node_local,"
        f"{tmp_path}:/shared:ro --container-workdir=/shared ls job.sh\n"
        f"mkdir -p {slurm.private_dir}/only_on_n1\n"
        f"srun --ntasks=2 --container-name=c --container-mounts={slurm.private_dir}/only_on_n1:/x true\n"
    )
    env = {**os.environ, **standin_environment(tmp_path / "work", bert_code, training_fixtures, NVIDIA_1NODE)}
    job = submit(slurm, tmp_path, str(script), env, ["-N2", "--ntasks-per-node=1"], tmp_path / "out")
    assert (job.state, job.exit_code) == ("FAILED", "1:0"), job.output  # the last srun failed on n2
    assert 'pyxis: a container with name "never_created" does not exist, and --container-image is not set' in job.output
    assert job.output.count("job.sh\n") == 2  # each node ran ls in the host folder mounted as /shared
    assert f"enroot-mount: failed to mount: {slurm.private_dir}/only_on_n1 at " in job.output
    steps = pyxis_steps(read_record(tmp_path / "work" / "record.jsonl"), job)
    assert [sorted((e["node"], e["ok"]) for e in steps[s]) for s in ("0", "1", "2", "3")] == [
        [("n1", False), ("n2", False)],
        [("n1", True), ("n2", True)],
        [("n1", True), ("n2", True)],
        [("n1", True), ("n2", False)],
    ]
    assert [m["flags"] for m in steps["2"][0]["mounts"]] == ["", "ro"]
