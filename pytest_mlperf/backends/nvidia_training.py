"""NVIDIA's MLPerf Training v2.1 BERT (mlcommons/training_results_v2.1, NVIDIA/benchmarks/bert/implementations/
pytorch-22.09), run the way its own scripts run it.

Single node (docker): one container per session started as run_with_docker.sh starts it (ipc host, unlimited
memlock, 64 MiB stack, the phase-2 data, phase-1 checkpoint, eval and results mounts); each trial is an exec of
`python -m torch.distributed.run --standalone --no_python --nproc_per_node=<gpus> ./run_and_time.sh` with the
config file's exported variables in its environment, logged to <DATESTAMP>_<trial>.log.

Multi-node (slurm): `sbatch -N <nodes> --ntasks-per-node=<gpus> --time=<walltime> run.sub` per trial, with the
config's variables and the data paths exported; the job is followed until it ends and cancelled on interrupt.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..catalog import Catalog, CatalogError, System, TrainingCase, TrainingConfig
from ..logs import last_lines
from ..logs.mllog import MARKER
from ..machine.containers import (
    ContainerError,
    SessionContainer,
    TrainingLaunchSpec,
    engine,
    ensure_image,
)
from ..machine.datasets import STATE, BertData, file_lock
from ..machine.slurm import SlurmError, SlurmLauncher, available, explain
from ..options import Options, flag
from . import Artifacts, BackendUnavailable, BuildContext, Case, NvidiaCodeBackend, RunFailed

# What bash exports on its own, and what the backend sets per trial: not config variables.
NOT_CONFIG = {"PWD", "OLDPWD", "SHLVL", "_", "PATH", "NEXP"}
IMAGE_WORKDIR = "/workspace/bert"


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
            at = line.find(MARKER)
            if at < 0 or '"eval_accuracy"' not in line:
                continue
            try:
                record = json.loads(line[at + len(MARKER) :])
                self.accuracy = float(record["value"])
                self.samples = (record.get("metadata") or {}).get("epoch_num")
                self.fresh = True
            except (ValueError, KeyError, TypeError):
                continue
        return self.news()

    def news(self) -> str | None:
        if not self.fresh:
            return None
        self.fresh = False
        return f"; eval_accuracy {self.accuracy:.4f} / target {self.target:.3f} after {self.samples} samples"


class FileFollower:
    """Feeds a growing log file (a Slurm job's, on shared storage) to a TrialProgress."""

    def __init__(self, path: Path, progress: TrialProgress):
        self.path, self.progress, self.offset = path, progress, 0

    def __call__(self) -> str | None:
        if not self.path.exists():
            return None
        with self.path.open("rb") as fh:
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
    needed = [config.file, "run.sub" if launcher == "slurm" else "run_and_time.sh"]
    missing = [name for name in needed if not (code / name).is_file()]
    if missing:
        raise BackendUnavailable(
            f"{flag('training_code')} {code}: expected NVIDIA's pytorch-22.09 BERT implementation there, but "
            f"{', '.join(missing)} is missing"
        )
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
        self.image = image or f"mlperf-nvidia:language_model-{getpass.getuser()}"
        self.profile, self.nexp, self.timeout = profile, nexp, timeout
        self.docker_host, self.echo = docker_host, echo
        self.env = config_environment(self.code, config, 1)
        self.slurm = SlurmLauncher(partition, echo=echo) if launcher == "slurm" else None
        self._session: SessionContainer | None = None
        self.datestamp = time.strftime("%y%m%d%H%M%S") + f"{os.getpid() % 1000:03d}"

    @classmethod
    def build(cls, options: Options, context: BuildContext) -> NvidiaTrainingBackend:
        return cls(
            context.catalog,
            config=training_config(options, context.catalog, context.system),
            sku=context.system.sku if context.system else None,
            code_dir=options.training_code,
            data_dir=options.bert_data,
            launcher=options.launcher,
            nexp=options.nexp,
            partition=options.slurm_partition,
            timeout=options.step_timeout,
            **cls.container_options(options, context),
        )

    def describe(self) -> str:
        return f"NVIDIA's v2.1 BERT at {self.code}, config {self.config.name}, {self.launcher}"

    # ---- case lists -------------------------------------------------------------------------------------
    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        if kind != "training":
            return []
        return self.catalog.training_trials(self.config, self.sku, self.nexp)

    # ---- the container (single node) --------------------------------------------------------------------
    def _logdir(self) -> Path:
        base = self.output or (self.code / STATE / "logs")
        path = base / "training" / self.config.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def session(self) -> SessionContainer:
        if self._session is None:
            try:
                client = engine(self.docker_host, self.echo)
                ensure_image(client, self.image, self.code / "Dockerfile", f"name one with {flag('image')}")
            except ContainerError as exc:
                raise BackendUnavailable(str(exc)) from None
            phase2 = self.data.packed_dir if self.config.packed else self.data.train_dir
            volumes = {
                self.data.train_dir: "/workspace/data",
                phase2: "/workspace/data_phase2",
                self.data.phase1_dir: "/workspace/phase1",
                self.data.eval_dir: "/workspace/evaldata",
                self._logdir(): "/results",
                self.data.root: "/workspace/bert_data",  # where prepare_data.sh writes, when data is missing
            }
            for host in volumes:
                host.mkdir(parents=True, exist_ok=True)
            spec = TrainingLaunchSpec(
                image=self.image,
                name=f"mlperf-training-{getpass.getuser()}-{os.getpid()}",
                code_dir=self.code,
                scratch_dir=self.data.root,
                profile=self.profile,
                volumes=volumes,
            )
            self._session = SessionContainer(
                client, spec, image_hint=f"build it from NVIDIA's Dockerfile or name one with {flag('image')}"
            )
        return self._session

    # ---- prepared data ----------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Check the layout; run the implementation's preparation in the container only when something is
        missing. Under a lock, so xdist workers wait for one preparation; the stamp is written after a
        preparation that left nothing missing."""
        if not self.data.problems(self.config.packed):
            return
        state = self.data.root / STATE
        with file_lock(state / "prepare_data.lock"):
            if not (problems := self.data.problems(self.config.packed)):
                return
            if self.launcher != "docker":
                raise TrialFailed(
                    "the BERT data is not ready (prepare it with the docker launcher or by hand):\n  "
                    + "\n  ".join(problems)
                )
            log = self._logdir() / "prepare_data.log"
            argv = ["./input_preprocessing/prepare_data.sh", "--outputdir", "/workspace/bert_data"]
            code = self.session().exec(argv, log, timeout=self.timeout, echo=self.echo, step="prepare_data")
            left = self.data.problems(self.config.packed)
            if code != 0 or left:
                raise TrialFailed(
                    f"prepare_data.sh ended with exit status {code}"
                    + ("; still missing:\n  " + "\n  ".join(left) if left else "")
                    + f"\nlast lines of {log}:\n{last_lines(log, 10)}"
                )
            (state / "prepare_data.stamp").write_text(f"prepare_data ok {time.strftime('%Y-%m-%d %H:%M:%S')}\n")

    # ---- one trial --------------------------------------------------------------------------------------
    def _trial_env(self) -> dict[str, str]:
        return {**self.env, "SEED": str(random.randint(1, 32767)), "DATESTAMP": self.datestamp, "NEXP": "1"}

    def run(self, case: Case, workdir: Path) -> Artifacts:
        assert isinstance(case, TrainingCase) and case.trial
        index = int(case.trial.rpartition("_")[2])
        if self.slurm is not None:
            self._check_nodes(case)
        self.prepare_data()
        log = self._logdir() / f"{self.datestamp}_{index}.log"
        if log.exists():
            log.unlink()
        env = self._trial_env()
        progress = TrialProgress(case.target)
        info = {"config": self.config.name, "seed": env["SEED"], "launcher": self.launcher, "image": self.image}
        if self.launcher == "docker":
            self._clear_caches(info)
            argv = [
                "python",
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--no_python",
                f"--nproc_per_node={env['DGXNGPU']}",
                "./run_and_time.sh",
            ]
            timeout = self.timeout or self.config.walltime_min * 60
            status = self.session().exec(
                argv, log, env=env, timeout=timeout, echo=self.echo, step=case.id, watch=progress.feed
            )
            how = f"exit status {status}"
        else:
            log, how = self._run_slurm(case, index, env, progress, info)
        text = log.read_text(errors="replace") if log.exists() else ""
        if '"run_stop"' not in text:
            tail = last_lines(text, 15)
            raise TrialFailed(f"{case.id}: the trial ended ({how}) without a run_stop; last lines of {log}:\n{tail}")
        return Artifacts(log, files=[log], info={**info, "ended": how})

    def _clear_caches(self, info: dict) -> None:
        # run_with_docker.sh drops the page cache before each trial (sync; vm.drop_caches=3); that needs root.
        try:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            info["caches_cleared"] = True
        except OSError as exc:
            info["caches_cleared"] = f"no ({exc.strerror})"

    def _check_nodes(self, case: TrainingCase) -> None:
        """A job the cluster can never run fails here, before anything else is done for it."""
        assert self.slurm is not None
        try:
            self.slurm.require_nodes(self.config.nodes, f"config {self.config.name}")
        except SlurmError as exc:
            raise TrialFailed(f"{case.id}: {exc}") from None

    def _run_slurm(self, case: TrainingCase, index: int, env: dict, progress: TrialProgress, info: dict):
        assert self.slurm is not None
        logdir = self._logdir()
        data_phase2 = self.data.packed_dir if self.config.packed else self.data.train_dir
        env = {
            **env,
            "CONT": self.image,
            "DATADIR": str(self.data.train_dir),
            "DATADIR_PHASE2": str(data_phase2),
            "EVALDIR": str(self.data.eval_dir),
            "CHECKPOINTDIR_PHASE1": str(self.data.phase1_dir),
            "LOGDIR": str(logdir),
        }
        walltime = env.get("WALLTIME") or str(self.config.walltime_min)
        # run.sub writes <LOGDIR>/<DATESTAMP>_<n>.log for its n-th experiment (here always 1: one job a trial)
        env["DATESTAMP"] = f"{self.datestamp}-t{index}"
        trial_log = logdir / f"{env['DATESTAMP']}_1.log"
        try:
            job = self.slurm.submit(
                self.code / "run.sub",
                nodes=self.config.nodes,
                tasks_per_node=int(env["DGXNGPU"]),
                walltime=walltime,
                job_name=f"mlperf-bert-{self.config.name}-{case.trial}",
                output=logdir / f"slurm-{self.datestamp}-t{index}-%j.out",
                env=env,
                cwd=self.code,
            )
            info["slurm_job"] = job
            timeout = self.timeout or self.config.walltime_min * 60 + 120
            end = self.slurm.follow(job, timeout=timeout, progress=FileFollower(trial_log, progress))
        except SlurmError as exc:
            raise TrialFailed(f"{case.id}: {exc}") from None
        info["slurm_state"] = end.state
        if end.state != "COMPLETED":
            tail = last_lines(trial_log, 10)
            raise TrialFailed(f"{case.id}: {explain(end)}; last lines of {trial_log}:\n{tail}")
        return trial_log, explain(end)

    def close(self) -> None:
        if self.slurm is not None:
            self.slurm.close()
        if self._session is not None:
            self._session.stop()
