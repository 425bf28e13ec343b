"""What this repository's own test runs need: pytester, and where the shared fixture logs are.

The published MLPerf logs live in a `shared/` folder beside the checkout (never copied into it). Point
PYTEST_MLPERF_SHARED at it elsewhere; tests that need it skip, saying so, when it is absent.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent
TESTS = ROOT / "tests"


def _keep_bytecode() -> None:
    """Let the tests' many child interpreters (pytest runs, the CLI, NVIDIA's scripts) reuse compiled bytecode.
    With PYTHONDONTWRITEBYTECODE set (as on the CI machines), each child pytest recompiled and re-rewrote the
    plugin's modules: 0.87 s a start against 0.53 s with a cache. The cache goes under a prefix in the temporary
    folder, never beside the sources (../shared is read-only to the tests: shared_stays_untouched)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    prefix = os.path.join(tempfile.gettempdir(), f"pytest-mlperf-pycache-{os.getuid()}")
    os.makedirs(os.environ.setdefault("PYTHONPYCACHEPREFIX", prefix), exist_ok=True)


_keep_bytecode()


CHILD_OPTS = "-p no:hypothesispytest"  # what a child pytest run of the suites can do without (_lighter_children)
# What a test's users' project leaves out unless the test asks for it: mlperf-logging's checker on every training
# trial (a child interpreter each, 200 a test run); the tests that read its findings name --mlperf-compliance.
PROJECT_OPTS = f"--strict-markers -p no:cacheprovider --mlperf-compliance=off {CHILD_OPTS}"


def _lighter_children() -> None:
    """The tests' child pytest runs run the suites, never a Hypothesis test; Hypothesis's own pytest plugin still
    imports the whole of Hypothesis at their terminal summary (0.27 s of a child's 1.3 s, a few hundred children a
    test run). Children are started without it, through the environment they inherit; set where the tests run (an
    xdist worker, or a run without workers), never in the xdist controller, whose workers read PYTEST_ADDOPTS
    again and run this repository's Hypothesis tests. A test that gives a child an environment of its own keeps or
    drops this as it sees fit."""
    words = os.environ.get("PYTEST_ADDOPTS", "")
    if CHILD_OPTS not in words:
        os.environ["PYTEST_ADDOPTS"] = f"{words} {CHILD_OPTS}".strip()


# ---- the test run under pytest-xdist: tests that need the machine to themselves --------------------------------
def pytest_configure(config):
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        _lighter_children()
    config.addinivalue_line(
        "markers",
        "alone: the test reads the whole machine's load (/proc), or its figures hold only on an idle machine, so it "
        "runs while no other test runs; under pytest-xdist it waits for running tests, and none start meanwhile",
    )
    config.addinivalue_line(
        "markers",
        "quiet: the test's figures come from child processes that mostly sleep and hold only with no busy test "
        "beside them; under pytest-xdist it runs beside other quiet tests only (the run starts them together)",
    )
    config.addinivalue_line(
        "markers",
        "timing: the test's verdict depends on how fast this machine runs a model; under pytest-xdist its worker "
        "runs it at a raised CPU priority (children included), so the other workers' tests yield to it",
    )


def _kind(item) -> str:
    for kind in ("alone", "quiet"):
        if item.get_closest_marker(kind) is not None:
            return kind
    return "shared"


def _chunk_starts(count: int, workers: int) -> list[int]:
    """Where each worker's first test is in the collection: pytest-xdist's worksteal scheduler hands the workers
    contiguous runs of it, each len(rest) // (workers left) long. Another split only costs time (the quiet tests
    then wait for each other), never a wrong result: the turnstile below is what keeps tests apart."""
    starts, start = [], 0
    for left in range(workers, 0, -1):
        starts.append(start)
        start += (count - start) // left
    return starts


def pytest_collection_modifyitems(config, items):
    """Alone and quiet tests first, quiet ones at the heads of the workers' shares of the run, so that they start
    together and their waits overlap instead of adding up (the order is the same on every worker)."""
    kinds = {item.nodeid: _kind(item) for item in items}
    quiet = [item for item in items if kinds[item.nodeid] == "quiet"]
    rest = [item for item in items if kinds[item.nodeid] != "quiet"]
    rest.sort(key=lambda item: kinds[item.nodeid] != "alone")
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    heads = _chunk_starts(len(items), workers)
    ordered: list = []
    for head in heads:
        while len(ordered) < head and rest:
            ordered.append(rest.pop(0))
        if quiet:
            ordered.append(quiet.pop(0))
    items[:] = ordered + quiet + rest


