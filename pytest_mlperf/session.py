"""The run's state, one per pytest process (the xdist controller and each worker): the options, the catalog,
the system under test, a backend for each kind of case, the gate, the header and the reporter. It lives on the
config under SESSION_KEY and is closed in pytest_unconfigure."""

from __future__ import annotations

import atexit
import datetime
import os
import platform
import shlex
import signal
import threading
from pathlib import Path

import pytest

from . import __version__, catalog, installed
from .backends import BackendBase, BackendUnavailable, BuildContext
from .backends import choice as choosing
from .gate import baseline, compliance, fingerprint
from .gate.policy import Gate
from .judge.verdict import TrialOutcome
from .machine import gpu, native
from .options import Options, flag, two_word_values
from .options import path as path_value
from .report.reporter import Reporter
from .report.trials import TrialStore

KINDS = ("inference", "training")
# The rounds whose NVIDIA code the nvidia backend runs; a later round's cases are replayed and judged, not run yet.
NVIDIA_ROUNDS = ("inference-v2.0",)


class MlperfSession:
    def __init__(self, config: pytest.Config, options: Options, controller_header: dict | None = None):
        self.config = config
        self.options = options
        guard_two_words(config)
        self._nvml: gpu.Inventory | gpu.NvmlUnavailable | None = None
        self.detected: gpu.Inventory | None = None  # what --sku auto matched against
        self.round, self.round_reason = self._choose_round(controller_header)
        self.catalog = catalog.load(self.round)
        self.system = self._resolve_system(controller_header)
        self.pinned_gpus = self._each_gpu() if options.each_gpu else ()
        self._check_training_options()
        self._check_output_paths()
        if clash := installed.clashing_files(config.args, config.invocation_params.dir, config.rootpath):
            raise pytest.UsageError(
                f"{', '.join(map(str, clash))}: named like the installed suites' files, so their tests would share "
                f"ids (test_inference.py::...) that reports, --deselect and --lf cannot tell apart; rename yours"
            )
        self.compliance = self._compliance()
        self.backends: dict[str, BackendBase] = {}
        self.reasons: dict[str, str] = {}
        self._choose_backends(controller_header)
        self.header = controller_header or self._header()
        self.telemetry_on = options.telemetry_interval > 0 and "gpu_count" in self.header["fingerprint"]
        self.reporter = Reporter(self.header, self._gate())
        self.trials: dict[str, TrialOutcome] = {}  # trial case id -> what it adds to its config's score
        shared = getattr(config, "workerinput", {}).get("mlperf_trials")  # the controller's, under xdist
        self.trial_store = TrialStore(Path(shared) if shared else self._trials_folder)
        self.selected_trials: set[str] = set()  # the trials some test of this run judges (after -m, -k)
        self._cases: dict[str, list] = {}
        self._backend_cases: dict[str, list] = {}
        self.fleet = self._fleet(controller_header)
        if self.fleet is not None:
            self.fleet.expect = {key: self.header.get(key) for key in ("pytest_mlperf", "catalog", "sku")}
        self.fleet_selection: dict[str, list[str]] = {}  # node -> the case ids its job runs (after -m, -k)
        self.fleet_rows: dict[str, object] = {}  # case id -> its fleet comparison (gate.fleet.FleetRow)
        self._cleanup = Cleanup(self.close_backends)
        if self.fleet is not None or any(type(b).close is not BackendBase.close for b in self.backends.values()):
            self._cleanup.install()  # containers and jobs go on Ctrl-C, SIGTERM and interpreter exit alike

    def _choose_round(self, controller_header: dict | None) -> tuple[str, str]:
        """The inference round this run's cases come from, and why (said in the header, JSON, JUnit and HTML)."""
        if controller_header is not None and controller_header.get("round"):
            return controller_header["round"], controller_header.get("round_reason", "")
        opts = self.options
        try:
            if opts.round is None and opts.sku is None and opts.results is not None:
                found = catalog.round_of_tree(opts.results)
                if found is not None:
                    return found
            if opts.round is None and opts.sku == "auto":
                return self._round_by_detection()
            return catalog.choose_round(opts.round, opts.sku)
        except catalog.CatalogError as exc:
            raise pytest.UsageError(f"{flag('round') if opts.round else flag('sku')}: {exc}") from None

    def _round_by_detection(self) -> tuple[str, str]:
        """--sku auto: the oldest round with a SKU that matches the GPUs NVML reports (without GPUs, the seed's
        round; the system's own error follows)."""
        try:
            inventory = self.inventory()
        except gpu.NvmlUnavailable:
            return catalog.DEFAULT_ROUND, "the seed's round (no GPUs to match)"
        rounds = NVIDIA_ROUNDS if self.options.backend == "nvidia" else tuple(catalog.ROUNDS)
        for name in rounds:
            system = gpu.match_sku(inventory, catalog.load(name))
            if system is not None:
                return catalog.choose_round(None, system.sku)
        return catalog.DEFAULT_ROUND, "the seed's round (the GPUs match no SKU)"

    # ---- the machine and the system -----------------------------------------------------------------------
    def inventory(self) -> gpu.Inventory:
        """The machine's GPUs, read through NVML once per process; NvmlUnavailable (kept) where there are none."""
        if self._nvml is None:
            try:
                self._nvml = gpu.select(gpu.detect(), self.options.gpus)
            except gpu.NvmlUnavailable as exc:
                self._nvml = exc
            except gpu.SelectionError as exc:
                raise pytest.UsageError(f"{flag('gpus')}: {exc}") from None
        if isinstance(self._nvml, gpu.NvmlUnavailable):
            raise self._nvml
        return self._nvml

    def _resolve_system(self, controller_header: dict | None) -> catalog.System | None:
        sku = self.options.sku
        if controller_header is not None and sku == "auto":
            sku = controller_header["sku"]  # the controller read NVML and matched it once for every worker
        if sku is None:
            return None
        if sku != "auto":
            try:
                return self.catalog.system(sku)
            except catalog.CatalogError as exc:
                raise pytest.UsageError(f"{flag('sku')}: {exc}") from None
        known = ", ".join(self.catalog.systems)
        try:
            self.detected = self.inventory()
        except gpu.NvmlUnavailable as exc:
            raise pytest.UsageError(
                f"{flag('sku')} auto: {exc}; name the system with {flag('sku')} NAME (known: {known})"
            ) from None
        system = gpu.match_sku(self.detected, self.catalog)
        if system is None and self.options.backend == "nvidia":
            raise pytest.UsageError(f"{flag('sku')} auto: " + gpu.custom_system_hint(self.detected, self.catalog))
        if system is None:
            found = gpu.describe(self.detected)
            raise pytest.UsageError(
                f"{flag('sku')} auto: this machine ({found}) matches no catalog SKU; known: {known}"
            )
        return system

    def _each_gpu(self) -> tuple[gpu.GpuDevice, ...]:
        """--mlperf-each-gpu: the GPUs a one-GPU system's cases each run on, every one of them that GPU."""
        if self.options.fleet != "off":
            raise pytest.UsageError(
                f"{flag('each_gpu')} with {flag('fleet')}: the controller cannot see the nodes' GPUs to name their "
                "tests; run the fleet without it, or each node's GPUs on that node"
            )
        system = self.system
        if system is None or system.count != 1 or system.gpu.integrated:
            what = f"{system.sku} has {system.count} GPUs" if system is not None else f"name one with {flag('sku')}"
            raise pytest.UsageError(f"{flag('each_gpu')} runs a one-GPU system's cases on each GPU ({what})")
        try:
            devices = self.inventory().devices
        except gpu.NvmlUnavailable as exc:
            raise pytest.UsageError(f"{flag('each_gpu')} needs the machine's GPUs through NVML: {exc}") from None
        for device in devices:
            problems = gpu.system_mismatch(system, gpu.select(self.inventory(), (device.index,)))
            if problems:
                raise pytest.UsageError(
                    f"{flag('each_gpu')} {flag('sku')} {system.sku}: GPU {device.index} ({device.name}) is not "
                    f"this system's GPU: " + "; ".join(problems) + f" (choose the GPUs with {flag('gpus')})"
                )
        if not devices:
            raise pytest.UsageError(f"{flag('each_gpu')}: NVML lists no GPU")
        return devices

    def pinned_gpu(self, index: int) -> gpu.GpuDevice:
        return next(device for device in self.pinned_gpus if device.index == index)

    def _fleet(self, controller_header: dict | None):
        """--mlperf-fleet slurm on the controller: the nodes, expanded by Slurm, and the node's command line."""
        opts = self.options
        if opts.fleet == "off" or controller_header is not None:
            return None
        from . import fleet as fleet_mod
        from .machine.slurm import SlurmError

        if not opts.fleet_nodes:
            raise pytest.UsageError(f"{flag('fleet')} slurm needs {flag('fleet_nodes')} HOSTLIST")
        if opts.sku == "auto":
            raise pytest.UsageError(
                f"{flag('sku')} auto with {flag('fleet')}: this host's GPUs say nothing of the nodes'; name the "
                f"system with {flag('sku')} NAME"
            )
        params = self.config.invocation_params
        argv = fleet_mod.node_arguments(list(params.args), set(self.config.args))
        try:
            made = fleet_mod.Fleet.from_hostlist(
                opts.fleet_nodes,
                opts.fleet_dir if opts.fleet_dir.is_absolute() else params.dir / opts.fleet_dir,
                argv,
                params.dir,
                walltime=opts.fleet_walltime,
                partition=opts.slurm_partition,
                echo=self._echo,
            )
        except SlurmError as exc:
            raise pytest.UsageError(f"{flag('fleet_nodes')} {opts.fleet_nodes}: {exc}") from None
        return made

    def _echo(self, text: str) -> None:
        """A progress line on the terminal, even while a test's output is captured."""
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is not None:
            with capture.global_and_fixture_disabled():
                terminal.write_line(text)
        else:
            terminal.write_line(text)

    def _check_training_options(self) -> None:
        name = self.options.training_config
        if name is not None:
            try:
                self.catalog.training_config(name)
            except catalog.CatalogError as exc:
                raise pytest.UsageError(f"{flag('training_config')}: {exc}") from None

    def _check_output_paths(self) -> None:
        """Files the run writes at its end are checked at its start, not found unwritable after an hour."""
        wanted = [("json", self.options.json, False), ("output", self.options.output, True)]
        if self.options.save:
            wanted.append(("save", self.baseline_path_of(self.options.save), False))
        for field, path, folder in wanted:
            if path is None:
                continue
            if path.exists() and path.is_dir() != folder:
                raise pytest.UsageError(f"{flag(field)} {path}: is {'not ' if folder else ''}a directory")
            parent = path if folder and path.exists() else path.parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise pytest.UsageError(f"{flag(field)} {path}: cannot create {parent} ({exc.strerror})") from None
            if not os.access(parent, os.W_OK | os.X_OK):
                raise pytest.UsageError(f"{flag(field)} {path}: {parent} is not writable")

    def baseline_path_of(self, name: str) -> Path:
        try:
            return baseline.baseline_path(name, self.options.baseline_dir)
        except baseline.BaselineError as exc:
            raise pytest.UsageError(f"{flag('save')} {exc}") from None

    def _compliance(self) -> bool:
        choice = self.options.compliance
        if choice == "on" and not compliance.installed():
            raise pytest.UsageError(
                f"{flag('compliance')} on needs mlperf-logging: pip install 'pytest-mlperf[compliance]'"
            )
        return choice != "off" and compliance.installed()

    # ---- backends -------------------------------------------------------------------------------------------
    def _gpus_in_words(self) -> tuple[str | None, str]:
        try:
            return gpu.describe(self.inventory()), ""
        except gpu.NvmlUnavailable as exc:
            return None, str(exc)

    def _choose_backends(self, controller_header: dict | None) -> None:
        opts, hook = self.options, self.config.hook.pytest_mlperf_make_backend
        context = BuildContext(
            self.catalog, self._output, self.system, self._user_model, self.gpu_keys, self._host_facts
        )
        needs_gpus = opts.backend == "auto" and not opts.results and not opts.nvidia_code
        gpus, no_gpu = self._gpus_in_words() if needs_gpus and controller_header is None else (None, "")
        try:
            inference = choosing.choose_inference(opts, gpus, no_gpu, self.system is not None)
            if inference.backend == "nvidia" and self.round not in NVIDIA_ROUNDS:
                raise pytest.UsageError(
                    f"the nvidia backend runs NVIDIA's {', '.join(NVIDIA_ROUNDS)} code; this run's round is "
                    f"{self.round} ({self.round_reason}), whose results replay with {flag('results')} DIR; not run "
                    "by this version"
                )
            if inference.backend == "results":
                guard_rootdir(self.config, opts.results)
            choices = {"inference": inference, "training": choosing.choose_training(opts, inference)}
            built: dict = {}  # what the plugin built itself, by choice (a conftest's backend is never shared)
            for kind in KINDS:
                made = hook(config=self.config, kind=kind, options=opts, context=context)
                chosen = None if made is not None else choices[kind]
                if made is None:
                    made = built.get("inference") if chosen.shared else None
                    made = made or choosing.build(chosen, opts, context)
                    built[kind] = made
                self.backends[kind] = made
                self.reasons[kind] = choosing.reason(chosen, made)
        except (choosing.ChoiceError, BackendUnavailable) as exc:
            raise pytest.UsageError(str(exc)) from None
        if controller_header is not None:  # the controller's words, so every process reports the same
            self.reasons = {"inference": controller_header["backend_reason"]}
            self.reasons["training"] = controller_header["training_backend_reason"]

    def gpu_keys(self, indices: tuple[int, ...] | None = None) -> list[str]:
        """One name per GPU under test (those NVML indices, when given), the same in every process and session on
        this machine (its UUID)."""
        try:
            devices = self.inventory().devices
        except gpu.NvmlUnavailable:
            return ["all-gpus"]  # a Jetson's one integrated GPU, or a machine NVML cannot read
        if indices is not None:
            devices = tuple(d for d in devices if d.index in indices)
        return [f"gpu-{device.uuid or device.index}" for device in devices] or ["all-gpus"]

    def _host_facts(self, indices: tuple[int, ...] | None = None):
        """This host as NVIDIA's system detection will see it: the selected GPUs (NVML; those indices alone for
        a case pinned to one GPU, as its container sees them), or a Jetson's device tree where there is no NVML."""
        try:
            inventory = self.inventory()
        except gpu.NvmlUnavailable:
            inventory = None
        if inventory is not None and indices is not None:
            inventory = gpu.select(inventory, indices)
        return gpu.detection_facts(inventory, native.system_root())

    def _output(self) -> Path:
        """Where runs write their results tree: --mlperf-output, or mlperf-results in pytest's basetemp."""
        if self.options.output is not None:
            return self.options.output.resolve()
        # The tmp_path plugin's factory (what the tmp_path_factory fixture returns); asked only when a run writes.
        return self.config._tmp_path_factory.getbasetemp() / "mlperf-results"

    def _trials_folder(self) -> Path:
        return self.config._tmp_path_factory.getbasetemp() / "mlperf-trials"

    def _user_model(self, case):
        return self.config.hook.pytest_mlperf_make_sut(config=self.config, case=case)

    def backend_for(self, case) -> BackendBase:
        case = getattr(case, "case", case)  # a fleet's node or fleet test: its case's kind
        kind = "training" if isinstance(case, catalog.TrainingCase | catalog.ScoreCase) else "inference"
        return self.backends[kind]

    def _offered(self, kind: str) -> list:
        """What the backend offers: for a system, the cases registered for it (the catalog's, or a checkout's)."""
        if kind not in self._backend_cases:
            base = None
            if self.system is not None:
                if kind == "inference":
                    base = self.catalog.inference_cases(self.system.sku, self.options.power)
                else:
                    base = self.catalog.training_cases(self.system.sku)
            self._backend_cases[kind] = self.backends[kind].cases(kind, base)
        return self._backend_cases[kind]

    def outside_suite(self) -> dict[str, list]:
        """The system's registered inference cases outside the MLPerf suite of its category, by what puts them
        there: the default leaves them out, --mlperf-all-configs runs them. Empty without a system."""
        if self.system is None:
            return {}
        return self.catalog.outside_suite(self.system, self._offered("inference"))

    def cases(self, kind: str) -> list:
        if kind not in self._cases:
            cases = self._offered(kind)
            if kind == "inference" and self.system is not None and not self.options.all_configs:
                cases = [c for c in cases if self.catalog.suite_skip(self.system, c) is None]
            if kind == "training":
                cases = self._select_training(cases)
            elif self.pinned_gpus:  # each case once per GPU, case by case (a case's GPUs run side by side)
                cases = [c.with_(gpu=d.index) for c in cases for d in self.pinned_gpus]
            self.config.hook.pytest_mlperf_modify_cases(config=self.config, kind=kind, cases=cases)
            self._cases[kind] = cases
        return self._cases[kind]

    def _select_training(self, cases: list) -> list:
        """--mlperf-training-config and --mlperf-nodes narrow a replay as they choose a run's config."""
        name, nodes = self.options.training_config, self.options.nodes
        if name:
            cases = [c for c in cases if c.config is not None and c.config.name == name]
        if nodes:
            cases = [c for c in cases if c.config is not None and c.config.nodes == nodes]
        return cases

    # ---- the header and the gate ------------------------------------------------------------------------
    def header_lines(self) -> list[str]:
        """The terminal header's lines: this version, the backends and why, the system, the GPUs detected."""
        inference, training = self.backends["inference"], self.backends["training"]
        lines = [
            f"mlperf: pytest-mlperf {__version__}",
            f"mlperf: round {self.round} ({self.round_reason})",
            f"mlperf: backend {inference.name} ({self.reasons['inference']})",
        ]
        if training is not inference:
            lines.append(f"mlperf: training backend {training.name} ({self.reasons['training']})")
        if self.system is not None:
            lines.append(f"mlperf: system {self.system.sku} ({self.system.system_id})")
            lines += self._suite_line()
        if self.detected is not None:
            lines.append(f"mlperf: detected {gpu.describe(self.detected)}")
        return lines

    def _suite_line(self) -> list[str]:
        """Where the default left registered cases out (or the flag brought them in), one line saying so."""
        outside = self.outside_suite()
        if not outside:
            return []
        cases = [c for group in outside.values() for c in group]
        configs = {(c.benchmark.name, c.config_name) for c in cases}  # NVIDIA's config names leave out the benchmark
        count = f"{len(configs)} registered configs ({len(cases)} cases)"
        suite = f"the MLPerf {self.system.category} suite ({', '.join(sorted(outside))})"
        if self.options.all_configs:
            return [f"mlperf: {count} outside {suite} included ({flag('all_configs')})"]
        return [f"mlperf: {count} outside {suite} left out; {flag('all_configs')} runs them"]

    def _header(self) -> dict:
        inventory, why = None, ""
        try:
            inventory = self.inventory()
        except gpu.NvmlUnavailable as exc:
            why = str(exc)
        identities = {"": self.backends["inference"].identity()}
        if self.backends["training"] is not self.backends["inference"]:
            identities["training_"] = self.backends["training"].identity()
        return {
            "pytest_mlperf": __version__,
            "catalog": f"{self.catalog.inference_round}; {self.catalog.training_round}",
            "round": self.round,
            "round_reason": self.round_reason,
            "sku": self.system.sku if self.system else None,
            "system_id": self.system.system_id if self.system else None,
            "backend": self.backends["inference"].name,
            "backend_reason": self.reasons["inference"],
            "training_backend": self.backends["training"].name,
            "training_backend_reason": self.reasons["training"],
            "host": platform.node(),
            # when the run began (UTC): `pytest-mlperf history` orders saved baselines by it
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": fingerprint.fingerprint(inventory, why, identities),
            **self._slurm_stamp(),
        }

    @staticmethod
    def _slurm_stamp() -> dict:
        """Inside a Slurm job (a fleet node's), the job and node: the controller checks a node's results are the
        job's it submitted, not an earlier run's."""
        job, node = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURMD_NODENAME")
        return {"slurm": {"job_id": job, "node": node}} if job and node else {}

    def _gate(self) -> Gate:
        opts = self.options
        gate = Gate(
            self.catalog,
            rules=opts.fail_on or (),
            expect_change=opts.expect_change,
            confidence=opts.confidence,
            inconclusive=opts.inconclusive,
        )
        gate.min_published = opts.min_published
        gate.min_published_source = f"{flag('min_published')} {opts.min_published:g}" if opts.min_published else ""
        try:
            if opts.baseline:
                gate.baseline = baseline.load(opts.baseline, opts.baseline_dir)
                baseline.check_compatible(gate.baseline, self.header)
        except baseline.BaselineError as exc:
            raise pytest.UsageError(f"{flag('baseline')} {exc}") from None
        if gate.rules and gate.baseline is None:
            raise pytest.UsageError(f"{flag('fail_on')} needs {flag('baseline')} NAME|FILE to compare with")
        return gate

    # ---- peers: a fleet's nodes, a node's GPUs -------------------------------------------------------------
    def compare_peers(self) -> bool:
        """At the run's end, on the controller: the fleet's nodes and this node's GPUs side by side in every
        report. True when a GPU is flagged (the run then fails: no test of its own shows it)."""
        spread, flagged = self.options.spread, False
        if self.fleet is not None:
            self.reporter.extra["fleet"] = self.fleet.summary()
            info = {node: run.to_dict() for node, run in self.fleet.runs.items()}
            problem = {"problem": self.fleet.problem} if self.fleet.problem else {}
            nodes = [node for node in self.fleet.nodes if node in info or problem]
            self.reporter.compare_peers("node", nodes, spread, {n: {**info.get(n, {}), **problem} for n in nodes})
        if self.pinned_gpus:
            info = {f"gpu{d.index}": {"uuid": d.uuid, "serial": d.serial, "name": d.name} for d in self.pinned_gpus}
            report = self.reporter.compare_peers("GPU", list(info), spread, info)
            flagged = bool(report.slow)
        return flagged

    # ---- the end ----------------------------------------------------------------------------------------
    def close_backends(self) -> None:
        """Runs on a normal end, after failures, after Ctrl-C and SIGTERM, and at interpreter exit."""
        if getattr(self, "fleet", None) is not None:
            self.fleet.close()  # every node job still queued or running
        for backend in {id(b): b for b in self.backends.values()}.values():
            backend.close()

    def close(self) -> None:
        self.close_backends()
        self._cleanup.restore()


