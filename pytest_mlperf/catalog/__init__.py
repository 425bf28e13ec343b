"""What exists, as data: systems, benchmarks, scenarios, training configs, and the cases they make.

The facts live in one JSON file per MLPerf round beside this module; this module only types them.
A Case is one benchmark x scenario x mode (x harness) for one system, or one training config.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

from .nvidia_tree import SuiteSkip

MODES = ("AccuracyOnly", "PerformanceOnly")
SCENARIOS = ("Offline", "Server", "SingleStream", "MultiStream")
HARNESSES = ("custom", "lwis", "triton", "local")


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._+@/=-]")


def safe_id(text: str) -> str:
    """A test id safe by construction (pytest-html renders ids as HTML, JUnit carries them as names): names
    from the catalog pass as they are; a folder or file name with anything else is reduced to a safe set of
    characters and made unique again with a digest of the original. The real path goes to the report's text."""
    safe = _UNSAFE_ID.sub("_", text)
    if safe != text or len(safe) > 160:
        safe = f"{safe[:150]}~{hashlib.sha1(text.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
    return safe


def marker_name(text: str) -> str:
    """A pytest marker for a model, scenario or mode name: ssd-mobilenet -> ssd_mobilenet, AccuracyOnly ->
    accuracy."""
    return text.removesuffix("Only").replace("-", "_").lower()


DEFAULT_ROUND_NAME = "inference-v2.0"


class CatalogError(ValueError):
    """A name that the catalog does not know, with what it does know."""


@dataclass(frozen=True)
class Gpu:
    key: str
    names: tuple[str, ...]
    memory_gib: float | None
    pci_device_id: str | None
    max_power_w: float | None
    sm: int
    integrated: bool = False


@dataclass(frozen=True)
class System:
    sku: str
    known_system: str  # NVIDIA's KnownSystem member (code/common/systems/system_list.py), which its configs name
    system_id: str
    category: str  # datacenter | edge
    gpu: Gpu
    count: int
    description: str
    arch: str = "x86_64"  # the host's CPU architecture NVIDIA's configs name (GH200 and Jetson: aarch64)


@dataclass(frozen=True)
class AccuracyTarget:
    """One accuracy rule of a benchmark, as MLCommons' submission checker states it: a score of accuracy.txt (by
    the checker's name) at least `low` and, where the round sets an upper limit, at most `high`."""

    metric: str
    low: float | None
    high: float | None = None
    rule: str = ""  # how the bound is made, for the reason: "99% of 44.4312", "MLPerf's range"

    @property
    def bounds(self) -> str:
        """The bounds in words: '>= 43.99', '>= 23.01 and <= 23.95'."""
        parts = [
            f">= {self.low:.4g}" if self.low is not None else "",
            f"<= {self.high:.4g}" if self.high is not None else "",
        ]
        return " and ".join(part for part in parts if part)

    def breaks(self, value: float) -> str | None:
        """What the value breaks, in words, or None when it holds."""
        if self.low is not None and value < self.low:
            return f"{self.metric} {value:.4g} < {self.low:.4g} ({self.rule})"
        if self.high is not None and value > self.high:
            return f"{self.metric} {value:.4g} > upper limit {self.high:.4g} ({self.rule})"
        return None

    @classmethod
    def from_json(cls, entry: dict) -> AccuracyTarget:
        """{"metric", "reference", "factor"[, "upper_factor"]} (a share of a reference score) or {"metric", "low",
        "high"} (a range the round sets outright)."""
        if "reference" in entry:
            reference, factor = float(entry["reference"]), float(entry["factor"])
            upper = entry.get("upper_factor")
            rule = f"{factor * 100:g}% of {reference:g}" + (f", at most {upper * 100:g}%" if upper else "")
            return cls(entry["metric"], reference * factor, reference * upper if upper else None, rule)
        return cls(entry["metric"], entry.get("low"), entry.get("high"), "MLPerf's range")


