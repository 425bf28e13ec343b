"""What NVIDIA's launch scripts would start, and what the plugin would start, in one view to compare.

The scripts side: NVIDIA's real run_with_docker.sh or a30.sub runs under bash with the recording stand-ins of
tests/standin_docker_cli first on PATH (docker, nvidia-docker, sudo, sleep, nvidia-smi: each writes its argument
list to $RECORD and exits 0; no container is started, no cache dropped). `run_script` returns the calls;
`Container.from_cli` reads a recorded `docker run` the way the docker CLI reads its options, `Exec.from_cli` a
recorded `docker exec`.

The plugin side: `RecordingEngine` is a Docker SDK client (docker-py's own DockerClient and APIClient) whose HTTP
layer writes the requests down instead of sending them, answering just enough for the SDK to go on. The plugin's
run_kwargs go through `client.containers.run(**kwargs)` (the SDK's `_create_container_args`, HostConfig and
ContainerConfig), and its execs through `api.exec_create`, so what is compared is the JSON the engine would receive
(`Container.from_api`, `Exec.from_api`), never our own reading of the plugin's kwargs.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

STANDIN = Path(__file__).resolve().parent / "standin_docker_cli"
SYSTEM_PATH = "/usr/bin:/bin"
BASH_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}  # what bash itself exports: not the config's


def _load_record_module():
    spec = importlib.util.spec_from_file_location("standin_docker_cli_record", STANDIN / "_record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_record = _load_record_module()
split_options = _record.split_options  # the docker CLI's option/operand split, as the stand-in does it


# ---- the scripts' side ------------------------------------------------------------------------------------------
def config_exports(code: Path, config_file: str) -> dict[str, str]:
    """What `source ./config_<system>.sh` exports, as NVIDIA's README has the caller do before run_with_docker.sh:
    sourced in a clean bash (`env -i`), read with `env -0`, without bash's own PWD, SHLVL and _."""
    proc = subprocess.run(
        ["env", "-i", shutil.which("bash") or "/bin/bash", "-c", '. "$1" >/dev/null && env -0', "bash", config_file],
        cwd=code,
        capture_output=True,
        timeout=60,
        check=True,
    )
    env = {}
    for item in proc.stdout.split(b"\0"):
        key, sep, value = item.decode().partition("=")
        if sep and key not in BASH_OWN:
            env[key] = value
    return env


@dataclass
class Call:
    """One call of a stand-in: its program, arguments, and the container environment the docker CLI would build
    from its -e/--env/--env-file options (env), with the bare names it would drop as unset (unset)."""

    prog: str
    argv: list[str]
    env: dict[str, str]
    unset: list[str]
    env_files: dict[str, list[str]]

    @property
    def subcommand(self) -> list[str]:
        """The docker subcommand's words and what follows (`docker container run` read as `docker run`)."""
        return self.argv[1:] if self.argv[:1] == ["container"] and self.argv[1:2] in (["run"], ["exec"]) else self.argv


@dataclass
class ScriptRun:
    returncode: int
    stdout: str
    stderr: str
    calls: list[Call]

    def docker(self, sub: str) -> list[Call]:
        """The docker (or nvidia-docker) calls of a subcommand (run, exec, container)."""
        return [c for c in self.calls if c.prog in ("docker", "nvidia-docker") and c.subcommand[:1] == [sub]]

    def of(self, prog: str) -> list[Call]:
        return [c for c in self.calls if c.prog == prog]

    def container(self) -> Container:
        (run,) = self.docker("run")
        return Container.from_cli(run)

    def execs(self) -> list[Exec]:
        return [Exec.from_cli(call) for call in self.docker("exec")]


def run_script(script: str, cwd: Path, env: dict[str, str], workdir: Path, timeout: float = 120) -> ScriptRun:
    """bash <script> in cwd with exactly env (plus PATH: the stand-ins first, then /usr/bin:/bin; and RECORD, the
    stand-ins' record file); its exit status, output, and the stand-ins' calls in the order they were made."""
    record = workdir / "record.jsonl"
    record.unlink(missing_ok=True)
    path = f"{STANDIN}:{SYSTEM_PATH}"
    if shutil.which("python3", path=SYSTEM_PATH) is None:  # the stand-ins' interpreter: this one's, then
        path += f":{Path(sys.executable).parent}"
    full = {**env, "PATH": path, "RECORD": str(record)}
    bash = shutil.which("bash") or "/bin/bash"
    proc = subprocess.run([bash, script], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)
    return ScriptRun(proc.returncode, proc.stdout, proc.stderr, read_record(record))


