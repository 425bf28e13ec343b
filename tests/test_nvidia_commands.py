"""The commands the nvidia backend hands NVIDIA's v2.0 code, checked against that code itself.

NVIDIA's tree is read from ../shared/upstream/inference_results_v2.0/closed/NVIDIA (or $PYTEST_MLPERF_SHARED), and
nothing is written into it. Three things are checked:

1. NVIDIA's own argument parsing (code/main.py's parser built from code/common/fields.py's MainArgs, and the
   overrides of code/common/arguments.py that its handlers apply) takes every RUN_ARGS the backend builds, for
   every case of every SKU in both power settings, and reads back what was meant (tests/nvidia_argcheck.py runs
   it in a child Python; see its docstring for the one stand-in, code.common.systems.system_list).
2. `make -n` with NVIDIA's real Makefile prints, for the backend's own make calls (recorded from the backend
   itself, its container or Jetson runner replaced by a recorder), the commands meant: main.py with our exact
   RUN_ARGS, our log folder, the one benchmark's data scripts, the scratch links; on Jetson no container.
3. The container the backend asks the Docker SDK for matches the one `make -n launch_docker` would start, but for
   a listed set of flags the plugin leaves out on purpose.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import shared_dir
from pytest_mlperf.backends import BackendUnavailable, nvidia_inference
from pytest_mlperf.backends.nvidia_inference import (
    SCRATCH_DIRS,
    NvidiaInferenceBackend,
    StepFailed,
    default_image,
    run_args,
    target_qps,
)
from pytest_mlperf.catalog import load
from pytest_mlperf.machine.native import NativeRunner

SHARED = shared_dir()
TREE = (SHARED / "upstream" / "inference_results_v2.0" / "closed" / "NVIDIA").resolve() if SHARED else None
pytestmark = pytest.mark.skipif(
    TREE is None or not (TREE / "Makefile").is_file() or not (TREE / "code" / "main.py").is_file(),
    reason="NVIDIA's v2.0 tree (closed/NVIDIA with Makefile and code/main.py) not found: set PYTEST_MLPERF_SHARED "
    "to the folder holding upstream/inference_results_v2.0 (looked in $PYTEST_MLPERF_SHARED and ../shared)",
)
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed here")

HELPER = Path(__file__).with_name("nvidia_argcheck.py")
CATALOG = load()
SKUS = list(CATALOG.systems)
MODELS = sorted({bench.model for bench in CATALOG.benchmarks.values()})
QPS = (25800, 1000000)
LEVEL_TARGET = {"99": 0.99, "99.9": 0.999}  # MLPerf's 99% / 99.9% of FP32 accuracy
LOG_FOLDER = re.compile(r"/[^\s=\"']*/build/logs/\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}")
CLOCK_FILES = ("/etc/localtime", "/etc/timezone")


def all_cases():
    return [case for sku in SKUS for case in CATALOG.inference_cases(sku, powers=("MaxP", "MaxQ"))]


def container_log_dir() -> str:
    """D as the backend names it in the container: /work/build/logs/<NVIDIA's TIMESTAMP format>."""
    return "/work/build/logs/" + time.strftime("%Y.%m.%d-%H.%M.%S")


def first(cases, **where):
    return next(c for c in cases if all(getattr(c, k, None) == v for k, v in where.items()))


