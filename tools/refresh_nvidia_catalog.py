"""Rewrite pytest_mlperf/catalog/nvidia_v2_0.json from a checkout of NVIDIA's closed v2.0 tree:

    python tools/refresh_nvidia_catalog.py PATH/TO/inference_results_v2.0/closed/NVIDIA

The file holds facts read from NVIDIA's files for the seed's systems: which cases its configs register, its
published figures (the VALID run_1 summaries, read with the project's own LoadGen parser), its tuned user.conf
settings, the round's mlperf.conf, each system's type (systems/*.json) and the skips by system type of
scripts/update_results.py, which draw the MLPerf suite of each category. tests/test_nvidia_tree.py fails when
it and the tree disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pytest_mlperf.catalog import Catalog, load, nvidia_tree, split_system_name
from pytest_mlperf.logs.loadgen import parse_summary

OUT = Path(__file__).resolve().parent.parent / "pytest_mlperf" / "catalog" / "nvidia_v2_0.json"


def published(code: Path, benchmarks: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """system name -> benchmark -> scenario -> the headline of NVIDIA's published run_1 summary, for the runs
    LoadGen called VALID."""
    out: dict = {}
    for path in sorted(Path(code, "results").glob("*/*/*/performance/run_1/mlperf_log_summary.txt")):
        scenario, bench, system = path.parents[2].name, path.parents[3].name, path.parents[4].name
        if bench not in benchmarks or scenario not in nvidia_tree.SCENARIOS:
            continue
        summary = parse_summary(path)
        if summary.validity == "VALID" and summary.headline is not None:
            value = summary.headline[1]
            out.setdefault(system, {}).setdefault(bench, {})[scenario] = int(value) if value.is_integer() else value
    return out


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


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(json.dumps(catalog_data(Path(argv[0]), load()), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
