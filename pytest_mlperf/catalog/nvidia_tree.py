"""NVIDIA's closed MLPerf Inference v2.0 checkout, read as data (never imported: its modules need TensorRT and
CUDA to load).

- `registrations(code)`: what `configs/<benchmark>/<Scenario>/__init__.py` registers with
  `@ConfigRegistry.register(HarnessType.X, AccuracyTarget.Y, PowerSetting.Z)`, one entry per class, with the
  `KnownSystem` it names (inherited through the file's classes and the benchmark's base classes) and its literal
  fields (batch sizes, expected QPS, latencies).
- `tuned(code)`: NVIDIA's `measurements/<system name>/<benchmark>/<Scenario>/user.conf`, the target QPS and
  latencies each published case ran with.
- `mlperf_conf(code)`: the round's rules, `measurements/mlperf.conf`.
- `suite_skips(code)`: what `scripts/update_results.py` leaves out of a submission by the system's type (an edge
  system's Server and bert-99.9, a datacenter system's SingleStream, MultiStream and ssd-mobilenet): the MLPerf
  suite of each category, as NVIDIA's own tooling draws it.
- `system_types(code)`: `systems/<system name>.json`'s `system_type`, which update_results.py reads for it.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

MODELS = ("bert", "rnnt", "ssd-mobilenet", "ssd-resnet34")  # the project's benchmarks' config folders
SCENARIOS = ("Offline", "Server", "SingleStream", "MultiStream")
HARNESS = {"Custom": "custom", "LWIS": "lwis", "Triton": "triton"}  # HeteroMIG is MIG-only, not a seed system's
LEVEL = {"k_99": "99", "k_99_9": "99.9"}
POWER = ("MaxP", "MaxQ")


class TreeError(ValueError):
    """NVIDIA's checkout does not have the shape this version reads: which file, which line, what was there."""


@dataclass(frozen=True)
class Registration:
    known_system: str  # KnownSystem member, e.g. A100_SXM_80GBx8
    model: str  # NVIDIA's benchmark folder: bert, rnnt, ssd-mobilenet, ssd-resnet34
    level: str  # "99" or "99.9"
    scenario: str
    harness: str  # custom | lwis | triton
    power: str  # MaxP | MaxQ
    config_class: str
    source: str  # configs/<model>/<Scenario>/__init__.py:<line>
    fields: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def benchmark(self) -> str:
        """The results tree's benchmark name: bert-99, bert-99.9, rnnt, ..."""
        return f"{self.model}-{self.level}" if self.model == "bert" else self.model


def _literal(node: ast.AST):
    """A class attribute's value when it is a literal or a `KnownSystem.X` / `Enum.X` reference; else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _class_table(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _own_fields(cls: ast.ClassDef) -> dict:
    out = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = _literal(stmt.value)
            if value is not None:
                out[stmt.targets[0].id] = value
    return out


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # ParentConfig.GPUBaseConfig
        return node.attr
    return None


class _Resolver:
    """A class's fields with its bases' (from the same file, then the benchmark's `configs/<model>/__init__.py`),
    most derived first, as Python's attribute lookup would find them for single inheritance."""

    def __init__(self, own: dict[str, ast.ClassDef], parent: dict[str, ast.ClassDef]):
        self.own, self.parent, self.cache = own, parent, {}

    def fields(self, name: str, depth: int = 0) -> dict:
        if name in self.cache:
            return self.cache[name]
        cls = self.own.get(name) or self.parent.get(name)
        if cls is None or depth > 50:
            return {}
        merged: dict = {}
        for base in reversed(cls.bases):
            base_name = _base_name(base)
            if base_name and base_name != name:
                merged.update(self.fields(base_name, depth + 1))
        merged.update(_own_fields(cls))
        self.cache[name] = merged
        return merged


def _register_args(deco: ast.expr, where: str) -> tuple[str, str, str] | None:
    """(HarnessType member, AccuracyTarget member, PowerSetting member) of @ConfigRegistry.register(...)."""
    if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "register"):
        return None
    values = [_literal(arg) for arg in deco.args]
    if len(values) != 3 or not all(isinstance(v, str) and "." in v for v in values):
        raise TreeError(f"{where}: @ConfigRegistry.register takes HarnessType, AccuracyTarget, PowerSetting here")
    return tuple(v.split(".", 1)[1] for v in values)  # type: ignore[return-value]


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise TreeError(f"{path}: cannot be read as Python: {exc}") from None


