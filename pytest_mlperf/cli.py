"""pytest-mlperf command line: the suites through pytest, and the same parsers, verdicts and catalog without it.

pytest-mlperf run ARG...        pytest over the installed suites: exactly pytest --pyargs pytest_mlperf.suites ARG...
                                (pytest's options, the plugin's and paths of your own tests; its exit code)
pytest-mlperf metrics PATH...   metrics of log files or results folders, one JSON object per line (a file whose
                                name is not LoadGen's or NVIDIA's is read by what it holds, and says so)
pytest-mlperf gpus              this machine's GPU inventory and the catalog SKU it matches
pytest-mlperf systems           the catalog's SKUs
pytest-mlperf compare A.json B.json   B against baseline A; exits 1 on a regression
pytest-mlperf merge RUN.json...       a fleet table of several nodes; exits 1 when a node is marked slow
pytest-mlperf history DIR [--metric M] [--case C]   saved baselines in time order, with change points
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from . import SUITES, __version__, catalog
from .backends import BackendUnavailable, ResultMissing
from .backends.results import ResultsBackend
from .gate import baseline
from .judge.evaluate import evaluate
from .judge.metrics import harness_metrics, training_means, training_metrics
from .judge.verdict import training_verdict
from .logs import LOG_KINDS, ParseError, kind_by_content, kind_by_name
from .logs.accuracy import parse_accuracy
from .logs.harness import AccuracyMessage, PerfMessage, parse_config_name, parse_stdout, parse_summary_json
from .logs.loadgen import parse_detail, parse_summary
from .logs.metadata import FILE_NAME as METADATA_NAME
from .logs.metadata import AccuracyMetadata, PerformanceMetadata, cross_check, parse_metadata
from .logs.mllog import parse_training_runs
from .machine import gpu
from .options import add_gate_options, join_values


def _line(name: str, value: float, unit: str, **extra) -> dict:
    return {"name": name, "value": value, "unit": unit, **extra}


def file_metrics(path: Path, notes: list[str] | None = None) -> Iterator[dict]:
    """Metrics of one log file, whatever kind it is: chosen by its name, or, for a name that is not one LoadGen,
    NVIDIA's harness or a published tree uses, by its content (said in `notes`); a file that is neither is refused."""
    kind = kind_by_name(path.name)
    if kind is None:
        found = kind_by_content(path)
        if found is None:
            raise ParseError(path, f"{path.name!r} is not a known log name and its content matches none of: {KNOWN}")
        kind, evidence = found
        if notes is not None:
            notes.append(f"{path}: read as {LOG_KINDS[kind]}, chosen by content ({evidence})")
    yield from READERS[kind](path, {"source": str(path)})


KNOWN = "; ".join(LOG_KINDS.values())


def _summary_rows(path: Path, source: dict) -> Iterator[dict]:
    summary = parse_summary(path)
    if summary.headline:
        yield _line(summary.headline[0], summary.headline[1], "", **source)
    if summary.validity:
        yield _line("result_validity", 1.0 if summary.validity == "VALID" else 0.0, "VALID/INVALID", **source)
    for label, value in summary.stats.items():
        yield _line(label, value, "ns" if "(ns)" in label else "", **source)
    yield _line("loadgen_warnings", float(summary.warnings), "count", **source)
    yield _line("loadgen_errors", float(summary.errors), "count", **source)


def _detail_rows(path: Path, source: dict) -> Iterator[dict]:
    detail = parse_detail(path)
    for key, value in detail.values.items():
        if key.startswith("result_") and isinstance(value, bool):
            yield _line(key, 1.0 if value else 0.0, "yes/no", **source)
        elif key.startswith("result_") and isinstance(value, int | float):
            yield _line(key, float(value), "ns" if key.endswith("_ns") else "", **source)
    if detail.validity:
        yield _line("result_validity", 1.0 if detail.validity == "VALID" else 0.0, "VALID/INVALID", **source)
    yield _line("loadgen_warnings", float(len(detail.warnings)), "count", **source)
    yield _line("loadgen_errors", float(len(detail.errors)), "count", **source)


def _accuracy_rows(path: Path, source: dict) -> Iterator[dict]:
    result = parse_accuracy(path)
    yield _line("AccuracyValue", result.value, result.metric, **source)


