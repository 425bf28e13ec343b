"""The pytest face of pytest-mlperf: options, markers, parametrization, fixtures and report hooks.

It wires the other modules together and holds no benchmark logic.
"""

from __future__ import annotations

import atexit
import os
import platform
import shlex
import signal
import sys
import threading
from pathlib import Path

import pytest

from . import __version__, baseline, catalog, compliance, fingerprint, gpu, telemetry
from .backends import BackendUnavailable, NoBackend, ResultMissing, RunFailed
from .backends.local import LocalBackend
from .backends.nvidia_inference import NvidiaInferenceBackend
from .backends.results import ResultsBackend
from .containers import ContainerError
from .evaluate import CaseResult, evaluate, evaluate_score, trial_outcome
from .logs import ParseError
from .metrics import Metric
from .report import junit_properties, result_record, write_json
from .verdict import TrialOutcome

MARKERS = {
    "inference": "MLPerf Inference v2.0 cases",
    "training": "MLPerf Training v2.1 cases",
    "bert": "BERT (inference bert-99 and bert-99.9, and training)",
    "rnnt": "RNN-T speech recognition",
    "ssd_mobilenet": "SSD-MobileNet object detection",
    "ssd_resnet34": "SSD-ResNet34 object detection",
    "offline": "Offline scenario",
    "server": "Server scenario",
    "singlestream": "SingleStream scenario",
    "multistream": "MultiStream scenario",
    "accuracy": "AccuracyOnly mode: the accuracy must pass its target",
    "performance": "PerformanceOnly mode: LoadGen must call the run VALID",
    "custom": "NVIDIA's custom harness",
    "lwis": "NVIDIA's LWIS harness",
    "triton": "the Triton Inference Server harness",
    "local": "the local backend: LoadGen in process over a stand-in or user-supplied model",
    "score": "the MLPerf score across a training config's trials (olympic mean of time to train)",
}