@dataclass(frozen=True)
class Benchmark:
    name: str
    model: str
    level: str  # "99" or "99.9"
    metric: str
    reference: float
    default_harness: str
    server_latency_ms: float | None
    title: str = ""
    stand_in: str | None = None  # "module:Class" of the local backend's stand-in model for it
    dataset_size: int | None = None  # the sample count LoadGen's QSL reports for the MLPerf dataset
    performance_sample_count: int | None = None  # NVIDIA's performance sample count for it
    log_names: tuple[str, ...] = ()  # SUT and QSL names NVIDIA's harnesses log that name this model only
    # Every rule a later round's benchmark is held to (the LLMs' three ROUGE scores and tokens a sample, SDXL's FID
    # and CLIP ranges); empty for one score against `reference`, as in v2.0.
    targets: tuple[AccuracyTarget, ...] = ()

    @property
    def threshold(self) -> float:
        if self.targets and self.targets[0].low is not None:
            return self.targets[0].low
        return self.reference * (0.999 if self.level == "99.9" else 0.99)

    @property
    def accuracy_targets(self) -> tuple[AccuracyTarget, ...]:
        """The rules accuracy.txt is held to: the round's list, or the one score at the level's share."""
        if self.targets:
            return self.targets
        return (AccuracyTarget(self.metric, self.threshold, None, f"{self.level}% of {self.reference:g}"),)


@dataclass(frozen=True)
class SuiteException:
    """A registered case kept in a system's default set although the MLPerf suite of its category has none: the
    `why` says on whose word (the seed's own table)."""

    sku: str
    benchmark: str
    scenario: str
    why: str


@dataclass(frozen=True)
class Scenario:
    name: str
    min_duration_ms: int  # the round's mlperf.conf
    min_query_count: int  # the round's mlperf.conf; for Offline, LoadGen takes it as the least samples of its query
    min_sample_count: int
    perf_key: str
    unit: str
    higher_is_better: bool
    # the round's mlperf.conf, as LoadGen logs it (0.99): the percentile a Server latency bound is held at and
    # the streams' headline latency is taken at. None for Offline, where LoadGen uses none (it logs its default
    # 0.99 whatever mlperf.conf says).
    target_latency_percentile: float | None = None


@dataclass(frozen=True)
class TrainingConfig:
    name: str
    file: str
    common: str | None
    gpu: str
    nodes: int
    gpus_per_node: int
    batch_size: int
    gradient_steps: int
    learning_rate: float
    max_steps: int
    walltime_min: int  # the config file's WALLTIME for one experiment (NEXP=1)
    packed: bool
    job_script: str = "run.sub"  # what sbatch submits (the A30 config has its own, docker-based a30.sub)
    run_and_time: str = "run_and_time.sh"  # what each rank runs
    visible_devices: str | None = None  # the config's CUDA_VISIBLE_DEVICES (1x4x56x2: four GPUs of a DGX A100)
    average_packing_rate: int = 1  # run_pretraining.py's --average_packing_rate, 2 unless set, for packed data

    @property
    def global_batch_size(self) -> int:
        # NVIDIA's BATCHSIZE already includes the accumulation steps (1x4x56x2 sets BATCHSIZE=112); a packed sample
        # holds average_packing_rate sequences on average, and run_pretraining.py counts sequences.
        return self.nodes * self.gpus_per_node * self.batch_size * self.average_packing_rate


def system_name(system_id: str, harness: str, power: str = "MaxP") -> str:
    """NVIDIA's results-tree name: <system_id>_TRT, plus _Triton and _MaxQ; <system_id>_Local for the
    local backend's runs, which are not TensorRT's."""
    if harness == "local":
        return f"{system_id}_Local"
    name = f"{system_id}_TRT"
    if harness == "triton":
        name += "_Triton"
    if power == "MaxQ":
        name += "_MaxQ"
    return name


def split_system_name(name: str) -> tuple[str, str | None, str]:
    """Inverse of system_name: (system_id, 'triton' or None, power)."""
    power = "MaxP"
    harness = None
    if name.endswith("_MaxQ"):
        name, power = name[: -len("_MaxQ")], "MaxQ"
    if name.endswith("_Triton"):
        name, harness = name[: -len("_Triton")], "triton"
    if name.endswith("_TRT"):
        name = name[: -len("_TRT")]
    elif name.endswith("_Local"):
        name, harness = name[: -len("_Local")], "local"
    return name, harness, power