def read_record(record: Path) -> list[Call]:
    """The stand-ins' calls written to record, in order (none if none was made)."""
    lines = record.read_text().splitlines() if record.exists() else []
    return [Call(**json.loads(line)) for line in lines]


# ---- the normalized views ---------------------------------------------------------------------------------------
@dataclass
class Container:
    """A container as started: what `docker run` options and the create request's JSON both say."""

    image: str
    command: list[str] | None
    name: str | None
    init: bool = False
    remove: bool = False
    detach: bool = False
    network: str | None = None
    uts: str | None = None
    ipc: str | None = None
    security_opt: list[str] = field(default_factory=list)
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    gpus: str | list[str] | None = None  # "all", the device ids, or None (no GPU request)
    # container target -> host source, read-write (keyed by target: one host folder can be mounted twice, as
    # DATADIR and DATADIR_PHASE2 are for the unpacked configs; docker refuses two mounts at one target)
    mounts: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # None: the image's USER
    workdir: str | None = None  # None: the image's WORKDIR
    pull: str | None = None  # None: docker's default (pull when missing; the SDK path never pulls)
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # anything else set: must be empty on both sides

    def view(self, *leave_out: str) -> dict:
        out = asdict(self)
        for key in leave_out:
            out.pop(key)
        return out

    @classmethod
    def from_cli(cls, call: Call) -> Container:
        """A recorded `docker run ...`, read with the docker CLI's rules: --ulimit name=soft[:hard] (hard defaults
        to soft), --gpus a CSV list ("all", device=<ids>), --volume source:target[:rw], env as the CLI builds it."""
        assert call.subcommand[0] == "run", call.argv
        options, operands = split_options(call.subcommand[1:])
        out = cls(image=operands[0], command=operands[1:] or None, name=None, env=dict(call.env))
        for name, value in options:
            if name == "--rm":
                out.remove = True
            elif name == "--init":
                out.init = True
            elif name in ("-d", "--detach"):
                out.detach = True
            elif name in ("--net", "--network"):
                out.network = value
            elif name == "--uts":
                out.uts = value
            elif name == "--ipc":
                out.ipc = value
            elif name == "--security-opt":
                out.security_opt = sorted([*out.security_opt, value])
            elif name == "--ulimit":
                limit, _, numbers = value.partition("=")
                soft, _, hard = numbers.partition(":")
                out.ulimits[limit] = (int(soft), int(hard or soft))
            elif name == "--gpus":
                out.gpus = _cli_gpus(value)
            elif name == "--name":
                out.name = value
            elif name in ("-v", "--volume"):
                source, target, *mode = value.split(":")
                if mode not in ([], ["rw"]) or target in out.mounts:
                    raise ValueError(f"--volume={value}: only read-write binds to distinct targets are read here")
                out.mounts[target] = source
            elif name in ("-e", "--env", "--env-file"):
                pass  # read into call.env by the stand-in
            elif name == "--pull":
                out.pull = value
            elif name in ("-u", "--user"):
                out.user = value
            elif name in ("-w", "--workdir"):
                out.workdir = value
            elif name in ("-l", "--label"):
                key, _, text = value.partition("=")
                out.labels[key] = text
            else:
                out.extra[name] = value
        return out

    @classmethod
    def from_api(cls, body: dict, params: dict) -> Container:
        """The create request's JSON (POST /containers/create?name=...): ContainerConfig with its HostConfig."""
        body, host = dict(body), dict(body.get("HostConfig") or {})
        body.pop("HostConfig", None)
        attached = [body.pop(k, False) for k in ("AttachStdin", "AttachStdout", "AttachStderr", "OpenStdin")]
        binds = host.pop("Binds", None) or []
        mounts = {}
        for bind in binds:
            source, target, *mode = bind.split(":")
            if mode not in ([], ["rw"]) or target in mounts:
                raise ValueError(f"Binds {bind}: only read-write binds to distinct targets are read here")
            mounts[target] = source
        declared = sorted(body.pop("Volumes", None) or {})  # docker-py declares each bind's target as a volume too
        if declared != sorted(mounts):
            raise ValueError(f"Volumes {declared} are not the binds' targets {sorted(mounts)}")
        requests = host.pop("DeviceRequests", None) or []
        out = cls(
            image=body.pop("Image"),
            command=body.pop("Cmd", None),
            name=params.get("name"),
            init=bool(host.pop("Init", False)),
            remove=bool(host.pop("AutoRemove", False)),
            detach=not any(attached),
            network=host.pop("NetworkMode", None),
            uts=host.pop("UTSMode", None),
            ipc=host.pop("IpcMode", None),
            security_opt=sorted(host.pop("SecurityOpt", None) or []),
            ulimits={u["Name"]: (u["Soft"], u["Hard"]) for u in host.pop("Ulimits", None) or []},
            gpus=_api_gpus(requests),
            mounts=mounts,
            env=dict(item.split("=", 1) for item in body.pop("Env", None) or []),
            user=body.pop("User", None) or None,
            workdir=body.pop("WorkingDir", None) or None,
            labels=body.pop("Labels", None) or {},
        )
        # What the SDK always sends, at values that set nothing: not differences.
        quiet = {"Tty": False, "StdinOnce": False, "NetworkDisabled": False}
        out.extra = {k: v for k, v in body.items() if quiet.get(k, None) != v and v not in (None, "", [], {})}
        out.extra.update({f"HostConfig.{k}": v for k, v in host.items() if v not in (None, "", [], {}, False, 0)})
        return out


