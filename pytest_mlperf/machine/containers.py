"""Container lifecycle through the Docker SDK: one long-lived container per session, started the way NVIDIA's
launch_docker starts it; every command an exec with an argument list, its output streamed to a log file;
cleanup on every exit path, and removal of containers left by sessions that died.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LABEL = "pytest-mlperf"
LABEL_SESSION = f"{LABEL}.session"
LABEL_PID = f"{LABEL}.pid"
LABEL_HOST = f"{LABEL}.host"


def _engine_errors() -> tuple[type[BaseException], ...]:
    """What a call to the engine raises when the engine is unwell: the SDK's errors and, for a socket that
    has gone away, the HTTP layer's."""
    import docker
    import requests

    return (docker.errors.DockerException, requests.exceptions.RequestException)


class ContainerError(RuntimeError):
    """A Docker or exec failure, said in a sentence with what was being done."""


@dataclass
class LaunchSpec:
    image: str
    name: str
    code_dir: Path
    scratch_dir: Path
    # "nvidia": launch_docker's flags (the GPUs, SYS_ADMIN/SYS_TIME, no seccomp; and an unlimited memlock,
    # which launch_docker leaves to the host's default);
    # "minimal": the same mounts, user, shm and labels without them, for a stand-in image or a machine (or
    # sandbox) that cannot grant them.
    profile: str = "nvidia"
    environment: dict[str, str] = field(default_factory=dict)
    network_mode: str = "host"
    user: str | None = None  # "uid:gid"; NVIDIA runs as the caller
    gpus: tuple[int, ...] | None = None  # the GPUs given to the container (NVML indices); None: all of them
    clock: bool = False  # the host's /etc/localtime and /etc/timezone, read-only, as launch_docker mounts them

    def run_kwargs(self, session_id: str) -> dict:
        import docker

        kwargs = dict(
            **self.session_kwargs(session_id),
            working_dir=self.working_dir,
            volumes={
                **{str(host): {"bind": inside, "mode": "rw"} for host, inside in self.mounts().items()},
                **{path: {"bind": path, "mode": "ro"} for path in self.clock_files()},
            },
            environment=self.base_environment(),
            shm_size="32g",
            user=self.user or f"{os.getuid()}:{os.getgid()}",
        )
        if self.profile == "nvidia":
            kwargs.update(
                device_requests=self.gpu_request(),
                ulimits=[docker.types.Ulimit(name="memlock", soft=-1, hard=-1)],
                cap_add=["SYS_ADMIN", "SYS_TIME"],
                security_opt=["seccomp=unconfined"],
            )
        return kwargs

    def session_kwargs(self, session_id: str) -> dict:
        """What every container of a session is: the image idling under init (stop() then does not wait for a
        shell that ignores SIGTERM), on the host's network, labelled with the session, its process and host."""
        return dict(
            image=self.image,
            command=["sleep", "infinity"],
            name=self.name,
            detach=True,
            init=True,
            network_mode=self.network_mode,
            labels={LABEL_SESSION: session_id, LABEL_PID: str(os.getpid()), LABEL_HOST: socket.gethostname()},
        )

    def gpu_request(self) -> list:
        """The selected GPUs (all of them when none were selected), as Docker's --gpus asks for them."""
        import docker

        gpus = dict(count=-1) if self.gpus is None else dict(device_ids=[str(index) for index in self.gpus])
        return [docker.types.DeviceRequest(capabilities=[["gpu"]], **gpus)]

    # NVIDIA's inference container: the code at /work, the scratch folder at its own path.
    working_dir = "/work"

    def mounts(self) -> dict[Path, str]:
        return {self.code_dir: "/work", self.scratch_dir: str(self.scratch_dir)}

    def base_environment(self) -> dict[str, str]:
        visible = "all" if self.gpus is None else ",".join(str(index) for index in self.gpus)
        return {"MLPERF_SCRATCH_PATH": str(self.scratch_dir), "NVIDIA_VISIBLE_DEVICES": visible, **self.environment}

    def clock_files(self) -> list[str]:
        return [path for path in ("/etc/localtime", "/etc/timezone") if self.clock and os.path.exists(path)]