def _turnstile_dir(config) -> Path | None:
    """The folder all workers of this run share (the controller's basetemp), or None outside pytest-xdist."""
    workerinput = getattr(config, "workerinput", None)
    basetemp = getattr(config.option, "basetemp", None)
    if workerinput is None or not basetemp:
        return None
    return Path(basetemp).resolve().parent


def _may_enter(kind: str, running: set[str], waiting: set[str]) -> bool:
    """Who may start beside whom: an alone test with nothing running; a quiet test beside quiet ones while no
    alone test waits; the rest beside each other while no alone or quiet test waits (so a waiting test is never
    starved by new arrivals: there are few of them, and they come first)."""
    if kind == "alone":
        return not running
    if kind == "quiet":
        return running <= {"quiet"} and "alone" not in waiting
    return running <= {"shared"} and not waiting & {"alone", "quiet"}


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


@contextlib.contextmanager
def _turn(folder: Path, kind: str):
    """The run's turnstile: one JSON file, read and written under an exclusive flock, of the tests running and
    waiting (by worker pid, each with its kind). A worker that died is dropped from it the next time anyone looks,
    so a crash never stalls the run."""
    folder.mkdir(parents=True, exist_ok=True)
    me = str(os.getpid())

    def update(change):
        with open(folder / "mlperf-turns.json", "a+") as state_file:
            fcntl.flock(state_file, fcntl.LOCK_EX)
            state_file.seek(0)
            text = state_file.read()
            state = json.loads(text) if text.strip() else {"running": {}, "waiting": {}}
            for table in state.values():
                for pid in [pid for pid in table if pid != me and not _alive(pid)]:
                    del table[pid]
            result = change(state)
            state_file.seek(0)
            state_file.truncate()
            json.dump(state, state_file)
            return result

    def try_enter(state):
        running = set(state["running"].values())
        waiting = {k for pid, k in state["waiting"].items() if pid != me}
        if _may_enter(kind, running, waiting):
            state["waiting"].pop(me, None)
            state["running"][me] = kind
            return True
        state["waiting"][me] = kind
        return False

    while not update(try_enter):
        time.sleep(0.02)
    try:
        yield
    finally:
        update(lambda state: state["running"].pop(me, None))


