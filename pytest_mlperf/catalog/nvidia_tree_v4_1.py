"""NVIDIA's closed MLPerf Inference v4.1 checkout, read as data (never imported), where it differs from v2.0's.

What v4.1 kept, this module takes from nvidia_tree (the register decorator, user.conf, systems/*.json); what it
changed is read here:

- `registrations(code)`: classes are resolved in file order. A v4.1 file may define a class name twice, the second
  time with the first as its base (stable-diffusion-xl Server's H200_SXM_141GBx8 MaxP, then MaxQ), and both are
  registered: a name->class table would lose the first and resolve the second against itself. Field values may be
  arithmetic over literals and other classes' fields (`GH200_144GB_aarch64x1.offline_expected_qps * 2`); they are
  evaluated, and a value that cannot be evaluated hides the base's rather than inherit a wrong one.
- Five harnesses (custom, lwis, triton, triton_unified, hetero), each registration kept: none is skipped unseen.
- The results tree's benchmark name: `<folder>-99` / `<folder>-99.9` for the benchmarks that
  code/common/constants.py's G_HIGH_ACC_ENABLED_BENCHMARKS lists, the bare folder name for the others.
- `mlperf_conf(code)`: v4.1 ships the round's rules once per case (measurements/<system>/<benchmark>/<Scenario>/
  mlperf.conf), not once for the round; the copies must agree, or the round's rules are not one thing.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from pathlib import Path

from .nvidia_tree import (
    LEVEL,
    POWER,
    SCENARIOS,
    TreeError,
    _number,
    _parse,
    _register_args,
    read_conf,
    system_types,
    tuned,
)
from .nvidia_tree import Registration as _Registration

__all__ = [
    "MODELS",
    "Registration",
    "TreeError",
    "benchmark_names",
    "harness_names",
    "mlperf_conf",
    "registrations",
    "system_types",
    "tuned",
]

MODELS = (
    "3d-unet",
    "bert",
    "dlrm-v2",
    "gptj",
    "llama2-70b",
    "mixtral-8x7b",
    "resnet50",
    "retinanet",
    "stable-diffusion-xl",
)
CONSTANTS = "code/common/constants.py"
HIGH_ACCURACY = "G_HIGH_ACC_ENABLED_BENCHMARKS"


@dataclass(frozen=True)
class Registration(_Registration):
    """v2.0's registration, but v2.0 split only bert's results folders by accuracy target, and v4.1 splits every
    benchmark constants.py gives a 99.9% target: the name must follow the tree's own list, not a fixed one."""

    high_accuracy: bool = False  # the folder is in G_HIGH_ACC_ENABLED_BENCHMARKS

    @property
    def benchmark(self) -> str:
        return f"{self.model}-{self.level}" if self.high_accuracy else self.model


# ---- code/common/constants.py: the enums' names and the benchmarks split by accuracy --------------------------------


def _aliased_enum(tree: ast.Module, name: str) -> dict[str, tuple[str, int]]:
    """member -> (its AliasedName's main name, line) of `class <name>(AliasedNameEnum)`."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            break
    else:
        raise TreeError(f"{CONSTANTS}: no class {name}")
    out = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
        value = getattr(stmt, "value", None)
        if not (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "AliasedName"
            and value.args
            and isinstance(value.args[0], ast.Constant)
            and isinstance(value.args[0].value, str)
        ):
            raise TreeError(
                f'{CONSTANTS}:{stmt.lineno}: not `Member: AliasedName = AliasedName("name", ...)` in {name}'
            )
        out[target.id] = (value.args[0].value, stmt.lineno)
    return out


def _constants(path: Path) -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    tree = _parse(path)
    benchmarks = {member: value for member, (value, _) in _aliased_enum(tree, "Benchmark").items()}
    harnesses = {member: value for member, (value, _) in _aliased_enum(tree, "HarnessType").items()}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == HIGH_ACCURACY:
            break
    else:
        raise TreeError(f"{CONSTANTS}: no {HIGH_ACCURACY}")
    value = node.value
    if not (
        isinstance(value, ast.Tuple | ast.List)
        and all(
            isinstance(e, ast.Attribute)
            and isinstance(e.value, ast.Name)
            and e.value.id == "Benchmark"
            and e.attr in benchmarks
            for e in value.elts
        )
    ):
        raise TreeError(f"{CONSTANTS}:{node.lineno}: {HIGH_ACCURACY} is not a tuple of Benchmark members")
    return benchmarks, harnesses, frozenset(benchmarks[e.attr] for e in value.elts)


def _read_constants(code: Path) -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    path = Path(code) / CONSTANTS
    if not path.is_file():
        raise TreeError(f"{path}: missing (the Benchmark and HarnessType names are read from it)")
    return _constants(path)


def benchmark_names(code: Path) -> dict[str, tuple[str, ...]]:
    """config folder -> the results tree's benchmark names for it (bert -> bert-99, bert-99.9; resnet50 ->
    resnet50)."""
    benchmarks, _, high = _read_constants(code)
    return {
        folder: (f"{folder}-99", f"{folder}-99.9") if folder in high else (folder,)
        for folder in sorted(benchmarks.values())
    }


def harness_names(code: Path) -> dict[str, str]:
    """HarnessType member -> the name the harness goes by (TritonUnified -> triton_unified, HeteroMIG -> hetero)."""
    return dict(_read_constants(code)[1])


# ---- configs/: classes in file order -------------------------------------------------------------------------------


class _Unknown:
    """A field whose value is not a literal, an enum member or arithmetic over them and other classes' fields."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