def _harness_json_rows(kind: str) -> Callable[[Path, dict], Iterator[dict]]:
    def rows(path: Path, source: dict) -> Iterator[dict]:
        yield from _harness_rows(parse_summary_json(path, kind), source)

    return rows


def _stdout_rows(path: Path, source: dict) -> Iterator[dict]:
    summary = parse_stdout(path)
    yield from _harness_rows(summary.perf, source)
    yield from _harness_rows(summary.accuracy, source)


def _harness_rows(entries: dict[str, dict[str, PerfMessage | AccuracyMessage]], source: dict) -> Iterator[dict]:
    """VirtualClient's metrics of {config name: {benchmark: message}}, from whichever file or block they came."""
    cat = catalog.load()
    for config, benches in entries.items():
        for bench, message in benches.items():
            unit = _accuracy_unit(cat, bench, parse_config_name(config).level)
            for metric in harness_metrics(config, message, unit):
                yield _line(metric.name, metric.value, metric.unit, config=config, benchmark=bench, **source)


def _accuracy_unit(cat: catalog.Catalog, bench: str, level: str) -> str:
    """The accuracy metric (F1, mAP, 100-WER) of a benchmark as NVIDIA names it (bert, bert-99.9); '' for one the
    catalog does not hold."""
    for candidate in (bench, f"{bench}-{level}"):
        if candidate in cat.benchmarks:
            return cat.benchmarks[candidate].metric
    return ""


def _training_rows(path: Path, source: dict) -> Iterator[dict]:
    """A trial log's metrics; a capture of several runs gives each run's, with its index, run_stop status and
    verdict, then VirtualClient's means over the runs (marked aggregate "mean", with the count they are over)."""
    runs = parse_training_runs(path)
    target = catalog.load().training_target
    for number, run in enumerate(runs, start=1):
        verdict = training_verdict(run, target)
        each = {"run": number, "status": run.status, "verdict": verdict.label} if len(runs) > 1 else {}
        for metric in training_metrics(run, verdict):
            yield _line(metric.name, metric.value, metric.unit, **each, **source)
    if len(runs) > 1:
        for metric in training_means(runs):
            yield _line(metric.name, metric.value, metric.unit, **metric.metadata, **source)


def _metadata_rows(path: Path, source: dict) -> Iterator[dict]:
    """NVIDIA's metadata.json: VirtualClient's verdict metric, then the figures behind it. When LoadGen's logs or
    accuracy.txt lie beside it (NVIDIA writes them to one folder), they must agree with it first."""
    meta = parse_metadata(path)
    disagreements = [line for sibling in _siblings(meta) for line in cross_check(meta, sibling)]
    if disagreements:
        raise ParseError(path, "disagrees with the logs beside it: " + "; ".join(disagreements))
    extra = {"config": meta.config_name, "benchmark": meta.benchmark_full, **source}
    unit = "PASS/FAIL" if isinstance(meta, AccuracyMetadata) else "VALID/INVALID"
    for name, value in meta.virtualclient_metrics().items():
        yield _line(name, value, unit, **extra)
    if isinstance(meta, PerformanceMetadata):
        yield _line(meta.scenario_key, meta.result_value, "ns" if meta.scenario_key.endswith("_ns") else "", **extra)
        return
    for score in meta.accuracy:
        yield _line("AccuracyValue", score.value, score.name, **extra)
        yield _line("ThresholdValue", score.threshold, score.name, **extra)


def _siblings(meta: AccuracyMetadata | PerformanceMetadata) -> list:
    """The LoadGen logs and accuracy.txt in metadata.json's folder, parsed (a broken one is an error here too). Only
    for the name NVIDIA writes: a renamed copy (node7_metadata.json) may sit beside another run's logs."""
    folder = meta.path.parent
    found: list = []
    if meta.path.name != METADATA_NAME:
        return found
    for name, parse in (
        ("mlperf_log_detail.txt", parse_detail),
        ("mlperf_log_summary.txt", parse_summary),
        ("accuracy.txt", parse_accuracy),
    ):
        if (folder / name).is_file() and (name != "accuracy.txt" or isinstance(meta, AccuracyMetadata)):
            found.append(parse(folder / name))
    return found


READERS: dict[str, Callable[[Path, dict], Iterator[dict]]] = {
    "loadgen_summary": _summary_rows,
    "loadgen_detail": _detail_rows,
    "accuracy_txt": _accuracy_rows,
    "perf_harness_summary": _harness_json_rows("perf"),
    "accuracy_summary": _harness_json_rows("accuracy"),
    "metadata": _metadata_rows,
    "harness_stdout": _stdout_rows,
    "training_log": _training_rows,
}