@dataclass(frozen=True)
class InferenceCase:
    """One benchmark x scenario x mode x harness on one system."""

    system_id: str
    benchmark: Benchmark
    scenario: Scenario
    mode: str
    harness: str
    sku: str | None = None
    power: str = "MaxP"
    run: str = "run_1"  # the performance/<run> folder of a results tree
    source: Path | None = None  # set when the case was discovered in a results tree
    qualify: bool = False  # prefix the test id with the system (several systems in one session)
    gpu: int | None = None  # the one GPU (NVML index) this case runs on, under --mlperf-each-gpu

    kind = "inference"

    @property
    def system_name(self) -> str:
        return system_name(self.system_id, self.harness, self.power)

    @property
    def workload(self) -> str:
        level = self.benchmark.level.replace(".", "_")
        return f"{self.harness}_k_{level}_{self.power}"

    @property
    def results_dir(self) -> Path:
        """Where the case's logs lie in a results tree: <system name>/<benchmark>/<Scenario>/<leaf>."""
        leaf = Path("accuracy") if self.mode == "AccuracyOnly" else Path("performance") / self.run
        return Path(self.system_name) / self.benchmark.name / self.scenario.name / leaf

    @property
    def output_dir(self) -> Path:
        """Where a run keeps the case's logs in its output folder: the results-tree place, under gpuN/ for a
        case pinned to one GPU (each GPU's run of a case keeps its own)."""
        return Path(f"gpu{self.gpu}") / self.results_dir if self.gpu is not None else self.results_dir

    @property
    def harness_implied_by_layout(self) -> bool:
        """A results tree's folder names tell Triton (_Triton) apart, and otherwise mean the default harness."""
        return self.harness in ("triton", self.benchmark.default_harness)

    @property
    def config_name(self) -> str:
        return f"{self.system_name}-{self.workload}-{self.scenario.name}"

    @property
    def id(self) -> str:
        parts = [self.benchmark.name, self.scenario.name, self.mode, self.harness]
        if self.power != "MaxP":
            parts.append(self.power)
        if self.mode == "PerformanceOnly" and self.run != "run_1":
            parts.append(self.run)
        base = "-".join(parts)
        pinned = f"@gpu{self.gpu}" if self.gpu is not None else ""
        return safe_id(f"{self.system_name}/{base}" if self.qualify else base) + pinned

    @property
    def markers(self) -> tuple[str, ...]:
        return (
            "inference",
            marker_name(self.benchmark.model),
            marker_name(self.scenario.name),
            marker_name(self.mode),
            self.harness,
        )

    def with_(self, **changes) -> InferenceCase:
        return replace(self, **changes)


@dataclass(frozen=True)
class TrainingCase:
    """One training config (and, once a results tree is read, one trial log of it)."""

    config: TrainingConfig | None
    sku: str | None = None
    target: float = 0.720
    trial: str | None = None  # e.g. "dgxa100_ngc22.09_pytorch/result_0", or "trial_1" for a run
    source: Path | None = None
    recipe: str | None = None  # how to name a trial whose recipe matches no config, e.g. "gbs768"
    group: str | None = None  # trials scored together: a results set's folder, or the config of a run

    kind = "training"
    benchmark_name = "bert"

    @property
    def config_label(self) -> str:
        if self.config:
            return self.config.name
        return self.recipe or "unknown-config"

    @property
    def id(self) -> str:
        base = f"bert-{self.config_label}"
        return safe_id(f"{base}-{self.trial}" if self.trial else base)

    @property
    def score_id(self) -> str:
        """The score test this trial counts towards: bert-<config>[-<set>]."""
        base = f"bert-{self.config_label}"
        return safe_id(f"{base}-{self.group}" if self.group and self.group != self.config_label else base)

    @property
    def markers(self) -> tuple[str, ...]:
        return ("training", "bert")

    def with_(self, **changes) -> TrainingCase:
        return replace(self, **changes)


@dataclass(frozen=True)
class ScoreCase:
    """The MLPerf score of one set of trials (one config's runs, or one published set)."""

    id: str
    trials: tuple[str, ...]  # the trial cases' ids
    config: TrainingConfig | None
    target: float

    kind = "training-score"

    @property
    def markers(self) -> tuple[str, ...]:
        return ("training", "bert", "score")


