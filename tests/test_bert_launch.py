"""The Docker launch of NVIDIA's BERT equals what NVIDIA's real launch scripts would run.

For each single-node config, NVIDIA's real script (run_with_docker.sh for the DGX A100 configs, a30.sub for the A30
one) runs under bash, started the way NVIDIA's README starts it (`source ./config_<system>.sh; CONT=... DATADIR=...
./run_with_docker.sh`: a clean environment holding the config file's exports, the data folders, CONT, NEXP=1 and a
fixed SEED), with recording stand-ins first on PATH for the docker CLI, nvidia-docker, sudo, sleep and nvidia-smi
(tests/standin_docker_cli): there is no Docker engine, GPU or root here to run them, and a launch script must not
start containers or drop the page cache of the machine running the tests. What the script would have run is read
from their records the way the docker CLI reads its options.

The plugin's side is its real code: NvidiaTrainingBackend builds the launch spec, its session container starts it
and one trial runs (`_run_docker`: drop the caches, log cache_clear, exec the trial) against a Docker SDK client
whose HTTP layer records instead of sending (tests/docker_cli.py RecordingEngine), so the container and the execs
compared are the JSON the engine would receive, produced by docker-py's own conversion. The plugin's sudo call goes
to the same recording sudo (its direct write to /proc/sys/vm/drop_caches is made to fail first, as it does for a
user that is not root).

Differences that are intended are listed where they are allowed (ALLOWED_*); everything else must be equal.
"""

from __future__ import annotations

import ast
import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from docker_cli import (
    STANDIN,
    Call,
    Exec,
    RecordingEngine,
    ScriptRun,
    config_exports,
    read_record,
    run_script,
    sdk_container,
)

from pytest_mlperf import catalog
from pytest_mlperf.backends import bert_job
from pytest_mlperf.backends.nvidia_training import NvidiaTrainingBackend, TrialProgress

IMAGE = "mlperf-nvidia:language_model"
SEED = 4242
SYSCTL = ["/sbin/sysctl", "vm.drop_caches=3"]
TORCH_RUN = ["python", "-m", "torch.distributed.run"]

# Intended differences in the container itself:
# - name: run_with_docker.sh always names it `language_model` (a30.sub `bert.<pid>`) and removes any container of
#   that name first, so two runs on one machine kill each other's; the plugin names it per session
#   (mlperf-training-<user>-<pid>) and removes only its own.
# - labels: the plugin labels its container with its session, pid and host, to find and remove what a killed
#   session left behind; the scripts label nothing.
ALLOWED_CONTAINER = ("name", "labels")
# Intended differences in each exec:
# - container: the name above.
# - tty, interactive: run_with_docker.sh passes `docker exec -it`; the plugin streams the output into the trial's
#   log without a terminal (no tty, no stdin): the trial's output is the same, without terminal line endings.
ALLOWED_EXEC = ("container", "tty", "interactive")


def exec_view(item: Exec) -> dict:
    out = dict(vars(item))
    for key in ALLOWED_EXEC:
        out.pop(key)
    out["env_names"], out["env_files"] = sorted(out["env_names"]), sorted(out["env_files"])  # order: no matter
    return out


def same_program(left: str, right: str) -> bool:
    """Two `python -c` codes that parse to the same program. run_with_docker.sh's code starts with a newline and has
    a space after `constants`; the plugin's has neither: whitespace that makes no difference to Python."""
    return ast.dump(ast.parse(left)) == ast.dump(ast.parse(right))


class _NoDirectDrop(type(Path())):
    """Path for bert_job: /proc/sys/vm/drop_caches cannot be written (the tests must not drop this machine's page
    cache; a user that is not root gets the same), so drop_host_caches() goes on to `sudo -n`, recorded."""

    def write_text(self, *args, **kwargs):
        if str(self) == "/proc/sys/vm/drop_caches":
            raise PermissionError(errno.EACCES, "Permission denied (test)", str(self))
        return super().write_text(*args, **kwargs)