@dataclass
class TrainingLaunchSpec(LaunchSpec):
    """NVIDIA's BERT training container as run_with_docker.sh starts it (`nvidia-docker run --rm --init --detach
    --gpus=device=<NV_GPU> --net=host --uts=host --ipc=host --security-opt=seccomp=unconfined --ulimit=stack=67108864
    --ulimit=memlock=-1 <mounts.txt's volumes> <image> sleep infinity`): the image's own user (root in NVIDIA's
    image, which its scripts assume: prepare_data.sh writes the data folder from inside it, and nothing in the
    image is prepared for another uid) and its own working directory (/workspace/bert). The "minimal" profile keeps the
    mounts, init, host network and IPC, for a stand-in image on an engine without GPUs."""

    volumes: dict[str, Path] = field(default_factory=dict)  # container path -> host path (one host folder may be
    # mounted twice: DATADIR and DATADIR_PHASE2 are the same shards for the unpacked configs)

    working_dir = None  # the image's WORKDIR

    def run_kwargs(self, session_id: str) -> dict:
        import docker

        kwargs = dict(
            **self.session_kwargs(session_id),
            auto_remove=True,
            ipc_mode="host",
            volumes=[f"{host}:{inside}:rw" for inside, host in self.volumes.items()],
            environment=dict(self.environment),
        )
        if self.profile == "nvidia":
            kwargs.update(
                device_requests=self.gpu_request(),
                uts_mode="host",
                security_opt=["seccomp=unconfined"],
                ulimits=[
                    docker.types.Ulimit(name="stack", soft=67108864, hard=67108864),
                    docker.types.Ulimit(name="memlock", soft=-1, hard=-1),
                ],
            )
        return kwargs


