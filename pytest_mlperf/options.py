"""The plugin's options: five families (selection, local, nvidia, training, gate), each a function taking an
`addoption` and a flag prefix, shared by pytest (`--mlperf-...`) and the CLI (`--...`); value parsers given to
argparse as `type=`, so a bad value is reported against the flag that carried it; and one frozen Options read
once from pytest's config.

This module is the only one that spells a flag: everything below asks `flag(field)`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from .catalog import ROUNDS
from .gate.baseline import EXPECTED_CHANGES, BaselineError, Rule, parse_fail_on, parse_fields

PREFIX = "--mlperf-"
SMOKE_SECONDS = 8
BACKENDS = ("auto", "results", "local", "nvidia")


@dataclass(frozen=True)
class Duration:
    """--mlperf-duration: 'smoke' (SMOKE_SECONDS), 'full' (the round's rules: seconds is None) or N seconds."""

    text: str
    seconds: int | None


# ---- value parsers (argparse `type=`): a ValueError's text follows "argument <the flag>:" -----------------
def duration(text: str) -> Duration:
    if text == "smoke":
        return Duration(text, SMOKE_SECONDS)
    if text == "full":
        return Duration(text, None)
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected smoke, full or a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return Duration(text, seconds)


def fail_on(text: str) -> tuple[Rule, ...]:
    try:
        return tuple(parse_fail_on(text))
    except BaselineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(kind: type, low: float, low_ok: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value) or value < low or (value == low and not low_ok):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive = _number(float, 0.0, False, "a finite positive number")
not_negative = _number(float, 0.0, True, "a finite number, 0 or more")
count = _number(int, 1, True, "1 or more")


def path(text: str) -> Path:
    return Path(text).expanduser()


def fraction(text: str) -> float:
    """A share between 0 and 1 (0.05 is 5%); '5%' is read as 0.05 too."""
    words = text.strip()
    scale = 100.0 if words.endswith("%") else 1.0
    try:
        value = float(words.removesuffix("%")) / scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction such as 0.05 (or 5%)") from None
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a fraction above 0 and below 1 (0.05 is 5%)")
    return value


@dataclass(frozen=True)
class Repeat:
    """--mlperf-repeat: N runs of each performance case, or `auto`: runs until the gate can decide (or its budget
    is spent)."""

    text: str
    runs: int | None  # None: auto

    @property
    def auto(self) -> bool:
        return self.runs is None


def repeat(text: str) -> Repeat:
    if text == "auto":
        return Repeat(text, None)
    try:
        runs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of runs (1 or more) or auto") from None
    if runs < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more (or auto)")
    return Repeat(text, runs)


def confidence(text: str) -> float:
    """A confidence level: 0.95, or 95%."""
    value = fraction(text)
    if value < 0.5:
        raise argparse.ArgumentTypeError(f"{text!r}: a confidence below 0.5 decides nothing (0.95 is usual)")
    return value


FLEET_SCHEDULERS = ("off", "slurm")


def node_list(text: str) -> str:
    """--mlperf-fleet-nodes: a Slurm host list (gpu[001-064],dgx7); Slurm itself expands it."""
    words = text.strip()
    if not words or any(c.isspace() for c in words) or words.startswith("-"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a Slurm host list such as gpu[001-064] or n1,n2")
    return words


POWER_SETTINGS = ("MaxP", "MaxQ")


def power_settings(text: str) -> tuple[str, ...]:
    """--mlperf-power: MaxP, MaxQ or all (NVIDIA's PowerSetting names)."""
    if text == "all":
        return POWER_SETTINGS
    if text not in POWER_SETTINGS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MaxP, MaxQ or all")
    return (text,)


def gpu_indices(text: str) -> tuple[int, ...]:
    """--mlperf-gpus: NVML indices, comma separated, each once (0,3)."""
    words = [w.strip() for w in text.split(",")]
    if not words or any(not w.isdigit() for w in words):
        raise argparse.ArgumentTypeError(f"{text!r}: expected GPU indices such as 0 or 0,3")
    indices = tuple(int(w) for w in words)
    if len(set(indices)) != len(indices):
        raise argparse.ArgumentTypeError(f"{text!r}: a GPU is named twice")
    return indices


# ---- the families -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    field: str  # the Options attribute; its argparse dest is "mlperf_<field>"
    flag: str  # the flag without its prefix
    help: str
    default: object = None
    metavar: str | None = None
    type: Callable | None = None
    choices: tuple | None = None
    alias: str | None = None  # a second full flag, kept for the documented command
    action: str | None = None  # "store_true" for a switch (no value)


SELECTION = (
    Spec(
        "sku",
        "sku",
        "System under test: a catalog SKU such as A100-SXM-80GBx8, or 'auto' to detect it",
        metavar="NAME",
        alias="--sku",
    ),
    Spec(
        "round",
        "round",
        "The MLPerf Inference round whose cases, rules and published figures apply: inference-v2.0 or "
        "inference-v4.1. Default: the oldest round that has the SKU (the seed's Ampere systems: v2.0; Hopper and "
        "Blackwell: v4.1), v2.0 without a SKU",
        metavar="ROUND",
        choices=tuple(ROUNDS),
    ),
    Spec(
        "backend",
        "backend",
        "How cases run: results (replay a results tree), local, nvidia, or auto (default)",
        default="auto",
        choices=BACKENDS,
    ),
    Spec(
        "results",
        "results",
        "Replay an existing results tree (published layout, build/logs, or training trial logs)",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "power",
        "power",
        "NVIDIA's power setting whose registered cases run: MaxP (default), MaxQ (the system must already be in "
        "its MaxQ state: NVIDIA's configs set power_limit, nvpmodel on Jetson) or all",
        default="MaxP",
        metavar="MaxP|MaxQ|all",
        type=power_settings,
    ),
    Spec(
        "all_configs",
        "all-configs",
        "Also run the registered configs outside the MLPerf suite of the system's category (the cases NVIDIA's "
        "scripts/update_results.py skips for it, e.g. Server and bert-99.9 on an edge system): NVIDIA never "
        "submitted them, and they have no published reference. By default only the suite's cases run",
        default=False,
        action="store_true",
    ),
    Spec("json", "json", "Write every case's verdict and metrics to this JSON file", metavar="PATH", type=path),
    Spec(
        "output",
        "output",
        "Where runs write their results tree (default: mlperf-results inside pytest's basetemp)",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "cases",
        "cases",
        "Run only the cases whose ids this file lists, one per line (what a fleet controller hands each node); "
        "an id no test has fails the run",
        metavar="FILE",
        type=path,
    ),
    Spec(
        "each_gpu",
        "each-gpu",
        "Run a one-GPU system's inference cases on every GPU of the machine (or of --mlperf-gpus) as their own "
        "tests (ids end @gpuN): each test leases its GPU exclusively, and GPUs more than --mlperf-spread behind "
        "the others on a case are flagged and fail the run; use with -n N",
        default=False,
        action="store_true",
    ),
    Spec(
        "fleet",
        "fleet",
        "Run the suites on many nodes: slurm submits one exclusive job per node of --mlperf-fleet-nodes running "
        "these same tests there, and turns each node's results into tests here (ids end @NODE), with one fleet "
        "test per case (@fleet) against the nodes' median; off (default) runs here",
        default="off",
        choices=FLEET_SCHEDULERS,
    ),
    Spec(
        "fleet_nodes",
        "fleet-nodes",
        "The fleet's nodes, as a Slurm host list: gpu[001-064] or n1,n2",
        metavar="HOSTLIST",
        type=node_list,
    ),
    Spec(
        "fleet_dir",
        "fleet-dir",
        "A folder every node sees, where each node writes its JSON, JUnit and logs (<DIR>/<run>/<node>); checked "
        "from the nodes with srun before any job is submitted. Default: mlperf-fleet in the current folder",
        default=Path("mlperf-fleet"),
        metavar="DIR",
        type=path,
    ),
    Spec(
        "fleet_walltime",
        "fleet-walltime",
        "Time limit of each node's job (sbatch --time), in minutes (default: the partition's)",
        metavar="MINUTES",
        type=count,
    ),
)
LOCAL = (
    Spec(
        "duration",
        "duration",
        "Length of each local performance run: smoke (about 10 s, the default), full (the "
        "round's rules: 600 s and its query counts) or a number of seconds",
        default="smoke",
        metavar="smoke|full|SECONDS",
        type=duration,
    ),
    Spec(
        "server_target_qps",
        "server-target-qps",
        "Server scenario target QPS (local default: 40%% of what a "
        "probe of the model measures, lowered when LoadGen finds it breaks the latency bound)",
        metavar="QPS",
        type=positive,
    ),
    Spec(
        "server_search",
        "server-search",
        "Find each Server performance case's peak: the highest target QPS LoadGen judges VALID, by a bounded "
        "search over short runs from the probe's load (local) or NVIDIA's tuned target (nvidia), confirmed by one "
        "run of the configured duration; reported as peak_server_qps, which the baseline gate covers",
        default=False,
        action="store_true",
    ),
    Spec(
        "search_runs",
        "search-runs",
        "Most short runs one Server search makes (default 10)",
        default=10,
        metavar="N",
        type=count,
    ),
    Spec(
        "search_minutes",
        "search-minutes",
        "Most minutes one Server search takes, its confirming run aside (default 20)",
        default=20.0,
        metavar="MINUTES",
        type=positive,
    ),
    Spec(
        "search_step_seconds",
        "search-step-seconds",
        "Length of each short run of a Server search (default 5)",
        default=5,
        metavar="SECONDS",
        type=count,
    ),
    Spec(
        "train_max_steps",
        "train-max-steps",
        "Step cap of the local training run; reaching it ends the run as aborted",
        metavar="N",
        type=count,
    ),
)
NVIDIA = (
    Spec(
        "nvidia_code",
        "nvidia-code",
        "A checkout of closed/NVIDIA of mlcommons/inference_results_v2.0 (the nvidia backend)",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "scratch",
        "scratch",
        "MLPERF_SCRATCH_PATH for the nvidia backend: data/, models/, preprocessed_data/",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "image",
        "image",
        "Container image to run NVIDIA's code in (inference: default mlperf-inference:<user>-<arch>, which "
        "NVIDIA's make build_docker and docker_add_user make; training: built from the implementation's "
        "Dockerfile if missing)",
        metavar="NAME",
    ),
    Spec(
        "gpus",
        "gpus",
        "The GPUs that make the system under test (NVML indices, e.g. 0 or 0,3): the SKU is checked against them "
        "and only they are given to NVIDIA's container (NVIDIA_VISIBLE_DEVICES); default: every GPU",
        metavar="LIST",
        type=gpu_indices,
    ),
    Spec(
        "container_profile",
        "container-profile",
        "nvidia: launch_docker's flags (all GPUs, unlimited memlock, "
        "capabilities); minimal: mounts, user and labels only, for a stand-in image",
        default="nvidia",
        choices=("nvidia", "minimal"),
    ),
    Spec(
        "step_timeout",
        "step-timeout",
        "Fail a make step of the nvidia backend that runs longer than this (the container is stopped)",
        metavar="SECONDS",
        type=positive,
    ),
)
TRAINING = (
    Spec(
        "training_code",
        "training-code",
        "NVIDIA's MLPerf Training v2.1 BERT implementation (NVIDIA/benchmarks/"
        "bert/implementations/pytorch-22.09 of mlcommons/training_results_v2.1): config_*.sh, run_and_time.sh, "
        "run.sub, Dockerfile",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "bert_data",
        "bert-data",
        "BERT training data as prepare_data.sh lays it out: hdf5/training-4320/"
        "hdf5_4320_shards_varlength, hdf5/eval_varlength, phase1 (and packed_data for the packed config)",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "training_config",
        "training-config",
        "Training config to run or replay (default: the SKU's config for --mlperf-nodes), e.g. 1x8x56x1",
        metavar="NAME",
    ),
    Spec(
        "nodes",
        "nodes",
        "Nodes a training run uses; picks the SKU's config for that node count (default 1)",
        metavar="N",
        type=count,
    ),
    Spec(
        "nexp",
        "nexp",
        "Training trials per config: 10 make an MLPerf score (the default on the local backend, whose trials take "
        "seconds); the nvidia backend runs 1 by default, a convergence gate whose score is PARTIAL",
        metavar="N",
        type=count,
    ),
    Spec(
        "partial_scores",
        "partial-scores",
        "Accept a training score of fewer trials than MLPerf needs (10 for BERT): it is then SCORED and said to "
        "be partial (metric partial_score); without this flag such a score fails as PARTIAL",
        default=False,
        action="store_true",
    ),
    Spec(
        "launcher",
        "launcher",
        "How NVIDIA's training runs: docker (one node, this machine's engine) or slurm (sbatch; multi-node)",
        default="docker",
        choices=("docker", "slurm"),
    ),
    Spec(
        "training_logdir",
        "training-logdir",
        "Where NVIDIA's training writes its trial logs (LOGDIR). Under --mlperf-launcher slurm it must be a folder "
        "every node sees (run.sub tees the log on the batch node and mounts it at /results on all): it is checked "
        "from the nodes with srun before the first job; default <training-code>/results there, as NVIDIA's "
        "./results, and the session's output folder with docker",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "slurm_partition",
        "slurm-partition",
        "Slurm partition for training jobs (default: the cluster's default partition)",
        metavar="NAME",
    ),
    Spec(
        "compliance",
        "compliance",
        "Run mlperf-logging's compliance checker on each training log: auto (when it is installed), on, off",
        default="auto",
        choices=("auto", "on", "off"),
    ),
)
GATE = (
    Spec("save", "save", "Keep this run's results as baseline NAME (in --mlperf-baseline-dir)", metavar="NAME"),
    Spec(
        "baseline",
        "baseline",
        "Compare every case with a saved baseline (a name, or a results JSON file)",
        metavar="NAME|FILE",
    ),
    Spec(
        "fail_on",
        "fail-on",
        "Regressions against the baseline that fail a test, e.g. throughput:5%%,"
        "latency:10%%,accuracy:any (classes throughput, latency, accuracy, time, or a metric name); verdict flips "
        "always fail",
        metavar="EXPR",
        type=fail_on,
    ),
    Spec(
        "repeat",
        "repeat",
        "Run each performance case N times and keep every run (performance/run_1 .. run_N); its verdict needs every "
        "run VALID, and the gate decides on all of them against the baseline's runs. 'auto' adds runs until the "
        "gate can decide (at least 3; 5 where there is no baseline to decide against) or --mlperf-gate-budget is "
        "spent. Default: 1 (one run a case)",
        default=Repeat("1", 1),
        metavar="N|auto",
        type=repeat,
    ),
    Spec(
        "gate_budget",
        "gate-budget",
        "Minutes --mlperf-repeat auto may spend on one case before it stops undecided (default 10)",
        default=10.0,
        metavar="MINUTES",
        type=positive,
    ),
    Spec(
        "confidence",
        "confidence",
        "Confidence of the gate's interval for a change (default 0.95): a regression is a change whose whole "
        "interval is worse than the --mlperf-fail-on limit",
        default=0.95,
        metavar="LEVEL",
        type=confidence,
    ),
    Spec(
        "inconclusive",
        "inconclusive",
        "What an undecided gate does (its interval straddles the limit): fail the test (default) or warn",
        default="fail",
        choices=("fail", "warn"),
    ),
    Spec(
        "baseline_dir",
        "baseline-dir",
        "Where named baselines are kept (default .mlperf-baselines)",
        default=".mlperf-baselines",
        metavar="DIR",
        type=path,
    ),
    Spec(
        "expect_change",
        "expect-change",
        "Fingerprint fields a roll-out is meant to change; a baseline differing in others is warned about",
        default=",".join(EXPECTED_CHANGES),
        metavar="FIELDS",
        type=parse_fields,
    ),
    Spec(
        "min_published",
        "min-published",
        "Fail a performance case below this fraction of NVIDIA's published v2.0 figure (e.g. 0.9)",
        metavar="FRACTION",
        type=positive,
    ),
    Spec(
        "spread",
        "spread",
        "How far behind the median of its peers (the fleet's nodes, the node's GPUs) a node or GPU may be on a "
        "case before it is flagged, as a fraction (default 0.05, i.e. 5%%)",
        default=0.05,
        metavar="FRACTION",
        type=fraction,
    ),
    Spec(
        "telemetry_interval",
        "telemetry-interval",
        "NVML sampling period during each test (0 turns telemetry off; no NVML, no telemetry)",
        default=1.0,
        metavar="SECONDS",
        type=not_negative,
    ),
)
FAMILIES = {"selection": SELECTION, "local": LOCAL, "nvidia": NVIDIA, "training": TRAINING, "gate": GATE}
SPECS = {spec.field: spec for family in FAMILIES.values() for spec in family}


def flag(field: str, prefix: str = PREFIX) -> str:
    """The flag that carries an Options field, for messages: flag('nvidia_code') -> '--mlperf-nvidia-code'
    (the documented alias where there is one: flag('sku') -> '--sku')."""
    spec = SPECS[field]
    return spec.alias if spec.alias and prefix == PREFIX else prefix + spec.flag


def _add(addoption: Callable, specs: tuple[Spec, ...], prefix: str, only, defaults) -> None:
    for spec in specs:
        if only is not None and spec.field not in only:
            continue
        names = [prefix + spec.flag] + ([spec.alias] if spec.alias and prefix == PREFIX else [])
        extra = {
            key: getattr(spec, key)
            for key in ("metavar", "type", "choices", "action")
            if getattr(spec, key) is not None
        }
        default, help_text = spec.default, spec.help
        if defaults and spec.field in defaults:  # another face's own default (the CLI's compare gate)
            default = defaults[spec.field]
            help_text += f" (default {default})".replace("%", "%%")
        addoption(*names, dest=f"mlperf_{spec.field}", default=default, help=help_text, **extra)


def add_selection_options(addoption: Callable, prefix: str = PREFIX, only=None, defaults=None) -> None:
    _add(addoption, SELECTION, prefix, only, defaults)


def add_local_options(addoption: Callable, prefix: str = PREFIX, only=None, defaults=None) -> None:
    _add(addoption, LOCAL, prefix, only, defaults)


def add_nvidia_options(addoption: Callable, prefix: str = PREFIX, only=None, defaults=None) -> None:
    _add(addoption, NVIDIA, prefix, only, defaults)


def add_training_options(addoption: Callable, prefix: str = PREFIX, only=None, defaults=None) -> None:
    _add(addoption, TRAINING, prefix, only, defaults)


def add_gate_options(addoption: Callable, prefix: str = PREFIX, only=None, defaults=None) -> None:
    """The gate: baselines, regression rules, the published floor, telemetry. `only` picks fields, `defaults`
    gives another face its own defaults (strings, parsed like a value given on the command line)."""
    _add(addoption, GATE, prefix, only, defaults)


@dataclass(frozen=True)
class Options:
    """Every option's value, parsed; read once from pytest's config (or argparse's namespace)."""

    sku: str | None = None
    round: str | None = None
    backend: str = "auto"
    power: tuple[str, ...] = ("MaxP",)
    all_configs: bool = False
    results: Path | None = None
    json: Path | None = None
    output: Path | None = None
    cases: Path | None = None
    each_gpu: bool = False
    fleet: str = "off"
    fleet_nodes: str | None = None
    fleet_dir: Path = Path("mlperf-fleet")
    fleet_walltime: int | None = None
    duration: Duration = Duration("smoke", SMOKE_SECONDS)
    server_target_qps: float | None = None
    server_search: bool = False
    search_runs: int = 10
    search_minutes: float = 20.0
    search_step_seconds: int = 5
    train_max_steps: int | None = None
    nvidia_code: Path | None = None
    scratch: Path | None = None
    image: str | None = None
    gpus: tuple[int, ...] | None = None
    container_profile: str = "nvidia"
    step_timeout: float | None = None
    training_code: Path | None = None
    bert_data: Path | None = None
    training_config: str | None = None
    nodes: int | None = None
    nexp: int | None = None  # None: the backend's own default (local 10, nvidia 1)
    partial_scores: bool = False
    launcher: str = "docker"
    training_logdir: Path | None = None
    slurm_partition: str | None = None
    compliance: str = "auto"
    save: str | None = None
    baseline: str | None = None
    fail_on: tuple[Rule, ...] | None = None
    baseline_dir: Path = Path(".mlperf-baselines")
    expect_change: tuple[str, ...] = EXPECTED_CHANGES
    repeat: Repeat = Repeat("1", 1)
    gate_budget: float = 10.0
    confidence: float = 0.95
    inconclusive: str = "fail"
    min_published: float | None = None
    spread: float = 0.05
    telemetry_interval: float = 1.0
    live_output: bool = False  # pytest runs with -s: stream what NVIDIA's steps print

    @classmethod
    def from_getter(cls, get: Callable[[str], object], live_output: bool = False) -> Options:
        values = {f.name: get(f"mlperf_{f.name}") for f in fields(cls) if f.name in SPECS}
        return cls(**values, live_output=live_output)

    @classmethod
    def from_config(cls, config) -> Options:
        return cls.from_getter(config.getoption, live_output=config.getoption("capture") == "no")


# ---- option values written as a separate word ------------------------------------------------------------------
# pytest chooses its rootdir and ini file before it loads plugins, so at that moment it reads the value of a plugin
# option written as two words (`--mlperf-results DIR`) as a test path: where that path sits then decides the rootdir
# and the ini file. `pytest-mlperf run` joins such pairs into one word before pytest sees them; plain pytest refuses
# the pairs that could move its choice (session.guard_two_words).
def value_flags(prefix: str = PREFIX) -> dict[str, Spec]:
    """Every spelling of every option that takes a value, with its Spec."""
    found: dict[str, Spec] = {}
    for spec in SPECS.values():
        if spec.action is None:
            found[prefix + spec.flag] = spec
            if spec.alias and prefix == PREFIX:
                found[spec.alias] = spec
    return found


def two_word_values(words: list[str]) -> list[tuple[int, str, Spec]]:
    """(index of the flag, its value, its Spec) for each plugin option whose value is the next word. A word after
    `--` is an argument, never an option; a value that starts with '-' is not one argparse would take."""
    flags, found = value_flags(), []
    i = 0
    while i < len(words) - 1:
        if words[i] == "--":
            break
        spec = flags.get(words[i])
        if spec is not None and not words[i + 1].startswith("-"):
            found.append((i, words[i + 1], spec))
            i += 2
            continue
        i += 1
    return found


def join_values(words: list[str]) -> list[str]:
    """The words with each `FLAG VALUE` of the plugin's options written `FLAG=VALUE`: the same options for
    argparse, and nothing that pytest can take for a test path while it chooses its rootdir."""
    starts = {i: (value, words[i]) for i, value, _ in two_word_values(words)}
    joined: list[str] = []
    i = 0
    while i < len(words):
        if i in starts:
            value, name = starts[i]
            joined.append(f"{name}={value}")
            i += 2
            continue
        joined.append(words[i])
        i += 1
    return joined