@dataclass
class Launch:
    backend: NvidiaTrainingBackend
    env: dict[str, str]  # what the script was started with
    script: ScriptRun
    engine: RecordingEngine  # what the plugin asked the Docker engine for
    plugin_calls: list[Call]  # the stand-ins the plugin called (sudo)
    info: dict  # the trial's info, as the plugin records it

    @property
    def plugin_execs(self) -> list[Exec]:
        return self.engine.execs()

    def script_exec(self, kind: str) -> Exec:
        (found,) = [e for e in self.script.execs() if e.kind == kind]
        return found

    def plugin_exec(self, kind: str) -> Exec:
        (found,) = [e for e in self.plugin_execs if e.kind == kind]
        return found


def make_backend(code: Path, name: str, root: Path, gpus: tuple[int, ...] | None) -> NvidiaTrainingBackend:
    cat = catalog.load()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    backend = NvidiaTrainingBackend(
        cat,
        config=cat.training_config(name),
        sku=None,
        code_dir=code,
        data_dir=data,
        image=IMAGE,
        output=root / "out",
        profile="nvidia",
        launcher="docker",
        gpus=gpus,
    )
    for folder in backend.data_environment().values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    return backend


def script_env(code: Path, backend: NvidiaTrainingBackend, root: Path, **extra: str) -> dict[str, str]:
    """NVIDIA's README: `source ./config_<system>.sh`, then CONT and the data folders on the command line (the
    plugin's data folders, UNITTESTDIR included), one experiment (NEXP=1), a fixed SEED, LOGDIR a scratch folder."""
    return {
        **config_exports(code, f"./{backend.config.file}"),
        **backend.data_environment(),
        "CONT": IMAGE,
        "NEXP": "1",
        "SEED": str(SEED),
        "LOGDIR": str(root / "logs"),
        **extra,
    }