def _scenario_registrations(code: Path, model: str, scenario: str, parent: dict) -> list[Registration]:
    path = code / "configs" / model / scenario / "__init__.py"
    if not path.is_file():
        return []
    rel = path.relative_to(code).as_posix()
    own = _class_table(_parse(path))
    resolver = _Resolver(own, parent)
    out = []
    for cls in own.values():
        for deco in cls.decorator_list:
            args = _register_args(deco, f"{rel}:{deco.lineno}")
            if args is None:
                continue
            harness, level, power = args
            if harness not in HARNESS:
                continue
            if level not in LEVEL or power not in POWER:
                raise TreeError(f"{rel}:{deco.lineno}: unknown workload setting {harness}, {level}, {power}")
            fields = resolver.fields(cls.name)
            system = fields.get("system")
            if not (isinstance(system, str) and system.startswith("KnownSystem.")):
                raise TreeError(f"{rel}:{cls.lineno}: {cls.name} is registered but names no KnownSystem")
            out.append(
                Registration(
                    known_system=system.split(".", 1)[1],
                    model=model,
                    level=LEVEL[level],
                    scenario=scenario,
                    harness=HARNESS[harness],
                    power=power,
                    config_class=cls.name,
                    source=f"{rel}:{cls.lineno}",
                    fields={k: v for k, v in fields.items() if isinstance(v, (int, float, str, bool))},
                )
            )
    return out


def registrations(code: Path, models: tuple[str, ...] = MODELS) -> list[Registration]:
    """Every config the checkout registers for the given benchmarks, in file order."""
    code = Path(code)
    if not (code / "configs").is_dir():
        raise TreeError(f"{code}: no configs/ folder (expected NVIDIA's closed/NVIDIA checkout)")
    out: list[Registration] = []
    for model in models:
        base = code / "configs" / model / "__init__.py"
        parent = _class_table(_parse(base)) if base.is_file() else {}
        for scenario in SCENARIOS:
            out += _scenario_registrations(code, model, scenario, parent)
    if not out:
        raise TreeError(f"{code}/configs: no @ConfigRegistry.register for {', '.join(models)}")
    return out


def matrix(regs: list[Registration]) -> dict[str, dict[str, dict[str, list[list[str]]]]]:
    """known system -> benchmark -> scenario -> sorted [harness, power] pairs: the catalog's per-system matrix."""
    out: dict = {}
    for reg in regs:
        slot = out.setdefault(reg.known_system, {}).setdefault(reg.benchmark, {}).setdefault(reg.scenario, [])
        if [reg.harness, reg.power] not in slot:
            slot.append([reg.harness, reg.power])
    for benches in out.values():
        for scenarios in benches.values():
            for pairs in scenarios.values():
                pairs.sort()
    return out


_CONF_LINE = re.compile(r"^\s*([^#=\s]+)\.([^.#=\s]+)\.([^.#=\s]+)\s*=\s*([^#\s]+)\s*(?:#.*)?$")


def read_conf(path: Path) -> list[tuple[str, str, str, float]]:
    """LoadGen's conf format: model.Scenario.key = number, with `*` wildcards; comments and blanks skipped."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = _CONF_LINE.match(text)
        if not match:
            raise TreeError(f"{path}:{number}: not model.Scenario.key = value: {text!r}")
        try:
            value = float(match.group(4))
        except ValueError:
            raise TreeError(f"{path}:{number}: {match.group(4)!r} is not a number") from None
        if not math.isfinite(value):
            raise TreeError(f"{path}:{number}: {match.group(4)!r} is not finite")
        out.append((match.group(1), match.group(2), match.group(3), value))
    return out


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def mlperf_conf(code: Path) -> dict[str, dict[str, int | float]]:
    """The round's rules for each scenario (the `*.<Scenario>.key` lines of measurements/mlperf.conf)."""
    out: dict[str, dict[str, int | float]] = {}
    for model, scenario, key, value in read_conf(Path(code) / "measurements" / "mlperf.conf"):
        if model == "*" and scenario in SCENARIOS:
            out.setdefault(scenario, {})[key] = _number(value)
    return out


def tuned(code: Path, benchmarks: tuple[str, ...]) -> dict[str, dict[str, dict[str, dict[str, int | float]]]]:
    """system name -> benchmark -> scenario -> NVIDIA's user.conf settings for that case (the lines that apply to
    the case's scenario; NVIDIA's files also carry other scenarios' lines, which LoadGen ignores)."""
    out: dict = {}
    for path in sorted((Path(code) / "measurements").glob("*/*/*/user.conf")):
        scenario, bench, system = path.parent.name, path.parent.parent.name, path.parent.parent.parent.name
        if bench not in benchmarks or scenario not in SCENARIOS:
            continue
        settings = {key: _number(v) for _, scen, key, v in read_conf(path) if scen in ("*", scenario)}
        if settings:
            out.setdefault(system, {}).setdefault(bench, {})[scenario] = settings
    return out


# ---- the MLPerf suite of a system's category: scripts/update_results.py --------------------------------------------
UPDATE_RESULTS = "scripts/update_results.py"
SKIP_FIELDS = ("benchmark", "scenario")  # the loop variables update_results.py tests against a system's type