def _cli_gpus(value: str) -> str | list[str]:
    """docker's GpuOpts: the value is a CSV record (run_with_docker.sh quotes it: "device=0,1,2")."""
    (fields,) = list(csv.reader([value]))
    if fields == ["all"]:
        return "all"
    ids: list[str] = []
    for item in fields:
        key, _, text = item.partition("=")
        if key != "device":
            raise ValueError(f"--gpus {value}: only 'all' and device=<ids> are read here")
        ids += text.split(",")
    return ids


def _api_gpus(requests: list[dict]) -> str | list[str] | None:
    if not requests:
        return None
    (request,) = requests
    if request.get("Capabilities") != [["gpu"]] or request.get("Driver") or request.get("Options"):
        raise ValueError(f"DeviceRequests {requests}: only the docker CLI's --gpus form is read here")
    if request.get("Count") == -1 and not request.get("DeviceIDs"):
        return "all"
    if request.get("Count") == 0 and request.get("DeviceIDs"):
        return list(request["DeviceIDs"])
    raise ValueError(f"DeviceRequests {requests}: neither --gpus all nor --gpus device=<ids>")


@dataclass
class Exec:
    """A command run in the container: `docker exec [options] NAME argv...`, or the SDK's exec_create body."""

    container: str
    argv: list[str]
    env: dict[str, str]
    env_names: list[str] = field(default_factory=list)  # every name the exec was told to pass, set or not
    tty: bool = False
    interactive: bool = False
    user: str | None = None  # None: the container's
    workdir: str | None = None  # None: the container's
    privileged: bool = False
    env_files: list[str] = field(default_factory=list)  # the names read from --env-file

    @property
    def kind(self) -> str:
        if self.argv[:2] == ["python", "-c"]:
            return "cache_clear"
        if self.argv == ["true"]:
            return "ready"
        if self.argv == ["bash", "-c", "compgen -e"]:
            return "compgen"
        return "trial"

    @classmethod
    def from_cli(cls, call: Call) -> Exec:
        assert call.subcommand[0] == "exec", call.argv
        options, operands = split_options(call.subcommand[1:])
        out = cls(container=operands[0], argv=operands[1:], env=dict(call.env))
        for name, value in options:
            if name in ("-t", "--tty"):
                out.tty = True
            elif name in ("-i", "--interactive"):
                out.interactive = True
            elif name in ("-e", "--env"):
                out.env_names.append(value.partition("=")[0])
            elif name == "--env-file":
                names = [line.strip().partition("=")[0] for line in call.env_files[value]]
                names = [n for n in names if n and not n.startswith("#")]
                out.env_files += names
                out.env_names += names
            elif name in ("-u", "--user"):
                out.user = value
            elif name in ("-w", "--workdir"):
                out.workdir = value
            elif name == "--privileged":
                out.privileged = True
            else:
                raise ValueError(f"docker exec {name}: not an option read here ({call.argv})")
        return out

    @classmethod
    def from_api(cls, container: str, body: dict) -> Exec:
        env = dict(item.split("=", 1) for item in body.get("Env") or [])
        return cls(
            container=container,
            argv=list(body["Cmd"]),
            env=env,
            env_names=list(env),
            tty=bool(body.get("Tty")),
            interactive=bool(body.get("AttachStdin")),
            user=body.get("User") or None,
            workdir=body.get("WorkingDir") or None,
            privileged=bool(body.get("Privileged")),
        )