def plugin_trial(backend: NvidiaTrainingBackend, root: Path) -> tuple[RecordingEngine, list[Call], dict]:
    """One trial of the plugin's docker launcher (its session container, cache drop, cache_clear exec and trial
    exec), against the recording engine and sudo."""
    engine = RecordingEngine()
    record = root / "plugin-record.jsonl"
    case = backend.cases("training", None)[0]
    info: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "_client", lambda: engine.client)
        mp.setattr(bert_job, "Path", _NoDirectDrop)
        mp.setenv("PATH", f"{STANDIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
        mp.setenv("RECORD", str(record))
        backend._run_docker(case, 1, SEED, TrialProgress(case.target), info)
    return engine, read_record(record), info


def launch(code: Path, root: Path, name: str, script: str, gpus, **extra: str) -> Launch:
    backend = make_backend(code, name, root, gpus)
    env = script_env(code, backend, root, **extra)
    ran = run_script(script, code, env, root)
    assert ran.returncode == 0, f"{script} failed ({ran.returncode}):\n{ran.stderr[-3000:]}"
    engine, calls, info = plugin_trial(backend, root)
    return Launch(backend, env, ran, engine, calls, info)


ALL_8 = "0,1,2,3,4,5,6,7"


@pytest.fixture(scope="module", params=["1x8x56x1", "1x4x56x2"])
def dgx(request, bert_code, tmp_path_factory) -> Launch:
    """run_with_docker.sh and the plugin for a DGX A100 config: 1x8x56x1 with NV_GPU=0..7 and the plugin given
    GPUs 0..7; 1x4x56x2, whose config exports CUDA_VISIBLE_DEVICES=0,1,2,3 (run_with_docker.sh's default NV_GPU,
    and the plugin's GPUs when none are given)."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    if name == "1x8x56x1":
        return launch(bert_code, root, name, "run_with_docker.sh", tuple(range(8)), NV_GPU=ALL_8)
    return launch(bert_code, root, name, "run_with_docker.sh", None)


# a30.sub is a Slurm batch script: sbatch sets these, and its trial echoes them under `set -u` (see
# test_a30_sub_needs_slurm_variables). One node, as the A30 config runs.
SLURM_JOB = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "node1"}


@pytest.fixture(scope="module")
def a30(bert_code, tmp_path_factory) -> Launch:
    """a30.sub (run as bash on the node, NV_GPU unset) and the plugin (no GPUs named) for config_A30_1x2x224x14."""
    root = tmp_path_factory.mktemp("a30")
    return launch(bert_code, root, "A30_1x2x224x14", "a30.sub", None, **SLURM_JOB)


# ---- run_with_docker.sh: 1x8x56x1, 1x4x56x2 ----------------------------------------------------------------------
def test_container_equals_run_with_docker(dgx: Launch):
    """The container: image, `sleep infinity`, --init, --rm, --detach, host network/UTS/IPC, seccomp=unconfined,
    the stack and memlock ulimits, the GPUs, no environment, the image's user and working directory, the default
    pull policy, nothing else set. The docker CLI is a recording stand-in; the plugin's side is docker-py's request."""
    script, plugin = dgx.script.container(), dgx.engine.created()
    assert script.view("mounts", *ALLOWED_CONTAINER) == plugin.view("mounts", *ALLOWED_CONTAINER)
    expected_gpus = ["0", "1", "2", "3", "4", "5", "6", "7"] if dgx.backend.config.name == "1x8x56x1" else list("0123")
    assert plugin.gpus == script.gpus == expected_gpus
    assert plugin.command == ["sleep", "infinity"] and plugin.image == IMAGE
    assert plugin.user is None and plugin.workdir is None  # the image's USER (root) and WORKDIR (/workspace/bert)
    assert script.extra == plugin.extra == {}
    # the allowed differences, as they are
    assert script.name == "language_model" and plugin.name == dgx.backend.launch_spec().name
    assert script.labels == {} and set(plugin.labels) == {
        "pytest-mlperf.session",
        "pytest-mlperf.pid",
        "pytest-mlperf.host",
    }


def test_mounts_equal_mounts_txt(dgx: Launch):
    """The mounts: mounts.txt's five volumes with the README's data folders and UNITTESTDIR, and nothing else. The
    unpacked configs mount one folder twice (DATADIR and DATADIR_PHASE2 are both the 4320 training shards)."""
    _assert_the_five_volumes(dgx)


def _assert_the_five_volumes(launch: Launch) -> None:
    """The script's mounts are mounts.txt's five with the data folders, and the plugin's the same, keyed by
    container path: DATADIR and DATADIR_PHASE2 are one folder, mounted twice (a dict keyed by host path would have
    made them one mount)."""
    script, plugin = launch.script.container(), launch.engine.created()
    data = launch.backend.data_environment()
    assert script.mounts == {
        "/workspace/data": data["DATADIR"],
        "/workspace/data_phase2": data["DATADIR_PHASE2"],
        "/workspace/phase1": data["CHECKPOINTDIR_PHASE1"],
        "/workspace/evaldata": data["EVALDIR"],
        "/workspace/unit_test_data": data["UNITTESTDIR"],
    }
    assert plugin.mounts == script.mounts


def test_trial_exec_equals_run_with_docker(dgx: Launch):
    """The trial: `python -m torch.distributed.run --standalone --no_python --nproc_per_node=<DGXNGPU>
    ./run_and_time.sh` with run_with_docker.sh's --env list (the names the config file exports in a clean bash,
    and SEED), each with the value the script's environment gives it; no user, working directory or privilege."""
    script, plugin = dgx.script_exec("trial"), dgx.plugin_exec("trial")
    ngpu = dgx.backend.env["DGXNGPU"]
    assert script.argv == [*TORCH_RUN, "--standalone", "--no_python", f"--nproc_per_node={ngpu}", "./run_and_time.sh"]
    assert plugin.argv == script.argv
    assert script.tty and script.interactive and not plugin.tty and not plugin.interactive  # allowed: -it
    assert sorted(plugin.env_names) == sorted(script.env_names)
    assert "SEED" in script.env_names and script.env["SEED"] == plugin.env["SEED"] == str(SEED)
    differ = {k: (script.env.get(k), plugin.env.get(k)) for k in script.env_names if script.env[k] != plugin.env[k]}
    assert not differ, (
        "the trial's environment differs (run_with_docker.sh passes the values of its own environment, where the "
        "README's command line overrides what the config exports; name: (script, plugin)): " + repr(differ)
    )
    assert exec_view(plugin) == exec_view(script)