@dataclass
class _Class:
    name: str
    fields: dict  # with the bases', most derived last, as attribute lookup finds them


@dataclass
class _Module:
    folder: str  # configs/<folder>: the import_module("configs.<folder>") a name is bound to


class _File:
    """One configs/ file, statement by statement: the names it binds (classes, the parent module, the parent's
    classes), each class's fields resolved against the bindings current at its definition."""

    def __init__(self, rel: str, folder: str, parent: dict[str, _Class] | None):
        self.rel, self.folder, self.parent = rel, folder, parent
        self.scope: dict[str, _Class | _Module | None] = {}  # None: a root class of configs/configuration.py
        self.classes: list[tuple[ast.ClassDef, _Class]] = []

    def where(self, node: ast.AST) -> str:
        return f"{self.rel}:{node.lineno}"

    def _parent_module(self, node: ast.expr) -> _Module | None:
        """configs.<folder> of `import_module("configs.<folder>")` or a name bound to it; else None."""
        if isinstance(node, ast.Name) and isinstance(self.scope.get(node.id), _Module):
            return self.scope[node.id]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "import_module"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("configs.")
        ):
            return self._module(node.args[0].value, node)
        return None

    def _module(self, dotted: str, node: ast.AST) -> _Module:
        folder = dotted.removeprefix("configs.")
        if self.parent is None or folder != self.folder:
            raise TreeError(f"{self.where(node)}: imports {dotted}; a {self.folder} config reads configs.{self.folder}")
        return _Module(folder)

    def _parent_class(self, name: str, node: ast.AST) -> _Class:
        if self.parent is None or name not in self.parent:
            raise TreeError(f"{self.where(node)}: configs/{self.folder}/__init__.py defines no class {name}")
        return self.parent[name]

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ImportFrom) and node.module == "configs.configuration":
            for alias in node.names:
                if alias.name != "*":
                    self.scope[alias.asname or alias.name] = None
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("configs."):
            self._module(node.module, node)
            for alias in node.names:
                self.scope[alias.asname or alias.name] = self._parent_class(alias.name, node)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            module = self._parent_module(node.value)
            if module is None and isinstance(node.value, ast.Attribute):
                if self._parent_module(node.value.value) is not None:
                    self.scope[node.targets[0].id] = self._parent_class(node.value.attr, node)
                    return
            if module is not None:
                self.scope[node.targets[0].id] = module
        elif isinstance(node, ast.ClassDef):
            cls = _Class(node.name, self._class_fields(node))
            self.scope[node.name] = cls
            self.classes.append((node, cls))

    def _base(self, node: ast.expr, cls: ast.ClassDef) -> _Class | None:
        if isinstance(node, ast.Name) and node.id in self.scope and not isinstance(self.scope[node.id], _Module):
            return self.scope[node.id]
        if isinstance(node, ast.Attribute) and self._parent_module(node.value) is not None:
            return self._parent_class(node.attr, cls)
        raise TreeError(f"{self.where(cls)}: {cls.name}'s base {ast.unparse(node)} is not a class this file binds")

    def _class_fields(self, cls: ast.ClassDef) -> dict:
        merged: dict = {}
        for base in reversed(cls.bases):
            found = self._base(base, cls)
            if found is not None:
                merged.update(found.fields)
        own: dict = {}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                own[stmt.targets[0].id] = self._value(stmt.value, own)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                own[stmt.target.id] = self._value(stmt.value, own)
            elif not isinstance(stmt, ast.Pass | ast.AnnAssign) and not (
                isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            ):
                raise TreeError(f"{self.where(stmt)}: not a field of {cls.name}: {ast.unparse(stmt)[:80]}")
        merged.update(own)
        return merged

    def _value(self, node: ast.expr, own: dict):
        """A field's value as the class body computes it: names resolve to the body's own earlier fields, X.attr
        to class X's field when this file binds a class X and to the enum member "X.attr" otherwise."""
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, int | float | str | bool)):
            return node.value  # None too: it unsets the base's value
        if isinstance(node, ast.Name):
            return own.get(node.id, UNKNOWN)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            bound = self.scope.get(node.value.id)
            if isinstance(bound, _Class):
                return bound.fields.get(node.attr, UNKNOWN)
            if node.value.id in self.scope:
                return UNKNOWN
            return f"{node.value.id}.{node.attr}"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self._value(node.operand, own)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return -value if isinstance(node.op, ast.USub) else value
        elif isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = self._value(node.left, own), self._value(node.right, own)
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
                try:
                    return _OPS[type(node.op)](left, right)
                except ArithmeticError:
                    return UNKNOWN
        elif isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
            values = {k.value: self._value(v, own) for k, v in zip(node.keys, node.values, strict=True)}
            return UNKNOWN if UNKNOWN in values.values() else values
        elif isinstance(node, ast.Tuple | ast.List):
            items = [self._value(e, own) for e in node.elts]
            return UNKNOWN if UNKNOWN in items else items
        return UNKNOWN


