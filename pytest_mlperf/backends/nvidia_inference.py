"""NVIDIA's closed MLPerf Inference v2.0 code (mlcommons/inference_results_v2.0 closed/NVIDIA), in its
container, driven through the Docker SDK.

Per session: one container, `make link_dirs` and `make build` once (a stamp remembers them). Per benchmark:
download_model, download_data, preprocess_data once (stamps, and file locks so pytest-xdist workers never run
a step twice). Per (system, benchmark, scenario, config): generate_engines once. Per test: run_harness with
RUN_ARGS built from the case, into a log folder of its own; then the same parsers and verdicts as a replay.
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..catalog import Catalog, InferenceCase
from ..logs import last_lines
from ..machine.containers import ContainerError, LaunchSpec, SessionContainer, engine, ensure_image
from ..machine.datasets import STATE, file_lock, once
from ..options import Options, flag
from . import Artifacts, BackendUnavailable, BuildContext, Case, NvidiaCodeBackend, ResultMissing, RunFailed
from .results import ResultsBackend

DATA_STEPS = ("download_model", "download_data", "preprocess_data")
SCRATCH_DIRS = ("data", "models", "preprocessed_data")


class StepFailed(RunFailed):
    """A make target failed: which one, its exit status and the last lines it printed."""


def config_ver(case: InferenceCase) -> str:
    high = case.benchmark.level == "99.9"
    if case.harness == "triton":
        return "high_accuracy_triton" if high else "triton"
    return "high_accuracy" if high else "default"


def run_args(case: InferenceCase, *, log_dir: str, fast: bool, server_target_qps: float | None) -> str:
    """RUN_ARGS for `make run_harness` / `make generate_engines`: every word comes from the catalog's names
    or a number, never from free text."""
    words = [
        f"--benchmarks={case.benchmark.model}",
        f"--scenarios={case.scenario.name.lower()}",
        f"--config_ver={config_ver(case)}",
    ]
    if not case.harness_implied_by_layout:
        words.append(f"--harness_type={case.harness}")
    if log_dir:
        words += [f"--test_mode={case.mode}", f"--log_dir={log_dir}"]
        if fast:
            words.append("--fast")
        if server_target_qps and case.scenario.name == "Server":
            words.append(f"--server_target_qps={server_target_qps:g}")
    return " ".join(words)


def validate_inputs(code_dir: Path | str | None, scratch_dir: Path | str | None) -> tuple[Path, Path]:
    """Usage errors that name the path and what was expected there."""
    needs = f"{flag('backend')} nvidia needs"
    if not code_dir:
        raise BackendUnavailable(
            f"{needs} {flag('nvidia_code')} DIR (a checkout of closed/NVIDIA of mlcommons/inference_results_v2.0)"
        )
    if not scratch_dir:
        raise BackendUnavailable(
            f"{needs} {flag('scratch')} DIR (MLPERF_SCRATCH_PATH, with data/, models/ and preprocessed_data/)"
        )
    code, scratch = Path(code_dir).expanduser().resolve(), Path(scratch_dir).expanduser().resolve()
    if not code.is_dir():
        raise BackendUnavailable(f"{flag('nvidia_code')} {code}: not a directory")
    missing = [name for name in ("Makefile", "code") if not (code / name).exists()]
    if missing:
        raise BackendUnavailable(
            f"{flag('nvidia_code')} {code}: expected NVIDIA's closed/NVIDIA checkout there, "
            f"but {', '.join(missing)} is missing"
        )
    if not scratch.is_dir():
        raise BackendUnavailable(f"{flag('scratch')} {scratch}: not a directory (MLPERF_SCRATCH_PATH, about 3 TB)")
    for name in SCRATCH_DIRS:
        (scratch / name).mkdir(exist_ok=True)
    return code, scratch


def default_image() -> str:
    # NVIDIA's own naming (make prebuild): mlperf-inference:<user>-<arch>
    return f"mlperf-inference:{getpass.getuser()}-{platform.machine()}"


class NvidiaInferenceBackend(NvidiaCodeBackend):
    name = "nvidia"
    needs_gpu = True

    def __init__(
        self,
        catalog: Catalog,
        *,
        code_dir: Path | str | None,
        scratch_dir: Path | str | None,
        image: str | None,
        output: Path | Callable[[], Path] | None = None,
        profile: str = "nvidia",
        fast: bool = True,
        server_target_qps: float | None = None,
        step_timeout: float | None = None,
        docker_host: str | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        super().__init__(output)
        self.catalog = catalog
        self.code, self.scratch = validate_inputs(code_dir, scratch_dir)
        self.image = image or default_image()
        self.profile = profile
        self.fast = fast
        self.server_target_qps = server_target_qps
        self.step_timeout = step_timeout
        self.docker_host = docker_host
        self.echo = echo
        self._session: SessionContainer | None = None
        self._set_up = False

    @classmethod
    def build(cls, options: Options, context: BuildContext) -> NvidiaInferenceBackend:
        return cls(
            context.catalog,
            code_dir=options.nvidia_code,
            scratch_dir=options.scratch,
            fast=options.duration.seconds is not None,
            server_target_qps=options.server_target_qps,
            step_timeout=options.step_timeout,
            **cls.container_options(options, context),
        )

    def describe(self) -> str:
        return f"NVIDIA's v2.0 code at {self.code} in image {self.image}"

    # ---- case lists -------------------------------------------------------------------------------------
    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        if catalog_cases is None:
            raise BackendUnavailable(
                f"{flag('backend')} nvidia needs {flag('sku')} NAME (or {flag('sku')} auto): it runs one system"
            )
        if kind == "training":
            return []
        return list(catalog_cases)

    # ---- the container ----------------------------------------------------------------------------------
    def session(self) -> SessionContainer:
        if self._session is None:
            try:
                client = engine(self.docker_host, self.echo)
                ensure_image(client, self.image, self.code / "docker" / "Dockerfile", f"name one with {flag('image')}")
            except ContainerError as exc:
                raise BackendUnavailable(str(exc)) from None
            name = f"mlperf-inference-{getpass.getuser()}-{os.getpid()}"
            spec = LaunchSpec(
                image=self.image, name=name, code_dir=self.code, scratch_dir=self.scratch, profile=self.profile
            )
            hint = (
                f"build NVIDIA's (make prebuild, or pass {flag('nvidia_code')} so the plugin builds it) or name one "
                f"with {flag('image')}"
            )
            self._session = SessionContainer(client, spec, image_hint=hint)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.stop()

    # ---- steps ------------------------------------------------------------------------------------------
    def _make(self, target: str, log: Path, *extra: str) -> None:
        argv = ["make", target, *extra]
        code = self.session().exec(argv, log, timeout=self.step_timeout, echo=self.echo, step=f"make {target}")
        if code != 0:
            raise StepFailed(
                f"make {target} failed with exit status {code}; last lines of {log}:\n{last_lines(log, 15)}"
            )

    def _once(self, stamp: Path, log: Path, target: str, *extra: str) -> None:
        """Run a step unless its stamp says it succeeded before; the stamp is written last, under a lock."""
        once(stamp, lambda: self._make(target, log, *extra), f"{target} {' '.join(extra)}")

    def _logs(self, name: str) -> Path:
        base = self.output or (self.code / "build" / STATE / "logs")
        return base / "_steps" / f"{name}.log"

    def setup(self) -> None:
        if self._set_up:
            return
        state = self.code / "build" / STATE
        self._once(state / "link_dirs.stamp", self._logs("link_dirs"), "link_dirs")
        self._once(state / "build.stamp", self._logs("build"), "build")
        self._set_up = True

    def prepare_data(self, model: str) -> None:
        state = self.scratch / STATE
        for step in DATA_STEPS:
            self._once(state / f"{model}.{step}.stamp", self._logs(f"{step}-{model}"), step, f"BENCHMARKS={model}")

    def engines(self, case: InferenceCase) -> None:
        key = re.sub(
            r"[^A-Za-z0-9_.-]",
            "_",
            f"{case.system_id}-{case.benchmark.model}-{case.scenario.name}-{config_ver(case)}-{case.harness}",
        )
        stamp = self.code / "build" / STATE / "engines" / f"{key}.stamp"
        args = run_args(case, log_dir="", fast=False, server_target_qps=None)
        self._once(stamp, self._logs(f"generate_engines-{key}"), "generate_engines", f"RUN_ARGS={args}")

    # ---- one test ---------------------------------------------------------------------------------------
    def run(self, case: Case, workdir: Path) -> Artifacts:
        if not isinstance(case, InferenceCase):
            raise ResultMissing("training on the nvidia backend is not in this version")
        self.setup()
        self.prepare_data(case.benchmark.model)
        self.engines(case)
        with file_lock(self.code / "build" / STATE / "run_harness.lock"):  # one harness run at a time
            stamp = time.strftime("%Y.%m.%d-%H.%M.%S")
            while (self.code / "build" / "logs" / stamp).exists():
                time.sleep(0.2)
                stamp = time.strftime("%Y.%m.%d-%H.%M.%S")
            log_dir = f"/work/build/logs/{stamp}"
            args = run_args(case, log_dir=log_dir, fast=self.fast, server_target_qps=self.server_target_qps)
            log = workdir / "run_harness.log"
            self._make("run_harness", log, f"RUN_ARGS={args}")
        produced = self.code / "build" / "logs" / stamp
        try:
            found = ResultsBackend(produced, self.catalog).locate(case)
        except ResultMissing as exc:
            raise StepFailed(f"make run_harness ended well but left no logs for {case.config_name}: {exc}") from None
        kept = self._keep(case, found.path, produced, log)
        return Artifacts(
            kept,
            harness_perf=found.harness_perf,
            harness_accuracy=found.harness_accuracy,
            files=[kept / "run_harness.log"],
            info={"log_dir": str(produced), "image": self.image},
        )

    def _keep(self, case: InferenceCase, folder: Path, produced: Path, log: Path) -> Path:
        """Copy the case's logs into the pytest run's output folder, in the results-tree layout."""
        base = self.output or (self.code / "build" / STATE / "kept")
        dest = base / case.results_dir
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(folder, dest)
        for name in ("perf_harness_summary.json", "accuracy_summary.json"):
            if (produced / name).exists():
                shutil.copy(produced / name, dest / name)
        shutil.copy(log, dest / "run_harness.log")
        return dest