def test_cache_clear_equals_run_with_docker(dgx: Launch):
    """Each trial drops the host's page cache (sync, then sudo /sbin/sysctl vm.drop_caches=3; sudo is a recording
    stand-in) and then logs cache_clear from the container with run_with_docker.sh's python -c code, before the
    trial's exec. The plugin's sudo is `sudo -n` (allowed: it never waits for a password; it says so in the trial's
    info instead)."""
    calls = dgx.script.calls
    sudo = [i for i, c in enumerate(calls) if c.prog == "sudo"]
    kinds = [Exec.from_cli(c).kind if c.subcommand[:1] == ["exec"] else c.prog for c in calls]
    clear, trial = kinds.index("cache_clear"), kinds.index("trial")
    assert [calls[i].argv for i in sudo] == [SYSCTL]
    assert sudo[0] < clear < trial
    assert [c.argv for c in dgx.plugin_calls if c.prog == "sudo"] == [["-n", *SYSCTL]]
    assert dgx.info.get("caches_cleared") is True
    script, plugin = dgx.script_exec("cache_clear"), dgx.plugin_exec("cache_clear")
    assert plugin.argv[:2] == script.argv[:2] == ["python", "-c"]
    assert same_program(plugin.argv[2], script.argv[2]), (plugin.argv[2], script.argv[2])
    assert {**exec_view(plugin), "argv": None} == {**exec_view(script), "argv": None}
    assert [e.kind for e in dgx.plugin_execs] == ["cache_clear", "trial"]


def test_script_only_steps(dgx: Launch):
    """What run_with_docker.sh does that the plugin does not, all allowed: `docker container rm -f language_model`
    before starting and on exit (the plugin removes only its own session's containers, found by label), and
    `docker exec -it language_model true` once the container is up (the plugin's session checks that its container
    is running before each exec instead)."""
    assert [c.argv for c in dgx.script.docker("container")] == [["container", "rm", "-f", "language_model"]] * 2
    assert [e.kind for e in dgx.script.execs()] == ["ready", "cache_clear", "trial"]
    assert [c.prog for c in dgx.script.calls if c.subcommand[:1] == ["run"]] == ["nvidia-docker"]


# ---- a30.sub: A30_1x2x224x14 -----------------------------------------------------------------------------------
# a30.sub pulls the image on every run (--pull=always); the plugin starts the image the engine has (allowed: it
# builds or finds the image before the first trial, and a tag built locally is on no registry to pull from).
ALLOWED_A30_CONTAINER = (*ALLOWED_CONTAINER, "pull")
# What a30.sub's --env-file passes beyond the plugin's names: every variable of its own environment the container
# lacks, so the README's command-line variables (CONT, the data folders, LOGDIR, NEXP), Slurm's job variables, its
# own MLPERF_HOST_OS, and the tests' RECORD (the stand-ins' record file). None of them is read in the container.
A30_EXTRA_NAMES = {
    "CONT",
    "DATADIR",
    "DATADIR_PHASE2",
    "EVALDIR",
    "CHECKPOINTDIR_PHASE1",
    "UNITTESTDIR",
    "LOGDIR",
    "NEXP",
    "MLPERF_HOST_OS",
    "RECORD",
    *SLURM_JOB,
}


def test_a30_container_equals_a30_sub(a30: Launch):
    """a30.sub's container (`docker run --gpus all --pull=always ...` with its own --volume list, docker recorded):
    the same as the plugin's with no GPUs named (a DeviceRequest for all GPUs), but for the name, labels and pull."""
    script, plugin = a30.script.container(), a30.engine.created()
    assert script.gpus == plugin.gpus == "all"
    assert script.pull == "always" and plugin.pull is None
    assert script.env == {}  # NV_GPU unset: no -e NVIDIA_VISIBLE_DEVICES
    assert script.view("mounts", *ALLOWED_A30_CONTAINER) == plugin.view("mounts", *ALLOWED_A30_CONTAINER)
    assert script.name == f"bert.{script.name.partition('.')[2]}" and script.name.partition(".")[2].isdigit()