def score_cases(trials: list[TrainingCase]) -> list[ScoreCase]:
    groups: dict[str, list[TrainingCase]] = {}
    for case in trials:
        if case.trial is not None and case.group is not None:  # a trial outside any set is never scored
            groups.setdefault(case.score_id, []).append(case)
    return [
        ScoreCase(id=key, trials=tuple(c.id for c in members), config=members[0].config, target=members[0].target)
        for key, members in groups.items()
    ]


@dataclass(frozen=True)
class Catalog:
    inference_round: str
    training_round: str
    gpus: dict[str, Gpu]
    systems: dict[str, System]
    benchmarks: dict[str, Benchmark]
    scenarios: dict[str, Scenario]
    matrix: dict[str, dict[str, dict]]
    training_configs: dict[str, TrainingConfig]
    training_systems: dict[str, tuple[str, ...]]
    training_system_notes: dict[str, str]
    training_target: float
    published: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # system name -> bench -> scen
    nvidia_matrix: dict[str, dict[str, dict[str, list]]] = field(default_factory=dict)  # known system -> cases
    tuned: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)  # system name -> bench -> scen -> conf
    mlperf_conf: dict[str, dict[str, float]] = field(default_factory=dict)  # scenario -> the round's rules
    marker_help: dict[str, str] = field(default_factory=dict)  # every marker a case can carry -> what it selects
    system_types: dict[str, str] = field(default_factory=dict)  # system name -> NVIDIA's systems/*.json system_type
    suite_skips: tuple[SuiteSkip, ...] = ()  # NVIDIA's update_results.py: what a system type never submits
    suite_exceptions: tuple[SuiteException, ...] = ()
    # A round whose suite NVIDIA's tooling no longer draws (v4.1): category -> benchmark -> its scenarios, from
    # MLCommons' submission checker; empty where suite_skips draw it (v2.0).
    suite: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    suite_source: str = ""
    round_name: str = DEFAULT_ROUND_NAME  # the key in ROUNDS: inference-v2.0, inference-v4.1
    published_tokens: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # the LLMs' token rates

    def _lookup(self, table: dict, name: str, what: str, known: str = "known"):
        try:
            return table[name]
        except KeyError:
            raise CatalogError(f"unknown {what} {name!r}; {known}: {', '.join(table)}") from None

    def published_figure(self, system_name: str, benchmark: str, scenario: str) -> float | None:
        """NVIDIA's published v2.0 figure for a case (the scenario's perf key), when the catalog has it."""
        return self.published.get(system_name, {}).get(benchmark, {}).get(scenario)

    def system(self, sku: str) -> System:
        return self._lookup(self.systems, sku, "SKU", "known SKUs")

    def system_by_id(self, system_id: str) -> System | None:
        for system in self.systems.values():
            if system.system_id == system_id:
                return system
        return None

    def benchmark(self, name: str) -> Benchmark:
        return self._lookup(self.benchmarks, name, "benchmark")

    def scenario(self, name: str) -> Scenario:
        for key, scenario in self.scenarios.items():
            if key.lower() == name.lower():
                return scenario
        raise CatalogError(f"unknown scenario {name!r}; known: {', '.join(self.scenarios)}")

    def tuned_settings(self, system_name: str, benchmark: str, scenario: str) -> dict | None:
        """NVIDIA's user.conf for a published case (target QPS, latencies), when the catalog has it."""
        return self.tuned.get(system_name, {}).get(benchmark, {}).get(scenario)

    def inference_cases(
        self, sku: str, powers: tuple[str, ...] = ("MaxP",), matrix: dict[str, dict[str, dict]] | None = None
    ) -> list[InferenceCase]:
        """The cases NVIDIA's configs register for the SKU's system (benchmark x scenario x harness x accuracy
        target x power setting), in both modes: from `matrix` (a checkout's, keyed by KnownSystem) or the
        catalog's copy of the v2.0 tree's."""
        system = self.system(sku)
        table = (self.nvidia_matrix if matrix is None else matrix).get(system.known_system, {})
        cases = []
        for bench_name, scenarios in table.items():
            bench = self.benchmarks.get(bench_name)
            if bench is None:
                continue
            for scenario_name, pairs in scenarios.items():
                for mode in MODES:
                    for harness, power in pairs:
                        if power not in powers:
                            continue
                        cases.append(
                            InferenceCase(
                                system_id=system.system_id,
                                benchmark=bench,
                                scenario=self.scenarios[scenario_name],
                                mode=mode,
                                harness=harness,
                                sku=sku,
                                power=power,
                            )
                        )
        return cases

    def suite_skip(self, system: System, case: InferenceCase) -> SuiteSkip | None:
        """The skip of NVIDIA's update_results.py that puts the case outside the MLPerf suite of the system's
        category (its first, in file order); None for a case in the suite or kept by a suite exception."""
        bench, scenario = case.benchmark.name, case.scenario.name
        if any((e.sku, e.benchmark, e.scenario) == (system.sku, bench, scenario) for e in self.suite_exceptions):
            return None
        if self.suite:
            required = self.suite.get(system.category, {})
            where = f"{self.suite_source}: required scenarios, {system.category}"
            if bench not in required:
                return SuiteSkip(system.category, "benchmark", (bench,), (), where)
            if scenario not in required[bench]:
                return SuiteSkip(system.category, "scenario", (scenario,), (), where)
            return None
        return next((s for s in self.suite_skips if s.skips(system.category, bench, scenario)), None)

    def outside_suite(self, system: System, cases: list[InferenceCase]) -> dict[str, list[InferenceCase]]:
        """The cases outside the MLPerf suite of the system's category, by the benchmark or scenario name that
        puts them there (Server, bert-99.9 on an edge system): registered, never submitted, no published figure."""
        out: dict[str, list[InferenceCase]] = {}
        for case in cases:
            skip = self.suite_skip(system, case)
            if skip is not None:
                key = case.benchmark.name if skip.field == "benchmark" else case.scenario.name
                out.setdefault(key, []).append(case)
        return out

    def local_cases(self, system_id: str) -> list[InferenceCase]:
        """The local backend's own matrix, for a run with no --sku: every scenario once."""
        cases = []
        for bench_name, entry in self.matrix["local"].items():
            for scenario_name in entry["scenarios"]:
                for mode in MODES:
                    cases.append(
                        InferenceCase(
                            system_id=system_id,
                            benchmark=self.benchmarks[bench_name],
                            scenario=self.scenarios[scenario_name],
                            mode=mode,
                            harness="local",
                        )
                    )
        return cases

    def training_cases(self, sku: str) -> list[TrainingCase]:
        """Every config the catalog lists for the SKU (a replay matches trial logs against all of them)."""
        self.system(sku)
        return [
            TrainingCase(config=self.training_configs[name], sku=sku, target=self.training_target)
            for name in self.training_systems.get(sku, ())
        ]

    def training_config(self, name: str) -> TrainingConfig:
        return self._lookup(self.training_configs, name, "training config")

    def select_training_config(self, sku: str, nodes: int) -> TrainingConfig:
        """The config a run uses for a SKU and a node count (1x8x56x1 for one 8-GPU A100 node, ...)."""
        names = self.training_systems.get(self.system(sku).sku, ())
        for name in names:
            if self.training_configs[name].nodes == nodes:
                return self.training_configs[name]
        offered = ", ".join(f"{n} ({self.training_configs[n].nodes} nodes)" for n in names) or "none"
        note = self.training_system_notes.get(self.system(sku).sku)
        raise CatalogError(
            f"no training config for {sku} on {nodes} node(s); the catalog has: {offered}"
            + (f" ({note})" if note else "")
        )

    def training_trials(self, config: TrainingConfig, sku: str | None, nexp: int) -> list[TrainingCase]:
        """One case per trial of a run: trial_1 .. trial_<nexp>, scored together as the config's group."""
        return [
            TrainingCase(config=config, sku=sku, target=self.training_target, trial=f"trial_{i}", group=config.name)
            for i in range(1, nexp + 1)
        ]

    def training_config_for(self, global_batch_size: int, gradient_steps: int, max_steps: int) -> TrainingConfig | None:
        """The config whose recipe a trial log shows (global batch, accumulation, step budget)."""
        for config in self.training_configs.values():
            if (
                config.global_batch_size == global_batch_size
                and config.gradient_steps == gradient_steps
                and config.max_steps == max_steps
            ):
                return config
        return None


