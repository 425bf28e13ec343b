"""Running NVIDIA's make targets on the machine itself, where NVIDIA's Makefile has no container: on Jetson
(Orin, Xavier NX) it sets SUPPORT_DOCKER=0 (IS_SOC=1 from scripts/get_system_id.py), and the code runs in
the JetPack root file system. Same interface as `containers.SessionContainer`: exec(argv, log, ...) -> exit
status, stop().

Also: what a Jetson says it is (its device tree's model, L4T's release file), and locks that keep the GPUs
under a performance measurement to that measurement alone.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .containers import ContainerError, copy_stream

TEGRA_RELEASE = "etc/nv_tegra_release"
DEVICE_TREE_MODEL = "sys/firmware/devicetree/base/model"  # where NVIDIA's code reads it (accelerator.py)


def system_root() -> Path:
    """The root the Jetson facts are read under: / (a test points PYTEST_MLPERF_SYSROOT at a stand-in tree,
    since no Jetson exists where the tests run)."""
    return Path(os.environ.get("PYTEST_MLPERF_SYSROOT") or "/")


def tegra_model(root: Path | None = None) -> str | None:
    """The Jetson's model as its device tree names it ('NVIDIA Jetson AGX Orin Developer Kit'), or None on a
    machine that is not a Jetson (no L4T release file)."""
    root = root or system_root()
    if not (root / TEGRA_RELEASE).is_file():
        return None
    try:
        return (root / DEVICE_TREE_MODEL).read_bytes().rstrip(b"\0\n").decode("utf-8", "replace").strip() or None
    except OSError:
        return "unknown Jetson (no device-tree model)"


def jetson_mismatch(names: tuple[str, ...], root: Path | None = None) -> str:
    """Why this machine is not the Jetson a SKU names ('' when it is): its device tree must name one of the
    catalog's names for it (Orin, Xavier NX)."""
    model = tegra_model(root)
    if model is None:
        return f"expects a Jetson ({names[0]}), but this machine has no {TEGRA_RELEASE} (not L4T)"
    if not any(name in model for name in names):
        return f"expects a Jetson {names[0]}, but the device tree says {model!r}"
    return ""


class NativeRunner:
    """NVIDIA's steps as processes of this machine, in the checkout, each in its own process group (a timeout
    or the end of the session stops the whole group, never only the `make` at its head)."""

    def __init__(self, code_dir: Path, environment: dict[str, str]):
        self.code_dir = Path(code_dir)
        self.environment = dict(environment)
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def exec(
        self,
        argv: list[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        echo: Callable[[str], None] | None = None,
        step: str = "",
        watch: Callable[[str], str | None] | None = None,
    ) -> int:
        name = step or argv[0]
        log.parent.mkdir(parents=True, exist_ok=True)
        environ = {**os.environ, **self.environment, **(env or {})}
        with log.open("ab") as fh:
            fh.write(f"$ {' '.join(argv)}\n".encode())
            fh.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.code_dir,
                    env=environ,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ContainerError(f"{name}: cannot start {argv[0]!r} in {self.code_dir}: {exc}") from None
            with self._lock:
                self._running.add(proc)
            timed_out = threading.Event()
            timer = threading.Timer(timeout, lambda: (timed_out.set(), self._kill(proc))) if timeout else None
            if timer:
                timer.daemon = True
                timer.start()
            try:
                copy_stream(iter(lambda: proc.stdout.read1(65536), b""), fh, name, echo, watch)
                code = proc.wait()
            finally:
                if timer:
                    timer.cancel()
                with self._lock:
                    self._running.discard(proc)
        if timed_out.is_set():
            raise ContainerError(f"{name}: timed out after {timeout:.0f} s; its processes were stopped")
        return code

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            self._kill(proc)


def lock_dir() -> Path:
    """One folder per machine for the GPU locks, whoever runs: the system's temporary folder."""
    path = Path(tempfile.gettempdir()) / "pytest-mlperf-gpu-locks"
    path.mkdir(mode=0o1777, exist_ok=True)
    return path


_held = threading.local()  # this thread's locks: lock file -> [fd, exclusive, depth]


@contextmanager
def gpu_locks(keys: list[str], exclusive: bool, folder: Path | None = None) -> Iterator[None]:
    """Hold every GPU in keys: exclusively for a performance measurement, shared for anything else that uses
    them (data preparation, engine builds, accuracy runs), so nothing runs beside a measurement and a
    measurement waits for what is running. Taken in one sorted order, so two sessions never deadlock. The lock
    files stay (a held lock cannot be removed safely): one empty file per GPU.

    Re-entrant within a thread: a GPU this thread already holds (a test's lease of its GPU, say) is not locked
    again, since a second flock of the same file from one process waits for itself. Asking exclusively for a
    GPU held shared is a programming error, raised rather than deadlocked."""
    folder = folder or lock_dir()
    held = getattr(_held, "locks", None)
    if held is None:
        held = _held.locks = {}
    with ExitStack() as stack:
        for key in sorted(set(keys)):
            path = str(folder / f"{key}.lock")
            if path in held:
                if exclusive and not held[path][1]:
                    raise RuntimeError(f"GPU lock {key}: held shared by this thread, asked for exclusively")
                held[path][2] += 1
                stack.callback(_release, held, path)
                continue
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            except BaseException:
                os.close(fd)
                raise
            held[path] = [fd, exclusive, 1]
            stack.callback(_release, held, path)
        yield


def _release(held: dict, path: str) -> None:
    entry = held[path]
    entry[2] -= 1
    if entry[2] == 0:
        del held[path]
        fcntl.flock(entry[0], fcntl.LOCK_UN)
        os.close(entry[0])