def folder_metrics(path: Path, errors: list[str]) -> Iterator[dict]:
    """Metrics of every case a results folder holds; a case that cannot be judged is noted and skipped."""
    backend = ResultsBackend(path, catalog.load())
    cases = backend.cases("inference", None) + backend.cases("training", None)
    for case in cases:
        try:
            result = evaluate(case, backend.run(case, path))
        except ResultMissing:
            continue
        except ParseError as exc:
            errors.append(f"{case.id}: {exc}")
            continue
        for metric in result.metrics:
            yield _line(metric.name, metric.value, metric.unit, case=case.id, verdict=result.verdict.label)


def cmd_metrics(args) -> int:
    errors: list[str] = []
    notes: list[str] = []
    for raw in args.paths:
        path = Path(raw)
        try:
            rows = folder_metrics(path, errors) if path.is_dir() else file_metrics(path, notes)
            for row in rows:
                print(json.dumps(row, allow_nan=False))
        except (ParseError, BackendUnavailable) as exc:
            errors.append(str(exc))
    for note in notes:
        print(f"pytest-mlperf metrics: note: {note}", file=sys.stderr)
    for error in errors:
        print(f"pytest-mlperf metrics: {error}", file=sys.stderr)
    return 2 if errors else 0


def cmd_gpus(args) -> int:
    try:
        inventory = gpu.detect()
    except gpu.NvmlUnavailable as exc:
        print(f"pytest-mlperf gpus: {exc}", file=sys.stderr)
        return 3
    system = gpu.match_sku(inventory, catalog.load())
    print(
        json.dumps(
            {
                "inventory": inventory.to_dict(),
                "sku": system.sku if system else None,
                "system_id": system.system_id if system else None,
            },
            indent=2,
        )
    )
    return 0


def cmd_systems(args) -> int:
    cat = catalog.load()
    for system in cat.systems.values():
        configs = ", ".join(cat.training_systems.get(system.sku, ())) or "-"
        print(
            f"{system.sku:<18} {system.system_id:<34} {system.category:<10} {system.count}x {system.gpu.names[0]}"
            f"  training: {configs}"
        )
    return 0


DEFAULT_FAIL_ON = "throughput:5%,latency:10%,accuracy:any,time:5%"


def cmd_compare(args) -> int:
    rules, fail_on = list(args.mlperf_fail_on), ",".join(rule.describe() for rule in args.mlperf_fail_on)
    try:
        before = baseline.load(args.baseline, Path(args.baseline).parent)
        after = baseline.load(args.run, Path(args.run).parent)
        baseline.check_compatible(before, after.header)
    except baseline.BaselineError as exc:
        print(f"pytest-mlperf compare: {exc}", file=sys.stderr)
        return 2
    comps, unmatched = baseline.compare_runs(before.records, after.records, rules, args.mlperf_confidence)
    changes = baseline.fingerprint_changes(
        before.header.get("fingerprint") or {}, after.header.get("fingerprint") or {}
    )
    surprising = baseline.unexpected_changes(changes, args.mlperf_expect_change)
    lost = [f"LOST {line}" for line in baseline.lost_cases(before.records, after.records)]
    if baseline.nothing_compared(comps, rules):
        lost.append(f"NOTHING COMPARED: no metric of {len(comps)} matching case(s) is gated by {fail_on}")
    print(f"baseline {before.path}  ->  {after.path}  (fail on {fail_on})")
    for line in baseline.format_comparison(comps, changes, surprising) + unmatched:
        print(line)
    for line in lost:
        print(line)
    regressed = [c for c in comps if c.regressed]
    undecided = [c for c in comps if c.inconclusive and not c.regressed]
    fails = bool(undecided) and args.mlperf_inconclusive == "fail"
    print(
        f"{len(regressed)} of {len(comps)} cases regressed"
        + (f", {len(undecided)} inconclusive" if undecided else "")
        + (f"; the gate lost {len(lost)}" if lost else "")
    )
    return 1 if regressed or lost or fails else 0