def test_a30_mounts_equal_a30_sub(a30: Launch):
    """a30.sub's own _cont_mounts list (the same five volumes as mounts.txt) against the plugin's mounts."""
    _assert_the_five_volumes(a30)


def test_a30_trial_exec_equals_a30_sub(a30: Launch):
    """a30.sub execs `torchrun --standalone --no_python --nproc_per_node=2 ./a30-run_and_time.sh`; the plugin
    `python -m torch.distributed.run ...`: torchrun is the console script of torch.distributed.run (its entry point
    is torch.distributed.run:main), so the two are the same program with the same arguments. a30.sub's --env-file
    lists every variable its environment has and the container lacks (it asks the container with `compgen -e`; the
    stand-in answers with a representative list of the image's): the plugin's names (the config's and SEED) must be
    among them with the same values; the rest are A30_EXTRA_NAMES."""
    script, plugin = a30.script_exec("trial"), a30.plugin_exec("trial")
    assert script.argv == ["torchrun", "--standalone", "--no_python", "--nproc_per_node=2", "./a30-run_and_time.sh"]
    assert plugin.argv == [*TORCH_RUN, *script.argv[1:]]
    assert script.env_files == script.env_names  # everything came through --env-file
    assert set(plugin.env_names) <= set(script.env_names)
    assert set(script.env_names) - set(plugin.env_names) == A30_EXTRA_NAMES
    assert {k: script.env[k] for k in plugin.env_names} == plugin.env
    assert plugin.env["SEED"] == str(SEED)
    same = ("argv", "env", "env_names", "env_files")
    assert {k: v for k, v in exec_view(script).items() if k not in same} == {
        k: v for k, v in exec_view(plugin).items() if k not in same
    }
    assert not script.tty and not script.interactive  # a30.sub runs its execs without -it