@dataclass(frozen=True)
class SuiteSkip:
    """One `if system_type == TYPE and <test of benchmark or scenario>: continue` of update_results.py: the cases
    a system of that type never submits. NVIDIA compares the type with ==, so a "datacenter,edge" system (or one
    whose systems/*.json is missing, which update_results.py takes for one) skips nothing."""

    system_type: str
    field: str  # benchmark | scenario
    names: tuple[str, ...]  # == or in {...}
    prefixes: tuple[str, ...]  # .startswith(...)
    source: str  # scripts/update_results.py:<line>

    def skips(self, system_type: str, benchmark: str, scenario: str) -> bool:
        value = benchmark if self.field == "benchmark" else scenario
        return system_type == self.system_type and (value in self.names or value.startswith(self.prefixes))

    def as_json(self) -> dict:
        return {
            "system_type": self.system_type,
            "field": self.field,
            "names": list(self.names),
            "prefixes": list(self.prefixes),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict) -> SuiteSkip:
        return cls(
            system_type=data["system_type"],
            field=data["field"],
            names=tuple(data["names"]),
            prefixes=tuple(data["prefixes"]),
            source=data["source"],
        )


def _strings(node: ast.expr) -> tuple[str, ...] | None:
    """The strings of a literal set, list or tuple of strings; else None."""
    if isinstance(node, ast.Set | ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return tuple(sorted(e.value for e in node.elts))
    return None


def _field_test(node: ast.expr, where: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(field, names, prefixes) of `benchmark == "x"`, `scenario in {...}`, `benchmark.startswith("x")`, or an
    `or` of such tests of one field."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        parts = [_field_test(value, where) for value in node.values]
        if len({field for field, _, _ in parts}) == 1:
            names = tuple(sorted({n for _, ns, _ in parts for n in ns}))
            return parts[0][0], names, tuple(sorted({p for _, _, ps in parts for p in ps}))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, ast.Name):
        op, right = node.ops[0], node.comparators[0]
        if isinstance(op, ast.Eq) and isinstance(right, ast.Constant) and isinstance(right.value, str):
            names: tuple[str, ...] | None = (right.value,)
        else:
            names = _strings(right) if isinstance(op, ast.In) else None
        if names is not None and node.left.id in SKIP_FIELDS:
            return node.left.id, names, ()
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "startswith"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in SKIP_FIELDS
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.func.value.id, (), (node.args[0].value,)
    raise TreeError(f"{where}: not a test of {' or '.join(SKIP_FIELDS)} this version reads: {ast.unparse(node)}")


def _type_test(node: ast.expr) -> str | None:
    """TYPE of `system_type == "TYPE"`; else None."""
    if (
        isinstance(node, ast.Compare)
        and isinstance(node.left, ast.Name)
        and node.left.id == "system_type"
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.Eq)
        and isinstance(node.comparators[0], ast.Constant)
        and isinstance(node.comparators[0].value, str)
    ):
        return node.comparators[0].value
    return None


def _mentions_system_type(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "system_type" for n in ast.walk(node))


def suite_skips(code: Path) -> list[SuiteSkip]:
    """Every `if system_type == ... and ...: ... continue` of scripts/update_results.py, in file order. Any other
    test of system_type is refused, naming its line: a rule this version cannot read must not go unseen."""
    path = Path(code) / UPDATE_RESULTS
    out = []
    for node in ast.walk(_parse(path)):
        if not (isinstance(node, ast.If) and _mentions_system_type(node.test)):
            continue
        where = f"{UPDATE_RESULTS}:{node.lineno}"
        test = node.test
        parts = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else []
        system_type = _type_test(parts[0]) if len(parts) == 2 else None
        skips = any(isinstance(stmt, ast.Continue) for stmt in node.body)
        if system_type is None or not skips or _mentions_system_type(parts[1]):
            raise TreeError(f"{where}: not `if system_type == TYPE and <test>: continue`: {ast.unparse(test)}")
        field_name, names, prefixes = _field_test(parts[1], where)
        out.append(SuiteSkip(system_type, field_name, names, prefixes, where))
    if not out:
        raise TreeError(f"{path}: no `if system_type == ...: continue` (the skips by system type)")
    return sorted(out, key=lambda skip: int(skip.source.rsplit(":", 1)[1]))


def system_types(code: Path) -> dict[str, str]:
    """system name -> the `system_type` of systems/<system name>.json ("datacenter", "edge" or both, comma-joined),
    for the files that have one (update_results.py takes a system without it for both)."""
    out = {}
    for path in sorted((Path(code) / "systems").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise TreeError(f"{path}: cannot be read as JSON: {exc}") from None
        value = data.get("system_type") if isinstance(data, dict) else None
        if isinstance(value, str):
            out[path.stem] = value
    return out
