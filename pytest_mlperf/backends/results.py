"""Replay: judge a results tree that already exists (an audit; nothing runs).

Inference trees come in two layouts:
- published: <system name>/<benchmark>/<Scenario>/{performance/run_1,accuracy}/ (submission results/ folder)
- NVIDIA's working layout: [build/logs/]<YYYY.MM.DD-HH.MM.SS>/<system name>/<benchmark>/<Scenario>/ with
  perf_harness_summary.json and accuracy_summary.json beside the system folders.
Training trees hold one MLLOG trial log per run (result_<n>.txt, or *.log).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog, InferenceCase, TrainingCase, TrainingConfig, split_system_name
from ..logs import ParseError, read_head
from ..logs.harness import parse_summary_json
from ..logs.mllog import MARKER, iter_events
from ..options import Options, flag
from . import Artifacts, BackendBase, BackendUnavailable, BuildContext, Case, ResultMissing

TIMESTAMP_RE = re.compile(r"^\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}$")
LOG_FILES = ("mlperf_log_detail.txt", "mlperf_log_summary.txt")
PERF_JSON = "perf_harness_summary.json"
ACC_JSON = "accuracy_summary.json"


def _logged_mode(folder: Path) -> str | None:
    """The test mode a LoadGen log folder holds, read cheaply (the full parse comes later)."""
    for line in read_head(folder / "mlperf_log_detail.txt", 1 << 20).splitlines():
        if '"effective_test_mode"' in line and MARKER in line:
            try:
                return str(json.loads(line.split(MARKER, 1)[1])["value"])
            except (ValueError, KeyError, TypeError):
                return None
    for line in read_head(folder / "mlperf_log_summary.txt", 64 * 1024).splitlines():
        if line.startswith("Mode"):
            return line.split(":", 1)[-1].strip()
    if (folder / "accuracy.txt").exists():
        return "AccuracyOnly"
    return None


def _timestamp_dirs(root: Path) -> list[Path]:
    """NVIDIA's build/logs/<timestamp> folders under root (root itself may be one), newest first."""
    if TIMESTAMP_RE.match(root.name):
        return [root]
    found = [p for p in root.iterdir() if p.is_dir() and TIMESTAMP_RE.match(p.name)] if root.is_dir() else []
    for nested in (root / "build" / "logs", root / "logs"):
        if nested.is_dir():
            found += [p for p in nested.iterdir() if p.is_dir() and TIMESTAMP_RE.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _harness_messages(stamp_dir: Path, kind: str) -> dict[str, dict] | None:
    path = stamp_dir / (PERF_JSON if kind == "PerformanceOnly" else ACC_JSON)
    return parse_summary_json(path, "perf" if kind == "PerformanceOnly" else "accuracy") if path.exists() else None


def _message_for(benches: dict, benchmark: str):
    """NVIDIA keys a message by benchmark; accept the full name (bert-99.9) and the model's (bert), since the
    accuracy level is in the config name already."""
    if benchmark in benches:
        return benches[benchmark]
    return benches.get(benchmark.split("-99")[0])


@dataclass
class Trial:
    """A trial log found in the tree, and what its MLLOG lines say of it."""

    path: Path
    group: str  # the set it is scored with: its folder
    recipe: tuple[int, int, int] | None  # global batch size, gradient accumulation steps, max steps
    benchmark: str | None  # submission_benchmark
    config: TrainingConfig | None = None

    @property
    def bert(self) -> bool:
        """A BERT trial, or one that cannot say (an unreadable log is judged, and fails, as one)."""
        return self.benchmark in (None, "bert")


_RECIPE_KEYS = ("global_batch_size", "gradient_accumulation_steps", "opt_learning_rate_training_steps")
_TRAINING_KEYS = ('"submission_benchmark"', '"run_start"', '"init_start"')


def _looks_like_training(path: Path) -> bool:
    head = read_head(path)
    return MARKER in head and any(key in head for key in _TRAINING_KEYS)


def _log_facts(path: Path) -> tuple[tuple[int, int, int] | None, str | None]:
    """(recipe, submission_benchmark) of a trial log, as far as it can be read (a broken log says nothing)."""
    params: dict[str, object] = {}
    benchmark = None
    try:
        for event in iter_events(path):
            if event.key in _RECIPE_KEYS:
                params[event.key] = event.value
            elif event.key == "submission_benchmark":
                benchmark = str(event.value)
            if benchmark is not None and len(params) == len(_RECIPE_KEYS):
                break  # both sit in the log's first lines: no need to read the whole trial
    except ParseError:
        pass  # keep what the lines before the break said; judging the trial reports the break itself
    try:
        recipe = tuple(int(float(params[k])) for k in _RECIPE_KEYS) if len(params) == len(_RECIPE_KEYS) else None
    except (TypeError, ValueError, OverflowError):
        recipe = None
    return recipe, benchmark  # type: ignore[return-value]


class ResultsBackend(BackendBase):
    name = "results"
    needs_gpu = False

    def __init__(self, root: Path | str, catalog: Catalog):
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise BackendUnavailable(f"{flag('results')} {self.root}: not a directory")
        self.catalog = catalog
        self.ignored: list[str] = []
        self.foreign: dict[Path, str] = {}  # another benchmark's trial log -> its submission_benchmark

    @classmethod
    def build(cls, options: Options, context: BuildContext) -> ResultsBackend:
        return cls(options.results, context.catalog)

    # ---- case lists -------------------------------------------------------------------------------------
    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        if kind == "training":
            return self._training_cases(catalog_cases)
        if catalog_cases is None:
            return self.discover_inference()
        return list(catalog_cases)

    def discover_inference(self) -> list[InferenceCase]:
        cases: dict[str, InferenceCase] = {}
        for folder in self._log_folders():
            case = self._case_from_folder(folder)
            if case is None:
                continue
            key = case.id
            if key in cases:  # the same case in two timestamp folders: keep both, name the older by its stamp
                case = case.with_(run=f"{case.run}@{folder.parents[2].name}")
                key = case.id
            cases[key] = case
        return sorted(cases.values(), key=lambda c: c.id)

    def _log_folders(self) -> list[Path]:
        """Folders holding LoadGen logs, and folders that could not be listed: a case whose folder cannot be
        read fails, saying so, rather than vanishing from the run."""
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=lambda exc: found.append(Path(exc.filename))):
            dirnames.sort()
            if any(name in filenames for name in LOG_FILES) or (
                os.path.basename(dirpath) == "accuracy" and "accuracy.txt" in filenames
            ):  # a later round's published accuracy folder keeps accuracy.txt alone
                found.append(Path(dirpath))
        return sorted(set(found))

    def _case_from_folder(self, folder: Path) -> InferenceCase | None:
        run = "run_1"
        if folder.name == "accuracy":
            mode, scenario_dir = "AccuracyOnly", folder.parent
        elif folder.parent.name == "performance":
            mode, scenario_dir, run = "PerformanceOnly", folder.parent.parent, folder.name
        else:
            mode, scenario_dir = _logged_mode(folder) or "PerformanceOnly", folder
        bench_dir = scenario_dir.parent
        system_dir = bench_dir.parent
        if bench_dir.name not in self.catalog.benchmarks:
            self.ignored.append(f"{folder}: benchmark {bench_dir.name!r} is not in the catalog")
            return None
        try:
            scenario = self.catalog.scenario(scenario_dir.name)
        except ValueError:
            self.ignored.append(f"{folder}: scenario {scenario_dir.name!r} is not in the catalog")
            return None
        benchmark = self.catalog.benchmarks[bench_dir.name]
        system_id, harness, power = split_system_name(system_dir.name)
        if harness is None:
            harness = (
                self._harness_from_json(system_dir.parent, system_dir.name, benchmark.name, scenario.name, mode)
                or benchmark.default_harness
            )
        system = self.catalog.system_by_id(system_id)
        return InferenceCase(
            system_id=system_id,
            benchmark=benchmark,
            scenario=scenario,
            mode=mode,
            harness=harness,
            sku=system.sku if system else None,
            power=power,
            run=run,
            source=folder,
            qualify=True,
        )

    def _harness_from_json(self, stamp_dir: Path, system_name: str, bench: str, scenario: str, mode: str) -> str | None:
        try:
            messages = _harness_messages(stamp_dir, mode) if TIMESTAMP_RE.match(stamp_dir.name) else None
        except ParseError as exc:  # said again, per case, when the case is judged
            self.ignored.append(str(exc))
            return None
        for config_name, benches in (messages or {}).items():
            if (
                config_name.startswith(system_name + "-")
                and config_name.endswith("-" + scenario)
                and _message_for(benches, bench) is not None
            ):
                return config_name[len(system_name) + 1 :].split("_k_")[0]
        return None

    # ---- running (finding) one case -----------------------------------------------------------------------
    def run(self, case: Case, workdir: Path) -> Artifacts:
        if isinstance(case, TrainingCase):
            if case.source is None:
                raise ResultMissing(self._training_missing(case))
            if case.source in self.foreign:
                benchmark = self.foreign[case.source]
                raise ResultMissing(f"{case.source}: submission_benchmark {benchmark!r}: not a BERT trial")
            return Artifacts(case.source)
        if case.source is not None:
            return self._with_messages(case, case.source)
        return self.locate(case)

    def locate(self, case: InferenceCase) -> Artifacts:
        looked = []
        tail = Path(case.benchmark.name) / case.scenario.name
        published = self.root / case.results_dir
        looked.append(str(published))
        if published.is_dir():
            if case.harness_implied_by_layout:
                return Artifacts(published)
            raise ResultMissing(
                f"no result for harness {case.harness!r}: the published layout keeps one non-Triton harness per "
                f"benchmark ({case.benchmark.default_harness!r} for {case.benchmark.name}); looked for {published}"
            )
        for stamp in _timestamp_dirs(self.root):
            folder = stamp / case.system_name / tail
            looked.append(str(folder))
            if not folder.is_dir() or _logged_mode(folder) != case.mode:
                continue
            messages = _harness_messages(stamp, case.mode)
            if messages is None:
                if case.harness_implied_by_layout:
                    return Artifacts(folder)
                continue
            if _message_for(messages.get(case.config_name, {}), case.benchmark.name) is not None:
                return self._with_messages(case, folder, messages)
        raise ResultMissing(f"no {case.mode} result for {case.config_name}; looked for " + ", ".join(looked))

    def _with_messages(self, case: InferenceCase, folder: Path, messages: dict | None = None) -> Artifacts:
        stamp = folder.parents[2] if len(folder.parents) > 2 else None
        if stamp is None or not TIMESTAMP_RE.match(stamp.name):
            return Artifacts(folder)
        if messages is None:
            messages = _harness_messages(stamp, case.mode) or {}
        message = _message_for(messages.get(case.config_name, {}), case.benchmark.name)
        files = [stamp / (PERF_JSON if case.mode == "PerformanceOnly" else ACC_JSON)] if message else []
        if case.mode == "PerformanceOnly":
            return Artifacts(folder, harness_perf=message, files=files)
        return Artifacts(folder, harness_accuracy=message, files=files)

    # ---- training ---------------------------------------------------------------------------------------
    def trial_logs(self) -> list[Path]:
        """result_<n>.txt files (NVIDIA's published naming) whatever they hold, and *.log files whose first
        lines are an MLPerf training log's (a harness's run_harness.log in an inference tree is not a trial)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if (name.startswith("result_") and name.endswith(".txt")) or (
                    name.endswith(".log") and _looks_like_training(path)
                ):
                    found.append(path)
        return found

    def _trials(self) -> list[Trial]:
        """Every trial log with what its MLLOG lines say; one that cannot be read stays, as a trial that will
        fail, and takes the config its folder's other trials show (it belongs to their set)."""
        trials = [Trial(path, self._set_name(path), *_log_facts(path)) for path in self.trial_logs()]
        by_set: dict[str, list[Trial]] = {}
        for trial in trials:
            by_set.setdefault(trial.group, []).append(trial)
        for members in by_set.values():
            recipes = {t.recipe for t in members if t.recipe is not None and t.bert}
            if len(recipes) == 1:
                for trial in members:
                    if trial.recipe is None and trial.bert:
                        trial.recipe = next(iter(recipes))
        for trial in trials:
            trial.config = self.catalog.training_config_for(*trial.recipe) if trial.recipe else None
        return trials

    def _trial_name(self, path: Path) -> str:
        rel = path.relative_to(self.root).with_suffix("")
        parts = [p for p in rel.parts if p != "bert"]
        return "/".join(parts)

    def _set_name(self, path: Path) -> str:
        """The trials of one folder are one set, scored together (a published <system>/bert/ folder)."""
        parent = self._trial_name(path).rpartition("/")[0]
        return parent or self.root.name

    def _case(self, trial: Trial, base: TrainingCase | None = None) -> TrainingCase:
        if not trial.bert:  # another benchmark's log: skipped, saying so, never scored
            self.foreign[trial.path] = str(trial.benchmark)
            recipe, group = f"not-bert-{trial.benchmark}", None
        else:
            recipe, group = (f"gbs{trial.recipe[0]}" if trial.recipe else None), trial.group
        case = base or TrainingCase(config=trial.config, target=self.catalog.training_target, recipe=recipe)
        return case.with_(trial=self._trial_name(trial.path), source=trial.path, group=group)

    def _training_cases(self, catalog_cases: list[Case] | None) -> list[Case]:
        trials = self._trials()
        if catalog_cases is None:
            return [self._case(trial) for trial in trials]
        out: list[Case] = []
        for case in catalog_cases:
            assert isinstance(case, TrainingCase)
            matching = [t for t in trials if case.config and t.config == case.config and t.bert]
            if not matching:
                out.append(case)  # run() skips it, naming what it looked for
            out += [self._case(trial, case) for trial in matching]
        out += [self._case(t) for t in trials if not t.bert]
        return out

    def _training_missing(self, case: TrainingCase) -> str:
        cfg = case.config
        if cfg is None:
            return f"no trial log in {self.root}"
        return (
            f"no trial log in {self.root} with config {cfg.name}'s recipe (global_batch_size="
            f"{cfg.global_batch_size}, gradient_accumulation_steps={cfg.gradient_steps}, "
            f"max_steps={cfg.max_steps}); looked at result_*.txt and *.log files"
        )