def connect(base_url: str | None = None, timeout: int = 30):
    """A Docker client that has answered a ping, or ContainerError saying why not."""
    import docker

    try:
        client = (
            docker.DockerClient(base_url=base_url, timeout=timeout) if base_url else docker.from_env(timeout=timeout)
        )
        client.ping()
        return client
    except _engine_errors() as exc:
        where = base_url or os.environ.get("DOCKER_HOST") or "the default socket"
        raise ContainerError(f"no Docker engine at {where}: {exc}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(client) -> list[str]:
    """Remove containers this plugin started from sessions whose process is gone (on this host)."""
    import docker

    removed = []
    host = socket.gethostname()
    # ignore_removed: a live session (another xdist worker) may remove its own container between the listing and
    # the look-up of each container; and two sessions may clean the same dead one's at once (404, 409).
    for container in client.containers.list(all=True, filters={"label": LABEL_SESSION}, ignore_removed=True):
        labels = container.labels or {}
        if labels.get(LABEL_HOST) != host:
            continue
        try:
            pid = int(labels.get(LABEL_PID, "0"))
        except ValueError:
            pid = 0
        if pid and _pid_alive(pid) and pid != os.getpid():
            continue
        if pid == os.getpid():
            continue
        try:
            container.remove(force=True)
        except docker.errors.APIError as exc:
            if getattr(exc, "status_code", None) not in (404, 409):  # gone, or being removed by another session
                raise
            continue
        removed.append(container.name)
    return removed


def engine(base_url: str | None, echo: Callable[[str], None] | None = None):
    """A client of a Docker engine that answers, after removing what dead sessions left on it."""
    client = connect(base_url)
    removed = remove_stale(client)
    if removed and echo:
        echo(f"[pytest-mlperf] removed containers of dead sessions: {', '.join(removed)}\n")
    return client


def ensure_image(client, image: str, dockerfile: Path, hint: str = "") -> None:
    """The image exists on the engine, or is built from dockerfile's folder; ContainerError says why not (and
    the caller's hint, how to name another)."""
    import docker

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    if not dockerfile.is_file():
        raise ContainerError(
            f"image {image!r} is not on this Docker engine and {dockerfile} does not exist to build it"
            + (f"; {hint}" if hint else "")
        )
    try:
        client.images.build(path=str(dockerfile.parent), dockerfile=dockerfile.name, tag=image, rm=True)
    except docker.errors.DockerException as exc:
        raise ContainerError(f"building {image} from {dockerfile} failed: {exc}") from None


class SessionContainer:
    """The session's container: started on first use, removed at the end (or by the next session, if this
    process is killed outright)."""

    def __init__(self, client, spec: LaunchSpec, session_id: str | None = None, image_hint: str = ""):
        self.client = client
        self.spec = spec
        self.image_hint = image_hint  # the caller's words on how to get the image, when it is missing
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.container = None
        self._lock = threading.Lock()

    def start(self):
        import docker

        with self._lock:
            if self.container is not None:
                self.container.reload()
                if self.container.status == "running":
                    return self.container
                self._remove()
            try:
                self.client.images.get(self.spec.image)
            except docker.errors.ImageNotFound:
                raise ContainerError(
                    f"image {self.spec.image!r} is not on this Docker engine"
                    + (f": {self.image_hint}" if self.image_hint else "")
                ) from None
            except _engine_errors() as exc:
                raise ContainerError(f"cannot reach the Docker engine to look up {self.spec.image!r}: {exc}") from None
            try:
                self.container = self.client.containers.run(**self.spec.run_kwargs(self.session_id))
            except _engine_errors() as exc:
                self._remove()  # a create that succeeded before the start failed leaves a container behind
                raise ContainerError(f"cannot start container {self.spec.name} from {self.spec.image}: {exc}") from None
            return self.container

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
        """Run argv in the container; stream output to log (and echo); return the exit code.

        On timeout the container is stopped (the exec's processes die with it) and ContainerError is raised.
        """

        container = self.start()
        api, name = self.client.api, step or argv[0]
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            exec_id = api.exec_create(container.id, argv, environment=env or {}, workdir=self.spec.working_dir)["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=False)
        except _engine_errors() as exc:
            raise ContainerError(f"{name}: cannot exec in {self.spec.name}: {exc}") from None
        timed_out = threading.Event()
        timer = self._deadline(timeout, timed_out)
        try:
            with log.open("ab") as fh:
                fh.write(f"$ {' '.join(argv)}\n".encode())
                copy_stream(stream, fh, name, echo, watch)
        except _engine_errors() as exc:
            if not timed_out.is_set():
                raise ContainerError(f"{name}: lost the exec stream: {exc}") from None
        finally:
            if timer:
                timer.cancel()
        if timed_out.is_set():
            timer.join(timeout=60)  # the removal runs on the timer's thread: let it finish first
            raise ContainerError(f"{name}: timed out after {timeout:.0f} s; the container was stopped")
        return self._exit_code(container, exec_id, name)

    def _deadline(self, timeout: float | None, timed_out: threading.Event) -> threading.Timer | None:
        """A timer that stops the container (and so the exec's processes) once timeout seconds have passed."""
        if not timeout:
            return None

        def expire():
            timed_out.set()
            self.stop()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        return timer

    def _exit_code(self, container, exec_id: str, name: str) -> int:
        try:
            code = self.client.api.exec_inspect(exec_id)["ExitCode"]
        except _engine_errors() as exc:
            raise ContainerError(f"{name}: cannot read the exit code: {exc}") from None
        if code is not None and code >= 128:
            # Killed by a signal: the container itself may be on its way down; give the engine a moment to say so.
            deadline = time.monotonic() + 3
            while self._running(container) and time.monotonic() < deadline:
                time.sleep(0.2)
        if code is None or not self._running(container):
            raise ContainerError(f"{name}: the container went away mid-run (killed, or out of memory?)")
        return int(code)

    @staticmethod
    def _running(container) -> bool:

        try:
            container.reload()
        except _engine_errors():
            return False
        return container.status == "running"

    def stop(self) -> None:
        with self._lock:
            self._remove()

    def _remove(self) -> None:
        """Remove every container of this session: the running one, or one created whose start failed."""
        self.container = None
        try:
            mine = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_SESSION}={self.session_id}"}, ignore_removed=True
            )
        except _engine_errors():
            return  # the engine itself is gone; the next session's remove_stale() cleans up
        for container in mine:
            try:
                container.remove(force=True)
            except _engine_errors():
                pass  # gone already, or the engine went away meanwhile


def copy_stream(stream, fh, name: str, echo, watch) -> None:
    """Copy a step's output (a container exec's, a process's) into the log as it comes; with echo, show it too,
    with a progress note every 30 s or whenever watch() (which reads the output as it comes: a training eval,
    say) has news."""
    started = last_note = time.monotonic()
    for chunk in stream:
        fh.write(chunk)
        fh.flush()
        news = watch(chunk.decode(errors="replace")) if watch else None
        if echo:
            echo(chunk.decode(errors="replace"))
            now = time.monotonic()
            if news or now - last_note > 30:
                echo(f"[pytest-mlperf] {name}: {now - started:.0f} s elapsed{news or ''}\n")
                last_note = now


def image_identity(image: str | None, docker_host: str | None = None) -> dict:
    """The image's id and registry digest, when a Docker engine can say."""
    if not image:
        return {}
    try:
        found = connect(docker_host, timeout=10).images.get(image)
    except Exception as exc:  # noqa: BLE001 - the fingerprint says what it could not read
        return {"image": image, "image_id": f"unknown ({type(exc).__name__})"}
    digests = found.attrs.get("RepoDigests") or []
    return {"image": image, "image_id": found.id, "image_digest": digests[0] if digests else None}
