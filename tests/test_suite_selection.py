"""The default case set is the MLPerf suite of the system's category, as NVIDIA's own scripts/update_results.py
draws it (an edge system submits no Server and no bert-99.9, a datacenter system no SingleStream, MultiStream or
ssd-mobilenet), plus the catalog's recorded exceptions; --mlperf-all-configs brings back every registered config.

The expectations here are computed from NVIDIA's tree without the project's rule reader: the `if` tests of
update_results.py are evaluated as Python over each case's names (after checking they are nothing but
comparisons), and each system's type is read from its systems/*.json.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from conftest import collect_inference_ids
from pytest_mlperf.catalog import load, split_system_name
from pytest_mlperf.catalog import nvidia_tree as tree_mod

SKUS = tuple(load().systems)
MODES = ("AccuracyOnly", "PerformanceOnly")
# what a skip's test may be made of: names, strings, ==, in, `or`/`and`, a set literal and .startswith(...)
PLAIN = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.Eq, ast.In, ast.Name, ast.Load, ast.Constant)
PLAIN += (ast.Set, ast.List, ast.Tuple, ast.Call, ast.Attribute)


def _skip_tests(tree: Path) -> list:
    """update_results.py's `if <test mentioning system_type>: ... continue`, each compiled on its own."""
    module = ast.parse((tree / "scripts" / "update_results.py").read_text())
    out = []
    for node in ast.walk(module):
        if isinstance(node, ast.If) and "system_type" in ast.unparse(node.test):
            assert any(isinstance(s, ast.Continue) for s in node.body), ast.unparse(node.test)
            expression = ast.Expression(node.test)
            for part in ast.walk(expression):
                assert isinstance(part, PLAIN), ast.unparse(node.test)
                assert not isinstance(part, ast.Attribute) or part.attr == "startswith", ast.unparse(node.test)
            out.append(compile(expression, f"update_results.py:{node.lineno}", "eval"))
    assert len(out) >= 4
    return out


def _skipped(tests: list, system_type: str, benchmark: str, scenario: str) -> bool:
    names = {"system_type": system_type, "benchmark": benchmark, "scenario": scenario, "__builtins__": {}}
    return any(eval(test, names) for test in tests)  # noqa: S307 (checked above: comparisons of names only)


def _system_type(tree: Path, system_id: str) -> str:
    return json.loads((tree / "systems" / f"{system_id}_TRT.json").read_text())["system_type"]


@pytest.fixture(scope="module")
def registered(nvidia_tree) -> dict:
    return tree_mod.matrix(tree_mod.registrations(nvidia_tree))


@pytest.fixture(scope="module")
def skip_tests(nvidia_tree) -> list:
    return _skip_tests(nvidia_tree)


def _default(registered: dict, skip_tests: list, tree: Path, sku: str, powers: tuple[str, ...]) -> set[tuple]:
    """(benchmark, scenario, mode, harness, power) of each case the default runs: registered for the system, not
    skipped by update_results.py for its type, or kept by one of the catalog's exceptions."""
    cat = load()
    system = cat.system(sku)
    kept = {(e.benchmark, e.scenario) for e in cat.suite_exceptions if e.sku == sku}
    system_type = _system_type(tree, system.system_id)
    out = set()
    for bench, scenarios in registered.get(system.known_system, {}).items():
        for scenario, pairs in scenarios.items():
            if _skipped(skip_tests, system_type, bench, scenario) and (bench, scenario) not in kept:
                continue
            out |= {(bench, scenario, mode, h, p) for h, p in pairs if p in powers for mode in MODES}
    return out


def _ids(cases: set[tuple]) -> set[str]:
    return {"-".join([b, s, m, h] + (["MaxQ"] if p == "MaxQ" else [])) for b, s, m, h, p in cases}