class Cleanup:
    """SIGTERM (a CI job cancelled, a scheduler's kill) unwinds like Ctrl-C, and interpreter exit closes the
    backends: installed once, restored at the end."""

    def __init__(self, close):
        self.close = close
        self.previous = None
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _terminate)
        atexit.register(self.close)
        self.installed = True

    def restore(self) -> None:
        if not self.installed:
            return
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        atexit.unregister(self.close)
        self.installed = False


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def guard_two_words(config: pytest.Config) -> None:
    """pytest chooses its rootdir and ini file before plugins' options are known, so the value of a plugin option
    written as two words (`--mlperf-results DIR`) is a test path to it then, and where that path sits decides the
    rootdir and the ini file: the path itself (and its .pytest_cache) beside an unrelated working folder, a common
    ancestor such as /tmp (which drops the project's ini) beside a near one. Refused whatever the layout, so the
    same command gives the same answer everywhere: a path option's value always, another option's value when it
    names an existing file or folder. `pytest-mlperf run` joins the words before pytest sees them."""
    words = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *config.invocation_params.args]
    here = config.invocation_params.dir
    for _, value, spec in two_word_values(words):
        if spec.type is not path_value and not (here / value).exists():
            continue
        name = flag(spec.field)
        raise pytest.UsageError(
            f"{name} {value}: pytest reads a plugin option's value written as a separate word as a test path when "
            f"it chooses its rootdir and ini file (before plugins' options are known), so where {value} sits would "
            f"decide them; write {name}={value} (one word), or run 'pytest-mlperf run ...', which joins them"
        )


def guard_rootdir(config: pytest.Config, tree: Path) -> None:
    """The rootdir pytest chose must not lie inside a results tree being replayed: pytest would write its cache
    there (the tree named as a test path, or a rootdir given inside it)."""
    try:
        inside = config.rootpath.resolve().is_relative_to(tree.resolve())
    except (OSError, RuntimeError):  # a symlink loop: no rootdir is inside it, and the backend says what it is
        inside = False
    if inside:
        raise pytest.UsageError(
            f"pytest took the results tree {tree} as its rootdir and would write its cache into it; run pytest "
            f"from a folder outside the tree, or name its rootdir with --rootdir"
        )
