"""NVIDIA's closed MLPerf Inference v2.0 code (mlcommons/inference_results_v2.0 closed/NVIDIA), in its
container, driven through the Docker SDK.

Per session: one container, `make link_dirs` and `make build` once (a stamp remembers them). Per benchmark:
download_model, download_data, preprocess_data once (stamps, and file locks so pytest-xdist workers never run
a step twice). Per (system, benchmark, scenario, config): generate_engines once. Per test: run_harness with
RUN_ARGS built from the case, into a log folder of its own; then the same parsers and verdicts as a replay.
"""

from __future__ import annotations

import getpass
import math
import os
import platform
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..catalog import Catalog, InferenceCase, System, nvidia_tree
from ..logs import last_lines
from ..logs.harness import raised_accuracy_failure
from ..logs.loadgen import parse_detail
from ..machine.containers import ContainerError, LaunchSpec, SessionContainer, engine
from ..machine.datasets import STATE, once
from ..machine.native import NativeRunner, gpu_locks
from ..options import Options, flag
from . import Artifacts, BackendUnavailable, BuildContext, Case, NvidiaCodeBackend, ResultMissing, RunFailed
from .results import ResultsBackend
from .search import (
    NVIDIA_METHOD,
    SEARCH,
    SearchBounds,
    confirm,
    find_peak,
    holds,
    search_bounds,
    search_record,
    whole,
    write_search,
)

DATA_STEPS = ("download_model", "download_data", "preprocess_data")
SCRATCH_DIRS = ("data", "models", "preprocessed_data")


class StepFailed(RunFailed):
    """A make target failed: which one, its exit status and the last lines it printed."""


def accuracy_target(case: InferenceCase) -> str:
    """NVIDIA's --accuracy_target: AccuracyTarget's value (code/common/constants.py), 0.99 or 0.999."""
    return "0.999" if case.benchmark.level == "99.9" else "0.99"


def workload_args(case: InferenceCase) -> list[str]:
    """The workload setting main.py looks the config up by (harness, accuracy target, power setting), spelled
    as its own flags: never --config_ver, whose legacy names override --harness_type (main.py)."""
    return [
        f"--benchmarks={case.benchmark.model}",
        f"--scenarios={case.scenario.name.lower()}",
        f"--harness_type={case.harness}",
        f"--accuracy_target={accuracy_target(case)}",
        f"--power_setting={case.power}",
    ]


def target_qps(value: float | None) -> int | None:
    """--server_target_qps as NVIDIA's parser takes it (type=int in code/common/arguments.py): a whole number,
    written out in digits (never 1e+06)."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise BackendUnavailable(
            f"{flag('server_target_qps')} {value:g}: NVIDIA's harness takes a whole number of queries per second "
            "(--server_target_qps is type=int in code/common/arguments.py)"
        )
    return int(value)


def run_args(case: InferenceCase, *, log_dir: str, fast: bool, server_target_qps: int | None) -> str:
    """RUN_ARGS for `make run_harness` (with log_dir) / `make generate_engines` (without): every word comes from
    the catalog's names or a number, never from free text."""
    words = workload_args(case)
    if log_dir:
        words += [f"--test_mode={case.mode}", f"--log_dir={log_dir}"]
        if fast:
            words.append("--fast")
        if server_target_qps and case.scenario.name == "Server":
            words.append(f"--server_target_qps={server_target_qps}")
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
    """NVIDIA's own name (Makefile: DOCKER_TAG := $(UNAME)-$(ARCH)): mlperf-inference:<user>-<arch>, the image
    `make docker_add_user` makes from `make build_docker`'s mlperf-inference:<user>-<arch>-latest."""
    return f"mlperf-inference:{getpass.getuser()}-{platform.machine()}"


def image_hint(image: str) -> str:
    """How to get NVIDIA's image, said exactly (the plugin cannot build it: docker/Dockerfile.x86_64 installs
    TensorRT from NVIDIA's internal package server, TRT_DEB_URL)."""
    return (
        f"NVIDIA's Makefile makes it in its checkout: `make build_docker NO_BUILD=1` (docker/Dockerfile.<arch> -> "
        f"{image}-latest; it needs TensorRT 8.4 packages, which the Dockerfile fetches from TRT_DEB_URL) then "
        f"`make docker_add_user` (docker/Dockerfile.user -> {image}); `make prebuild` does both and opens a shell "
        "(add ARCH=x86_64 where `uname -p` says unknown, as on Debian). "
        f"Or name an image with {flag('image')}"
    )