def _read_file(code: Path, path: Path, folder: str, parent: dict[str, _Class] | None) -> _File:
    reader = _File(path.relative_to(code).as_posix(), folder, parent)
    for node in _parse(path).body:
        reader.statement(node)
    return reader


def _kept(value) -> bool:
    """A field the Registration carries: a scalar, or a dict of scalars (v4.1's per-engine batch sizes)."""
    if isinstance(value, dict):
        return all(_kept(v) for v in value.values())
    return isinstance(value, int | float | str | bool)


def _scenario_registrations(
    code: Path, folder: str, scenario: str, parent: dict[str, _Class], harnesses: dict[str, str], high: bool
) -> list[Registration]:
    path = code / "configs" / folder / scenario / "__init__.py"
    if not path.is_file():
        return []
    reader = _read_file(code, path, folder, parent)
    out = []
    for node, cls in reader.classes:
        for deco in node.decorator_list:
            args = _register_args(deco, reader.where(deco))
            if args is None:
                raise TreeError(f"{reader.where(deco)}: {node.name} has a decorator other than register")
            harness, level, power = args
            if harness not in harnesses or level not in LEVEL or power not in POWER:
                raise TreeError(f"{reader.where(deco)}: unknown workload setting {harness}, {level}, {power}")
            if level != "k_99" and not high:
                raise TreeError(f"{reader.where(deco)}: {level} for {folder}, which {HIGH_ACCURACY} does not list")
            system = cls.fields.get("system")
            if not (isinstance(system, str) and system.startswith("KnownSystem.")):
                raise TreeError(f"{reader.where(node)}: {node.name} is registered but names no KnownSystem")
            out.append(
                Registration(
                    known_system=system.split(".", 1)[1],
                    model=folder,
                    level=LEVEL[level],
                    scenario=scenario,
                    harness=harnesses[harness],
                    power=power,
                    config_class=node.name,
                    source=reader.where(node),
                    fields={k: v for k, v in cls.fields.items() if _kept(v)},
                    high_accuracy=high,
                )
            )
    return out


def registrations(code: Path, models: tuple[str, ...] = MODELS) -> list[Registration]:
    """Every config the checkout registers for the given config folders, in file order."""
    code = Path(code)
    if not (code / "configs").is_dir():
        raise TreeError(f"{code}: no configs/ folder (expected NVIDIA's closed/NVIDIA checkout)")
    benchmarks, harnesses, high = _read_constants(code)
    out: list[Registration] = []
    seen: dict[tuple, str] = {}
    for folder in models:
        if folder not in benchmarks.values():
            raise TreeError(f"{CONSTANTS}: Benchmark has no member named {folder!r}")
        base = code / "configs" / folder / "__init__.py"
        if not base.is_file():
            raise TreeError(f"{base}: missing (the benchmark's GPUBaseConfig)")
        parent = {cls.name: cls for _, cls in _read_file(code, base, folder, None).classes}
        for scenario in SCENARIOS:
            for reg in _scenario_registrations(code, folder, scenario, parent, harnesses, folder in high):
                key = (reg.model, reg.scenario, reg.known_system, reg.harness, reg.level, reg.power)
                if key in seen:  # NVIDIA's registry refuses a second config for one key
                    raise TreeError(f"{reg.source}: {reg.config_class} registers the same case as {seen[key]}")
                seen[key] = reg.source
                out.append(reg)
    if not out:
        raise TreeError(f"{code}/configs: no @ConfigRegistry.register for {', '.join(models)}")
    return out


# ---- measurements/: the round's rules, one copy per case ----------------------------------------------------------


def mlperf_conf(code: Path) -> dict[str, dict[str, int | float]]:
    """The round's rules for each scenario (the `*.<Scenario>.key` lines), from the per-case copies of
    mlperf.conf, which must all be the same file."""
    code = Path(code)
    paths = []
    for case in sorted((code / "measurements").glob("*/*/*")):
        if case.is_dir():
            if case.name not in SCENARIOS:
                raise TreeError(f"{case.relative_to(code)}: not a scenario folder ({', '.join(SCENARIOS)})")
            paths.append(case / "mlperf.conf")
    if not paths:
        raise TreeError(f"{code}/measurements: no <system>/<benchmark>/<Scenario>/ folders")
    first, first_text = None, b""
    for path in paths:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise TreeError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        if first is None:
            first, first_text = path, text
        elif text != first_text:
            raise TreeError(f"{path.relative_to(code)} differs from {first.relative_to(code)}")
    out: dict[str, dict[str, int | float]] = {}
    for model, scenario, key, value in read_conf(first):
        if model == "*" and scenario in SCENARIOS:
            out.setdefault(scenario, {})[key] = _number(value)
    return out