@contextlib.contextmanager
def _raised_priority():
    """This thread (and every process it starts) at nice -10 for the test, back to where it was after. Linux
    applies it per thread; where raising is not permitted the test runs as it would have."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, before - 10)
    except PermissionError:
        yield
        return
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = _turnstile_dir(item.config)
    if folder is None or TESTS not in item.path.parents:
        return (yield)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_turn(folder, _kind(item)))
        if item.get_closest_marker("timing") is not None:
            stack.enter_context(_raised_priority())
        return (yield)


def shared_dir() -> Path | None:
    env = os.environ.get("PYTEST_MLPERF_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared")
    for candidate in candidates:
        if (candidate / "fixtures").is_dir():
            return candidate
    return None


def _tree(folder: Path) -> set[str]:
    return {os.path.join(top, name) for top, dirs, files in os.walk(folder) for name in dirs + files}


@pytest.fixture(scope="session", autouse=True)
def shared_stays_untouched():
    """The shared folder is read, never written: NVIDIA's scripts write beside themselves when a variable is
    missing (run.sub's ./results), and the tests run as root, where its read-only modes do not stop them."""
    found = shared_dir()
    before = _tree(found) if found else set()
    yield
    added = sorted(_tree(found) - before) if found else []
    assert not added, f"tests wrote into {found}: {added[:5]}"


@pytest.fixture(scope="session")
def mlperf_shared() -> Path:
    found = shared_dir()
    if found is None:
        pytest.skip(
            "published MLPerf fixture logs not found: set PYTEST_MLPERF_SHARED to the folder holding "
            "fixtures/ (looked in $PYTEST_MLPERF_SHARED and ../shared)"
        )
    return found


@pytest.fixture(scope="session")
def inference_fixtures(mlperf_shared: Path) -> Path:
    return mlperf_shared / "fixtures" / "inference"


def _nvidia_inference_tree(shared: Path, version: str) -> Path:
    tree = shared / "upstream" / f"inference_results_{version}" / "closed" / "NVIDIA"
    if not (tree / "configs").is_dir():
        pytest.skip(f"NVIDIA's {version} tree is not at {tree}")
    return tree


@pytest.fixture(scope="session")
def nvidia_tree(mlperf_shared: Path) -> Path:
    """NVIDIA's closed MLPerf Inference v2.0 tree (Makefile, code/, configs/, results/, measurements/)."""
    return _nvidia_inference_tree(mlperf_shared, "v2.0")


@pytest.fixture(scope="session")
def nvidia_tree_v41(mlperf_shared: Path) -> Path:
    """NVIDIA's closed MLPerf Inference v4.1 tree (Makefile, code/, configs/, results/, measurements/)."""
    return _nvidia_inference_tree(mlperf_shared, "v4.1")


def nvidia_checkout(tree: Path, folder: Path, **controls: str) -> tuple[Path, Path]:
    """A closed/NVIDIA checkout under folder with NVIDIA's real Makefile, configs/ and code/common/ (copied: the
    steps write build/ into it), the stand-in image's controls in .standin/ (delay 0 unless given), and an empty
    scratch folder."""
    code, scratch = folder / "closed-NVIDIA", folder / "scratch"
    (code / "code").mkdir(parents=True)
    shutil.copy(tree / "Makefile", code / "Makefile")
    shutil.copytree(tree / "configs", code / "configs")
    shutil.copytree(tree / "code" / "common", code / "code" / "common")
    (code / ".standin").mkdir()
    for name, value in {"delay": "0", **controls}.items():
        (code / ".standin" / name).write_text(f"{value}\n")
    scratch.mkdir()
    return code, scratch


@pytest.fixture(scope="session")
def training_fixtures(mlperf_shared: Path) -> Path:
    return mlperf_shared / "fixtures" / "training"


BERT_CODE = Path("upstream/training_results_v2.1/NVIDIA/benchmarks/bert/implementations/pytorch-22.09")


def bert_copy(bert_code: Path, folder: Path) -> Path:
    """The implementation's top-level files (scripts, configs, mounts.txt) copied into folder, writable by their
    owner: tests change copies, and NVIDIA's scripts write beside themselves (run.sub's ./results), never into the
    shared checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in bert_code.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
            (folder / path.name).chmod(path.stat().st_mode & 0o777 | 0o200)
    return folder


def bert_data_root(tmp_path: Path) -> Path:
    """Empty folders where prepare_data.sh puts the BERT data (and the packed set), under tmp_path/data."""
    root = tmp_path / "data"
    for sub in ("hdf5/training-4320/hdf5_4320_shards_varlength", "hdf5/eval_varlength", "phase1", "packed_data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def training_backend(code: Path, tmp_path: Path, name: str, **kw):
    """NVIDIA's training backend for config `name` on a DGX A100, over `code` and an empty data tree in tmp_path."""
    from pytest_mlperf import catalog
    from pytest_mlperf.backends.nvidia_training import NvidiaTrainingBackend

    cat = catalog.load()
    return NvidiaTrainingBackend(
        cat,
        config=cat.training_config(name),
        sku="A100-SXM-80GBx8",
        code_dir=code,
        data_dir=bert_data_root(tmp_path),
        image=kw.pop("image", None),
        output=tmp_path / "out",
        **kw,
    )


@pytest.fixture(scope="session")
def bert_code(mlperf_shared: Path) -> Path:
    """NVIDIA's MLPerf Training v2.1 BERT implementation (run_with_docker.sh, run.sub, a30.sub, mounts.txt, the
    config files, input_preprocessing/), read-only."""
    code = mlperf_shared / BERT_CODE
    if not (code / "run.sub").is_file():
        pytest.skip(f"NVIDIA's v2.1 BERT implementation is not at {code}")
    return code


def collect_inference_ids(args: list[str], cwd: Path) -> set[str]:
    """The ids of the inference cases `pytest suites -m inference ARGS --collect-only` lists, run from cwd."""
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", f"--rootdir={cwd}"]
    done = subprocess.run(
        [*cmd, "--collect-only", "-q", "-m", "inference", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {line.split("[", 1)[1].rstrip("]") for line in done.stdout.splitlines() if "test_inference[" in line}


@pytest.fixture
def suites(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder holding the real suites (suites/*.py), as users run them."""
    for name in ("test_inference.py", "test_training.py"):
        (pytester.path / name).write_text((ROOT / "suites" / name).read_text())
    pytester.makeini(f"[pytest]\naddopts = {PROJECT_OPTS}\n")
    return pytester


def _nvml_header() -> Path | None:
    try:
        import nvidia
    except ImportError:
        return None
    for base in map(Path, nvidia.__path__):
        for header in base.rglob("nvml.h"):
            return header
    return None


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory) -> Path:
    header = _nvml_header()
    if header is None or shutil.which("gcc") is None:
        pytest.skip("building the fake NVML library needs gcc and nvml.h (pip install 'pytest-mlperf[dev]')")
    out = tmp_path_factory.mktemp("nvml")
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            f"-I{header.parent}",
            "-o",
            str(out / "libnvidia-ml.so.1"),
            str(ROOT / "tests" / "fake_nvml" / "fake_nvml.c"),
        ],
        check=True,
    )
    return out


A100X8 = "count=8;name=NVIDIA A100-SXM4-80GB;memory_mib=81920;pci=0x20B210DE;power_w=400"


def host_root(
    path: Path,
    cpu: str = "AMD EPYC 7742 64-Core Processor",
    sockets: int = 2,
    memtotal_kb: int = 2_113_612_144,
    jetson: str | None = None,
) -> Path:
    """A stand-in root for what NVIDIA's system detection reads of the host besides the GPUs (/proc/cpuinfo,
    /proc/meminfo, /proc/sys/kernel/arch; a Jetson's L4T release file and device tree), as a DGX A100 shows them
    by default: no such machine exists where the tests run. The plugin reads it under PYTEST_MLPERF_SYSROOT."""
    (path / "proc").mkdir(parents=True, exist_ok=True)
    blocks = [
        f"processor\t: {i}\nmodel name\t: {cpu}\nphysical id\t: {i}\nsiblings\t: 128\ncpu cores\t: 64\n"
        for i in range(sockets)
    ]
    (path / "proc" / "cpuinfo").write_text("\n".join(blocks))
    (path / "proc" / "meminfo").write_text(f"MemTotal:       {memtotal_kb} kB\nMemFree:        1000 kB\n")
    (path / "proc" / "sys" / "kernel").mkdir(parents=True, exist_ok=True)
    (path / "proc" / "sys" / "kernel" / "arch").write_text("aarch64\n" if jetson is not None else "x86_64\n")
    if jetson is not None:
        (path / "etc").mkdir(exist_ok=True)
        (path / "etc" / "nv_tegra_release").write_text("# R34 (release), REVISION: 1.1\n")
        tree = path / "sys" / "firmware" / "devicetree" / "base"
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "model").write_bytes(jetson.encode() + b"\0")
        (tree / "compatible").write_bytes(b"nvidia,p3737-0000+p3701-0000\0nvidia,tegra234\0")
    return path


def fake_gpu_env(lib: Path | None, spec: str | None, **extra: str) -> dict:
    """This process's environment for a child that loads the fake NVML library (the loader reads
    LD_LIBRARY_PATH at start) describing `spec`; None leaves either out."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "FAKE_NVML_SPEC")}
    if lib is not None:
        env["LD_LIBRARY_PATH"] = str(lib)
    if spec is not None:
        env["FAKE_NVML_SPEC"] = spec
    return {**env, **extra}


def sigint_default() -> None:
    """preexec_fn for a child the test interrupts with SIGINT (Ctrl-C): a job a shell starts in the background
    inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler; give the child the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_pytest_child(
    cmd: list[str],
    cwd: Path,
    env: dict,
    background: bool = False,
    timeout: int = 300,
    start_new_session: bool = False,
):
    """A pytest run in a child process: its CompletedProcess, or, in the background, its Popen (in a session of
    its own if asked), with SIGINT's default handler so the test can interrupt it as Ctrl-C would."""
    if background:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=sigint_default,
            start_new_session=start_new_session,
        )
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def suite_project(folder: Path, conftest: str, ini: str = PROJECT_OPTS) -> Path:
    """A users' project in folder/project: the real inference suite, a pytest.ini and the given conftest.py (a
    test's stand-in model, or what a fleet node does differently)."""
    project = folder / "project"
    project.mkdir(exist_ok=True)
    (project / "test_inference.py").write_text((ROOT / "suites" / "test_inference.py").read_text())
    (project / "pytest.ini").write_text(f"[pytest]\naddopts = {ini}\n")
    (project / "conftest.py").write_text(conftest)
    return project