def test_a30_cache_clear(a30: Launch, bert_code):
    """a30.sub drops the caches with the same sudo (recorded) and logs cache_clear with other code:
    `import mlperf_logger; mlperf_logger.log_event(...)`. The implementation's mlperf_logger.py (which the container
    imports from /workspace/bert) defines no log_event, only `mllogger`, so a30.sub's exec would fail and, under its
    `set -e`, end the trial before training. The plugin logs cache_clear with run_with_docker.sh's code for every
    config (allowed: it is the code that works with this implementation)."""
    assert [c.argv for c in a30.script.of("sudo")] == [SYSCTL]
    assert [c.argv for c in a30.plugin_calls if c.prog == "sudo"] == [["-n", *SYSCTL]]
    script, plugin = a30.script_exec("cache_clear"), a30.plugin_exec("cache_clear")
    assert "mlperf_logger.log_event(" in script.argv[2] and "mllogger.event(" in plugin.argv[2]
    logger = ast.parse((bert_code / "mlperf_logger.py").read_text())
    names = {n.name for n in logger.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {t.id for n in logger.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "log_event" not in names and "mllogger" in names
    rwd = (bert_code / "run_with_docker.sh").read_text()
    code = rwd.split('python -c "', 1)[1].split('"', 1)[0]
    assert same_program(plugin.argv[2], code)
    # a30.sub's other steps, all allowed: the readiness exec, the container's variable list for --env-file
    assert [e.kind for e in a30.script.execs()] == ["ready", "cache_clear", "compgen", "trial"]
    assert [c.argv for c in a30.script.of("sleep")] == [["30"]]
    assert [c.argv for c in a30.script.of("nvidia-smi")] == [["topo", "-m"]]


def test_a30_sub_needs_slurm_variables(bert_code, tmp_path):
    """Run outside Slurm (SLURM_JOB_ID, SLURM_JOB_NUM_NODES, SLURM_JOB_NODELIST unset), a30.sub starts the container
    but its trial dies at `echo ":::DLPAL ... ${SLURM_JOB_ID} ..."` under `set -u`: no cache drop, no training, and
    the script fails (pipefail). The plugin's docker launcher does not need them. docker and sudo are recorded."""
    backend = make_backend(bert_code, "A30_1x2x224x14", tmp_path, None)
    ran = run_script("a30.sub", bert_code, script_env(bert_code, backend, tmp_path), tmp_path)
    assert ran.returncode != 0
    assert "SLURM_JOB_ID: unbound variable" in ran.stdout  # the trial's output goes through `|& tee` to stdout
    assert [e.kind for e in ran.execs()] == ["ready"]
    assert ran.of("sudo") == []


# ---- what the scripts do with a variable unset -------------------------------------------------------------------
def test_unittestdir_unset(bert_code, tmp_path, monkeypatch):
    """UNITTESTDIR unset: run_with_docker.sh's envsubst leaves the mount source empty and the script goes on to
    `nvidia-docker run ... --volume=:/workspace/unit_test_data` (recorded; recent docker CLIs refuse it as `invalid
    spec: :/workspace/unit_test_data: empty section between colons`, older ones mounted an anonymous volume there);
    a30.sub stops at its mount list (`set -u`: unbound variable) before starting anything. The plugin mounts an empty
    folder beside the data instead (<data>/unit_test; the unit tests read it only with UNITTEST=1)."""
    monkeypatch.delenv("UNITTESTDIR", raising=False)
    backend = make_backend(bert_code, "1x8x56x1", tmp_path, tuple(range(8)))
    env = script_env(bert_code, backend, tmp_path, NV_GPU=ALL_8)
    env.pop("UNITTESTDIR")
    ran = run_script("run_with_docker.sh", bert_code, env, tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    (run,) = ran.docker("run")
    assert "--volume=:/workspace/unit_test_data" in run.argv
    assert ran.container().mounts["/workspace/unit_test_data"] == ""

    a30_backend = make_backend(bert_code, "A30_1x2x224x14", tmp_path / "a30", None)
    a30_env = script_env(bert_code, a30_backend, tmp_path / "a30", **SLURM_JOB)
    a30_env.pop("UNITTESTDIR")
    a30_ran = run_script("a30.sub", bert_code, a30_env, tmp_path / "a30")
    assert a30_ran.returncode != 0 and "UNITTESTDIR: unbound variable" in a30_ran.stderr
    assert a30_ran.docker("run") == []

    unit = tmp_path / "data" / "unit_test"
    assert backend.data_environment()["UNITTESTDIR"] == str(unit) and unit.is_dir()
    mounts = sdk_container(backend.launch_spec().run_kwargs("sid")).mounts
    assert mounts["/workspace/unit_test_data"] == str(unit)


def test_no_gpus_named(bert_code, tmp_path):
    """1x8x56x1 with neither NV_GPU nor CUDA_VISIBLE_DEVICES (its config exports no CUDA_VISIBLE_DEVICES):
    run_with_docker.sh stops at `: "${NV_GPU:="${CUDA_VISIBLE_DEVICES}"}"` under `set -u` (unbound variable)
    before any docker call. The plugin, given no GPUs, asks for all of them (a DeviceRequest with Count -1, what
    `--gpus all` asks for): on an 8-GPU DGX A100 the same GPUs as NV_GPU=0,...,7 (allowed difference)."""
    backend = make_backend(bert_code, "1x8x56x1", tmp_path, None)
    env = script_env(bert_code, backend, tmp_path)
    assert "NV_GPU" not in env and "CUDA_VISIBLE_DEVICES" not in env
    ran = run_script("run_with_docker.sh", bert_code, env, tmp_path)
    assert ran.returncode == 1
    assert "CUDA_VISIBLE_DEVICES: unbound variable" in ran.stderr
    assert ran.calls == []
    assert backend.gpus is None
    assert sdk_container(backend.launch_spec().run_kwargs("sid")).gpus == "all"
