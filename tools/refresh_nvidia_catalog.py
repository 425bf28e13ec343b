"""Rewrite pytest_mlperf/catalog/nvidia_v2_0.json from a checkout of NVIDIA's closed v2.0 tree:

    python tools/refresh_nvidia_catalog.py PATH/TO/inference_results_v2.0/closed/NVIDIA

The file holds facts read from NVIDIA's files (which cases its configs register for each seed system, its
published figures, its tuned user.conf settings, the round's mlperf.conf); tests/test_nvidia_tree.py fails when
it and the tree disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pytest_mlperf.catalog import load
from pytest_mlperf.catalog.nvidia_tree import catalog_data

OUT = Path(__file__).resolve().parent.parent / "pytest_mlperf" / "catalog" / "nvidia_v2_0.json"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    cat = load()
    data = catalog_data(
        Path(argv[0]),
        {sku: s.known_system for sku, s in cat.systems.items()},
        {sku: s.system_id for sku, s in cat.systems.items()},
    )
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
