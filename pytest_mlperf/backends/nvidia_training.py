"""NVIDIA's MLPerf Training v2.1 BERT (mlcommons/training_results_v2.1, NVIDIA/benchmarks/bert/implementations/
pytorch-22.09), run the way its own scripts run it.

Single node (docker): the container run_with_docker.sh starts (the image's own user and working directory, init,
host network, UTS and IPC, no seccomp filter, unlimited memlock, a 64 MiB stack, the config's GPUs, and the mounts
mounts.txt lists), one per session. Each trial drops the host's page cache (root, or sudo without a password) and
logs NVIDIA's cache_clear event from the container, then execs `python -m torch.distributed.run --standalone
--no_python --nproc_per_node=<gpus> ./run_and_time.sh` (a30-run_and_time.sh for the A30 config) with the config
file's variables and a SEED, its output written to <LOGDIR>/<DATESTAMP>_<trial>.log as run_with_docker.sh tees it.

Multi-node (slurm): `sbatch -N <nodes> --ntasks-per-node=<gpus> --time=<WALLTIME> run.sub` (a30.sub for the A30
config) per trial, with the config's variables, the data folders, UNITTESTDIR, CONT and LOGDIR exported. Before the
first job: every variable the job script and mounts.txt read is set, the image is one pyxis can pull, and a short
srun over as many nodes as the job sees every mount source and the log folder. Jobs are followed until they end and
cancelled on interrupt.
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..catalog import Catalog, CatalogError, System, TrainingCase, TrainingConfig, nvidia_bert
from ..logs import ParseError, last_lines
from ..logs.mllog import MARKER, iter_events
from ..machine.containers import (
    ContainerError,
    SessionContainer,
    TrainingLaunchSpec,
    engine,
    ensure_image,
)
from ..machine.datasets import STATE, BertData, file_lock
from ..machine.slurm import SlurmError, SlurmLauncher, available, explain, probe_paths
from ..options import Options, flag
from . import Artifacts, BackendUnavailable, BuildContext, Case, NvidiaCodeBackend, RunFailed
from .bert_job import (
    CACHE_CLEAR_CODE,
    DEFAULT_IMAGE,
    drop_host_caches,
    image_problem,
    job_image,
    missing_variables,
    walltime_minutes,
)

# What bash exports on its own, and what the backend sets per trial: not config variables.
NOT_CONFIG = {"PWD", "OLDPWD", "SHLVL", "_", "PATH", "NEXP"}
TORCH_RUN = ["python", "-m", "torch.distributed.run", "--standalone", "--no_python"]  # torchrun, as a module


class TrialFailed(RunFailed):
    """A trial ended without a log to judge: how, and the log's last lines."""


def config_environment(code: Path, config: TrainingConfig, nexp: int = 1) -> dict[str, str]:
    """The variables config_<system>.sh exports, read as run_with_docker.sh reads them (a clean bash that
    sources the file), without pasting anything into a command string."""
    path = code / config.file
    bash = shutil.which("bash") or "/bin/bash"
    argv = ["env", "-i", "PATH=/usr/bin:/bin", f"NEXP={nexp}", bash, "-c", '. "$1" >/dev/null && env -0', "bash"]
    proc = subprocess.run([*argv, str(path)], cwd=code, capture_output=True, timeout=60)
    if proc.returncode != 0:
        tail = last_lines(proc.stderr.decode(errors="replace"), 5, " | ")
        raise BackendUnavailable(f"sourcing {path} failed (exit {proc.returncode}): {tail}")
    env = {}
    for item in proc.stdout.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep and key not in NOT_CONFIG:
            env[key] = value
    for needed in ("DGXNGPU", "BATCHSIZE", "MAX_STEPS"):
        if needed not in env:
            raise BackendUnavailable(f"{path}: does not export {needed}; is it one of NVIDIA's BERT config files?")
    return env