# ---- the plugin's side: the Docker SDK, recording instead of sending -------------------------------------------
class RecordingEngine:
    """A docker-py DockerClient whose APIClient records each HTTP request (method, path, query, JSON body) and
    answers as an engine would, just enough for the SDK to go on: the image exists, a created container runs,
    an exec streams nothing and exits 0, no container is left to list."""

    CONTAINER_ID = "c" * 64
    EXEC_ID = "e" * 64

    def __init__(self, api_version: str | None = None):
        import docker
        import requests

        engine = self

        class RecordingAPI(docker.APIClient):
            def _answer(self, method, url, kwargs):
                path = url.split(f"/v{self._version}", 1)[1]
                data = kwargs.get("data")
                engine.requests.append((method, path, dict(kwargs.get("params") or {}), json.loads(data or "null")))
                status, payload = engine.reply(method, path)
                response = requests.Response()
                response.status_code, response.url = status, url
                response._content = json.dumps(payload).encode()
                return response

            def _post(self, url, **kwargs):
                return self._answer("POST", url, kwargs)

            def _get(self, url, **kwargs):
                return self._answer("GET", url, kwargs)

            def _delete(self, url, **kwargs):
                return self._answer("DELETE", url, kwargs)

            def _read_from_socket(self, response, stream, tty=True, demux=False):
                return iter(())  # the exec's output: none

        self.requests: list[tuple[str, str, dict, object]] = []
        version = api_version or docker.constants.DEFAULT_DOCKER_API_VERSION
        self.api = RecordingAPI(base_url="http://recording.invalid:2375", version=version)
        self.client = docker.DockerClient.__new__(docker.DockerClient)
        self.client.api = self.api

    def reply(self, method: str, path: str) -> tuple[int, object]:
        cid, eid = self.CONTAINER_ID, self.EXEC_ID
        running = {"Id": cid, "Name": "/recorded", "State": {"Status": "running"}, "Config": {"Labels": {}}}
        answers = {
            ("GET", "/containers/json"): (200, []),
            ("POST", "/containers/create"): (201, {"Id": cid, "Warnings": []}),
            ("GET", f"/containers/{cid}/json"): (200, running),
            ("POST", f"/containers/{cid}/start"): (204, None),
            ("POST", f"/containers/{cid}/exec"): (201, {"Id": eid}),
            ("POST", f"/exec/{eid}/start"): (200, None),
            ("GET", f"/exec/{eid}/json"): (200, {"ExitCode": 0, "Running": False}),
        }
        if method == "GET" and path.startswith("/images/") and path.endswith("/json"):
            return 200, {"Id": "sha256:" + "0" * 64, "RepoTags": []}
        if (method, path) not in answers:
            raise AssertionError(f"RecordingEngine: unexpected request {method} {path}")
        return answers[method, path]

    def created(self) -> Container:
        """The one container created, as the engine would have read it."""
        (found,) = [(body, params) for method, path, params, body in self.requests if path == "/containers/create"]
        return Container.from_api(*found)

    def execs(self) -> list[Exec]:
        name = self.created().name or self.CONTAINER_ID
        return [
            Exec.from_api(name, body)
            for method, path, params, body in self.requests
            if method == "POST" and path == f"/containers/{self.CONTAINER_ID}/exec"
        ]


def sdk_container(run_kwargs: dict) -> Container:
    """What `client.containers.run(**run_kwargs)` asks the engine for, through the SDK's own conversion."""
    engine = RecordingEngine()
    engine.client.containers.run(**run_kwargs)
    return engine.created()
