"""Rewrite pytest_mlperf/catalog/nvidia_v2_0.json from a checkout of NVIDIA's closed v2.0 tree, or
nvidia_v4_1.json from its v4.1 tree:

    python tools/refresh_nvidia_catalog.py PATH/TO/inference_results_v2.0/closed/NVIDIA
    python tools/refresh_nvidia_catalog.py --round inference-v4.1 PATH/TO/inference_results_v4.1/closed/NVIDIA

The file holds facts read from NVIDIA's files for the seed's systems: which cases its configs register, its
published figures (the VALID run_1 summaries, read with the project's own LoadGen parser), its tuned user.conf
settings, the round's mlperf.conf, each system's type (systems/*.json) and the skips by system type of
scripts/update_results.py, which draw the MLPerf suite of each category. tests/test_nvidia_tree.py fails when
it and the tree disagree. The v4.1 file holds the same facts but the suite's skips (v4.1's update_results is a
package of another shape), and the LLMs' token rates beside their headlines; tests/test_nvidia_tree_v4_1.py
guards it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pytest_mlperf.catalog import Catalog, load, nvidia_tree, nvidia_tree_v4_1, split_system_name
from pytest_mlperf.logs.loadgen import parse_summary

CATALOG = Path(__file__).resolve().parent.parent / "pytest_mlperf" / "catalog"
OUT = CATALOG / "nvidia_v2_0.json"
OUT_V4_1 = CATALOG / "nvidia_v4_1.json"


def _valid_runs(code: Path, benchmarks: tuple[str, ...]):
    """(system name, benchmark, scenario, summary) of each published run_1 summary LoadGen called VALID."""
    for path in sorted(Path(code, "results").glob("*/*/*/performance/run_1/mlperf_log_summary.txt")):
        scenario, bench, system = path.parents[2].name, path.parents[3].name, path.parents[4].name
        if bench not in benchmarks or scenario not in nvidia_tree.SCENARIOS:
            continue
        summary = parse_summary(path)
        if summary.validity == "VALID":
            yield system, bench, scenario, summary


def _figures(code: Path, benchmarks: tuple[str, ...], figure) -> dict[str, dict[str, dict[str, float]]]:
    out: dict = {}
    for system, bench, scenario, summary in _valid_runs(code, benchmarks):
        found = figure(summary)  # (detail key, value) or None
        if found is not None:
            value = found[1]
            out.setdefault(system, {}).setdefault(bench, {})[scenario] = int(value) if value.is_integer() else value
    return out


def published(code: Path, benchmarks: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """system name -> benchmark -> scenario -> the headline of NVIDIA's published run_1 summary, for the runs
    LoadGen called VALID."""
    return _figures(code, benchmarks, lambda summary: summary.headline)


def published_tokens(code: Path, benchmarks: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """The same for an LLM's token rate, which its summary prints beside the sample rate the headline holds."""
    return _figures(code, benchmarks, lambda summary: summary.tokens)


def catalog_data(code: Path, cat: Catalog) -> dict:
    """What the built-in catalog keeps of a checkout for the catalog's systems: the per-system case matrix,
    published figures, tuned settings, the round's rules, their system types and the suite's skips."""
    benchmarks = tuple(cat.benchmarks)
    regs = nvidia_tree.matrix(nvidia_tree.registrations(code))
    ids = {system.system_id for system in cat.systems.values()}

    def ours(table: dict) -> dict:
        return {name: value for name, value in table.items() if split_system_name(name)[0] in ids}

    return {
        "source": "mlcommons/inference_results_v2.0 closed/NVIDIA: configs/<benchmark>/<Scenario>/__init__.py "
        "(@ConfigRegistry.register), results/<system>/<benchmark>/<Scenario>/performance/run_1/"
        "mlperf_log_summary.txt (VALID runs), measurements/<system>/<benchmark>/<Scenario>/user.conf, "
        "measurements/mlperf.conf, systems/<system>.json (system_type), scripts/update_results.py (the skips by "
        "system type)",
        "matrix": {known: regs.get(known, {}) for known in sorted({s.known_system for s in cat.systems.values()})},
        "published": ours(published(code, benchmarks)),
        "tuned": ours(nvidia_tree.tuned(code, benchmarks)),
        "mlperf_conf": nvidia_tree.mlperf_conf(code),
        "system_types": ours(nvidia_tree.system_types(code)),
        "suite_skips": [skip.as_json() for skip in nvidia_tree.suite_skips(code)],
    }


def catalog_data_v4_1(code: Path, cat: Catalog) -> dict:
    """What the catalog keeps of NVIDIA's v4.1 checkout for the v4.1 catalog's systems. A system NVIDIA's code
    has no KnownSystem for (B200) has no matrix entry, but its published figures are kept."""
    benchmarks = tuple(cat.benchmarks)
    regs = nvidia_tree.matrix(nvidia_tree_v4_1.registrations(code))
    ids = {system.system_id for system in cat.systems.values()}

    def ours(table: dict) -> dict:
        return {name: value for name, value in table.items() if split_system_name(name)[0] in ids}

    known = sorted({s.known_system for s in cat.systems.values() if s.known_system})
    return {
        "source": "mlcommons/inference_results_v4.1 closed/NVIDIA: configs/<benchmark>/<Scenario>/__init__.py "
        "(@ConfigRegistry.register, classes resolved in file order), code/common/constants.py (Benchmark, "
        "HarnessType, G_HIGH_ACC_ENABLED_BENCHMARKS), results/<system>/<benchmark>/<Scenario>/performance/run_1/"
        "mlperf_log_summary.txt (VALID runs: headline and token rate), "
        "measurements/<system>/<benchmark>/<Scenario>/user.conf and mlperf.conf (every copy the same), "
        "systems/<system>.json (system_type)",
        "matrix": {name: regs.get(name, {}) for name in known},
        "published": ours(published(code, benchmarks)),
        "published_tokens": ours(published_tokens(code, benchmarks)),
        "tuned": ours(nvidia_tree_v4_1.tuned(code, benchmarks)),
        "mlperf_conf": nvidia_tree_v4_1.mlperf_conf(code),
        "system_types": ours(nvidia_tree_v4_1.system_types(code)),
    }


# round -> (the file written, what it holds)
ROUNDS = {
    "inference-v2.0": (OUT, catalog_data),
    "inference-v4.1": (OUT_V4_1, catalog_data_v4_1),
}


def main(argv: list[str]) -> int:
    round_name = "inference-v2.0"
    if len(argv) == 3 and argv[0] == "--round":
        round_name, argv = argv[1], argv[2:]
    elif len(argv) == 2 and argv[0].startswith("--round="):
        round_name, argv = argv[0].removeprefix("--round="), argv[1:]
    if len(argv) != 1 or not Path(argv[0]).is_dir() or round_name not in ROUNDS:
        print(__doc__, file=sys.stderr)
        return 2
    out, data = ROUNDS[round_name]
    out.write_text(json.dumps(data(Path(argv[0]), load(round_name)), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