class TrialProgress:
    """Reads a trial's output as it comes; says when a new eval_accuracy arrives, against the target."""

    def __init__(self, target: float):
        self.target = target
        self.pending = ""
        self.accuracy: float | None = None
        self.samples: int | None = None
        self.fresh = False

    def feed(self, text: str) -> str | None:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            if MARKER not in line or '"eval_accuracy"' not in line:
                continue
            try:
                events = [e for e in iter_events("<output>", line) if e.key == "eval_accuracy"]
            except ParseError:
                continue  # the log is judged whole at the end; progress notes skip what they cannot read
            for event in events:
                try:
                    self.accuracy = float(event.value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue  # the verdict reads the log whole and names such a value; a note just skips it
                self.samples, self.fresh = event.metadata.get("epoch_num"), True
        return self.news()

    def news(self) -> str | None:
        if not self.fresh:
            return None
        self.fresh = False
        return f"; eval_accuracy {self.accuracy:.4f} / target {self.target:.3f} after {self.samples} samples"


class FileFollower:
    """Feeds a growing log file (a Slurm job's, on shared storage) to a TrialProgress; the file is found by a
    callable, as its name is known only once the job script has made it."""

    def __init__(self, find: Callable[[], Path | None], progress: TrialProgress):
        self.find, self.progress, self.offset = find, progress, 0

    def __call__(self) -> str | None:
        path = self.find()
        if path is None or not path.exists():
            return None
        with path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        return self.progress.feed(data.decode(errors="replace")) if data else None


def _validate_code(code_dir: Path | str | None, config: TrainingConfig, launcher: str) -> Path:
    if not code_dir:
        raise BackendUnavailable(f"NVIDIA's training needs {flag('training_code')} DIR")
    code = Path(code_dir).expanduser().resolve()
    if not code.is_dir():
        raise BackendUnavailable(f"{flag('training_code')} {code}: not a directory")
    needed = [config.file, config.job_script if launcher == "slurm" else config.run_and_time, nvidia_bert.MOUNTS_FILE]
    missing = [name for name in needed if not (code / name).is_file()]
    if missing:
        raise BackendUnavailable(
            f"{flag('training_code')} {code}: expected NVIDIA's pytorch-22.09 BERT implementation there, but "
            f"{', '.join(missing)} is missing"
        )
    try:  # a mounts.txt or job script this version cannot read is said before anything starts
        if launcher == "slurm":
            nvidia_bert.requirements(code, config.job_script, config.run_and_time)
        else:
            nvidia_bert.docker_mounts(code)
    except nvidia_bert.ScriptError as exc:
        raise BackendUnavailable(str(exc)) from None
    return code


def training_config(options: Options, catalog: Catalog, system: System | None) -> TrainingConfig:
    """The config a training run uses: the one named, or the SKU's for the node count."""
    try:
        if options.training_config:
            return catalog.training_config(options.training_config)
        if system is None:
            raise BackendUnavailable(f"NVIDIA's training runs one system: name it with {flag('sku')} NAME")
        return catalog.select_training_config(system.sku, options.nodes or 1)
    except CatalogError as exc:
        raise BackendUnavailable(f"{exc}; name one with {flag('training_config')}") from None


class NvidiaTrainingBackend(NvidiaCodeBackend):
    name = "nvidia"

    def __init__(
        self,
        catalog: Catalog,
        *,
        config: TrainingConfig,
        sku: str | None,
        code_dir: Path | str | None,
        data_dir: Path | str | None,
        image: str | None,
        output: Path | Callable[[], Path] | None = None,
        profile: str = "nvidia",
        launcher: str = "docker",
        nexp: int = 1,
        partition: str | None = None,
        timeout: float | None = None,
        docker_host: str | None = None,
        echo: Callable[[str], None] | None = None,
        gpus: tuple[int, ...] | None = None,
        logdir: Path | str | None = None,
    ):
        super().__init__(output)
        self.catalog, self.config, self.sku = catalog, config, sku
        self.code = _validate_code(code_dir, config, launcher)
        if not data_dir:
            raise BackendUnavailable(
                f"NVIDIA's training needs {flag('bert_data')} DIR (the --outputdir of prepare_data.sh)"
            )
        self.data = BertData(Path(data_dir).expanduser().resolve())
        if not self.data.root.is_dir():
            raise BackendUnavailable(f"{flag('bert_data')} {self.data.root}: not a directory")
        if launcher == "docker" and config.nodes > 1:
            raise BackendUnavailable(
                f"config {config.name} runs on {config.nodes} nodes: use {flag('launcher')} slurm (docker runs one "
                "node)"
            )
        if launcher == "slurm" and (why := available()):
            raise BackendUnavailable(f"{flag('launcher')} slurm: {why}")
        self.launcher = launcher
        self.needs_gpu = launcher == "docker"  # under Slurm the GPUs are on the compute nodes, not here
        self.image = image or DEFAULT_IMAGE
        self.profile, self.nexp, self.docker_host, self.echo = profile, nexp, docker_host, echo
        self.env = config_environment(self.code, config, 1)
        self.walltime_min = self._walltime()
        limit = min(self.walltime_min * 60, threading.TIMEOUT_MAX - 120)  # a timer longer than this never fires
        self.timeout = timeout or limit  # a trial's limit: the option's, else the config's WALLTIME
        self.job_timeout = timeout or limit + 120  # a job's: Slurm enforces WALLTIME itself first
        self.gpus = gpus if gpus is not None else _visible(self.env.get("CUDA_VISIBLE_DEVICES"))
        self._logdir_option = Path(logdir).expanduser().resolve() if logdir else None
        self.slurm = SlurmLauncher(partition, echo=echo) if launcher == "slurm" else None
        if launcher == "slurm" and (why := image_problem(self.image, config.job_script)):
            raise BackendUnavailable(f"{flag('image')} {self.image}: {why}")
        self._session: SessionContainer | None = None
        self._checked = False
        self.datestamp = time.strftime("%y%m%d%H%M%S") + f"{os.getpid() % 1000:03d}"

    def _walltime(self) -> int:
        try:
            minutes = walltime_minutes(self.env.get("WALLTIME"))
        except ValueError as exc:
            raise BackendUnavailable(f"{self.code / self.config.file}: {exc}") from None
        return minutes or self.config.walltime_min

    @classmethod
    def build(cls, options: Options, context: BuildContext) -> NvidiaTrainingBackend:
        return cls(
            context.catalog,
            config=training_config(options, context.catalog, context.system),
            sku=context.system.sku if context.system else None,
            code_dir=options.training_code,
            data_dir=options.bert_data,
            launcher=options.launcher,
            nexp=options.nexp or 1,  # one trial (hours on a GPU node): a convergence gate
            partition=options.slurm_partition,
            timeout=options.step_timeout,
            gpus=options.gpus,
            logdir=options.training_logdir,
            **cls.container_options(options, context),
        )

    def describe(self) -> str:
        return f"NVIDIA's v2.1 BERT at {self.code}, config {self.config.name}, {self.launcher}"

    # ---- case lists -------------------------------------------------------------------------------------
    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        if kind != "training":
            return []
        return self.catalog.training_trials(self.config, self.sku, self.nexp)

    # ---- where things are -------------------------------------------------------------------------------
    def logdir(self) -> Path:
        """LOGDIR: the option's folder; under Slurm NVIDIA's ./results of the implementation (checked from the
        nodes before the first job); with docker the session's output folder."""
        if self._logdir_option is not None:
            path = self._logdir_option
        elif self.launcher == "slurm":
            path = self.code / "results"
        else:
            path = (self.output or (self.code / STATE / "logs")) / "training" / self.config.name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrialFailed(f"LOGDIR {path}: {exc.strerror}; name a folder with {flag('training_logdir')}") from None
        return path

    def data_environment(self) -> dict[str, str]:
        """The data folders mounts.txt mounts, as NVIDIA's README passes them (DATADIR, DATADIR_PHASE2, EVALDIR,
        CHECKPOINTDIR_PHASE1), and UNITTESTDIR: the caller's, or an empty folder beside the data (mounts.txt mounts
        it at /workspace/unit_test_data; the unit tests read it only with UNITTEST=1)."""
        unit = os.environ.get("UNITTESTDIR") or str(self.data.root / "unit_test")
        if not os.environ.get("UNITTESTDIR"):
            Path(unit).mkdir(parents=True, exist_ok=True)
        train = self.data.train_dir  # found by listing the shards folders: once
        return {
            "DATADIR": str(train),
            "DATADIR_PHASE2": str(self.data.packed_dir if self.config.packed else train),
            "EVALDIR": str(self.data.eval_dir),
            "CHECKPOINTDIR_PHASE1": str(self.data.phase1_dir),
            "UNITTESTDIR": unit,
        }

    def mounts(self) -> dict[str, Path]:
        """run_with_docker.sh's mounts, container path -> host path (DATADIR and DATADIR_PHASE2 are one folder
        for the unpacked configs, mounted twice): mounts.txt's lines with the data environment substituted."""
        env = {**os.environ, **self.env, **self.data_environment()}
        out: dict[str, Path] = {}
        try:
            found = nvidia_bert.docker_mounts(self.code)
        except nvidia_bert.ScriptError as exc:
            raise BackendUnavailable(str(exc)) from None
        for mount in found:
            source = mount.expand(env)
            if not source.startswith("/"):
                how = (
                    f"{mount.variable}={source!r} is not an absolute path" if source else f"{mount.variable} is not set"
                )
                raise BackendUnavailable(f"{mount.origin} mounts {mount.source} at {mount.target}, and {how}")
            out[mount.target] = Path(source)
        return out

    # ---- the container (single node) --------------------------------------------------------------------
    def launch_spec(self) -> TrainingLaunchSpec:
        """The container run_with_docker.sh starts (see TrainingLaunchSpec), under a name of this session's."""
        return TrainingLaunchSpec(
            image=self.image,
            name=f"mlperf-training-{getpass.getuser()}-{os.getpid()}",
            code_dir=self.code,
            scratch_dir=self.data.root,
            profile=self.profile,
            volumes=self.mounts(),
            gpus=self.gpus,
        )

    def _client(self):
        try:
            client = engine(self.docker_host, self.echo)
            ensure_image(client, self.image, self.code / "Dockerfile", f"name one with {flag('image')}")
        except ContainerError as exc:
            raise BackendUnavailable(str(exc)) from None
        return client

    def session(self) -> SessionContainer:
        if self._session is None:
            spec = self.launch_spec()
            for host in spec.volumes.values():
                host.mkdir(parents=True, exist_ok=True)
            hint = f"build it from NVIDIA's Dockerfile (docker build --pull -t {DEFAULT_IMAGE} .) or name one with"
            self._session = SessionContainer(self._client(), spec, image_hint=f"{hint} {flag('image')}")
        return self._session

    def trial_command(self, seed: int) -> tuple[list[str], dict[str, str]]:
        """The exec of one trial: torchrun over the config's GPUs, and run_with_docker.sh's --env list (the
        config's variables and SEED)."""
        argv = [*TORCH_RUN, f"--nproc_per_node={self.env['DGXNGPU']}", f"./{self.config.run_and_time}"]
        # a config that exports data folders of NVIDIA's cluster (4gpu_common's /raid/...) passes the ones mounted,
        # as `CONT=... DATADIR=... ./run_with_docker.sh` does after sourcing it
        data = {name: value for name, value in self.data_environment().items() if name in self.env}
        return argv, {**self.env, **data, "SEED": str(seed)}

    @staticmethod
    def cache_clear_command() -> list[str]:
        return ["python", "-c", CACHE_CLEAR_CODE]

    # ---- prepared data ----------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Check the layout; run the implementation's preparation when something it makes is missing (as NVIDIA's
        README does: the image with the data folder at /workspace/bert_data, prepare_data.sh --outputdir there).
        Under a lock, so xdist workers wait for one preparation; the stamp is written after a preparation that
        left nothing missing. Packed data is never prepared here: it is a separate, large-memory procedure."""
        if not self.data.problems(self.config.packed):
            return
        state = self.data.root / STATE
        with file_lock(state / "prepare_data.lock"):
            if self.launcher == "docker" and self.data.preparation_would_help():
                self._run_prepare_data()
            if problems := self.data.problems(self.config.packed):
                how = "" if self.launcher == "docker" else " (prepare it with the docker launcher or by hand)"
                raise TrialFailed(f"the BERT data is not ready{how}:\n  " + "\n  ".join(problems))

    def _run_prepare_data(self) -> None:
        log = self.logdir() / "prepare_data.log"
        spec = replace(
            self.launch_spec(),
            name=f"mlperf-prepare-{getpass.getuser()}-{os.getpid()}",
            gpus=None,
            volumes={"/workspace/bert_data": self.data.root},
        )
        container = SessionContainer(self._client(), spec, image_hint=f"name one with {flag('image')}")
        argv = ["./input_preprocessing/prepare_data.sh", "--outputdir", "/workspace/bert_data"]
        try:
            code = container.exec(argv, log, timeout=self.timeout, echo=self.echo, step="prepare_data")
        finally:
            container.stop()
        left = self.data.base_problems()
        if code != 0 or self.data.preparation_would_help():
            raise TrialFailed(
                f"prepare_data.sh ended with exit status {code}"
                + ("; still missing:\n  " + "\n  ".join(left) if left else "")
                + f"\nlast lines of {log}:\n{last_lines(log, 10)}"
            )
        state = self.data.root / STATE
        (state / "prepare_data.stamp").write_text(f"prepare_data ok {time.strftime('%Y-%m-%d %H:%M:%S')}\n")

    # ---- one trial --------------------------------------------------------------------------------------
    def run(self, case: Case, workdir: Path) -> Artifacts:
        assert isinstance(case, TrainingCase) and case.trial
        index = int(case.trial.rpartition("_")[2])
        if self.slurm is not None:
            self._check_nodes(case)
        self.prepare_data()
        seed = random.randint(1, 32767)
        progress = TrialProgress(case.target)
        info = {"config": self.config.name, "seed": seed, "launcher": self.launcher, "image": self.image}
        if self.launcher == "docker":
            log, how = self._run_docker(case, index, seed, progress, info)
        else:
            log, how = self._run_slurm(case, index, seed, progress, info)
        text = log.read_text(errors="replace") if log.exists() else ""
        more = info.pop("_job_output", "")  # the job output's last lines, for a failure message only
        if '"run_stop"' not in text:
            tail = last_lines(text, 15)
            raise TrialFailed(
                f"{case.id}: the trial ended ({how}) without a run_stop; last lines of {log}:\n{tail}" + more
            )
        extra = [Path(info["slurm_output"])] if "slurm_output" in info else []
        return Artifacts(log, files=[log, *(p for p in extra if p.exists())], info={**info, "ended": how})

    def _run_docker(self, case: TrainingCase, index: int, seed: int, progress: TrialProgress, info: dict):
        log = self.logdir() / f"{self.datestamp}_{index}.log"
        log.unlink(missing_ok=True)
        session = self.session()
        why = drop_host_caches()
        info["caches_cleared"] = why is None
        if why is None:  # the event says the caches were dropped: logged only when they were
            status = session.exec(self.cache_clear_command(), log, echo=self.echo, step=f"{case.id} cache_clear")
            if status != 0:
                raise TrialFailed(f"{case.id}: logging cache_clear failed (exit {status}):\n{last_lines(log, 10)}")
        else:
            info["caches_not_cleared"] = why
        argv, env = self.trial_command(seed)
        status = session.exec(
            argv, log, env=env, timeout=self.timeout, echo=self.echo, step=case.id, watch=progress.feed
        )
        return log, f"exit status {status}"

    def _check_nodes(self, case: TrainingCase) -> None:
        """A job the cluster can never run fails here, before anything else is done for it."""
        assert self.slurm is not None
        try:
            self.slurm.require_nodes(self.config.nodes, f"config {self.config.name}")
        except SlurmError as exc:
            raise TrialFailed(f"{case.id}: {exc}") from None

    def job_environment(self, datestamp: str) -> dict[str, str]:
        """What a job script is given, beside the caller's environment: NVIDIA's README's variables."""
        return {
            **self.env,
            **self.data_environment(),
            "CONT": job_image(self.image, self.config.job_script),
            "LOGDIR": str(self.logdir()),
            "NEXP": "1",
            "DATESTAMP": datestamp,
        }

    def check_submission(self, env: dict[str, str]) -> None:
        """Once a session, before the first job: every variable the job script, mounts.txt and the run-and-time
        script read is set; every mount source (and the preload folder of CONTAINER_PRELOAD_LUSTRE) exists on as
        many nodes as the job uses, and the log folder is the submit host's."""
        if self._checked:
            return
        script = self.config.job_script
        try:
            required = nvidia_bert.requirements(self.code, script, self.config.run_and_time)
            mounts = nvidia_bert.mounts(self.code, script)
        except nvidia_bert.ScriptError as exc:
            raise TrialFailed(f"not submitted: {exc}") from None
        full = {**os.environ, **env}
        if missing := missing_variables(required, full):
            raise TrialFailed(f"not submitted: {script} needs " + "; ".join(missing))
        relative = [
            f"{m.variable}={m.expand(full)!r} ({m.origin})" for m in mounts if not m.expand(full).startswith("/")
        ]
        if relative:
            raise TrialFailed(f"not submitted: {script}'s mount sources must be absolute paths: " + "; ".join(relative))
        paths = [m.expand(full) for m in mounts]
        if full.get("CONTAINER_PRELOAD_LUSTRE", "0") not in ("", "0"):
            folder = nvidia_bert.preload_folder(self.code, script)
            paths += [folder] if folder else []
        if self.image.startswith("/"):
            paths.append(self.image)
        assert self.slurm is not None
        try:
            found = probe_paths(self.config.nodes, Path(full["LOGDIR"]), paths, partition=self.slurm.partition)
        except SlurmError as exc:
            raise TrialFailed(f"not submitted: {exc}") from None
        if found.problems:
            raise TrialFailed(
                f"not submitted: {script} mounts and logs to folders every node must see:\n  "
                + "\n  ".join(found.problems)
                + f"\n(LOGDIR is {full['LOGDIR']}; name a shared folder with {flag('training_logdir')})"
            )
        self._checked = True

    def _run_slurm(self, case: TrainingCase, index: int, seed: int, progress: TrialProgress, info: dict):
        assert self.slurm is not None
        datestamp = f"{self.datestamp}t{index}"  # one job a trial: its only experiment writes <LOG_BASE>_1.log
        env = {**self.job_environment(datestamp), "SEED": str(seed)}
        self.check_submission(env)
        logdir = Path(env["LOGDIR"])

        def trial_log() -> Path | None:
            found = [p for p in logdir.glob(nvidia_bert.trial_log_glob(datestamp, 1)) if "_nccl" not in p.name]
            return found[0] if found else None

        output = logdir / f"slurm-{datestamp}-%j.out"
        try:
            job = self.slurm.submit(
                self.code / self.config.job_script,
                nodes=self.config.nodes,
                tasks_per_node=int(self.env["DGXNGPU"]),
                walltime=str(self.walltime_min),
                job_name=f"mlperf-bert-{self.config.name}-{case.trial}-{datestamp}",  # unique: cancelled by name
                output=output,
                env=env,
                cwd=self.code,
            )
            info["slurm_job"] = job
            end = self.slurm.follow(job, timeout=self.job_timeout, progress=FileFollower(trial_log, progress))
        except SlurmError as exc:
            raise TrialFailed(f"{case.id}: {exc}") from None
        info["slurm_state"] = end.state
        log = trial_log() or logdir / f"{datestamp}_1.log"
        job_output = Path(str(output).replace("%j", job))
        info["slurm_output"] = str(job_output)  # run.sub's own trace (set -x), srun's and pyxis's errors
        info["_job_output"] = f"\nlast lines of the job's output {job_output}:\n{last_lines(job_output, 10)}"
        if end.state != "COMPLETED":
            raise TrialFailed(
                f"{case.id}: {explain(end)}; last lines of {log}:\n{last_lines(log, 10)}" + info.pop("_job_output")
            )
        return log, explain(end)

    def close(self) -> None:
        if self.slurm is not None:
            self.slurm.close()
        if self._session is not None:
            self._session.stop()


def _visible(devices: str | None) -> tuple[int, ...] | None:
    """A config's CUDA_VISIBLE_DEVICES (1x4x56x2: 0,1,2,3) as the GPUs the container gets; None: all of them."""
    if not devices:
        return None
    try:
        return tuple(int(d) for d in devices.split(","))
    except ValueError:
        raise BackendUnavailable(
            f"CUDA_VISIBLE_DEVICES={devices!r} in the config is not a list of GPU indices"
        ) from None