BACKENDS = ("auto", "results", "local", "nvidia")
RESULT_KEY = pytest.StashKey[CaseResult]()
STATE_NAME = "mlperf_state"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlperf", "MLPerf benchmarks (pytest-mlperf)")
    group.addoption(
        "--sku",
        dest="mlperf_sku",
        default=None,
        metavar="NAME",
        help="System under test: a catalog SKU such as A100-SXM-80GBx8, or 'auto' to detect it",
    )
    group.addoption(
        "--mlperf-backend",
        dest="mlperf_backend",
        default="auto",
        choices=BACKENDS,
        help="How cases run: results (replay a results tree), local, nvidia, or auto (default)",
    )
    group.addoption(
        "--mlperf-results",
        dest="mlperf_results",
        default=None,
        metavar="DIR",
        help="Replay an existing results tree (published layout, build/logs, or training trial logs)",
    )
    group.addoption(
        "--mlperf-json",
        dest="mlperf_json",
        default=None,
        metavar="PATH",
        help="Write every case's verdict and metrics to this JSON file",
    )
    group.addoption(
        "--mlperf-duration",
        dest="mlperf_duration",
        default="smoke",
        metavar="smoke|full|SECONDS",
        help="Length of each local performance run: smoke (about 10 s, the default), full (the round's rules: "
        "600 s and its query counts) or a number of seconds",
    )
    group.addoption(
        "--mlperf-server-target-qps",
        dest="mlperf_server_target_qps",
        default=None,
        type=float,
        metavar="QPS",
        help="Server scenario target QPS for local runs (default: 40%% of what a probe of the model measures, lowered "
        "when LoadGen finds it breaks the latency bound)",
    )
    group.addoption(
        "--mlperf-output",
        dest="mlperf_output",
        default=None,
        metavar="DIR",
        help="Where local runs write their results tree (default: mlperf-results inside pytest's basetemp)",
    )
    group.addoption(
        "--mlperf-train-max-steps",
        dest="mlperf_train_max_steps",
        default=None,
        type=int,
        metavar="N",
        help="Step cap of the local training run; reaching it ends the run as aborted",
    )
    group.addoption(
        "--mlperf-nvidia-code",
        dest="mlperf_nvidia_code",
        default=None,
        metavar="DIR",
        help="A checkout of closed/NVIDIA of mlcommons/inference_results_v2.0 (the nvidia backend)",
    )
    group.addoption(
        "--mlperf-scratch",
        dest="mlperf_scratch",
        default=None,
        metavar="DIR",
        help="MLPERF_SCRATCH_PATH for the nvidia backend: data/, models/, preprocessed_data/",
    )
    group.addoption(
        "--mlperf-image",
        dest="mlperf_image",
        default=None,
        metavar="NAME",
        help="Container image to run NVIDIA's code in (default mlperf-inference:<user>-<arch>, built if missing)",
    )
    group.addoption(
        "--mlperf-container-profile",
        dest="mlperf_container_profile",
        default="nvidia",
        choices=("nvidia", "minimal"),
        help="nvidia: launch_docker's flags (all GPUs, unlimited memlock, capabilities); minimal: mounts, user "
        "and labels only, for a stand-in image",
    )
    group.addoption(
        "--mlperf-training-code",
        dest="mlperf_training_code",
        default=None,
        metavar="DIR",
        help="NVIDIA's MLPerf Training v2.1 BERT implementation (NVIDIA/benchmarks/bert/implementations/"
        "pytorch-22.09 of mlcommons/training_results_v2.1): config_*.sh, run_and_time.sh, run.sub, Dockerfile",
    )
    group.addoption(
        "--mlperf-bert-data",
        dest="mlperf_bert_data",
        default=None,
        metavar="DIR",
        help="BERT training data as prepare_data.sh lays it out: hdf5/training-4320/hdf5_4320_shards_varlength, "
        "hdf5/eval_varlength, phase1 (and packed_data for the packed config)",
    )
    group.addoption(
        "--mlperf-training-config",
        dest="mlperf_training_config",
        default=None,
        metavar="NAME",
        help="Training config to run or replay (default: the SKU's config for --mlperf-nodes), e.g. 1x8x56x1",
    )
    group.addoption(
        "--mlperf-nodes",
        dest="mlperf_nodes",
        default=None,
        type=int,
        metavar="N",
        help="Nodes a training run uses; picks the SKU's config for that node count (default 1)",
    )
    group.addoption(
        "--mlperf-nexp",
        dest="mlperf_nexp",
        default=1,
        type=int,
        metavar="N",
        help="Training trials per config (default 1, a gate; 10 gives an MLPerf score)",
    )
    group.addoption(
        "--mlperf-launcher",
        dest="mlperf_launcher",
        default="docker",
        choices=("docker", "slurm"),
        help="How NVIDIA's training runs: docker (one node, this machine's engine) or slurm (sbatch; multi-node)",
    )
    group.addoption(
        "--mlperf-slurm-partition",
        dest="mlperf_slurm_partition",
        default=None,
        metavar="NAME",
        help="Slurm partition for training jobs (default: the cluster's default partition)",
    )
    group.addoption(
        "--mlperf-compliance",
        dest="mlperf_compliance",
        default="auto",
        choices=("auto", "on", "off"),
        help="Run mlperf-logging's compliance checker on each training log: auto (when it is installed), on, off",
    )
    group.addoption(
        "--mlperf-save",
        dest="mlperf_save",
        default=None,
        metavar="NAME",
        help="Keep this run's results as baseline NAME (in --mlperf-baseline-dir)",
    )
    group.addoption(
        "--mlperf-baseline",
        dest="mlperf_baseline",
        default=None,
        metavar="NAME|FILE",
        help="Compare every case with a saved baseline (a name, or a results JSON file)",
    )
    group.addoption(
        "--mlperf-fail-on",
        dest="mlperf_fail_on",
        default=None,
        metavar="EXPR",
        help="Regressions against the baseline that fail a test, e.g. throughput:5%%,latency:10%%,accuracy:any "
        "(classes throughput, latency, accuracy, time, or a metric name); verdict flips always fail",
    )
    group.addoption(
        "--mlperf-baseline-dir",
        dest="mlperf_baseline_dir",
        default=".mlperf-baselines",
        metavar="DIR",
        help="Where named baselines are kept (default .mlperf-baselines)",
    )
    group.addoption(
        "--mlperf-expect-change",
        dest="mlperf_expect_change",
        default=",".join(baseline.EXPECTED_CHANGES),
        metavar="FIELDS",
        help="Fingerprint fields a roll-out is meant to change; a baseline differing in others is warned about",
    )
    group.addoption(
        "--mlperf-min-published",
        dest="mlperf_min_published",
        default=None,
        type=float,
        metavar="FRACTION",
        help="Fail a performance case below this fraction of NVIDIA's published v2.0 figure (e.g. 0.9)",
    )
    group.addoption(
        "--mlperf-telemetry-interval",
        dest="mlperf_telemetry_interval",
        default=1.0,
        type=float,
        metavar="SECONDS",
        help="NVML sampling period during each test (0 turns telemetry off; no NVML, no telemetry)",
    )
    group.addoption(
        "--mlperf-step-timeout",
        dest="mlperf_step_timeout",
        default=None,
        type=float,
        metavar="SECONDS",
        help="Fail a make step of the nvidia backend that runs longer than this (the container is stopped)",
    )