def log_stamp(base: Path) -> str:
    """A new folder under build/logs named as NVIDIA's Makefile names one (its TIMESTAMP, this machine's local
    time), created here so that two workers never share one."""
    base.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = time.strftime("%Y.%m.%d-%H.%M.%S")
        try:
            (base / stamp).mkdir()
            return stamp
        except FileExistsError:
            time.sleep(0.25)


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
        system: System | None = None,
        powers: tuple[str, ...] = ("MaxP",),
        gpus: tuple[int, ...] | None = None,
        gpu_keys: Callable[[], list[str]] | None = None,
        host_facts: Callable[[], object] | None = None,
        search: SearchBounds | None = None,
    ):
        super().__init__(output)
        self.search = search  # Server cases search their peak load (--mlperf-server-search)
        self.catalog = catalog
        self.code, self.scratch = validate_inputs(code_dir, scratch_dir)
        try:
            self.registered = nvidia_tree.matrix(nvidia_tree.registrations(self.code))
        except nvidia_tree.TreeError as exc:
            raise BackendUnavailable(f"{flag('nvidia_code')}: {exc}") from None
        self.image = image or default_image()
        self.profile = profile
        self.fast = fast
        self.server_target_qps = target_qps(server_target_qps)
        self.step_timeout = step_timeout
        self.docker_host = docker_host
        self.echo = echo
        self.system = system
        self.powers = powers
        self.gpus = gpus
        self._gpu_keys = gpu_keys
        self._host_facts = host_facts  # what NVIDIA's system detection will see (HostFacts), read when first needed
        self.native = bool(system and system.gpu.integrated)  # Jetson: SUPPORT_DOCKER=0 in NVIDIA's Makefile
        self._sessions: dict[tuple[int, ...] | None, SessionContainer | NativeRunner] = {}
        self._pinned: tuple[int, ...] | None = None  # the one GPU of the case running now (--mlperf-each-gpu)
        self._all_keys: list[str] | None = None
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
            system=context.system,
            powers=options.power,
            gpus=options.gpus,
            gpu_keys=context.gpu_keys,
            host_facts=context.host_facts,
            search=search_bounds(options),
            **cls.container_options(options, context),
        )

    def describe(self) -> str:
        where = (
            "natively (Jetson: NVIDIA's Makefile has no container there)" if self.native else f"in image {self.image}"
        )
        return f"NVIDIA's v2.0 code at {self.code} {where}"

    @property
    def gpu_keys(self) -> list[str]:
        """The lock names of the GPUs under test (NVML's UUIDs, read when a step first needs them): the case's
        one GPU while a pinned case runs, every selected GPU otherwise."""
        if self._pinned is not None:
            return self._gpu_keys(self._pinned) if self._gpu_keys else [f"gpu-{i}" for i in self._pinned]
        if self._all_keys is None:
            self._all_keys = self._gpu_keys() if self._gpu_keys else ["all-gpus"]
        return self._all_keys

    # ---- case lists -------------------------------------------------------------------------------------
    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        """The cases the checkout's own configs register for the system (not the catalog's copy)."""
        if catalog_cases is None or self.system is None:
            raise BackendUnavailable(
                f"{flag('backend')} nvidia needs {flag('sku')} NAME (or {flag('sku')} auto): it runs one system"
            )
        if kind == "training":
            return []
        return list(self.catalog.inference_cases(self.system.sku, self.powers, matrix=self.registered))

    # ---- where the steps run ----------------------------------------------------------------------------
    def session(self) -> SessionContainer | NativeRunner:
        """Where steps run: one container for the session, and one per GPU that a pinned case ran on (it sees
        that GPU alone: NVIDIA_VISIBLE_DEVICES)."""
        pinned = self._pinned
        if pinned not in self._sessions:
            self._check_detection()
            if self.native:
                self._sessions[pinned] = NativeRunner(self.code, {"MLPERF_SCRATCH_PATH": str(self.scratch)})
                return self._sessions[pinned]
            try:
                client = engine(self.docker_host, self.echo)
            except ContainerError as exc:
                raise BackendUnavailable(str(exc)) from None
            name = f"mlperf-inference-{getpass.getuser()}-{os.getpid()}"
            if pinned is not None:
                name += "-gpu" + "-".join(map(str, pinned))
            spec = LaunchSpec(
                image=self.image,
                name=name,
                code_dir=self.code,
                scratch_dir=self.scratch,
                profile=self.profile,
                gpus=pinned if pinned is not None else self.gpus,
                clock=True,
            )
            self._sessions[pinned] = SessionContainer(client, spec, image_hint=image_hint(self.image))
        return self._sessions[pinned]

    def _check_detection(self) -> None:
        """Stop before anything runs when NVIDIA's own system detection, read from the checkout's system list,
        will not find this SKU's system on this host: its main.py would log 'did not match any known systems'
        and exit 0, running nothing."""
        if self.system is None or self._host_facts is None:
            return
        from ..catalog import nvidia_detection

        try:
            rules = nvidia_detection.load_rules(self.code)
            facts = self._host_facts(self._pinned) if self._pinned is not None else self._host_facts()
            found = nvidia_detection.predict(rules, facts, want=self.system.known_system)
        except ValueError as exc:  # DetectionRulesError, or a KnownSystem the checkout lacks
            raise BackendUnavailable(f"{flag('nvidia_code')}: cannot read NVIDIA's system list: {exc}") from None
        if not found.runs_as_wanted:
            raise BackendUnavailable(
                f"{flag('sku')} {self.system.sku}: NVIDIA's system detection will not run this host as "
                f"{self.system.known_system} ({self.system.system_id}): {found.message()}. Its main.py "
                "would log 'did not match any known systems' and run nothing; describe the machine to it first "
                "(scripts/custom_systems/add_custom_system.py in the checkout)"
            )

    def own_cgroups(self) -> list[str]:
        """The ids of this backend's containers: NVIDIA's harness runs in them, outside this process tree."""
        return [c.id for c in (getattr(w, "container", None) for w in list(self._sessions.values())) if c is not None]

    def close(self) -> None:
        for where in list(self._sessions.values()):
            where.stop()

    # ---- steps ------------------------------------------------------------------------------------------
    def _make(self, target: str, log: Path, *variables: str) -> int:
        # Every other target of NVIDIA's Makefile depends on link_dirs, whose `ln -sfn` races with itself when
        # two workers' steps start together ("File exists"); it ran once, under its stamp, so make is told to
        # take it as done.
        done = [] if target == "link_dirs" else ["--old-file=link_dirs"]
        argv = ["make", target, *done, *variables]
        return self.session().exec(argv, log, timeout=self.step_timeout, echo=self.echo, step=f"make {target}")

    def _make_ok(self, target: str, log: Path, *variables: str) -> None:
        code = self._make(target, log, *variables)
        if code != 0:
            raise StepFailed(
                f"make {target} failed with exit status {code}; last lines of {log}:\n{last_lines(log, 15)}"
            )

    def _once(self, stamp: Path, log: Path, target: str, *variables: str) -> None:
        """Run a step unless its stamp says it succeeded before; the stamp is written last, under a lock. It
        shares the GPUs: nothing of it runs while a performance run holds them."""

        def step():
            with gpu_locks(self.gpu_keys, exclusive=False):
                self._make_ok(target, log, *variables)

        once(stamp, step, f"{target} {' '.join(variables)}")

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
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{case.benchmark.model}-{case.config_name}")
        stamp = self.code / "build" / STATE / "engines" / f"{key}.stamp"
        args = run_args(case, log_dir="", fast=False, server_target_qps=None)
        self._once(stamp, self._logs(f"generate_engines-{key}"), "generate_engines", f"RUN_ARGS={args}")

    # ---- one test ---------------------------------------------------------------------------------------
    def log_root(self) -> tuple[Path, str]:
        """build/logs as this machine sees it, and as NVIDIA's make sees it (/work in the container)."""
        host = self.code / "build" / "logs"
        return host, (str(host) if self.native else f"{LaunchSpec.working_dir}/build/logs")

    def run(self, case: Case, workdir: Path) -> Artifacts:
        if not isinstance(case, InferenceCase):
            raise ResultMissing("training on the nvidia backend is not in this version")
        # A case pinned to one GPU runs every step it needs in that GPU's container, under that GPU's lock alone:
        # a step that locked every GPU would wait for the other GPUs' measurements while holding this one.
        self._pinned = (case.gpu,) if case.gpu is not None else None
        try:
            return self._run(case, workdir)
        finally:
            self._pinned = None

    def _run(self, case: InferenceCase, workdir: Path) -> Artifacts:
        self.session()  # where the steps run, once NVIDIA's detection is known to find the system: before any step
        self.setup()
        self.prepare_data(case.benchmark.model)
        self.engines(case)
        if self.search is not None and case.scenario.name == "Server" and case.mode == "PerformanceOnly":
            return self._searched(case, workdir)
        return self._artifacts(case, *self._harness(case, workdir, self.fast, self.server_target_qps))

    def _harness(self, case: InferenceCase, workdir: Path, fast: bool, qps: int | None, name: str = "run_harness.log"):
        """One `make run_harness`: (the logs it produced, its output, its exit status)."""
        host_logs, make_logs = self.log_root()
        stamp = log_stamp(host_logs)
        log_dir = f"{make_logs}/{stamp}"
        args = run_args(case, log_dir=log_dir, fast=fast, server_target_qps=qps)
        log = workdir / name
        with gpu_locks(self.gpu_keys, exclusive=case.mode == "PerformanceOnly"):
            code = self._make("run_harness", log, f"RUN_ARGS={args}", f"LOG_DIR={log_dir}")
        return host_logs / stamp, log, code

    def _searched(self, case: InferenceCase, workdir: Path) -> Artifacts:
        """The Server peak: short (--fast) runs of NVIDIA's harness at fixed server_target_qps, from NVIDIA's tuned
        target (its user.conf) or --mlperf-server-target-qps, then one run of the configured length at the peak
        (backing off 5 % at most twice when it does not hold), whose logs are the case's."""
        tuned = (self.catalog.tuned_settings(case.system_name, case.benchmark.name, case.scenario.name) or {}).get(
            "target_qps"
        )
        start = float(self.server_target_qps or tuned or 0)
        if start <= 0:
            raise StepFailed(
                f"{case.config_name}: NVIDIA's user.conf has no server_target_qps to start the search from; give "
                f"{flag('server_target_qps')}"
            )
        logs: list[str] = []

        def run_at(qps: float) -> bool:
            produced, log, code = self._harness(case, workdir, True, round(qps), f"search-{len(logs) + 1:02d}.log")
            logs.append(str(produced))
            if code != 0:
                raise StepFailed(
                    f"make run_harness (search at {round(qps)} QPS) failed with exit status {code}; "
                    f"last lines of {log}:\n{last_lines(log, 15)}"
                )
            found = ResultsBackend(produced, self.catalog).locate(case)
            return holds(parse_detail(found.path / "mlperf_log_detail.txt"))

        found = find_peak(run_at, start, self.search, quantize=whole)
        confirming: list[Artifacts] = []

        def run_full(load: float) -> bool:
            confirming.append(self._artifacts(case, *self._harness(case, workdir, self.fast, round(load))))
            return parse_detail(confirming[-1].path / "mlperf_log_detail.txt").validity == "VALID"

        load, tries = confirm(found, run_full, quantize=whole)
        artifacts = confirming[-1]
        method = NVIDIA_METHOD
        record = search_record(found, method, start, load, tries, step_logs=logs)
        write_search(artifacts.path / SEARCH, record)
        return artifacts

    def _artifacts(self, case: InferenceCase, produced: Path, log: Path, code: int) -> Artifacts:
        """What run_harness left. main.py raises when an accuracy check FAILS (make exits non-zero): that run's
        logs and accuracy.txt are judged like any other, with NVIDIA's failure as its harness message, and the
        verdict is FAIL with its value and threshold. Any other failure is a failed step."""
        failed = f"make run_harness failed with exit status {code}; last lines of {log}:\n{last_lines(log, 15)}"
        raised = raised_accuracy_failure(last_lines(log, 200), str(log)) if code != 0 else None
        try:
            found = ResultsBackend(produced, self.catalog).locate(case)
        except ResultMissing as exc:
            if code != 0:
                raise StepFailed(f"{failed}\n(logs: {produced})") from None
            raise StepFailed(f"make run_harness ended well but left no logs for {case.config_name}: {exc}") from None
        if code != 0 and (case.mode != "AccuracyOnly" or raised is None or not (found.path / "accuracy.txt").is_file()):
            raise StepFailed(f"{failed}\n(logs: {produced})")
        kept = self._keep(case, found.path, produced, log)
        info = {"log_dir": str(produced), "image": None if self.native else self.image}
        if code != 0:
            info["run_harness_exit_status"] = code
        return Artifacts(
            kept,
            harness_perf=found.harness_perf,
            harness_accuracy=raised or found.harness_accuracy,
            files=[kept / "run_harness.log"],
            info=info,
        )

    def _keep(self, case: InferenceCase, folder: Path, produced: Path, log: Path) -> Path:
        """Copy the case's logs into the pytest run's output folder, in the results-tree layout."""
        base = self.output or (self.code / "build" / STATE / "kept")
        dest = base / case.output_dir
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(folder, dest)
        for name in ("perf_harness_summary.json", "accuracy_summary.json", "stdout.txt"):
            if (produced / name).exists():
                shutil.copy(produced / name, dest / name)
        shutil.copy(log, dest / "run_harness.log")
        return dest