# ---- 1. NVIDIA's argument parsing --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def argcheck(tmp_path_factory):
    """Argument lists (what follows `python3 code/main.py`) -> what NVIDIA's code made of each."""
    folder = tmp_path_factory.mktemp("argcheck")

    def check(argvs: list[list[str]]) -> list[dict]:
        requests, results = folder / "requests.json", folder / "results.json"
        requests.write_text(json.dumps(argvs))
        env = {k: v for k, v in os.environ.items() if k not in ("LOG_DIR", "PYTHONPATH", "PYTHONHOME")}
        env.update(OUTSIDE_MLPINF_ENV="1", PYTHONDONTWRITEBYTECODE="1")  # no TensorRT import; no .pyc in the tree
        proc = subprocess.run(
            [sys.executable, str(HELPER), str(requests), str(results)],
            cwd=TREE,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{HELPER.name} failed:\n{proc.stderr[-4000:]}"
        answers = json.loads(results.read_text())
        assert [a["argv"] for a in answers] == argvs
        return answers

    return check


def requests_for(case, log_dir: str) -> list[tuple[list[str], dict]]:
    """The backend's RUN_ARGS for the case: run_harness (fast or not; every target QPS, which only a Server case
    takes) and generate_engines, each with what NVIDIA must read back."""
    out = []
    for fast in (True, False):
        for qps in (None, *QPS):
            args = run_args(case, log_dir=log_dir, fast=fast, server_target_qps=target_qps(qps))
            expect = {
                "action": "run_harness",
                "test_mode": case.mode,
                "log_dir": log_dir,
                "fast": fast,
                "server_target_qps": qps if case.scenario.name == "Server" else None,
            }
            out.append((shlex.split(args) + ["--action=run_harness"], expect))
    args = run_args(case, log_dir="", fast=False, server_target_qps=None)
    out.append((shlex.split(args) + ["--action=generate_engines"], {"action": "generate_engines"}))
    return out


def mismatches(case, expect: dict, answer: dict) -> list[str]:
    """How NVIDIA's reading of one argument list differs from the case (empty: none)."""
    if answer["main_error"]:
        return [f"main.py's parser refused it: {answer['main_error']}"]
    main, over = answer["main"], answer["overrides"]
    wanted = {
        "action": expect["action"],
        "benchmark": case.benchmark.model,
        "scenario": case.scenario.name,
        "harness_type": case.harness,
        "accuracy_target": LEVEL_TARGET[case.benchmark.level],
        "power_setting": case.power,
        "config_ver": None,
    }
    out = [f"{key}: NVIDIA read {main[key]!r}, meant {value!r}" for key, value in wanted.items() if main[key] != value]
    if over["error"]:
        out.append(f"the overrides {expect['action']} applies refused it: {over['error']}")
        return out
    for key in ("test_mode", "log_dir", "fast", "server_target_qps"):
        if key in expect and over[key] != expect[key]:
            out.append(f"{key}: NVIDIA read {over[key]!r}, meant {expect[key]!r}")
    if expect.get("server_target_qps") is not None and over["server_target_qps_type"] != "int":
        out.append(f"server_target_qps read as {over['server_target_qps_type']}, not int")
    if expect["action"] == "run_harness" and over["print_harness_result_log_dir"] != expect["log_dir"]:
        out.append(f"print_harness_result.py reads log_dir {over['print_harness_result_log_dir']!r}")
    return out


def test_nvidia_parses_every_run_args_the_backend_builds(argcheck):
    cases, log_dir = all_cases(), container_log_dir()
    assert {c.sku for c in cases} == set(SKUS)
    assert {c.power for c in cases} == {"MaxP", "MaxQ"} and any(c.scenario.name == "Server" for c in cases)
    todo: dict[tuple[str, ...], list] = {}
    for case in cases:
        for argv, expect in requests_for(case, log_dir):
            todo.setdefault(tuple(argv), []).append((case, expect))
    answers = argcheck([list(argv) for argv in todo])
    problems = []
    for (argv, uses), answer in zip(todo.items(), answers, strict=True):
        for case, expect in uses:
            problems += [f"{case.sku} {case.id}: {' '.join(argv)}: {p}" for p in mismatches(case, expect, answer)]
    assert not problems, f"{len(problems)} problems; the first 20:\n" + "\n".join(problems[:20])


def test_fractional_or_exponent_qps_would_be_refused(argcheck):
    """The old bug: --server_target_qps written as a float (1234.5, or f'{1e6:g}' = 1e+06) is refused by NVIDIA's
    parser (type=int), so the test above would catch it; the backend now refuses the first and writes the
    second in digits."""
    case = first(all_cases(), mode="PerformanceOnly", scenario=CATALOG.scenario("Server"))
    base = shlex.split(run_args(case, log_dir=container_log_dir(), fast=True, server_target_qps=None))
    values = ("1234.5", "1e+06", "1000000")
    fraction, exponent, digits = argcheck([base + [f"--server_target_qps={v}", "--action=run_harness"] for v in values])
    assert "invalid int value: '1234.5'" in (fraction["overrides"]["error"] or "")
    assert "invalid int value: '1e+06'" in (exponent["overrides"]["error"] or "")
    assert digits["overrides"]["error"] is None and digits["overrides"]["server_target_qps"] == 1000000
    with pytest.raises(BackendUnavailable, match="whole number"):
        target_qps(1234.5)
    assert target_qps(1e6) == 1000000 and type(target_qps(1e6)) is int
    words = shlex.split(run_args(case, log_dir="/work/build/logs/x", fast=False, server_target_qps=target_qps(1e6)))
    assert "--server_target_qps=1000000" in words


def test_legacy_config_ver_would_override_the_workload(argcheck):
    """The old bug: with --config_ver=default, main.py's main() takes the workload from
    config_ver_to_workload_setting (constants.py), not from --harness_type/--accuracy_target/--power_setting:
    bert would run the custom harness for --harness_type=lwis, MaxP for a MaxQ case, 99% for a 99.9% one. The
    test above asserts config_ver stays unset, so it would catch the flag coming back."""
    cases, log_dir = all_cases(), container_log_dir()
    bert = first(cases, benchmark=CATALOG.benchmark("bert-99"))
    lwis = shlex.split(run_args(bert, log_dir=log_dir, fast=False, server_target_qps=None))
    lwis = [w for w in lwis if not w.startswith("--harness_type=")] + ["--harness_type=lwis"]
    maxq = shlex.split(run_args(first(cases, power="MaxQ"), log_dir=log_dir, fast=False, server_target_qps=None))
    high = first(cases, benchmark=CATALOG.benchmark("bert-99.9"))
    high = shlex.split(run_args(high, log_dir=log_dir, fast=False, server_target_qps=None))
    legacy = ["--config_ver=default", "--action=run_harness"]
    by_lwis, by_maxq, by_high = (a["main"] for a in argcheck([lwis + legacy, maxq + legacy, high + legacy]))
    assert by_lwis["benchmark"] == "bert" and by_lwis["harness_type"] == "lwis"
    assert [w["harness_type"] for w in by_lwis["config_ver_workloads"]] == ["custom"]
    assert by_maxq["power_setting"] == "MaxQ"
    assert [w["power_setting"] for w in by_maxq["config_ver_workloads"]] == ["MaxP"]
    assert by_high["accuracy_target"] == 0.999
    assert [w["accuracy_target"] for w in by_high["config_ver_workloads"]] == [0.99]


# ---- 2. make -n with NVIDIA's Makefile ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Path:
    """A folder put first on PATH for make, with what NVIDIA's machines have and this one lacks: `nvidia-smi`
    printing a 510 driver (the Makefile's driver check needs >= 510), and `curl` failing as offline (the
    Makefile's check_intranet.sh would otherwise reach for gitlab-master.nvidia.com)."""
    folder = tmp_path_factory.mktemp("stand-ins")
    tools = {
        "nvidia-smi": 'echo "| NVIDIA-SMI 510.47.03    Driver Version: 510.47.03    CUDA Version: 11.6     |"\n',
        "curl": "exit 6\n",
    }
    for name, body in tools.items():
        (folder / name).write_text("#!/bin/sh\n" + body)
        (folder / name).chmod(0o755)
    return folder


def platform_vars(system) -> list[str]:
    """ARCH and SYSTEM_NAME as the Makefile computes them on the SKU's machine: ARCH from `uname -p`, which says
    'unknown' on Debian (NVIDIA's container is Ubuntu: x86_64; a Jetson is aarch64), SYSTEM_NAME from
    scripts/get_system_id.py, which prints KnownSystem.<name> (the Makefile reads it only on aarch64)."""
    arch = "aarch64" if system.gpu.integrated else "x86_64"
    return [f"ARCH={arch}", f"SYSTEM_NAME=KnownSystem.{system.known_system}"]


def make_n(stand_ins: Path, args: list[str], env: dict[str, str]) -> str:
    """`make -n -C <tree> ARGS PYTHON3_CMD=python3` (the container's python3 is 3.8, which the Makefile looks
    for; make -n writes nothing), in the tree as a shell there would be (PWD), with the stand-ins first on PATH,
    no .pyc written, and env: what the backend's container or Jetson runner sets (MLPERF_SCRATCH_PATH, ...)."""
    environ = {
        "PATH": f"{stand_ins}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "PWD": str(TREE),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    proc = subprocess.run(
        ["make", "-n", "-C", str(TREE), *args, "PYTHON3_CMD=python3"],
        cwd=TREE,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"make -n {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


class Recorder:
    """In place of the backend's container (or Jetson runner): keeps each argument list, answers success."""

    def __init__(self, calls: list[list[str]]):
        self.calls = calls

    def exec(self, argv, log, **_):
        self.calls.append(list(argv))
        return 0

    def stop(self):
        pass


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """sku -> the backend on a checkout of links to the tree's entries (its stamps and log folders go there,
    never into the tree), its make calls recorded, and the environment its real session gives them."""
    monkeypatch.setattr(nvidia_inference, "gpu_locks", lambda keys, exclusive: contextlib.nullcontext())
    monkeypatch.setattr(nvidia_inference, "engine", lambda *args, **kwargs: None)  # no Docker engine is asked

    def build(sku: str, **options) -> SimpleNamespace:
        root = Path(tempfile.mkdtemp(dir=tmp_path))
        code, scratch = root / "closed-NVIDIA", root / "scratch"
        code.mkdir()
        scratch.mkdir()
        for entry in TREE.iterdir():
            (code / entry.name).symlink_to(entry)
        backend = NvidiaInferenceBackend(
            CATALOG,
            code_dir=code,
            scratch_dir=scratch,
            image=None,
            output=root / "out",
            system=CATALOG.system(sku),
            powers=("MaxP", "MaxQ"),
            **options,
        )
        real = backend.session()
        environment = real.environment if isinstance(real, NativeRunner) else real.spec.base_environment()
        calls: list[list[str]] = []
        recorder = Recorder(calls)
        monkeypatch.setattr(backend, "session", lambda: recorder)
        return SimpleNamespace(backend=backend, calls=calls, environment=environment, root=root, scratch=scratch)

    return build


def showcase(cases):
    """A case with every optional word: a Server performance case (fast, target QPS) if any, else a performance
    case."""
    performance = [c for c in cases if c.mode == "PerformanceOnly"]
    return ([c for c in performance if c.scenario.name == "Server"] or performance)[0]


def assert_main_line(out: str, args: str, action: str, tee: str | None = None) -> None:
    """The one main.py line: `python3 code/main.py <RUN_ARGS> --action="<action>"` (piped into tee), and the words
    bash hands main.py are exactly RUN_ARGS's."""
    tail = f" 2>&1 | tee {tee}" if tee else ""
    lines = [line for line in out.splitlines() if "code/main.py" in line]
    assert len(lines) == 1 and lines[0].endswith(f'python3 code/main.py {args} --action="{action}"{tail}'), lines
    command = lines[0].split(" && ")[-1].split(" 2>&1 | ")[0]
    assert shlex.split(command) == ["python3", "code/main.py", *shlex.split(args), f"--action={action}"]


@needs_make
@pytest.mark.parametrize("sku", SKUS)
def test_make_runs_main_py_with_our_run_args_and_log_dir(sku, recorded, stand_ins):
    system = CATALOG.system(sku)
    run = recorded(sku, fast=True, server_target_qps=float(QPS[0]))
    case = showcase(run.backend.cases("inference", []))
    with pytest.raises(StepFailed, match="left no logs"):  # nothing really ran
        run.backend.run(case, run.root / "work")
    assert all(argv[0] == "make" for argv in run.calls) and run.calls[-1][1] == "run_harness"
    steps = {argv[1]: argv[2:] for argv in run.calls}
    # link_dirs ran once under its stamp: make takes it as done (its ln -sfn races with itself across workers)
    assert steps["link_dirs"] == [] and all(
        words[0] == "--old-file=link_dirs" for t, words in steps.items() if t != "link_dirs"
    )
    variables = dict(word.split("=", 1) for word in steps["run_harness"][1:])
    assert set(variables) == {"RUN_ARGS", "LOG_DIR"}
    log_dir, args = variables["LOG_DIR"], variables["RUN_ARGS"]
    assert LOG_FOLDER.fullmatch(log_dir) and log_dir.rsplit("/", 1)[0] == run.backend.log_root()[1]
    assert args == run_args(case, log_dir=log_dir, fast=True, server_target_qps=QPS[0])

    out = make_n(stand_ins, ["run_harness", *steps["run_harness"], *platform_vars(system)], run.environment)
    assert f"mkdir -p {log_dir}" in out.splitlines()
    assert_main_line(out, args, "run_harness", tee=f"{log_dir}/stdout.txt")
    assert f"python3 scripts/print_harness_result.py {args} 2>&1 | tee -a {log_dir}/stdout.txt" in out
    assert set(LOG_FOLDER.findall(out)) == {log_dir}, "a log folder other than ours"

    engines = steps["generate_engines"]
    assert engines == [
        "--old-file=link_dirs",
        f"RUN_ARGS={run_args(case, log_dir='', fast=False, server_target_qps=None)}",
    ]
    out = make_n(stand_ins, ["generate_engines", *engines, *platform_vars(system)], run.environment)
    assert_main_line(out, engines[1].split("=", 1)[1], "generate_engines")
    assert "ln -sfn" not in out  # link_dirs is not remade


@needs_make
def test_without_log_dir_make_would_pick_its_own_folder(stand_ins, tmp_path):
    """So the test above can fail: without LOG_DIR the Makefile logs into build/logs/<its TIMESTAMP>."""
    case, log_dir = showcase(all_cases()), container_log_dir()
    args = run_args(case, log_dir=log_dir, fast=False, server_target_qps=None)
    out = make_n(stand_ins, ["run_harness", f"RUN_ARGS={args}", "ARCH=x86_64"], {"MLPERF_SCRATCH_PATH": str(tmp_path)})
    theirs = set(LOG_FOLDER.findall(out)) - {log_dir}  # RUN_ARGS's --log_dir still names ours
    assert len(theirs) == 1 and next(iter(theirs)).startswith(f"{TREE}/build/logs/")
    assert f"| tee {next(iter(theirs))}/stdout.txt" in out


SCRIPTS = {
    "download_model": "download_model.sh",
    "download_data": "download_data.sh",
    "preprocess_data": "preprocess_data.py",
}
SCRIPT = re.compile(r"code/([^/\s]+)/tensorrt/(download_model\.sh|download_data\.sh|preprocess_data\.py)")


@needs_make
@pytest.mark.parametrize("model", MODELS)
def test_data_steps_run_that_benchmarks_scripts_only(model, recorded, stand_ins):
    case = first(all_cases(), benchmark=next(b for b in CATALOG.benchmarks.values() if b.model == model))
    run = recorded(case.sku)
    run.backend.prepare_data(model)
    assert [argv[1] for argv in run.calls] == list(SCRIPTS)
    for argv in run.calls:
        assert argv[2:] == ["--old-file=link_dirs", f"BENCHMARKS={model}"]
        out = make_n(stand_ins, [*argv[1:], *platform_vars(CATALOG.system(case.sku))], run.environment)
        assert SCRIPT.findall(out) == [(model, SCRIPTS[argv[1]])], out
        assert (TREE / "code" / model / "tensorrt" / SCRIPTS[argv[1]]).is_file()
        if argv[1] == "preprocess_data":
            scratch = run.environment["MLPERF_SCRATCH_PATH"]
            assert f"--data_dir={scratch}/data --preprocessed_data_dir={scratch}/preprocessed_data" in out
    everything = make_n(stand_ins, ["download_model", "ARCH=x86_64"], run.environment)
    assert {found for found, _ in SCRIPT.findall(everything)} > {model}, "without BENCHMARKS: every benchmark"


@needs_make
def test_link_dirs_links_the_scratch_folders(recorded, stand_ins):
    run = recorded(SKUS[0])
    run.backend.setup()
    assert [argv[1:] for argv in run.calls] == [["link_dirs"], ["build", "--old-file=link_dirs"]]
    out = make_n(stand_ins, ["link_dirs", "ARCH=x86_64"], run.environment)
    scratch = run.environment["MLPERF_SCRATCH_PATH"]
    assert scratch == str(run.scratch.resolve())
    links = {tuple(line.split()[2:]) for line in out.splitlines() if line.startswith("ln -sfn ")}
    assert links == {(f"{scratch}/{name}", f"{TREE}/build/{name}") for name in SCRATCH_DIRS}
    assert {f"mkdir -p {scratch}/{name}" for name in SCRATCH_DIRS} <= set(out.splitlines())


def docker_command(out: str) -> str | None:
    """The `docker run` (or nvidia-docker run) command make printed, continuation lines joined."""
    lines = [line for line in out.splitlines() if not line.startswith("make: ")]
    starts = [i for i, line in enumerate(lines) if re.match(r"(nvidia-)?docker run\b", line)]
    return "\n".join(lines[starts[0] :]).replace("\\\n", " ") if starts else None


@needs_make
@pytest.mark.parametrize("sku", SKUS)
def test_native_exactly_where_make_has_no_container(sku, recorded, stand_ins):
    """On aarch64 NVIDIA's Makefile sets SUPPORT_DOCKER=0 for SYSTEM_NAMEs naming Xavier or Orin (what
    scripts/get_system_id.py prints there): launch_docker prints no docker command. The backend runs natively
    exactly for those SKUs (and for the others a docker command is printed, so this can fail)."""
    system = CATALOG.system(sku)
    run = recorded(sku)
    args = ["launch_docker", "DOCKER_COMMAND=true", "ARCH=aarch64", f"SYSTEM_NAME=KnownSystem.{system.known_system}"]
    out = make_n(stand_ins, args, run.environment)
    assert run.backend.native == (docker_command(out) is None), out
    if system.gpu.integrated:
        assert run.backend.native and [line for line in out.splitlines() if not line.startswith("make: ")] == []


# ---- 3. the container against `make -n launch_docker` --------------------------------------------------------------

VALUE_FLAGS = {"-w", "-v", "-e", "-h", "--cap-add", "--security-opt", "--name", "--add-host", "--cpuset-cpus"}
VALUE_FLAGS |= {"--user", "--net", "--network", "--device", "--ulimit", "--gpus", "--shm-size"}


def add_flag(features: dict[str, str], life: dict, flag: str, value: str) -> None:
    """One docker run flag as a (slot -> value) feature, the slots named as the flags are."""
    from docker.utils import parse_bytes

    if flag == "-v":
        host, inside, *mode = value.split(":")
        features[f"-v {posixpath.normpath(inside)}"] = f"{host}:{mode[0] if mode else 'rw'}"
    elif flag == "-e":
        key, _, val = value.partition("=")
        features[f"-e {key}"] = val
    elif flag in ("--cap-add", "--security-opt", "--device"):
        features[f"{flag} {value}"] = ""
    elif flag == "--ulimit":
        name, _, limits = value.partition("=")
        features[f"--ulimit {name}"] = limits if ":" in limits else f"{limits}:{limits}"
    elif flag == "--shm-size":
        features[flag] = str(parse_bytes(value))
    elif flag == "--gpus":
        features["gpus"] = "requested"
    elif flag in ("--rm", "--name"):
        life[flag] = value or True
    else:
        features["--net" if flag == "--network" else flag] = value


def docker_run_features(command: str) -> tuple[dict[str, str], dict]:
    words = shlex.split(command)
    head = words.index("run")
    features: dict[str, str] = {"gpus": "requested"} if words[head - 1] == "nvidia-docker" else {}
    life: dict = {"--rm": False, "--name": None}
    rest, i = words[head + 1 :], 0
    while rest[i].startswith("-"):
        flag, equals, value = rest[i].partition("=")
        if flag in VALUE_FLAGS and not equals:
            i += 1
            value = rest[i]
        add_flag(features, life, flag, value)
        i += 1
    life["image"], life["command"] = rest[i], rest[i + 1 :]
    return features, life


def sdk_features(kwargs: dict) -> dict[str, str]:
    """The Docker SDK's containers.run keyword arguments as the same features."""
    from docker.utils import parse_bytes

    features = {
        "-w": kwargs["working_dir"],
        "--net": kwargs["network_mode"],
        "--user": kwargs["user"],
        "--shm-size": str(parse_bytes(kwargs["shm_size"])),
    }
    for host, mount in kwargs["volumes"].items():
        features[f"-v {posixpath.normpath(mount['bind'])}"] = f"{host}:{mount['mode']}"
    features.update({f"-e {key}": value for key, value in kwargs["environment"].items()})
    features.update({f"--cap-add {cap}": "" for cap in kwargs.get("cap_add", [])})
    features.update({f"--security-opt {opt}": "" for opt in kwargs.get("security_opt", [])})
    features.update({f"--ulimit {u['Name']}": f"{u['Soft']}:{u['Hard']}" for u in kwargs.get("ulimits", [])})
    if kwargs.get("device_requests"):
        features["gpus"] = "requested"
    if kwargs.get("init"):
        features["--init"] = ""
    return features


def left_out_on_purpose() -> set[str]:
    """launch_docker's flags the plugin does not copy, deliberately: -it (interactive; only without
    DOCKER_COMMAND), the $HOME mount at /mnt/$HOME and HISTFILE in it (a shell's history), -h (hostname: with
    --net host the container keeps the host's, so the Makefile's HOST_HOSTNAME fallback gives the same name
    that launch_docker's -e HOST_HOSTNAME passes, hence no HOST_HOSTNAME either), --add-host for that hostname,
    --cpuset-cpus (the caller's CPU affinity), --device /dev/fuse, and --security-opt apparmor=unconfined; and
    a clock file that does not exist on this machine (the plugin mounts /etc/localtime and /etc/timezone only
    when present). Lifecycle flags are compared apart: --rm (the plugin removes its container itself), --name
    (one per session), the image and the command (`sleep infinity`, then execs). NVIDIA-internal DOCKER_MOUNTS
    (/home/scratch.*, ../../regression) exist only on NVIDIA's machines."""
    home = os.environ.get("HOME", "/root")
    keys = {f"-v {posixpath.normpath('/mnt/' + home)}", "-e HISTFILE", "-h", "--add-host", "--cpuset-cpus"}
    keys |= {"--device /dev/fuse", "--security-opt apparmor=unconfined", "-e HOST_HOSTNAME"}
    return keys | {f"-v {path}" for path in CLOCK_FILES if not os.path.exists(path)}


# What the plugin adds: an unlimited memlock ulimit (NVIDIA's launch_inferentia_docker has it; launch_docker does
# not), and an init process (so stopping the container does not wait on a shell that ignores SIGTERM).
PLUGIN_ONLY = {"--ulimit memlock", "--init"}


@pytest.fixture
def launch_spec_kwargs(tmp_path, monkeypatch) -> tuple[dict, Path]:
    """The Docker SDK arguments of the container the backend starts (its own LaunchSpec, gpus=(0, 3))."""
    monkeypatch.setattr(nvidia_inference, "engine", lambda *args, **kwargs: None)
    backend = NvidiaInferenceBackend(
        CATALOG, code_dir=TREE, scratch_dir=tmp_path, image=None, system=CATALOG.system(SKUS[0]), gpus=(0, 3)
    )
    spec = backend.session().spec
    assert (spec.profile, spec.clock, spec.code_dir, spec.gpus) == ("nvidia", True, TREE, (0, 3))
    return spec.run_kwargs("x"), backend.scratch


@needs_make
def test_container_matches_launch_docker(launch_spec_kwargs, stand_ins):
    kwargs, scratch = launch_spec_kwargs
    env = {"MLPERF_SCRATCH_PATH": str(scratch)}
    args = ["launch_docker", "DOCKER_COMMAND=true", "NVIDIA_VISIBLE_DEVICES=0,3", "ARCH=x86_64"]
    nvidia, life = docker_run_features(docker_command(make_n(stand_ins, args, env)))
    ours = sdk_features(kwargs)

    assert kwargs["working_dir"] == nvidia["-w"] == "/work"
    assert kwargs["volumes"][str(TREE)] == {"bind": "/work", "mode": "rw"} and nvidia["-v /work"] == f"{TREE}:rw"
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == nvidia["-e NVIDIA_VISIBLE_DEVICES"] == "0,3"
    assert [r["DeviceIDs"] for r in kwargs["device_requests"]] == [["0", "3"]]
    assert {"SYS_ADMIN", "SYS_TIME"} <= set(kwargs["cap_add"])
    assert ours["--shm-size"] == nvidia["--shm-size"] == str(32 * 1024**3)
    for path in (p for p in CLOCK_FILES if os.path.exists(p)):
        assert kwargs["volumes"][path] == {"bind": path, "mode": "ro"} and nvidia[f"-v {path}"] == f"{path}:ro"
    assert "seccomp=unconfined" in kwargs["security_opt"] and kwargs["network_mode"] == nvidia["--net"] == "host"
    assert kwargs["user"] == nvidia["--user"] == f"{os.getuid()}:{os.getgid()}"
    assert kwargs["volumes"][str(scratch)] == {"bind": str(scratch), "mode": "rw"}
    assert kwargs["environment"]["MLPERF_SCRATCH_PATH"] == nvidia["-e MLPERF_SCRATCH_PATH"] == str(scratch)

    differ = {key: (nvidia[key], ours[key]) for key in nvidia.keys() & ours.keys() if nvidia[key] != ours[key]}
    assert differ == {}
    assert nvidia.keys() - ours.keys() == left_out_on_purpose()
    assert ours.keys() - nvidia.keys() == PLUGIN_ONLY
    assert life["--rm"] is True and life["command"] == ["true"] and kwargs["command"] == ["sleep", "infinity"]
    if platform.machine() == "x86_64":
        assert life["image"] == default_image() == kwargs["image"]

    interactive, life = docker_run_features(docker_command(make_n(stand_ins, args[:1] + args[2:], env)))
    assert interactive.keys() - nvidia.keys() == {"-it"} and life["command"] == []