def _load_json(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


# The inference rounds the catalog holds: the round's own file, and the file of what NVIDIA's tree for it says
# (written by tools/refresh_nvidia_catalog.py), or None where the round's file carries the rules itself.
ROUNDS = {
    "inference-v2.0": ("inference_v2_0.json", "nvidia_v2_0.json"),
    "inference-v4.1": ("inference_v4_1.json", "nvidia_v4_1.json"),
}
DEFAULT_ROUND = DEFAULT_ROUND_NAME


def rounds_for_sku(sku: str) -> list[str]:
    """The rounds whose catalog knows the SKU, oldest first."""
    return [name for name in ROUNDS if sku in load(name).systems]


def round_of_tree(root: Path, depth: int = 4) -> tuple[str, str] | None:
    """The round a results tree is of, by the benchmark folders in its first levels that only one round's MLPerf
    suite has (each round's `tree_names`: llama2-70b-99 is v4.1's, rnnt v2.0's; resnet50 and bert are both's);
    None when it names none of them. A tree holding both is refused."""
    only = {name: set(_load_json(ROUNDS[name][0])["tree_names"]["names"]) for name in ROUNDS}
    found: dict[str, str] = {}
    level = [Path(root)]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                for name, benches in only.items():
                    if child.name in benches:
                        found.setdefault(name, str(child))
            below.extend(children)
        level = below[:10000]
    if len(found) > 1:
        raise CatalogError(
            "the results tree holds benchmarks of several rounds ("
            + ", ".join(f"{name}: {where}" for name, where in sorted(found.items()))
            + "); name the one to replay with --mlperf-round"
        )
    if found:
        ((name, where),) = found.items()
        return name, f"the results tree's benchmarks are {name}'s ({where})"
    return None


def choose_round(requested: str | None, sku: str | None) -> tuple[str, str]:
    """(round, why): the round asked for; else the oldest round that knows the SKU (the seed's Ampere systems keep
    v2.0, a Hopper or Blackwell SKU, which v2.0 has no case for, gets v4.1); else v2.0, the seed's round."""
    if requested is not None:
        if requested not in ROUNDS:
            raise CatalogError(f"unknown round {requested!r}; known: {', '.join(ROUNDS)}")
        if sku is not None and sku != "auto" and sku not in load(requested).systems:
            known = rounds_for_sku(sku)
            raise CatalogError(
                f"{sku} has no case in {requested}" + (f"; it is in {', '.join(known)}" if known else "")
            )
        return requested, "asked for"
    if sku is None or sku == "auto":
        return DEFAULT_ROUND, "the seed's round (no SKU named)"
    known = rounds_for_sku(sku)
    if not known:
        every = list(dict.fromkeys(name for r in ROUNDS for name in load(r).systems))
        raise CatalogError(f"unknown SKU {sku!r}; known SKUs: {', '.join(every)}")
    if known[0] == DEFAULT_ROUND:
        return known[0], f"{sku} is a system of the seed's round"
    return known[0], f"{DEFAULT_ROUND} has no case for {sku}"


@cache
def load(round_name: str = DEFAULT_ROUND) -> Catalog:
    """The catalog of one inference round (with the training round beside it)."""
    if round_name not in ROUNDS:
        raise CatalogError(f"unknown round {round_name!r}; known: {', '.join(ROUNDS)}")
    inference_file, nvidia_file = ROUNDS[round_name]
    inf = _load_json(inference_file)
    nvidia = _load_json(nvidia_file) if nvidia_file else {}
    # v4.1's mlperf.conf leaves min_query_count to each model (Offline) or to LoadGen's default (Server,
    # SingleStream): the round's file gives the scenario's figure, over what NVIDIA's copy states for all models.
    rules = {
        name: {**nvidia.get("mlperf_conf", {}).get(name, {}), **inf.get("mlperf_conf", {}).get(name, {})}
        for name in inf["scenarios"]
    }
    nvidia["mlperf_conf"] = rules
    tra = _load_json("training_v2_1.json")
    gpus = {
        key: Gpu(
            key=key,
            names=tuple(g["names"]),
            memory_gib=g["memory_gib"],
            pci_device_id=g["pci_device_id"],
            max_power_w=g["max_power_w"],
            sm=g["sm"],
            integrated=g.get("integrated", False),
        )
        for key, g in inf["gpus"].items()
    }
    systems = {
        sku: System(
            sku=sku,
            known_system=s["known_system"],
            system_id=s["system_id"],
            category=s["category"],
            gpu=gpus[s["gpu"]],
            count=s["count"],
            description=s["description"],
            arch=s.get("arch", "x86_64"),
        )
        for sku, s in inf["systems"].items()
    }
    benchmarks = {
        name: Benchmark(
            name=name,
            **{
                **b,
                "log_names": tuple(b.get("log_names", ())),
                "targets": tuple(AccuracyTarget.from_json(t) for t in b.get("targets", ())),
            },
        )
        for name, b in inf["benchmarks"].items()
    }
    rules = nvidia["mlperf_conf"]  # the round's mlperf.conf: each scenario's min_duration and min_query_count
    scenarios = {
        name: Scenario(
            name=name,
            min_duration_ms=rules[name]["min_duration"],
            min_query_count=rules[name]["min_query_count"],
            target_latency_percentile=(None if name == "Offline" else rules[name]["target_latency_percentile"] / 100.0),
            **s,
        )
        for name, s in inf["scenarios"].items()
    }
    assert tuple(inf["modes"]) == MODES, "the catalog's modes are MLPerf's two"
    configs = {name: TrainingConfig(name=name, **c) for name, c in tra["configs"].items()}
    return Catalog(
        inference_round=inf["round"],
        training_round=tra["round"],
        gpus=gpus,
        systems=systems,
        benchmarks=benchmarks,
        scenarios=scenarios,
        matrix=inf["matrix"],
        training_configs=configs,
        training_systems={k: tuple(v) for k, v in tra["systems"].items()},
        training_system_notes=dict(tra.get("system_notes", {})),
        training_target=tra["target"]["value"],
        published=nvidia.get("published", {}),
        nvidia_matrix=nvidia.get("matrix", {}),
        tuned=nvidia.get("tuned", {}),
        mlperf_conf=nvidia["mlperf_conf"],
        marker_help=_marker_help(inf, tra, benchmarks),
        # .get: the refresh tool loads the catalog to rewrite a file written before these keys existed
        system_types=nvidia.get("system_types", {}),
        suite_skips=tuple(SuiteSkip.from_json(skip) for skip in nvidia.get("suite_skips", ())),
        suite_exceptions=tuple(SuiteException(**e) for e in inf["suite_exceptions"]),
        suite={
            category: {bench: tuple(scenarios) for bench, scenarios in table.items()}
            for category, table in inf.get("suite", {}).items()
            if category != "source"
        },
        suite_source=inf.get("suite", {}).get("source", ""),
        round_name=round_name,
        published_tokens=nvidia.get("published_tokens", {}),
    )


def _marker_help(inf: dict, tra: dict, benchmarks: dict[str, Benchmark]) -> dict[str, str]:
    """What each marker a case can carry selects, from the catalog's own entries: its kinds, models (with the
    benchmarks of each), scenarios, modes and harnesses. A new benchmark brings its marker with it."""
    kinds = {
        "inference": f"MLPerf {inf['round'].capitalize()} cases",
        "training": f"MLPerf {tra['round'].capitalize()} cases",
        "score": tra["score"],
    }
    models: dict[str, list[str]] = {}
    for bench in benchmarks.values():
        models.setdefault(bench.model, []).append(bench.name)
    titles = {bench.model: bench.title for bench in benchmarks.values()}
    model_help = {marker_name(m): f"{titles[m]} ({', '.join(names)})" for m, names in models.items()}
    training = marker_name(tra["benchmark"])
    model_help[training] = "; ".join(filter(None, [model_help.get(training), f"{tra['title']} (training)"]))
    return {
        **kinds,
        **model_help,
        **{marker_name(name): f"{name} scenario" for name in inf["scenarios"]},
        **{marker_name(mode): text for mode, text in inf["modes"].items()},
        **inf["harnesses"],
    }