class MlperfState:
    """Run state for one pytest session (one per xdist worker, one on the controller)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.catalog = catalog.load()
        self.records: list[dict] = []
        self.system: catalog.System | None = None
        self.detected: gpu.Inventory | None = None  # what --sku auto matched against
        self._nvml: gpu.Inventory | gpu.NvmlUnavailable | None = None
        self.backend = None  # inference; every path of _choose_backend sets one or raises a usage error
        self.backend_reason = ""
        self.training_backend = None
        self.training_reason = ""
        self.trials: dict[str, TrialOutcome] = {}  # trial case id -> what it adds to its config's score
        self._cases: dict[str, list] = {}
        self._resolve_sku()
        self._check_training_options()
        self.compliance = self._compliance()
        self._choose_backend()
        self._choose_training_backend()
        self.fingerprint = self._fingerprint()
        self.rules, self.baseline = self._baseline()

    def inventory(self) -> gpu.Inventory:
        """The machine's GPUs, read through NVML once per session; NvmlUnavailable (kept) where there are none."""
        if self._nvml is None:
            try:
                self._nvml = gpu.detect()
            except gpu.NvmlUnavailable as exc:
                self._nvml = exc
        if isinstance(self._nvml, gpu.NvmlUnavailable):
            raise self._nvml
        return self._nvml

    def _resolve_sku(self) -> None:
        sku = self.config.getoption("mlperf_sku")
        if sku is None:
            return
        if sku == "auto":
            try:
                self.detected = self.inventory()
            except gpu.NvmlUnavailable as exc:
                raise pytest.UsageError(
                    f"--sku auto: {exc}; name the system with --sku NAME (known: {', '.join(self.catalog.systems)})"
                ) from None
            self.system = gpu.match_sku(self.detected, self.catalog)
            if self.system is None and self.config.getoption("mlperf_backend") == "nvidia":
                raise pytest.UsageError("--sku auto: " + gpu.custom_system_hint(self.detected, self.catalog))
            if self.system is None:
                raise pytest.UsageError(
                    f"--sku auto: this machine ({gpu.describe(self.detected)}) matches no "
                    f"catalog SKU; known: {', '.join(self.catalog.systems)}"
                )
            return
        try:
            self.system = self.catalog.system(sku)
        except catalog.CatalogError as exc:
            raise pytest.UsageError(f"--sku: {exc}") from None

    def _choose_backend(self) -> None:
        choice = self.config.getoption("mlperf_backend")
        results = self.config.getoption("mlperf_results")
        if choice == "results" and not results:
            raise pytest.UsageError("--mlperf-backend results needs --mlperf-results DIR")
        if results and choice in ("auto", "results"):
            path = Path(results).expanduser()
            self._guard_rootdir(path)
            try:
                self.backend = ResultsBackend(path, self.catalog)
            except BackendUnavailable as exc:
                raise pytest.UsageError(str(exc)) from None
            self.backend_reason = f"--mlperf-results {path}"
            return
        if results:
            raise pytest.UsageError(
                f"--mlperf-results replays a tree; it cannot be combined with --mlperf-backend {choice}"
            )
        if choice == "nvidia" or (choice == "auto" and self.config.getoption("mlperf_nvidia_code")):
            if not self.config.getoption("mlperf_nvidia_code") and self.config.getoption("mlperf_training_code"):
                self.backend = NoBackend("nvidia")
                self.backend_reason = (
                    "inference on the nvidia backend needs --mlperf-nvidia-code DIR; only training code was given"
                )
                return
            self._nvidia_backend()
            return
        if choice == "local":
            why = "--mlperf-backend local"
        else:
            try:
                found = gpu.describe(self.inventory())
                why = f"auto: {found} found, but no --mlperf-nvidia-code to run NVIDIA's code with"
            except gpu.NvmlUnavailable as exc:
                why = f"auto: no NVIDIA GPU ({exc})"
        try:
            self.backend = LocalBackend(
                self.catalog,
                output=None,
                duration=self.config.getoption("mlperf_duration"),
                server_target_qps=self.config.getoption("mlperf_server_target_qps"),
                make_model=self._user_model,
                train_max_steps=self.config.getoption("mlperf_train_max_steps"),
            )
        except BackendUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
        self.backend_reason = f"{why}; LoadGen runs stand-in models on this machine's CPU, not the MLPerf models"

    def _nvidia_backend(self) -> None:
        if self.system is None:
            raise pytest.UsageError("--mlperf-backend nvidia runs one system: name it with --sku NAME or --sku auto")
        opt = self.config.getoption
        echo = sys.stdout.write if opt("capture") == "no" else None
        try:
            self.backend = NvidiaInferenceBackend(
                self.catalog,
                code_dir=opt("mlperf_nvidia_code"),
                scratch_dir=opt("mlperf_scratch"),
                image=opt("mlperf_image"),
                profile=opt("mlperf_container_profile"),
                duration=opt("mlperf_duration"),
                server_target_qps=opt("mlperf_server_target_qps"),
                step_timeout=opt("mlperf_step_timeout"),
                echo=echo,
            )
        except BackendUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
        self.backend_reason = f"NVIDIA's v2.0 code at {self.backend.code} in image {self.backend.image}"
        self._clean_up_on_signals()

    def _clean_up_on_signals(self) -> None:
        # SIGTERM (a CI job cancelled, a scheduler's kill) unwinds like Ctrl-C, so containers and jobs go too.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        atexit.register(self.close_backend)

    # ---- training -----------------------------------------------------------------------------------------
    def _check_training_options(self) -> None:
        opt = self.config.getoption
        if opt("mlperf_nexp") < 1:
            raise pytest.UsageError(f"--mlperf-nexp {opt('mlperf_nexp')}: must be 1 or more")
        if opt("mlperf_nodes") is not None and opt("mlperf_nodes") < 1:
            raise pytest.UsageError(f"--mlperf-nodes {opt('mlperf_nodes')}: must be 1 or more")
        name = opt("mlperf_training_config")
        if name is not None:
            try:
                self.catalog.training_config(name)
            except catalog.CatalogError as exc:
                raise pytest.UsageError(f"--mlperf-training-config: {exc}") from None

    def _fingerprint(self) -> dict:
        why, inventory = "", None
        try:
            inventory = self.inventory()
        except gpu.NvmlUnavailable as exc:
            why = str(exc)
        self.telemetry_on = inventory is not None and self.config.getoption("mlperf_telemetry_interval") > 0
        backends = {"": self.backend}
        if self.training_backend is not self.backend:
            backends["training_"] = self.training_backend
        return fingerprint.fingerprint(inventory, why, backends)

    def _baseline(self):
        opt = self.config.getoption
        try:
            rules = baseline.parse_fail_on(opt("mlperf_fail_on")) if opt("mlperf_fail_on") else []
            if opt("mlperf_save"):
                baseline.baseline_path(opt("mlperf_save"), self.baseline_dir)
            if not opt("mlperf_baseline"):
                if rules:
                    raise baseline.BaselineError("--mlperf-fail-on needs --mlperf-baseline NAME|FILE to compare with")
                return rules, None
            found = baseline.load(opt("mlperf_baseline"), self.baseline_dir)
            baseline.check_compatible(found, self.header())
        except baseline.BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
        return rules, found

    @property
    def baseline_dir(self) -> Path:
        return Path(self.config.getoption("mlperf_baseline_dir")).expanduser()

    def compare(self, case, result: CaseResult) -> baseline.Comparison | None:
        if self.baseline is None:
            return None
        before = self.baseline.record(case.id)
        if before is None:
            result.info["baseline"] = {"name": self.baseline.name, "missing": True}
            return None
        now = {"id": case.id, "verdict": result.verdict.label, "metrics": [m.to_dict() for m in result.metrics]}
        comparison = baseline.compare_records(before, now, self.rules)
        result.info["baseline"] = {"name": self.baseline.name, **comparison.to_dict()}
        return comparison

    def published_share(self, case, result: CaseResult) -> float | None:
        """This performance case's share of NVIDIA's published v2.0 figure for the same system and case (a
        latency scenario's share is published / measured, so above 1 is better either way); kept as a metric."""
        if not isinstance(case, catalog.InferenceCase) or case.mode != "PerformanceOnly":
            return None
        figure = self.catalog.published_figure(case.system_name, case.benchmark.name, case.scenario.name)
        measured = next((m.value for m in result.metrics if m.name == case.scenario.perf_key), None)
        if not figure or not measured:
            return None
        share = measured / figure if case.scenario.higher_is_better else figure / measured
        result.metrics.append(Metric("published_pct", share * 100.0, "%", True, {"published": figure}))
        return share

    def fingerprint_changes(self) -> tuple[list, list[str]]:
        """The fingerprint fields that differ from the baseline's, and those of them a roll-out should not
        change (--mlperf-expect-change names the ones it should)."""
        if self.baseline is None:
            return [], []
        changes = baseline.fingerprint_changes(self.baseline.header.get("fingerprint") or {}, self.fingerprint)
        expected = baseline.parse_fields(self.config.getoption("mlperf_expect_change"))
        return changes, baseline.unexpected_changes(changes, expected)

    def _compliance(self) -> bool:
        choice = self.config.getoption("mlperf_compliance")
        if choice == "on" and not compliance.installed():
            raise pytest.UsageError(
                "--mlperf-compliance on needs mlperf-logging: pip install 'pytest-mlperf[compliance]'"
            )
        return choice != "off" and compliance.installed()

    def training_config(self) -> catalog.TrainingConfig:
        """The config a training run uses: named, or the SKU's for the node count."""
        name = self.config.getoption("mlperf_training_config")
        if name:
            return self.catalog.training_config(name)
        if self.system is None:
            raise pytest.UsageError("NVIDIA's training runs one system: name it with --sku NAME")
        try:
            return self.catalog.select_training_config(self.system.sku, self.config.getoption("mlperf_nodes") or 1)
        except catalog.CatalogError as exc:
            raise pytest.UsageError(str(exc)) from None

    def _choose_training_backend(self) -> None:
        opt = self.config.getoption
        if isinstance(self.backend, ResultsBackend):
            self.training_backend, self.training_reason = self.backend, self.backend_reason
            return
        if opt("mlperf_training_code"):
            from .backends.nvidia_training import NvidiaTrainingBackend

            config = self.training_config()
            echo = sys.stdout.write if opt("capture") == "no" else None
            try:
                self.training_backend = NvidiaTrainingBackend(
                    self.catalog,
                    config=config,
                    sku=self.system.sku if self.system else None,
                    code_dir=opt("mlperf_training_code"),
                    data_dir=opt("mlperf_bert_data"),
                    image=opt("mlperf_image"),
                    profile=opt("mlperf_container_profile"),
                    launcher=opt("mlperf_launcher"),
                    nexp=opt("mlperf_nexp"),
                    partition=opt("mlperf_slurm_partition"),
                    timeout=opt("mlperf_step_timeout"),
                    echo=echo,
                )
            except BackendUnavailable as exc:
                raise pytest.UsageError(str(exc)) from None
            self.training_reason = self.training_backend.describe()
            self._clean_up_on_signals()
            return
        if isinstance(self.backend, LocalBackend):
            self.training_backend = self.backend
            self.backend.nexp = opt("mlperf_nexp")
            self.training_reason = self.backend_reason
            return
        self.training_backend = NoBackend(self.backend.name)
        self.training_reason = (
            "training on the nvidia backend needs --mlperf-training-code DIR (NVIDIA's pytorch-22.09 BERT "
            "implementation of mlcommons/training_results_v2.1)"
        )

    def backend_for(self, case):
        return self.training_backend if isinstance(case, catalog.TrainingCase | catalog.ScoreCase) else self.backend

    def close_backend(self) -> None:
        for backend in (self.backend, self.training_backend):
            close = getattr(backend, "close", None)
            if close is not None:
                close()

    def _user_model(self, case):
        return self.config.hook.pytest_mlperf_make_sut(config=self.config, case=case)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # On the xdist controller this sees the workers' reports, mlperf record included.
        record = getattr(report, "mlperf", None)
        if record is not None:
            self.records.append(record)

    def _guard_rootdir(self, tree: Path) -> None:
        # pytest chooses its rootdir and config file before plugins' options are known, so the value of a
        # two-word `--mlperf-results DIR` counts as a test path then. With no other test path named, where the
        # tree sits decides them: the tree itself (and its .pytest_cache) beside an unrelated working folder,
        # the common ancestor of the two (ignoring the project's own pytest.ini) beside a near one. Refuse that
        # form whatever the layout, and never let the rootdir fall inside the tree.
        params = self.config.invocation_params
        words = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *params.args]
        two_words = "--mlperf-results" in words and self.config.args_source != pytest.Config.ArgsSource.ARGS
        try:
            inside = self.config.rootpath.resolve().is_relative_to(tree.resolve())
        except OSError:
            inside = False
        if two_words or inside:
            why = (
                f"pytest took the results tree {tree} as its rootdir and would write its cache into it"
                if inside
                else f"pytest read the results tree {tree} as a test path when it chose its rootdir "
                f"({self.config.rootpath}) and config file, so where the tree sits decided them"
            )
            raise pytest.UsageError(
                f"{why}; write --mlperf-results={tree} (one word), or name the suites folder, e.g. 'pytest suites ...'"
            )

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def kind_backend(self, kind: str):
        return (
            (self.training_backend, self.training_reason) if kind == "training" else (self.backend, self.backend_reason)
        )

    def cases(self, kind: str) -> list:
        if kind in self._cases:
            return self._cases[kind]
        if self.system is not None:
            base = (
                self.catalog.inference_cases(self.system.sku)
                if kind == "inference"
                else self.catalog.training_cases(self.system.sku)
            )
        else:
            base = None
        backend, _ = self.kind_backend(kind)
        cases = backend.cases(kind, base)
        if kind == "training":
            cases = self._select_training(cases)
        self.config.hook.pytest_mlperf_modify_cases(config=self.config, kind=kind, cases=cases)
        self._cases[kind] = cases
        return cases

    def _select_training(self, cases: list) -> list:
        """--mlperf-training-config and --mlperf-nodes narrow a replay as they choose a run's config."""
        name, nodes = self.config.getoption("mlperf_training_config"), self.config.getoption("mlperf_nodes")
        if name:
            cases = [c for c in cases if c.config is not None and c.config.name == name]
        if nodes:
            cases = [c for c in cases if c.config is not None and c.config.nodes == nodes]
        return cases

    def record_trial(self, case, result: CaseResult | None, failure: str = "") -> None:
        if isinstance(case, catalog.TrainingCase) and case.trial is not None:
            self.trials[case.id] = trial_outcome(case.id, result, failure)

    def header(self) -> dict:
        return {
            "pytest_mlperf": __version__,
            "catalog": f"{self.catalog.inference_round}; {self.catalog.training_round}",
            "sku": self.system.sku if self.system else None,
            "system_id": self.system.system_id if self.system else None,
            "backend": self.backend_name,
            "backend_reason": self.backend_reason,
            "training_backend": self.training_backend.name,
            "training_backend_reason": self.training_reason,
            "host": platform.node(),
            "fingerprint": self.fingerprint,
        }


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _state(config: pytest.Config) -> MlperfState:
    return config.pluginmanager.get_plugin(STATE_NAME)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if config.option.help:
        return
    state = MlperfState(config)
    config.pluginmanager.register(state, STATE_NAME)
    if config.pluginmanager.hasplugin("html"):
        from .report.html import HtmlReport

        config.pluginmanager.register(HtmlReport(state), "mlperf_html")
    if config.pluginmanager.hasplugin("metadata"):  # pytest-html's Environment table
        from pytest_metadata.plugin import metadata_key

        for field, value in state.fingerprint.items():
            if value is not None:
                config.stash[metadata_key][f"MLPerf {field}"] = str(value)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Suite-level JUnit properties: junitxml creates its writer in its own pytest_configure.
    state = _state(session.config)
    xml = getattr(session.config, "stash", {}).get(_junit_key(), None) if state is not None else None
    if xml is not None:
        for key, value in state.header().items():
            if key == "fingerprint":
                for field, item in (value or {}).items():
                    if item is not None:
                        xml.add_global_property(f"mlperf:fingerprint.{field}", str(item))
            elif value is not None:
                xml.add_global_property(f"mlperf:{key}", str(value))