def cmd_history(args) -> int:
    from .gate import history

    if not 0 < args.max_pvalue < 1:
        print(f"pytest-mlperf history: --max-pvalue {args.max_pvalue!r} is not between 0 and 1", file=sys.stderr)
        return 2
    try:
        lines, _ = history.history_lines(args.folder, args.metric, args.case, args.max_pvalue)
    except history.HistoryError as exc:
        print(f"pytest-mlperf history: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    worse = any("CHANGE POINT (WORSE)" in line for line in lines)
    return 1 if worse and args.fail_on_worse else 0


def cmd_merge(args) -> int:
    from .gate import fleet

    nodes, rows, bad = fleet.merge([Path(p) for p in args.runs], args.mlperf_spread)
    lines, slow = fleet.format_fleet(nodes, rows, args.mlperf_spread) if rows or not bad else ([], [])
    for line in lines + bad:
        print(line)
    return 1 if slow or bad else 0


def suites_command(args: list[str]) -> list[str]:
    """pytest over the suites installed with the plugin (the package pytest_mlperf.suites, which a checkout maps
    to its suites/ folder), then the user's arguments: options, marks, and paths of their own tests, with the
    plugin's options joined to their values (`--mlperf-results DIR` becomes `--mlperf-results=DIR`), so that pytest
    never takes a value for a test path while it chooses its rootdir, whatever the folder layout."""
    return [sys.executable, "-m", "pytest", "--pyargs", SUITES, *join_values(args)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        # pytest takes this process's place: Ctrl-C and SIGTERM reach it, its exit code is the command's, and a
        # fleet controller's own command line (what the nodes rerun) is pytest's.
        command = suites_command(argv[1:])
        addopts = os.environ.get("PYTEST_ADDOPTS")
        try:  # pytest reads these words first, while it chooses its rootdir: joined the same way
            words = shlex.split(addopts or "")
        except ValueError:  # unbalanced quotes: left as they are, for pytest to refuse
            words = []
        if words:
            os.environ["PYTEST_ADDOPTS"] = shlex.join(join_values(words))
        sys.stdout.flush()
        os.execv(command[0], command)
    parser = argparse.ArgumentParser(prog="pytest-mlperf", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pytest-mlperf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run",
        add_help=False,
        help=f"pytest over the installed suites, with these arguments (pytest --pyargs {SUITES} ARG...)",
    )
    metrics = sub.add_parser("metrics", help="print metrics of log files or results folders as JSON lines")
    metrics.add_argument("paths", nargs="+", metavar="PATH")
    metrics.set_defaults(func=cmd_metrics)
    sub.add_parser("gpus", help="print the GPU inventory and matched SKU").set_defaults(func=cmd_gpus)
    sub.add_parser("systems", help="list the catalog's SKUs").set_defaults(func=cmd_systems)
    compare = sub.add_parser("compare", help="compare a results JSON file with a baseline one")
    compare.add_argument("baseline", metavar="A.json")
    compare.add_argument("run", metavar="B.json")
    add_gate_options(
        compare.add_argument,
        prefix="--",
        only=("fail_on", "expect_change", "confidence", "inconclusive"),
        defaults={"fail_on": DEFAULT_FAIL_ON},
    )
    compare.set_defaults(func=cmd_compare)
    history = sub.add_parser(
        "history",
        help="saved baselines in time order, their fingerprints, and each case's change points (Apache Otava)",
    )
    history.add_argument("folder", metavar="BASELINE_DIR", type=Path)
    history.add_argument("--metric", help="the figure to trend (default: each case's headline, as the gate's)")
    history.add_argument("--case", help="a case id, or an fnmatch pattern of ids (default: every case)")
    history.add_argument(
        "--max-pvalue", type=float, default=0.001, help="significance of a change point (default 0.001)"
    )
    history.add_argument("--fail-on-worse", action="store_true", help="exit 1 when a change point makes a figure worse")
    history.set_defaults(func=cmd_history)
    merge = sub.add_parser("merge", help="join several nodes' results JSON files into a fleet table")
    merge.add_argument("runs", nargs="+", metavar="RUN.json")
    add_gate_options(merge.add_argument, prefix="--", only=("spread",))
    merge.set_defaults(func=cmd_merge)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `pytest-mlperf metrics ... | head` ends quietly
    if args.command == "metrics":
        missing = [p for p in args.paths if not Path(p).exists()]
        if missing:
            parser.error(f"no such file or folder: {', '.join(missing)}")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