@pytest.mark.parametrize("sku", SKUS)
def test_the_default_collects_the_suite_of_the_systems_category(registered, skip_tests, nvidia_tree, sku, tmp_path):
    """`pytest suites -m inference --sku X --collect-only` from the catalog (a replay): exactly the registered cases
    in the suite of the system's category, no more, no less."""
    expected = _ids(_default(registered, skip_tests, nvidia_tree, sku, ("MaxP",)))
    replay = collect_inference_ids(["--sku", sku, f"--mlperf-results={nvidia_tree / 'results'}"], tmp_path)
    assert replay == expected, (sorted(replay - expected), sorted(expected - replay))


@pytest.mark.parametrize("sku", ["A30x1", "A100-SXM-80GBx8"])  # one that loses cases, one that keeps an exception
def test_the_checkouts_cases_are_held_to_the_suite_too(registered, skip_tests, nvidia_tree, sku, tmp_path):
    """On the nvidia backend the cases come from the checkout's own configs; the default holds them to the suite
    the same way (every SKU with --mlperf-all-configs: tests/test_nvidia_tree.py)."""
    expected = _ids(_default(registered, skip_tests, nvidia_tree, sku, ("MaxP",)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    nvidia = ["--mlperf-backend=nvidia", f"--mlperf-nvidia-code={nvidia_tree}", f"--mlperf-scratch={scratch}"]
    assert collect_inference_ids(["--sku", sku, *nvidia], tmp_path) == expected


def test_the_edge_systems_lose_server_and_bert_99_9_only(registered, skip_tests, nvidia_tree):
    """What the default leaves out, over all powers: about 40 registered edge configs (Server, bert-99.9), and
    nothing of a datacenter system (whose one registered non-suite case, ssd-mobilenet Offline on the DGX A100
    x8, the seed's table keeps)."""
    cat = load()
    everything, left_out = set(), {}
    for sku in SKUS:
        all_of = _default(registered, [], nvidia_tree, sku, ("MaxP", "MaxQ"))
        out = all_of - _default(registered, skip_tests, nvidia_tree, sku, ("MaxP", "MaxQ"))
        left_out[sku] = out
        everything |= {(sku, b, s) for b, s, *_ in out}
    assert {b if b == "bert-99.9" else s for _, b, s in everything} == {"Server", "bert-99.9"}
    assert {sku for sku, out in left_out.items() if out} <= {s for s in SKUS if cat.system(s).category == "edge"}
    configs = {(sku, b, s, h, p) for sku, out in left_out.items() for b, s, _, h, p in out}
    assert len(configs) == 42, len(configs)  # 40 at MaxP, and two MaxQ bert-99.9 configs of the Xavier NX


def test_every_published_case_is_in_the_default(registered, skip_tests, nvidia_tree):
    """Each benchmark x scenario NVIDIA published for a seed system (results/<system>/<benchmark>/<Scenario>, its
    harness and power in the folder's name) is one the default runs."""
    cat = load()
    default = set()
    for sku in SKUS:
        system_id = cat.system(sku).system_id
        for bench, scenario, _, harness, power in _default(registered, skip_tests, nvidia_tree, sku, ("MaxP", "MaxQ")):
            triton = "_Triton" if harness == "triton" else ""
            default.add((f"{system_id}_TRT{triton}{'_MaxQ' if power == 'MaxQ' else ''}", bench, scenario))
    ids = {cat.system(sku).system_id for sku in SKUS}
    published = {
        (p.parents[1].name, p.parent.name, p.name)
        for p in (nvidia_tree / "results").glob("*/*/*")
        if p.is_dir() and split_system_name(p.parents[1].name)[0] in ids and p.parent.name in cat.benchmarks
    }
    assert len(published) > 100
    assert published - default == set()


def test_each_systems_category_is_nvidias_system_type(nvidia_tree):
    """The catalog's category of each system is the system_type of every systems/<system>*.json of it (its TRT,
    Triton and MaxQ variants alike), the type update_results.py reads."""
    cat = load()
    for sku in SKUS:
        system = cat.system(sku)
        types = {
            json.loads(p.read_text())["system_type"]
            for p in (nvidia_tree / "systems").glob("*.json")
            if split_system_name(p.stem)[0] == system.system_id
        }
        assert types == {system.category}, sku


def test_the_exception_is_the_seeds_table(mlperf_shared, registered, skip_tests, nvidia_tree):
    """The seed's metric table lists cases of the DGX A100 x8 (named for its 40GB variant); those outside the
    datacenter suite are exactly the catalog's exceptions, and their harnesses are the ones NVIDIA registers."""
    seed = sorted((mlperf_shared / "seed").glob("*.txt"))
    tables = [p for p in seed if "Workload Metrics MLPerf Inference" in p.read_text()]
    if not tables:
        pytest.skip(f"the seed's metric table is not under {mlperf_shared / 'seed'}")
    rows = set()
    for line in tables[0].read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[1].startswith("DGX-A100_A100-SXM4-40GBx8"):
            _, workload, scenario, _ = cells[1].rsplit("-", 3)  # <system>-<harness>_k_<level>_<power>-<Scenario>-<mode>
            harness, rest = workload.split("_k_", 1)
            level = rest.rsplit("_", 1)[0].replace("_", ".")
            bench = f"bert-{level}" if cells[0] == "bert" else cells[0]
            rows.add((bench, scenario, harness))
    assert len(rows) >= 10
    outside = {(b, s, h) for b, s, h in rows if _skipped(skip_tests, "datacenter", b, s)}
    cat = load()
    assert {(b, s) for b, s, _ in outside} == {(e.benchmark, e.scenario) for e in cat.suite_exceptions}
    assert all(e.sku == "A100-SXM-80GBx8" for e in cat.suite_exceptions)
    pairs = registered["A100_SXM_80GBx8"]
    assert {(b, s, h) for b, s, _ in outside for h, _ in pairs[b][s]} == outside


def test_the_header_says_what_the_default_left_out(suites, nvidia_tree):
    results = f"--mlperf-results={nvidia_tree / 'results'}"
    edge = suites.runpytest("--co", "-m", "inference", "--sku", "A30x1", results)
    edge.stdout.fnmatch_lines(
        [
            "mlperf: 11 registered configs (22 cases) outside the MLPerf edge suite (Server, bert-99.9) left out; "
            "--mlperf-all-configs runs them"
        ]
    )
    every = suites.runpytest("--co", "-m", "inference", "--sku", "A30x1", results, "--mlperf-all-configs")
    every.stdout.fnmatch_lines(["mlperf: 11 registered configs (22 cases) outside the MLPerf edge suite * included*"])
    for sku in ("Orin", "A100-SXM-80GBx8"):  # nothing registered outside the suite, or kept by the exception
        assert "outside the MLPerf" not in suites.runpytest("--co", "--sku", sku, results).stdout.str()


def test_the_reader_refuses_a_skip_it_cannot_read(tmp_path, nvidia_tree):
    """A test of system_type in another shape is named with its line, never passed over; a script with none is
    refused too. The real script reads as NVIDIA wrote it."""
    script = tmp_path / "scripts" / "update_results.py"
    script.parent.mkdir()
    script.write_text("for b in x:\n    if system_type == 'edge' and b.endswith('9'):\n        continue\n")
    with pytest.raises(tree_mod.TreeError, match=r"scripts/update_results.py:2: not a test of benchmark or scenario"):
        tree_mod.suite_skips(tmp_path)
    script.write_text("if system_type in ('edge',):\n    continue\n")
    with pytest.raises(tree_mod.TreeError, match=r"update_results.py:1: not `if system_type == TYPE and <test>"):
        tree_mod.suite_skips(tmp_path)
    script.write_text("print('nothing')\n")
    with pytest.raises(tree_mod.TreeError, match="no `if system_type == ...: continue`"):
        tree_mod.suite_skips(tmp_path)
    skips = tree_mod.suite_skips(nvidia_tree)
    edge = next(s for s in skips if s.system_type == "edge" and s.field == "benchmark")
    assert edge.names == ("bert-99.9",) and edge.prefixes == ("dlrm",) and edge.skips("edge", "dlrm-99", "Offline")
    assert not edge.skips("datacenter,edge", "bert-99.9", "Offline")  # NVIDIA compares with ==
