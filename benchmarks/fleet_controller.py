"""Measure what a fleet run costs its controller as the fleet grows: 2, 4 and 8 nodes of a real Slurm cluster
started on this machine (the tests' own: munged, slurmctld, one slurmd per node; needs root and Debian's slurm
packages), each node replaying the published fixtures (two cases a node), side by side in one run.

For each size it prints the wall time of the whole run, the controller's own time by part (the node states, the
srun probe of the run folder, sbatch, following the jobs, reading the results: the fleet summary in the JSON file)
and its CPU time (the controller process and the Slurm commands it ran, not the nodes' jobs), then the cost per
node, the ratios against the 2-node run, and a linear estimate for 1,000 nodes.

    python benchmarks/fleet_controller.py [--sizes 2,4,8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from slurm_cluster import SlurmCluster, missing_tools  # noqa: E402

SELECT = "inference and rnnt and offline"


def fixtures() -> Path:
    shared = Path(os.environ.get("MLPERF_SHARED", ROOT.parent / "shared"))
    tree = shared / "fixtures" / "inference"
    if not tree.is_dir():
        sys.exit(f"no published fixtures at {tree} (set MLPERF_SHARED)")
    return tree


def one_run(cluster: SlurmCluster, nodes: int, work: Path) -> dict:
    project = work / f"n{nodes}-{time.monotonic_ns()}"
    project.mkdir(parents=True)
    (project / "test_inference.py").write_text((ROOT / "suites" / "test_inference.py").read_text())
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    argv = [sys.executable, "-m", "pytest", "-q", "-m", SELECT, "--sku", "A100-SXM-80GBx8"]
    argv += [f"--mlperf-results={fixtures()}", "--mlperf-fleet=slurm", f"--mlperf-fleet-nodes=n[1-{nodes}]"]
    argv += ["--mlperf-json=fleet.json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=project, env={**os.environ, "SLURM_CONF": str(cluster.conf)}, capture_output=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"the {nodes}-node run failed:\n{proc.stdout.decode()[-3000:]}")
    summary = json.loads((project / "fleet.json").read_text())["fleet"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "parts": summary["controller_seconds"], "polls": summary["polls"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,8")
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest is kept")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    if missing_tools() or os.geteuid() != 0:
        sys.exit(f"needs root and Debian's slurm packages (missing: {missing_tools()})")
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    cluster = SlurmCluster(work / "cluster", nodes=max(sizes))
    cluster.start()
    try:
        results = {}
        for nodes in sizes:
            runs = [one_run(cluster, nodes, work) for _ in range(args.repeat)]
            results[nodes] = min(runs, key=lambda r: r["wall"])
    finally:
        cluster.stop()
    parts = list(next(iter(results.values()))["parts"])
    print(f"{'nodes':>5} {'wall s':>8} {'cpu s':>7} " + " ".join(f"{p + ' s':>9}" for p in parts) + f" {'polls':>6}")
    for nodes, r in results.items():
        cells = " ".join(f"{r['parts'][p]:>9.3f}" for p in parts)
        print(f"{nodes:>5} {r['wall']:>8.2f} {r['cpu']:>7.2f} {cells} {r['polls']:>6}")
    first, last = sizes[0], sizes[-1]
    own = {n: sum(r["parts"].values()) for n, r in results.items()}
    for name, values in (("wall", {n: r["wall"] for n, r in results.items()}), ("controller", own)):
        ratios = ", ".join(f"{n} nodes {values[n] / values[first]:.2f}x" for n in sizes)
        print(f"{name} time against {first} nodes: {ratios}")
    per_node = (own[last] - own[first]) / (last - first)
    cpu_per_node = (results[last]["cpu"] - results[first]["cpu"]) / (last - first)
    print(
        f"controller time per added node: {per_node * 1000:.1f} ms (Slurm commands and reading), "
        f"CPU per added node: {cpu_per_node * 1000:.1f} ms"
    )
    print(
        f"linear estimate for 1,000 nodes: controller {own[first] + per_node * (1000 - first):.0f} s, "
        f"CPU {results[first]['cpu'] + cpu_per_node * (1000 - first):.0f} s (beside the nodes' own run time)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