def _junit_key():
    from _pytest.junitxml import xml_key

    return xml_key


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    if state is None:
        return []
    lines = [f"mlperf: backend {state.backend_name} ({state.backend_reason})"]
    if state.training_backend is not state.backend:
        lines.append(f"mlperf: training backend {state.training_backend.name} ({state.training_reason})")
    if state.system is not None:
        lines.append(f"mlperf: system {state.system.sku} ({state.system.system_id})")
    if state.detected is not None:
        lines.append(f"mlperf: detected {gpu.describe(state.detected)}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argname in ("mlperf_case", "mlperf_score_case"):
        if argname in metafunc.fixturenames:
            _parametrize(metafunc, argname)


def _parametrize(metafunc: pytest.Metafunc, argname: str) -> None:
    state = _state(metafunc.config)
    kind = "training" if metafunc.definition.get_closest_marker("training") else "inference"
    cases = state.cases(kind)
    if argname == "mlperf_score_case":
        cases = catalog.score_cases(cases)
    params = []
    for case in cases:
        marks = [getattr(pytest.mark, name) for name in case.markers]
        group = case.id if isinstance(case, catalog.ScoreCase) else getattr(case, "score_id", None)
        if group and (isinstance(case, catalog.ScoreCase) or case.trial is not None):
            # --dist loadgroup keeps a config's trials and its score on one xdist worker, in order
            marks.append(pytest.mark.xdist_group(group))
        params.append(pytest.param(case, marks=marks, id=case.id))
    if not params:
        backend, why = state.kind_backend(kind)
        where = f"system {state.system.sku}" if state.system else "this run"
        what = "training scores" if argname == "mlperf_score_case" else f"{kind} cases"
        reason = f"no {what} for {where} on the {backend.name} backend ({why})"
        params.append(
            pytest.param(
                None, marks=[getattr(pytest.mark, kind), pytest.mark.skip(reason=reason)], id=f"no-{kind}-cases"
            )
        )
    metafunc.parametrize(argname, params, scope="function")


@pytest.fixture
def mlperf_case(request: pytest.FixtureRequest):
    """The case (catalog.InferenceCase or catalog.TrainingCase) this test judges."""
    return request.param


@pytest.fixture
def mlperf_score_case(request: pytest.FixtureRequest):
    """The set of training trials (catalog.ScoreCase) whose MLPerf score this test judges."""
    return request.param


@pytest.fixture(scope="session")
def mlperf_state(pytestconfig: pytest.Config) -> MlperfState:
    return _state(pytestconfig)


@pytest.fixture(scope="session")
def mlperf_gpus(mlperf_state: MlperfState) -> gpu.Inventory:
    """The machine's GPUs through NVML; skips when there is no NVIDIA driver."""
    try:
        return mlperf_state.inventory()
    except gpu.NvmlUnavailable as exc:
        pytest.skip(f"no GPU inventory: {exc}")


@pytest.fixture(scope="session")
def mlperf_system(mlperf_state: MlperfState, mlperf_gpus: gpu.Inventory) -> catalog.System:
    """The catalog system, checked against the machine: a mismatch is an error naming both."""
    system = mlperf_state.system or gpu.match_sku(mlperf_gpus, mlperf_state.catalog)
    if system is None:
        pytest.fail(f"this machine ({gpu.describe(mlperf_gpus)}) matches no catalog SKU", pytrace=False)
    problems = gpu.system_mismatch(system, mlperf_gpus)
    if problems:
        pytest.fail(
            f"--sku {system.sku} expects {system.count}x {system.gpu.names[0]}, detected "
            f"{gpu.describe(mlperf_gpus)}: " + "; ".join(problems),
            pytrace=False,
        )
    return system


@pytest.fixture
def mlperf_run(request: pytest.FixtureRequest, mlperf_state: MlperfState, tmp_path: Path):
    """Run (or replay) a case, judge it, attach its metrics to the reports, and return the CaseResult."""

    def run(case) -> CaseResult:
        backend = mlperf_state.backend_for(case)
        interval = request.config.getoption("mlperf_telemetry_interval")
        sampler = telemetry.Sampler(interval).start() if mlperf_state.telemetry_on else None
        try:
            artifacts, failure = _execute(request, mlperf_state, case)
        except Exception as exc:  # pytest's skip and fail are not Exceptions: they pass through unrecorded
            mlperf_state.record_trial(case, None, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            watched = sampler.stop().summary() if sampler is not None else None
        if failure is not None:  # said outside the except block: the message alone, no chained traceback
            mlperf_state.record_trial(case, None, failure.splitlines()[0])
            pytest.fail(failure, pytrace=False)
        try:
            result = evaluate(case, artifacts)
        except ParseError as exc:
            mlperf_state.record_trial(case, None, str(exc))
            pytest.fail(f"cannot judge {case.id}: {exc}", pytrace=False)
        mlperf_state.record_trial(case, result)
        if isinstance(case, catalog.TrainingCase) and mlperf_state.compliance:
            out = Path(request.getfixturevalue("tmp_path_factory").getbasetemp()) / "mlperf-compliance"
            result.info["compliance"] = compliance.check(artifacts.path, out / case.id.replace("/", "_")).to_dict()
        if watched is not None:
            result.info["telemetry"] = watched
            if getattr(case, "mode", "") == "PerformanceOnly" and watched.get("throttle"):
                result.info["throttled"] = watched["throttle"]
        published = mlperf_state.published_share(case, result)
        comparison = mlperf_state.compare(case, result)
        _attach(request, case, result, backend.name)
        _gate(request, mlperf_state, case, result, comparison, published)
        return result

    return run


def _execute(request: pytest.FixtureRequest, state: MlperfState, case):
    """Run (or find) a case on its backend: (artifacts, None), or (None, how it ended without logs to judge).
    A case with nothing to judge is skipped."""
    backend = state.backend_for(case)
    if getattr(backend, "output", "") is None:  # local and nvidia keep their logs in the run's folder
        chosen = request.config.getoption("mlperf_output")
        base = request.getfixturevalue("tmp_path_factory").getbasetemp()
        backend.output = Path(chosen).expanduser().resolve() if chosen else base / "mlperf-results"
    if backend.needs_gpu:
        request.getfixturevalue("mlperf_system")
    try:
        return backend.run(case, request.getfixturevalue("tmp_path")), None
    except ResultMissing as exc:
        pytest.skip(str(exc))
    except (RunFailed, ContainerError, BackendUnavailable) as exc:
        return None, str(exc)


def _attach(request: pytest.FixtureRequest, case, result: CaseResult, backend: str) -> None:
    request.config.hook.pytest_mlperf_result(config=request.config, case=case, result=result)
    request.node.stash[RESULT_KEY] = result
    request.node.user_properties.extend(junit_properties(result, backend))


def _gate(request, state: MlperfState, case, result: CaseResult, comparison, published: float | None) -> None:
    """Regressions against the baseline and a node below the published figure fail the test that shows them."""
    problems = []
    if comparison is not None and comparison.regressed:
        problems.append(f"REGRESSED vs baseline {state.baseline.name}: " + "; ".join(comparison.regressions))
    floor = request.config.getoption("mlperf_min_published")
    if floor is not None and published is not None and published < floor:
        problems.append(
            f"BELOW PUBLISHED: {published * 100:.1f}% of NVIDIA's published v2.0 figure for {case.id} "
            f"(--mlperf-min-published {floor:g})"
        )
    if problems:
        result.info["gate"] = problems
        pytest.fail("\n".join(problems) + f"\n(verdict: {result.verdict.reason})", pytrace=False)


@pytest.fixture
def mlperf_score(request: pytest.FixtureRequest, mlperf_state: MlperfState):
    """Score a set of trials judged earlier in this session (MLPerf's olympic mean) and attach the metrics."""

    def score(case: catalog.ScoreCase) -> CaseResult:
        missing = [trial for trial in case.trials if trial not in mlperf_state.trials]
        if missing and hasattr(request.config, "workerinput"):
            # Another worker may be running them: judging them here too could run a trial twice.
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            pytest.skip(
                f"the score of {case.id} needs its {len(case.trials)} trial(s) judged on this xdist worker; not "
                f"here: {shown} (run with --dist loadgroup to keep a config's trials and score together)"
            )
        if missing:  # deselected (e.g. -m score): judge them now, as their own tests would have
            by_id = {c.id: c for c in mlperf_state.cases("training")}
            for trial in missing:
                artifacts, failure = _execute(request, mlperf_state, by_id[trial])
                if failure is not None:
                    mlperf_state.record_trial(by_id[trial], None, failure.splitlines()[0])
                    continue
                try:
                    mlperf_state.record_trial(by_id[trial], evaluate(by_id[trial], artifacts))
                except ParseError as exc:
                    mlperf_state.record_trial(by_id[trial], None, str(exc))
        result = evaluate_score(case, [mlperf_state.trials[trial] for trial in case.trials])
        comparison = mlperf_state.compare(case, result)
        _attach(request, case, result, mlperf_state.training_backend.name)
        _gate(request, mlperf_state, case, result, comparison, None)
        return result

    return score


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return report
    params = getattr(getattr(item, "callspec", None), "params", {})
    case = params.get("mlperf_case") or params.get("mlperf_score_case")
    names = getattr(item, "fixturenames", ())
    if case is None and "mlperf_case" not in names and "mlperf_score_case" not in names:
        return report
    state = _state(item.config)
    result = item.stash.get(RESULT_KEY, None)
    reason = ""
    if result is None and report.longrepr is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr).splitlines()[-1]
        reason = reason.removeprefix("Skipped: ")
    backend = state.backend_for(case) if case is not None else state.backend
    record = result_record(
        case.id if case is not None else item.name, item.nodeid, report.outcome, result, reason, backend.name
    )
    report.mlperf = record
    if result is not None and item.config.pluginmanager.hasplugin("html"):
        from pytest_html import extras

        from .report.html import metrics_table

        report.extras = [*getattr(report, "extras", []), extras.html(metrics_table(record))]
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is not None:
        state.close_backend()  # runs on a normal end, after failures and after Ctrl-C
    if state is None or hasattr(session.config, "workerinput"):
        return
    path = session.config.getoption("mlperf_json")
    if path:
        write_json(Path(path), state.header(), state.records)
    name = session.config.getoption("mlperf_save")
    if name:
        state.saved = baseline.save(baseline.baseline_path(name, state.baseline_dir), state.header(), state.records)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or not state.records:
        return
    terminalreporter.section("MLPerf verdicts")
    for record in state.records:
        label = record.get("verdict") or record["outcome"].upper()
        info = record.get("info") or {}
        flags = f" [throttled: {', '.join(info['throttled'])}]" if info.get("throttled") else ""
        flags += "".join(f" [{problem}]" for problem in info.get("gate", []))
        terminalreporter.write_line(f"{label:<14} {record['id']}: {record.get('reason', '')}{flags}")
    if state.baseline is not None:
        _baseline_summary(terminalreporter, state, config)
    path = config.getoption("mlperf_json")
    if path and not hasattr(config, "workerinput"):
        terminalreporter.write_line(f"results JSON: {path}")
    if getattr(state, "saved", None):
        terminalreporter.write_line(f"baseline saved: {state.saved}")


def _baseline_summary(terminalreporter, state: MlperfState, config: pytest.Config) -> None:
    comps = []
    for record in state.records:
        found = (record.get("info") or {}).get("baseline")
        if found and not found.get("missing"):
            comps.append(baseline.Comparison.from_dict(found))
    changes, surprising = state.fingerprint_changes()
    terminalreporter.section(f"MLPerf baseline {state.baseline.name} ({state.baseline.path})")
    for line in baseline.format_comparison(comps, changes, surprising):
        terminalreporter.write_line(line)
