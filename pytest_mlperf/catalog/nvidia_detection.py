"""What NVIDIA's MLPerf Inference code (v2.0 or v4.1) will decide this host is, predicted from its own rules.

NVIDIA's harness (`code/main.py`) imports `code/common/systems/system_list.py`, which detects the machine
(`SystemConfiguration.detect()`) and compares it with each `KnownSystem` in turn; when none matches it logs
"Detected System ID: ... did not match any known systems. Exiting." and exits 0, so a run does nothing. This
module reads the rules from the checkout the user gives, with `ast` (NVIDIA's modules cannot be imported here:
they need TensorRT and pycuda, and detect the machine at import), and says beforehand what will match and,
for a wanted system, why it will not. Standard library only; it reads NVIDIA's files and never imports NVIDIA's
code, and it never reads the machine: `HostFacts` are given (`machine.host` reads them from this host).

The rules, as NVIDIA's v2.0 code has them (paths under `code/common/`):

- Order: `KnownSystem = Enum("KnownSystem", system_confs)` (systems/system_list.py:194), in `system_confs`'s
  insertion order; `match_known_system` returns the first member equal to the detected system
  (system_list.py:197-206). `add_systems(name_fmt, id_fmt, cpu, accelerator, counts, mem)` adds one entry per
  count (system_list.py:35-55). A system matches on CPU, memory and accelerators only; NUMA and system_id are
  not compared (systems/systems.py:362-367).
- CPU (systems/cpu.py): `lscpu`'s output, each line split on `:\\s*` and kept when it gives exactly two parts
  (cpu.py:30, 41-47); compared are "Model name", "Architecture" (must be a `CPUArchitecture` value, else
  detection raises), "Core(s) per socket", "Thread(s) per core" (cpu.py:72-77); "Socket(s)" is the count
  (cpu.py:116), which `add_systems` leaves MATCH_ANY (system_list.py:51). Names are `AliasedName`s
  (constants.py:140-212): equal ignoring case to the name or an alias, else a full regex match (case-sensitive);
  `KnownCPU.x86_64_Generic` takes any x86_64 name starting "AMD" or "Intel" (known_hardware.py:229), so the A100
  systems' allow-lists accept any such CPU, while A30 and A10 need the EPYC 7742 by name, 64 cores per socket.
  No vendor field is compared.
- Memory (systems/memory.py): /proc/meminfo's MemTotal, its unit upper-cased into `ByteSuffix`, so "kB" is
  read as KB = 1000 bytes (memory.py:74-78), 2.3 % under the true KiB figure. `min_memory_requirement`
  (known_hardware.py:57) compares bytes x (1 - 0.05) on both sides (base.py:155-161, known_hardware.py:52-54),
  so the 5 % tolerance cancels: the host needs at least the stated amount, exactly. A host with 1 TiB of DIMMs
  reads about 1.05e12 bytes, under 1 TiB (the FIXME at system_list.py:74). A custom system's
  `MemoryConfiguration` matches within 5 % either way (memory.py:81-84, the detected side's tolerance).
- GPUs (systems/accelerator.py): `nvidia-smi --query-gpu=gpu_name,pci.device_id,uuid,memory.total,power.limit,
  power.max_limit,mig.mode.current` (accelerator.py:39-47, 252-270), compute SM from pycuda (202-221). If any
  GPU has MIG mode enabled, no full GPU is kept (273-277); MIG slices come from `nvidia-smi -L` (107, 405-463).
  Then CUDA_VISIBLE_DEVICES filters by index (nvidia-smi's order) or GPU-UUID; any other token raises (136-199).
  NVIDIA_VISIBLE_DEVICES is not read by the Python: the container runtime decides which GPUs nvidia-smi sees
  (Makefile:218-231). Compared per GPU (accelerator.py:362-381): type (Discrete), memory within 5 % (MiB from
  nvidia-smi, known_hardware.py:39), power.max_limit exactly, PCI device id (ignoring case), SM exactly; the
  name only when either side has no PCI id. GPUs group by all their fields; the host must show exactly one kind
  per entry and exactly the count (accelerator.py:584-602).
- Jetson: when nvidia-smi is absent and /sys/firmware/devicetree/base/model exists, that file's text (printable
  characters) is the GPU name, Integrated, no memory, PCI id or power (accelerator.py:287-300); SM from pycuda.
  `KnownGPU.Orin` matches "Orin" or exactly "NVIDIA Orin Jetson-Small Developer Kit", so a production "Jetson
  AGX Orin Developer Kit" matches nothing; Xavier NX matches ".*Xavier NX.*".

Entries not evaluated, listed in `Rules.skipped`: Inferentia systems (detected only with USE_INFERENTIA=1 from
AWS's metadata service, systems/inferentia.py, so never on a GPU host), anything else whose expression this
reader does not understand, and, if `code/common/systems/custom_list.py` exists, any entry of it that cannot be
evaluated (entries it can evaluate are added, as NVIDIA's `system_confs.update(custom_systems)` does).
Two equal `system_confs` values would make the later an Enum alias; v2.0 has none (its tests check NVIDIA's
own Enum), and this module does not look for them.

What v4.1 changed (the same paths; `load_rules` tells the rounds apart by the system list's registry, `SHAPES`):

- The list: `_system_confs = dict()` (system_list.py:33), `add_systems(..., target_dict=_system_confs)`
  (:36-62), `KnownSystem = MatchableEnum("KnownSystem", _system_confs)` (:175), whose `get_first_match` returns
  the first member whose rule matches the detected system (base.py:178-189, the same comparisons as v2.0's
  `==`: systems.py:387-392). After it, `_deprecated_systems` (:178-222, `DeprecatedSystem`, :223): a host that
  matches only one of those gets a logged warning and still no system (:226-240), so it runs nothing. The
  custom list is code/common/systems/custom_list.py as in v2.0, unless MLPINF_CUSTOM_DEFINITION_PATH names
  another folder (:162-174; this reader takes it as unset). Every entry of the system list must be read: one
  this reader cannot evaluate raises `DetectionRulesError` with its file:line (custom entries stay notes).
- Known hardware: `KnownGPU`/`KnownCPU`/`KnownMIG(MatchableEnum)` with keyword arguments; the Hopper x86 systems
  name one CPU each (Intel 8480C for H100-SXM and H200, 8480+ for H100-NVL, EPYC 7742 for H100-PCIe:
  known_hardware.py:284-311), no x86_64_Generic. H200 and H200-CTS differ only in max power limit (700 against
  1000 W, :125-136) and CTS's 2 TB memory floor (system_list.py:83). `KnownCPU.GraceHopper_ARM` is
  `AliasedName("aarch64_0", ("NVIDIA Grace CPU"))` (:285): the alias is a str, which AliasedName iterates
  character by character (constants.py:259), so only the name "aarch64_0" matches (or a one-character name).
- CPU (cpu.py:65-79, 105-119): "Model name", else Architecture + "_" + Model (Grace's lscpu shows no model name,
  Model 0: "aarch64_0"); cores from "Core(s) per socket", else "Core(s) per cluster", else 0; threads default
  1; sockets from "Socket(s)" with "-" read as 1 (a Jetson's clusters); no "Socket(s)" at all raises.
- GPUs (accelerator.py:263-309): the Jetson devicetree's model, where the file exists, comes before nvidia-smi
  (v2.0: after it), and then no discrete GPU is read; compute SM from cuda-python (:209-229). `KnownGPU.Orin`
  matches "Orin" or a full match of "(NVIDIA Jetson AGX Orin)|(NVIDIA Jetson AGX Orin Developer Kit)" with any
  SM (:223-228). Memory, MIG and CUDA_VISIBLE_DEVICES are read as in v2.0.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

SYSTEMS = "code/common/systems"
CONSTANTS = "code/common/constants.py"
KNOWN_HARDWARE = f"{SYSTEMS}/known_hardware.py"
SYSTEM_LIST = f"{SYSTEMS}/system_list.py"
MEMORY = f"{SYSTEMS}/memory.py"
CUSTOM_LIST = f"{SYSTEMS}/custom_list.py"

# constants.py:46-56 (v2.0), :85-96 (v4.1), ByteSuffix (checked against the checkouts by the tests).
BYTE_SUFFIXES = {
    "B": (1, 0),
    "KiB": (1024, 1),
    "MiB": (1024, 2),
    "GiB": (1024, 3),
    "TiB": (1024, 4),
    "KB": (1000, 1),
    "MB": (1000, 2),
    "GB": (1000, 3),
    "TB": (1000, 4),
}

# Jetson module -> CUDA compute capability. NVIDIA asks pycuda (v2.0) or cuda-python (v4.1); the plugin reads the
# devicetree's compatible.
TEGRA_SM = {"nvidia,tegra234": 87, "nvidia,tegra194": 72, "nvidia,tegra186": 62, "nvidia,tegra210": 53}


@dataclass(frozen=True)
class ListShape:
    """How a round's system_list.py is written: the dict `add_systems` fills, the enum KnownSystem is made with,
    the deprecated systems' dict (made into `DeprecatedSystem` after KnownSystem), the top-level names read from
    the environment (skipped: taken as unset), whether an entry this reader cannot evaluate stops the reading
    (v4.1) or is skipped with a note (v2.0, whose Inferentia entries are never detected on a GPU host), and which
    side of a layout leads the comparison."""

    round: str
    registry: str
    enum: str
    deprecated: str | None = None
    environment: tuple[str, ...] = ()
    strict: bool = False
    rules_first: bool = False  # the known system's layouts lead the comparison (`Layout.rules_first`)


SHAPES = {
    "v2.0": ListShape("v2.0", "system_confs", "Enum"),
    "v4.1": ListShape(
        "v4.1",
        "_system_confs",
        "MatchableEnum",
        "_deprecated_systems",
        ("_custom_definition_path",),
        strict=True,
        rules_first=True,
    ),
}


class DetectionRulesError(ValueError):
    """NVIDIA's systems files are missing or not in the shape this reader knows: the file and line."""


class _Unevaluable(Exception):
    def __init__(self, reason: str, where: str = ""):
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason


# What evaluating an unexpected expression can raise besides _Unevaluable: the entry is skipped, not the file.
_EVAL_ERRORS = (
    _Unevaluable,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
    RecursionError,
)


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, _Unevaluable) else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------------------
# Matchers: NVIDIA's rule values (base.py, constants.py), each matching a value as NVIDIA detects it.


class Matcher:
    where: str = ""

    def matches(self, value) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class AnyValue(Matcher):
    """MATCH_ANY (base.py:66-88)."""

    where: str = ""

    def matches(self, value) -> bool:
        return True

    def describe(self) -> str:
        return "any"


@dataclass(frozen=True)
class Exact(Matcher):
    """A plain value compared with `==` (a str case-sensitively, an int, a float, None, an enum member)."""

    value: object
    where: str = ""

    def matches(self, value) -> bool:
        return value == self.value

    def describe(self) -> str:
        return "none" if self.value is None else str(self.value)


@dataclass(frozen=True)
class Name(Matcher):
    """AliasedName (constants.py:140-212): ignoring case, the name or an alias; else a full regex match."""

    name: str | None
    aliases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    where: str = ""

    def matches(self, value) -> bool:
        if value is None or self.name is None:
            return value is None and self.name is None
        if not isinstance(value, str):
            return False
        lower = value.lower()
        if lower == self.name.lower() or lower in (alias.lower() for alias in self.aliases):
            return True
        return any(re.fullmatch(pattern, value) for pattern in self.patterns)

    def describe(self) -> str:
        if self.patterns:
            return f"{self.name} (a name matching {' or '.join(self.patterns)})"
        return str(self.name)


@dataclass(frozen=True)
class OneOf(Matcher):
    """MatchAllowList (base.py:36-62)."""

    options: tuple[Matcher, ...]
    where: str = ""

    def matches(self, value) -> bool:
        return any(option.matches(value) for option in self.options)

    def describe(self) -> str:
        return " or ".join(option.describe() for option in self.options)


@dataclass(frozen=True)
class MemoryAmount(Matcher):
    """Memory(quantity, ByteSuffix.X) (constants.py:64-128); equal when the byte counts are."""

    quantity: float
    suffix: str
    bytes: int
    where: str = ""

    def matches(self, value) -> bool:
        return value is not None and value == self.bytes

    def describe(self) -> str:
        return f"{self.quantity:g} {self.suffix}"


@dataclass(frozen=True)
class Approx(Matcher):
    """MatchFloatApproximate over bytes (base.py:87-124): math.isclose with rel_tol."""

    memory: MemoryAmount
    rel_tol: float
    where: str = ""

    def matches(self, value) -> bool:
        return value is not None and math.isclose(self.memory.bytes, value, rel_tol=self.rel_tol)

    def describe(self) -> str:
        return f"{self.memory.describe()} within {self.rel_tol:.0%}"


@dataclass(frozen=True)
class Threshold(Matcher):
    """MatchNumericThreshold over a MemoryConfiguration (base.py:127-173, known_hardware.py:44-61)."""

    memory: MemoryAmount
    rule_tolerance: float
    host_tolerance: float
    less_tolerance: bool  # mem_conf_to_min_bytes: bytes * (1 - tolerance); mem_conf_to_bytes: bytes
    minimum: bool = True
    where: str = ""

    def _numeric(self, count: int, tolerance: float) -> float:
        return count * (1 - tolerance) if self.less_tolerance else count

    def matches(self, value) -> bool:
        if value is None:
            return False
        host = self._numeric(value, self.host_tolerance)
        rule = self._numeric(self.memory.bytes, self.rule_tolerance)
        return host >= rule if self.minimum else host <= rule

    def describe(self) -> str:
        return f"{'at least' if self.minimum else 'at most'} {self.memory.describe()}"


@dataclass(frozen=True)
class Close(Approx):
    """A plain MemoryConfiguration (memory.py:81-84): within the detected side's tolerance. The same comparison as
    MatchFloatApproximate; its own type because only this one may stand for a system's memory rule."""


@dataclass(frozen=True)
class Member:
    """An enum member of NVIDIA's (CPUArchitecture.x86_64, AcceleratorType.Discrete, KnownGPU.A30...)."""

    enum: str
    name: str
    value: object

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class DetectedCpu:
    """A CPU as NVIDIA's CPU.detect() builds it (cpu.py:65-77)."""

    name: str
    architecture: Member
    core_count: int
    threads_per_core: int


@dataclass(frozen=True)
class DetectedAccelerator:
    """A GPU or MIG slice as NVIDIA's GPU.detect() / MIG.detect() builds it (accelerator.py:320-350, 471-486)."""

    kind: str  # "GPU" or "MIG"
    name: str
    accelerator_type: Member
    vram: int | None
    max_power_limit: float | None
    pci_id: str | None
    compute_sm: int | None
    num_gpcs: int | None = None

    def describe(self) -> str:
        if self.accelerator_type.name == "Integrated":
            return f"integrated GPU {self.name!r} (SM {self.compute_sm})"
        memory = f"{self.vram / 2**30:.1f} GiB" if self.vram is not None else "unknown memory"
        power = f"{self.max_power_limit:g} W" if self.max_power_limit is not None else "no"
        return f"{self.name} (PCI id {self.pci_id}, {memory}, max power {power}, SM {self.compute_sm})"


@dataclass(frozen=True)
class CpuSpec(Matcher):
    """A CPU(...) of NVIDIA's (cpu.py:55-85), usually a KnownCPU value."""

    name: Matcher
    architecture: Matcher
    core_count: Matcher
    threads_per_core: Matcher
    key: str = "CPU(...)"
    where: str = ""

    def differences(self, cpu: DetectedCpu) -> list[str]:
        checks = (
            ("model name", self.name, cpu.name),
            ("architecture", self.architecture, cpu.architecture),
            ("cores per socket", self.core_count, cpu.core_count),
            ("threads per core", self.threads_per_core, cpu.threads_per_core),
        )
        return [label for label, matcher, value in checks if not matcher.matches(value)]

    def matches(self, value) -> bool:
        return isinstance(value, DetectedCpu) and not self.differences(value)

    def describe(self) -> str:
        return (
            f"{self.name.describe()} ({self.architecture.describe()}, {self.core_count.describe()} cores per "
            f"socket, {self.threads_per_core.describe()} threads per core; {self.key}, {self.where})"
        )


@dataclass(frozen=True)
class GpuSpec(Matcher):
    """A GPU(...) or MIG(...) of NVIDIA's (accelerator.py:308-400, 463-500), usually a KnownGPU value."""

    kind: str
    name: Matcher
    accelerator_type: Matcher
    vram: Matcher
    max_power_limit: Matcher
    pci_id: Matcher
    compute_sm: Matcher
    num_gpcs: Matcher | None = None
    key: str = "GPU(...)"
    where: str = ""

    def _pci_typed(self) -> bool:
        return isinstance(self.pci_id, Name) or (isinstance(self.pci_id, Exact) and isinstance(self.pci_id.value, str))

    def differences(self, gpu: DetectedAccelerator) -> list[str]:
        if gpu.kind != self.kind:
            return [f"kind ({gpu.kind}, not {self.kind})"]
        checks = [
            ("type", self.accelerator_type, gpu.accelerator_type),
            ("memory", self.vram, gpu.vram),
            ("max power limit", self.max_power_limit, gpu.max_power_limit),
            ("PCI id", self.pci_id, gpu.pci_id),
            ("compute SM", self.compute_sm, gpu.compute_sm),
        ]
        if self.num_gpcs is not None:
            checks.append(("GPCs", self.num_gpcs, gpu.num_gpcs))
        # accelerator.py:376-381: the name counts only when either PCI id is not a string.
        if not (self._pci_typed() and isinstance(gpu.pci_id, str)):
            checks.insert(0, ("name", self.name, gpu.name))
        return [label for label, matcher, value in checks if not matcher.matches(value)]

    def matches(self, value) -> bool:
        return isinstance(value, DetectedAccelerator) and not self.differences(value)

    def describe(self) -> str:
        parts = [f"PCI id {self.pci_id.describe()}", f"memory {self.vram.describe()}"]
        power = self.max_power_limit
        parts.append(f"max power {power.describe()}{' W' if isinstance(power, Exact) and power.value else ''}")
        parts.append(f"SM {self.compute_sm.describe()}")
        if self.num_gpcs is not None:
            parts.append(f"{self.num_gpcs.describe()} GPCs")
        return f"{self.name.describe()} ({', '.join(parts)}; {self.key}, {self.where})"


@dataclass(frozen=True)
class Layout(Matcher):
    """CPUConfiguration / AcceleratorConfiguration (v2.0 cpu.py:127-148, accelerator.py:584-602): the same number
    of kinds; each detected kind equal to an entry (the first found) with exactly its count. In v4.1 the known
    system's side leads (`rules_first`: cpu.py:141-162, accelerator.py:600-618): each entry equal to a detected
    kind (the first found) with exactly its count."""

    entries: tuple[tuple[Matcher, Matcher], ...]
    where: str = ""
    rules_first: bool = False

    def matches(self, value) -> bool:
        counts: Counter = value
        if len(counts) != len(self.entries):
            return False
        if self.rules_first:
            for key, count in self.entries:
                found = next((seen for item, seen in counts.items() if key.matches(item)), None)
                if found is None or not count.matches(found):
                    return False
            return True
        for item, count in counts.items():
            found = next((entry for entry in self.entries if entry[0].matches(item)), None)
            if found is None or not found[1].matches(count):
                return False
        return True

    def describe(self) -> str:
        return ", ".join(
            key.describe() if isinstance(count, AnyValue) else f"{count.describe()}x {key.describe()}"
            for key, count in self.entries
        )


# ---------------------------------------------------------------------------------------------------------
# The rules: one SystemRule per KnownSystem member.


@dataclass(frozen=True)
class SystemRule:
    name: str  # the KnownSystem member: "A30x8"
    system_id: str | None  # "A30x8", "DGX-A100_A100-SXM-80GBx8"
    cpu: Matcher  # Layout of (CpuSpec-like, socket count), or AnyValue
    memory: Matcher  # Threshold (min_memory_requirement), Close, or AnyValue
    accelerators: Matcher  # Layout of (GpuSpec, count), or AnyValue
    where: str  # "code/common/systems/system_list.py:112"

    @property
    def cpus(self) -> tuple[CpuSpec, ...] | None:
        """The CPUs allowed, resolved to their compared fields; None when any CPU will do."""
        if not isinstance(self.cpu, Layout) or not self.cpu.entries:
            return None
        key = self.cpu.entries[0][0]
        options = key.options if isinstance(key, OneOf) else (key,)
        if not all(isinstance(option, CpuSpec) for option in options):
            return None
        return tuple(options)

    @property
    def min_memory_bytes(self) -> int | None:
        return self.memory.memory.bytes if isinstance(self.memory, Threshold) and self.memory.minimum else None

    @property
    def gpu(self) -> GpuSpec | None:
        if isinstance(self.accelerators, Layout) and self.accelerators.entries:
            spec = self.accelerators.entries[0][0]
            return spec if isinstance(spec, GpuSpec) else None
        return None

    @property
    def count(self) -> int | None:
        if isinstance(self.accelerators, Layout) and len(self.accelerators.entries) == 1:
            count = self.accelerators.entries[0][1]
            return count.value if isinstance(count, Exact) else None
        return None


@dataclass(frozen=True)
class SkippedRule:
    name: str  # the KnownSystem member(s) it would have made, or "?"
    where: str
    reason: str
    inferentia: bool = False


class Rules(dict):
    """KnownSystem member name -> SystemRule, in NVIDIA's match order, with what was skipped, the round whose
    detection reads the host ("v2.0", "v4.1") and, from v4.1, the DeprecatedSystem members (same shape)."""

    def __init__(self, rules, *, code_dir: Path, skipped=(), enums=None, round: str = "v2.0", deprecated=None):
        super().__init__(rules)
        self.code_dir = code_dir
        self.skipped: tuple[SkippedRule, ...] = tuple(skipped)
        self.enums: dict[str, dict[str, Member]] = enums or {}
        self.round = round
        self.deprecated: dict[str, SystemRule] = dict(deprecated or {})

    def architecture(self, text: str | None) -> Member | None:
        """CPUArchitecture(text) as NVIDIA evaluates it (cpu.py:75): a hash lookup, so the text must be the
        member's name in lower case (Enum._value2member_map_; AliasedName hashes name.lower())."""
        for member in self.enums.get("CPUArchitecture", {}).values():
            if isinstance(member.value, Name) and text == (member.value.name or "").lower():
                return member
        return None

    def accelerator_type(self, name: str) -> Member:
        try:
            return self.enums["AcceleratorType"][name]
        except KeyError:
            raise DetectionRulesError(f"{self.code_dir / CONSTANTS}: AcceleratorType has no {name}") from None


# ---------------------------------------------------------------------------------------------------------
# The AST reader.


@dataclass
class _Source:
    rel: str
    path: Path
    tree: ast.Module

    def at(self, node) -> str:
        return f"{self.rel}:{getattr(node, 'lineno', 1)}"


@dataclass(frozen=True)
class _EnumClass:
    name: str
    members: dict

    def member(self, name: str, where: str) -> Member:
        found = self.members.get(name)
        if found is None:
            raise _Unevaluable(f"{self.name} has no member {name}", where)
        if isinstance(found, _Unevaluable):
            raise _Unevaluable(f"{self.name}.{name}: {found.reason}", where)
        return found


@dataclass(frozen=True)
class _Builtin:
    name: str


@dataclass(frozen=True)
class _Format:
    text: str


@dataclass(frozen=True)
class _Pattern:
    pattern: str


@dataclass(frozen=True)
class _MemConf:
    memory: MemoryAmount
    tolerance: float


@dataclass(frozen=True)
class _SystemConf:
    cpu: Matcher
    memory: Matcher
    accelerators: Matcher
    system_id: str | None


@dataclass
class _Registry:
    name: str
    entries: dict = field(default_factory=dict)
    where: str = ""

    def set(self, key, value) -> None:
        if not isinstance(key, str) or not isinstance(value, _SystemConf):
            raise _Unevaluable(f"{self.name}[...] must be a SystemConfiguration under a str key", self.where)
        self.entries[key] = SystemRule(key, value.system_id, value.cpu, value.memory, value.accelerators, self.where)


def _parse(code_dir: Path, rel: str) -> _Source:
    path = code_dir / rel
    if not path.is_file():
        raise DetectionRulesError(f"{path}: not found (is {code_dir} NVIDIA's closed/NVIDIA folder?)")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise DetectionRulesError(f"{path}:{getattr(exc, 'lineno', 1)}: cannot be parsed: {exc}") from None
    return _Source(rel, path, tree)


def _bind(name: str, params: tuple[str, ...], args, kwargs, defaults: dict, where: str) -> dict:
    if len(args) > len(params):
        raise _Unevaluable(f"{name}() takes at most {len(params)} arguments", where)
    bound = dict(zip(params, args, strict=False))
    for key, value in kwargs.items():
        if key not in params or key in bound:
            raise _Unevaluable(f"{name}() got an unexpected argument {key}", where)
        bound[key] = value
    for param in params:
        if param not in bound:
            if param not in defaults:
                raise _Unevaluable(f"{name}() is missing {param}", where)
            bound[param] = defaults[param]
    return bound


def _matcher(value, where: str) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str | int | float | Member) or value is None:
        return Exact(value, where)
    raise _Unevaluable(f"{value!r} is not a value NVIDIA compares", where)


def _layout(value, where: str, rules_first: bool = False) -> Matcher:
    if isinstance(value, AnyValue):
        return value
    if not isinstance(value, tuple) or not all(isinstance(pair, tuple) and len(pair) == 2 for pair in value):
        raise _Unevaluable("a configuration layout must be a dict", where)
    entries = tuple((_matcher(key, where), _matcher(count, where)) for key, count in value)
    return Layout(entries, where, rules_first)


class _Interp:
    """Evaluates the expressions and the few statements NVIDIA's systems files use."""

    def __init__(self, source: _Source, scope: dict, tolerance: float, shape: ListShape | None = None):
        self.source = source
        self.scope = scope
        self.tolerance = tolerance  # MemoryConfiguration.comparison_tolerance's default (memory.py)
        self.shape = shape or SHAPES["v2.0"]

    @property
    def registry(self) -> str:
        """The name of the dict KnownSystem is made from (a custom list adds to it)."""
        return self.shape.registry

    @property
    def environment(self) -> tuple[str, ...]:
        return self.shape.environment

    @property
    def rules_first(self) -> bool:
        return self.shape.rules_first

    def at(self, node) -> str:
        return self.source.at(node)

    def eval(self, node, local: dict):
        handler = getattr(self, f"_e_{type(node).__name__}", None)
        if handler is None:
            raise _Unevaluable(f"cannot evaluate {ast.unparse(node)!r}", self.at(node))
        return handler(node, local)

    def _e_Constant(self, node, local):
        return node.value

    def _e_List(self, node, local):
        return tuple(self.eval(item, local) for item in node.elts)

    _e_Tuple = _e_List

    def _e_Dict(self, node, local):
        if any(key is None for key in node.keys):
            raise _Unevaluable("** in a dict", self.at(node))
        return tuple((self.eval(k, local), self.eval(v, local)) for k, v in zip(node.keys, node.values, strict=True))

    def _e_Name(self, node, local):
        for names in (local, self.scope):
            if node.id in names:
                return names[node.id]
        raise _Unevaluable(f"{node.id} is not known to this reader", self.at(node))

    def _e_Attribute(self, node, local):
        base = self.eval(node.value, local)
        where = self.at(node)
        if isinstance(base, _Builtin) and base.name == "re" and node.attr == "compile":
            return _Builtin("re.compile")
        if isinstance(base, _EnumClass):
            return base.member(node.attr, where)
        if isinstance(base, Member) and node.attr == "value":
            return base.value
        if isinstance(base, GpuSpec) and node.attr == "name":
            return base.name
        if isinstance(base, str) and node.attr == "format":
            return _Format(base)
        raise _Unevaluable(f"cannot evaluate {ast.unparse(node)!r}", where)

    def _e_BinOp(self, node, local):
        left, right = self.eval(node.left, local), self.eval(node.right, local)
        if not isinstance(node.op, ast.Add) or not isinstance(right, str):
            raise _Unevaluable(f"cannot evaluate {ast.unparse(node)!r}", self.at(node))
        if isinstance(left, str):
            return left + right
        if isinstance(left, Name) and not left.patterns and left.name is not None:  # constants.py:165-172
            return Name(left.name + right, tuple(alias + right for alias in left.aliases), (), self.at(node))
        raise _Unevaluable(f"cannot evaluate {ast.unparse(node)!r}", self.at(node))

    def _e_JoinedStr(self, node, local):
        return "".join(str(self.eval(part, local)) for part in node.values)

    def _e_FormattedValue(self, node, local):
        if node.format_spec is not None or node.conversion != -1:
            raise _Unevaluable("formatted values with a spec", self.at(node))
        return self.eval(node.value, local)

    def _e_Call(self, node, local):
        where = self.at(node)
        func = self.eval(node.func, local)
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
            raise _Unevaluable("* or ** arguments", where)
        args = [self.eval(arg, local) for arg in node.args]
        kwargs = {k.arg: self.eval(k.value, local) for k in node.keywords}
        if isinstance(func, _Format):
            return func.text.format(*args, **kwargs)
        if isinstance(func, _Builtin) and func.name in _BUILTINS:
            return _BUILTINS[func.name](self, args, kwargs, where)
        if isinstance(func, _Function):
            return func.call(args, kwargs, where)
        raise _Unevaluable(f"cannot call {ast.unparse(node.func)}", where)

    def run(self, body: list, local: dict):
        """The statements of add_systems and of one-line helpers: return, for, system_confs[...] = ..."""
        for stmt in body:
            if isinstance(stmt, ast.Return):
                return self.eval(stmt.value, local) if stmt.value is not None else None
            if isinstance(stmt, ast.Expr):
                self.eval(stmt.value, local)
            elif isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name) and not stmt.orelse:
                for item in self.eval(stmt.iter, local):
                    self.run(stmt.body, {**local, stmt.target.id: item})
            elif _registry_assignment(stmt):
                registry = self.eval(stmt.targets[0].value, local)
                if not isinstance(registry, _Registry):
                    raise _Unevaluable("assignment to something other than a systems dict", self.at(stmt))
                registry.set(self.eval(stmt.targets[0].slice, local), self.eval(stmt.value, local))
            else:
                raise _Unevaluable(f"statement not understood: {ast.unparse(stmt)[:80]!r}", self.at(stmt))
        return None


@dataclass(frozen=True)
class _Function:
    name: str
    node: ast.FunctionDef
    interp: _Interp

    def call(self, args, kwargs, where: str):
        spec = self.node.args
        if spec.vararg or spec.kwarg or spec.kwonlyargs or spec.posonlyargs:
            raise _Unevaluable(f"{self.name}() has a signature this reader does not follow", where)
        params = tuple(arg.arg for arg in spec.args)
        defaults = {
            param: self.interp.eval(value, {})
            for param, value in zip(params[len(params) - len(spec.defaults) :], spec.defaults, strict=True)
        }
        return self.interp.run(self.node.body, _bind(self.name, params, args, kwargs, defaults, where))


def _registry_assignment(stmt) -> bool:
    return (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Subscript)
        and isinstance(stmt.targets[0].value, ast.Name)
    )


# Builtins: NVIDIA's constructors, as matchers. Parameter names are those of the classes' fields.


def _b_aliased_name(interp, args, kwargs, where):
    bound = _bind("AliasedName", ("name", "aliases", "patterns"), args, kwargs, {"aliases": (), "patterns": ()}, where)
    if not all(isinstance(pattern, _Pattern) for pattern in bound["patterns"]):
        raise _Unevaluable("AliasedName patterns must be re.compile(...)", where)
    patterns = tuple(pattern.pattern for pattern in bound["patterns"])
    # A str given as the aliases (v4.1's GraceHopper_ARM: `("NVIDIA Grace CPU")`, no comma) is iterated by
    # AliasedName.__eq__ as it is here: one alias a character.
    return Name(bound["name"], tuple(bound["aliases"]), patterns, where)


def _b_re_compile(interp, args, kwargs, where):
    bound = _bind("re.compile", ("pattern",), args, kwargs, {}, where)
    return _Pattern(bound["pattern"])


def _b_allow_list(interp, args, kwargs, where):
    values = _bind("MatchAllowList", ("L",), args, kwargs, {}, where)["L"]
    return OneOf(tuple(_matcher(value, where) for value in values), where)


def _b_memory(interp, args, kwargs, where):
    bound = _bind("Memory", ("quantity", "byte_suffix"), args, kwargs, {}, where)
    suffix = bound["byte_suffix"]
    if not isinstance(suffix, Member) or suffix.enum != "ByteSuffix":
        raise _Unevaluable("Memory() needs a ByteSuffix", where)
    base, exponent = suffix.value
    return MemoryAmount(bound["quantity"], suffix.name, round(bound["quantity"] * base**exponent), where)


def _b_memory_configuration(interp, args, kwargs, where):
    params = ("host_memory_capacity", "comparison_tolerance")
    bound = _bind("MemoryConfiguration", params, args, kwargs, {"comparison_tolerance": interp.tolerance}, where)
    if not isinstance(bound["host_memory_capacity"], MemoryAmount):
        raise _Unevaluable("MemoryConfiguration() needs a Memory", where)
    return _MemConf(bound["host_memory_capacity"], bound["comparison_tolerance"])


def _b_float_approximate(interp, args, kwargs, where):
    bound = _bind("MatchFloatApproximate", ("o", "to_float_fn", "rel_tol"), args, kwargs, {"rel_tol": 0.05}, where)
    if not isinstance(bound["o"], MemoryAmount) or getattr(bound["to_float_fn"], "name", "") != "mem_to_bytes":
        raise _Unevaluable("MatchFloatApproximate() over something other than Memory bytes", where)
    return Approx(bound["o"], bound["rel_tol"], where)


def _b_numeric_threshold(interp, args, kwargs, where):
    params = ("o", "to_numeric_fn", "min_threshold")
    bound = _bind("MatchNumericThreshold", params, args, kwargs, {"min_threshold": True}, where)
    function = getattr(bound["to_numeric_fn"], "name", "")
    if not isinstance(bound["o"], _MemConf) or function not in ("mem_conf_to_bytes", "mem_conf_to_min_bytes"):
        raise _Unevaluable("MatchNumericThreshold() over something other than a MemoryConfiguration", where)
    memory = bound["o"]
    less = function == "mem_conf_to_min_bytes"
    minimum = bool(bound["min_threshold"])
    return Threshold(memory.memory, memory.tolerance, interp.tolerance, less, minimum, memory.memory.where or where)


def _b_cpu(interp, args, kwargs, where):
    params = ("name", "architecture", "core_count", "threads_per_core")
    bound = _bind("CPU", params, args, kwargs, {}, where)
    return CpuSpec(*(_matcher(bound[k], where) for k in params), where=where)


_GPU_FIELDS = ("name", "accelerator_type", "vram", "max_power_limit", "pci_id", "compute_sm")


def _b_gpu(interp, args, kwargs, where):
    bound = _bind("GPU", _GPU_FIELDS, args, kwargs, {}, where)
    return GpuSpec("GPU", *(_matcher(bound[k], where) for k in _GPU_FIELDS), where=where)


def _b_mig(interp, args, kwargs, where):
    bound = _bind("MIG", (*_GPU_FIELDS, "num_gpcs"), args, kwargs, {}, where)
    fields_ = (_matcher(bound[k], where) for k in _GPU_FIELDS)
    return GpuSpec("MIG", *fields_, num_gpcs=_matcher(bound["num_gpcs"], where), where=where)


def _b_inferentia(interp, args, kwargs, where):
    raise _Unevaluable("Inferentia is detected only with USE_INFERENTIA=1 (systems/inferentia.py)", where)


def _b_cpu_configuration(interp, args, kwargs, where):
    layout = _bind("CPUConfiguration", ("layout",), args, kwargs, {}, where)["layout"]
    return _layout(layout, where, interp.rules_first)


def _b_accelerator_configuration(interp, args, kwargs, where):
    layout = _bind("AcceleratorConfiguration", ("layout",), args, kwargs, {}, where)["layout"]
    return _layout(layout, where, interp.rules_first)


def _b_system_configuration(interp, args, kwargs, where):
    params = ("host_cpu_conf", "host_mem_conf", "accelerator_conf", "numa_conf", "system_id")
    bound = _bind("SystemConfiguration", params, args, kwargs, {"numa_conf": None, "system_id": None}, where)
    memory = bound["host_mem_conf"]
    if isinstance(memory, _MemConf):
        memory = Close(memory.memory, interp.tolerance, where)
    if not isinstance(memory, Threshold | Close | AnyValue):
        raise _Unevaluable("host_mem_conf is not a memory rule this reader knows", where)
    for name in ("host_cpu_conf", "accelerator_conf"):
        if not isinstance(bound[name], Layout | AnyValue):
            raise _Unevaluable(f"{name} is not a configuration", where)
    return _SystemConf(bound["host_cpu_conf"], memory, bound["accelerator_conf"], bound["system_id"])


def _b_dict(interp, args, kwargs, where):
    if args or kwargs:
        raise _Unevaluable("dict() with arguments", where)
    return ()


def _b_pci_id_match_list(interp, args, kwargs, where):
    """known_hardware.py: pci_id_match_list(L) -> AliasedName(full[0], tuple(full[1:])), full via get_full_pci_id."""
    ids = _bind("pci_id_match_list", ("L",), args, kwargs, {}, where)["L"]
    full_id = interp.scope.get("get_full_pci_id")
    if not ids or not isinstance(full_id, _Function):
        raise _Unevaluable("pci_id_match_list() needs ids and get_full_pci_id()", where)
    full = [full_id.call([value], {}, where) for value in ids]
    return Name(full[0], tuple(full[1:]), (), where)


_BUILTINS = {
    "AliasedName": _b_aliased_name,
    "re.compile": _b_re_compile,
    "MatchAllowList": _b_allow_list,
    "Memory": _b_memory,
    "MemoryConfiguration": _b_memory_configuration,
    "MatchFloatApproximate": _b_float_approximate,
    "MatchNumericThreshold": _b_numeric_threshold,
    "CPU": _b_cpu,
    "GPU": _b_gpu,
    "MIG": _b_mig,
    "Inferentia": _b_inferentia,
    "CPUConfiguration": _b_cpu_configuration,
    "AcceleratorConfiguration": _b_accelerator_configuration,
    "SystemConfiguration": _b_system_configuration,
    "dict": _b_dict,
    "pci_id_match_list": _b_pci_id_match_list,
}


def _class_assignments(node: ast.ClassDef):
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            yield stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            yield stmt.target.id, stmt.value


def _enum_class(interp: _Interp, node: ast.ClassDef) -> _EnumClass:
    members: dict = {}
    for name, value_node in _class_assignments(node):
        try:
            value = interp.eval(value_node, {})
        except _EVAL_ERRORS as exc:
            members[name] = _Unevaluable(_reason(exc), interp.at(value_node))
            continue
        if isinstance(value, CpuSpec | GpuSpec):
            value = replace(value, key=f"{node.name}.{name}")
        members[name] = Member(node.name, name, value)
    return _EnumClass(node.name, members)


def _classes(source: _Source, names: tuple[str, ...]) -> dict[str, ast.ClassDef]:
    found = {node.name: node for node in source.tree.body if isinstance(node, ast.ClassDef)}
    missing = [name for name in names if name not in found]
    if missing:
        names = ", ".join(missing)
        raise DetectionRulesError(f"{source.path}:1: no class {names} (not NVIDIA's v2.0 or v4.1 layout?)")
    return found


def _tolerance(code_dir: Path) -> float:
    """MemoryConfiguration.comparison_tolerance's default (memory.py:62)."""
    source = _parse(code_dir, MEMORY)
    node = _classes(source, ("MemoryConfiguration",))["MemoryConfiguration"]
    for name, value in _class_assignments(node):
        if name == "comparison_tolerance" and isinstance(value, ast.Constant):
            return float(value.value)
    raise DetectionRulesError(f"{source.path}:{node.lineno}: MemoryConfiguration has no comparison_tolerance default")


def _hardware_scope(code_dir: Path) -> tuple[dict, float]:
    """MATCH_ANY, the enums of constants.py and known_hardware.py, and known_hardware.py's helpers."""
    tolerance = _tolerance(code_dir)
    scope: dict = {name: _Builtin(name) for name in _BUILTINS}
    scope.update(MATCH_ANY=AnyValue(), re=_Builtin("re"))
    constants = _parse(code_dir, CONSTANTS)
    interp = _Interp(constants, scope, tolerance)
    enums = ("ByteSuffix", "CPUArchitecture", "AcceleratorType")
    classes = _classes(constants, enums)
    for name in enums:
        scope[name] = _enum_class(interp, classes[name])
    known = _parse(code_dir, KNOWN_HARDWARE)
    interp = _Interp(known, scope, tolerance)
    _classes(known, ("KnownGPU", "KnownCPU"))
    for node in known.tree.body:
        if isinstance(node, ast.FunctionDef) and node.name not in _BUILTINS:
            scope[node.name] = _Function(node.name, node, interp)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Known"):
            scope[node.name] = _enum_class(interp, node)
    return scope, tolerance


def _skipped_name(stmt, interp: _Interp) -> str:
    """The KnownSystem names a statement would have made, for the list of what was skipped."""
    try:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and len(stmt.value.args) >= 5:
            fmt, counts = interp.eval(stmt.value.args[0], {}), interp.eval(stmt.value.args[4], {})
            return ", ".join(fmt.format(count) for count in counts)
        if _registry_assignment(stmt):
            return str(interp.eval(stmt.targets[0].slice, {}))
    except (_Unevaluable, AttributeError, TypeError, IndexError, KeyError, ValueError):
        pass
    return "?"


def _execute(source: _Source, interp: _Interp, skipped: list, *, ends=(), enum: str = "") -> set:
    """Runs a systems file's top-level statements until each `<end> = <enum>(...)` in `ends` (`KnownSystem =
    Enum(...)`) has been reached; returns those reached. A `NAME = dict()` empties the registry NAME; a statement
    that cannot be evaluated is added to `skipped`."""
    registries = [value for value in interp.scope.values() if isinstance(value, _Registry)]
    reached: set = set()
    for stmt in source.tree.body:
        where = source.at(stmt)
        for registry in registries:
            registry.where = where
        if isinstance(stmt, ast.Import | ast.ImportFrom) or _is_docstring(stmt):
            continue
        created = _registry_created(stmt)
        if isinstance(stmt, ast.FunctionDef):
            interp.scope[stmt.name] = _Function(stmt.name, stmt, interp)
        elif created is not None and isinstance(interp.scope.get(created), _Registry):
            interp.scope[created].entries.clear()
        elif (made := _enum_made(stmt, enum)) in ends:
            reached.add(made)
            if reached == set(ends):
                return reached
        elif isinstance(stmt, ast.If) and "custom_list" in ast.unparse(stmt):
            _custom_list(interp, skipped)
        elif _assigns(stmt, interp.environment):
            continue
        elif isinstance(stmt, ast.Expr | ast.Assign):
            try:
                interp.run([stmt], {})
            except _EVAL_ERRORS as exc:
                text = ast.unparse(stmt)
                skipped.append(SkippedRule(_skipped_name(stmt, interp), where, _reason(exc), "Inferentia" in text))
    return reached


def _is_docstring(stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _registry_created(stmt) -> str | None:
    """NAME for `NAME = dict()`."""
    if (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and ast.unparse(stmt.value) == "dict()"
    ):
        return stmt.targets[0].id
    return None


def _enum_made(stmt, enum: str) -> str | None:
    """NAME for `NAME = <enum>("NAME", ...)`: `KnownSystem = Enum("KnownSystem", system_confs)` (v2.0),
    `KnownSystem = MatchableEnum("KnownSystem", _system_confs)` (v4.1)."""
    if (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and isinstance(stmt.value, ast.Call)
        and ast.unparse(stmt.value.func) == enum
    ):
        return stmt.targets[0].id
    return None


def _assigns(stmt, names: tuple[str, ...]) -> bool:
    return isinstance(stmt, ast.Assign) and any(ast.unparse(target) in names for target in stmt.targets)


def _custom_list(interp: _Interp, skipped: list) -> None:
    """code/common/systems/custom_list.py's custom_systems, when the file exists, added to the round's registry
    (v2.0 system_list.py:159-161; v4.1 :162-174, with MLPINF_CUSTOM_DEFINITION_PATH unset)."""
    registry = interp.scope[interp.registry]
    code_dir = interp.source.path.parents[3]
    if not (code_dir / CUSTOM_LIST).is_file():
        return
    where = registry.where
    try:
        source = _parse(code_dir, CUSTOM_LIST)
    except DetectionRulesError as exc:
        skipped.append(SkippedRule("custom_list", where, str(exc)))
        return
    custom = _Registry("custom_systems")
    scope = {**interp.scope, "custom_systems": custom}
    _execute(source, _Interp(source, scope, interp.tolerance, interp.shape), skipped)
    registry.entries.update(custom.entries)


def load_rules(code_dir: Path, round: str | None = None) -> Rules:
    """NVIDIA's KnownSystem rules from a checkout (the closed/NVIDIA folder, or its code/ folder), in match order.

    `round` ("v2.0", "v4.1"): the shape of its system list (`SHAPES`); by default v4.1 where the list fills
    `_system_confs`, else v2.0. Raises DetectionRulesError, naming the file and line, when a file is missing or
    not shaped as that round's."""
    code_dir = Path(code_dir)
    if not (code_dir / SYSTEM_LIST).is_file() and (code_dir.parent / SYSTEM_LIST).is_file():
        code_dir = code_dir.parent
    if round is not None and round not in SHAPES:
        raise ValueError(f"no system list shape for round {round!r}: known {', '.join(SHAPES)}")
    scope, tolerance = _hardware_scope(code_dir)
    source = _parse(code_dir, SYSTEM_LIST)
    created = {_registry_created(stmt) for stmt in source.tree.body}
    guessed = round is None
    if round is None:
        round = next((shape.round for shape in reversed(SHAPES.values()) if shape.registry in created), "v2.0")
    shape = SHAPES[round]
    if shape.registry not in created:
        what = f"`{shape.registry} = dict()` (not NVIDIA's {round} system list?)"
        if guessed:
            what = " nor ".join(f"`{other.registry} = dict()` ({other.round})" for other in SHAPES.values())
            what += " (not NVIDIA's system list?)"
        raise DetectionRulesError(f"{source.path}:1: no {what}")
    registry = _Registry(shape.registry)
    deprecated = _Registry(shape.deprecated) if shape.deprecated else None
    scope = {**scope, shape.registry: registry, **({deprecated.name: deprecated} if deprecated else {})}
    skipped: list[SkippedRule] = []
    interp = _Interp(source, scope, tolerance, shape)
    ends = ("KnownSystem", "DeprecatedSystem") if deprecated and deprecated.name in created else ("KnownSystem",)
    reached = _execute(source, interp, skipped, ends=ends, enum=shape.enum)
    for end, dictionary in zip(ends, (shape.registry, shape.deprecated), strict=False):
        if end not in reached:
            raise DetectionRulesError(f'{source.path}:1: no `{end} = {shape.enum}("{end}", {dictionary})`')
    unread = [skip for skip in skipped if skip.where.startswith(f"{SYSTEM_LIST}:")]
    if shape.strict and unread:
        raise DetectionRulesError(f"{code_dir / unread[0].where}: cannot be read: {unread[0].reason}")
    if not registry.entries:
        raise DetectionRulesError(f"{source.path}:1: no system could be read (skipped: {skipped[:3]})")
    enums = {
        name: {key: value for key, value in scope[name].members.items() if isinstance(value, Member)}
        for name in ("CPUArchitecture", "AcceleratorType", "ByteSuffix")
    }
    return Rules(
        registry.entries,
        code_dir=code_dir,
        skipped=skipped,
        enums=enums,
        round=round,
        deprecated=deprecated.entries if deprecated else None,
    )


# ---------------------------------------------------------------------------------------------------------
# The host, as NVIDIA's detection sees it.


def _fields(text: str) -> dict[str, str]:
    """cpu.py:41-47 / memory.py:45-52: each line split on ':\\s*', kept when that gives two parts. Keys are
    stripped: newer lscpu indents them; the v2.0 container's (Ubuntu 20.04) does not."""
    fields_: dict[str, str] = {}
    for line in text.split("\n"):
        tokens = re.split(r":\s*", line)
        if len(tokens) == 2:
            fields_[tokens[0].strip()] = tokens[1]
    return fields_


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class CpuFacts:
    """The CPU fields NVIDIA reads from lscpu. v2.0 (cpu.py:72-77, 116) needs the first five; None: lscpu shows no
    usable value, and its detection would stop with an exception. v4.1 (cpu.py:70-79, 118) falls back to `model`
    for the name, `cores_per_cluster` for the cores, and reads a "Socket(s)" of "-" (`sockets_dash`) as 1."""

    model_name: str | None
    architecture: str | None
    cores_per_socket: int | None
    threads_per_core: int | None
    sockets: int | None
    model: str | None = None  # lscpu's "Model" (x86: the model number; Grace: 0)
    cores_per_cluster: int | None = None  # lscpu's "Core(s) per cluster" (a Jetson's, with no socket count)
    sockets_dash: bool = False  # lscpu's "Socket(s)" is "-"

    @classmethod
    def from_lscpu(cls, text: str) -> CpuFacts:
        fields_ = _fields(text)
        return cls(
            fields_.get("Model name"),
            fields_.get("Architecture"),
            _int(fields_.get("Core(s) per socket")),
            _int(fields_.get("Thread(s) per core")),
            _int(fields_.get("Socket(s)")),
            fields_.get("Model"),
            _int(fields_.get("Core(s) per cluster")),
            fields_.get("Socket(s)") == "-",
        )

    @classmethod
    def from_cpuinfo(cls, text: str, machine: str) -> CpuFacts:
        """From /proc/cpuinfo when lscpu is not installed (x86 has the topology fields; elsewhere they are None).
        lscpu's "Model" is x86's "model", and on ARM the "CPU revision" (Grace: 0)."""
        blocks = [block for block in text.split("\n\n") if block.strip()]
        first: dict[str, str] = {}
        packages = set()
        for block in blocks:
            info = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in block.split("\n"))}
            first = first or info
            packages.add(info.get("physical id"))
        cores, siblings = _int(first.get("cpu cores")), _int(first.get("siblings"))
        threads = siblings // cores if cores and siblings else None
        sockets = len(packages) if None not in packages else None
        model = first.get("model", first.get("CPU revision"))
        return cls(first.get("model name"), machine, cores, threads, sockets, model)

    def describe(self) -> str:
        name = self.model_name if self.model_name is not None else f"no model name (model {self.model})"
        if self.cores_per_socket is None and self.cores_per_cluster is not None:
            cores = f"{self.cores_per_cluster} cores per cluster"
        else:
            cores = f"{self.cores_per_socket} cores per socket"
        sockets = "-" if self.sockets_dash else self.sockets
        return f"{name} ({self.architecture}, {cores}, {self.threads_per_core} threads per core, {sockets} sockets)"


@dataclass(frozen=True)
class GpuFacts:
    """One GPU (or MIG slice) as nvidia-smi shows it to NVIDIA's detection. From NVML: name (nvmlDeviceGetName),
    pci_id (f"0x{nvmlDeviceGetPciInfo().pciDeviceId:08X}"), memory_bytes (nvmlDeviceGetMemoryInfo().total),
    max_power_w (nvmlDeviceGetPowerManagementLimitConstraints()[1] / 1000, nvidia-smi's power.max_limit, not the
    current or default limit), compute_sm (nvmlDeviceGetCudaComputeCapability: 8, 0 -> 80), uuid, mig_enabled
    (nvmlDeviceGetMigMode current)."""

    name: str
    pci_id: str | None
    memory_bytes: int | None
    max_power_w: float | None
    compute_sm: int | None
    uuid: str | None = None
    mig_enabled: bool = False
    num_gpcs: int | None = None  # set on a MIG slice

    @classmethod
    def mig_slice(cls, parent: GpuFacts, gpcs: int, memory_gb: int, uuid: str | None = None) -> GpuFacts:
        """A MIG slice of `parent` as MIG.detect() builds it from nvidia-smi -L's "MIG 1g.10gb"
        (accelerator.py:471-486): the label's GB read as GiB, the parent's PCI id, power and SM."""
        name = f"{parent.name} MIG-{gpcs}g.{memory_gb}gb"
        return cls(name, parent.pci_id, memory_gb * 2**30, parent.max_power_w, parent.compute_sm, uuid, True, gpcs)


def nvidia_memory_bytes(memtotal: str) -> int:
    """/proc/meminfo's MemTotal value ("263856092 kB") as memory.py:74-78 reads it: the unit upper-cased into a
    ByteSuffix (kB -> KB, 1000 bytes), then Memory.to_1000_base (constants.py:104-121)."""
    quantity, suffix = memtotal.split()
    base, exponent = BYTE_SUFFIXES[suffix.upper()]
    count = round(float(quantity) * base**exponent)
    value, exponent = float(count), 0
    if value < 1000:
        return round(value)
    while value >= 1000 and exponent < 4:
        exponent += 1
        value /= 1000
    return round(value * 1000**exponent)


def select_visible(gpus, cuda_visible_devices: str | None) -> tuple[GpuFacts, ...]:
    """The GPUs NVIDIA keeps for CUDA_VISIBLE_DEVICES (accelerator.py:136-199): indexes into nvidia-smi's list (in
    `gpus`' order) or GPU-UUIDs, duplicates dropped, in PCI order. Raises ValueError where NVIDIA raises."""
    gpus = tuple(gpus)
    if not cuda_visible_devices or not gpus:
        return gpus
    chosen: dict[int, GpuFacts] = {}
    for token in cuda_visible_devices.split(","):
        if token.isnumeric():
            if int(token) < len(gpus):
                chosen.setdefault(int(token), gpus[int(token)])
        elif token.startswith("GPU-"):
            chosen.update({i: gpu for i, gpu in enumerate(gpus) if gpu.uuid == token})
        else:
            raise ValueError(f"NVIDIA's detection raises on {token!r} in CUDA_VISIBLE_DEVICES (accelerator.py:187)")
    seen: set[str] = set()
    kept: list[GpuFacts] = []
    for index, gpu in sorted(chosen.items()):
        key = gpu.uuid or f"#{index}"
        if key not in seen:
            seen.add(key)
            kept.append(gpu)
    return tuple(kept)


def soc_facts(model: str | None, compatible: str | None) -> tuple[str | None, int | None]:
    """A Jetson's devicetree `model` file as NVIDIA reads it (printable characters of the stripped text:
    accelerator.py:289 in v2.0, :265 in v4.1), and the GPU's SM from its `compatible` file (NUL-separated)."""
    if model is None:
        return None, None
    name = "".join(c for c in model.strip() if c.isprintable())
    sm = next((TEGRA_SM[c] for c in (compatible or "").split("\0") if c in TEGRA_SM), None)
    return name, sm


def meminfo_bytes(meminfo: str | None) -> int | None:
    """MemTotal from /proc/meminfo's text as NVIDIA reads it (`nvidia_memory_bytes`); None without one."""
    fields_ = _fields(meminfo or "")
    return nvidia_memory_bytes(fields_["MemTotal"]) if "MemTotal" in fields_ else None


@dataclass(frozen=True)
class HostFacts:
    """What NVIDIA's detection sees: the CPU from lscpu, MemTotal as it reads it (bytes, kB taken as 1000), the GPUs
    nvidia-smi shows in the container (only those selected for it, in PCI order), MIG slices, and, where the
    devicetree has a model (a Jetson), its text and the GPU's SM. Which of nvidia-smi and the devicetree counts is
    the round's: v2.0 reads the devicetree only without nvidia-smi's GPUs, v4.1 reads it first. `machine.host`
    reads these from this host; `from_texts` builds them from the files' text."""

    cpu: CpuFacts
    memory_bytes: int | None
    gpus: tuple[GpuFacts, ...] = ()
    migs: tuple[GpuFacts, ...] = ()
    soc_model: str | None = None
    soc_compute_sm: int | None = None

    @classmethod
    def from_texts(
        cls,
        cpu: CpuFacts,
        meminfo: str | None,
        gpus=(),
        migs=(),
        devicetree_model: str | None = None,
        devicetree_compatible: str | None = None,
    ) -> HostFacts:
        """From /proc/meminfo's text and the devicetree's model and compatible files (None where absent); `gpus`
        and `migs` come from NVML, as GpuFacts."""
        soc_model, soc_sm = soc_facts(devicetree_model, devicetree_compatible)
        return cls(cpu, meminfo_bytes(meminfo), tuple(gpus), tuple(migs), soc_model, soc_sm)


# ---------------------------------------------------------------------------------------------------------
# The prediction.


@dataclass(frozen=True)
class Prediction:
    system: str | None  # the KnownSystem member NVIDIA will match, or None: it will exit without running
    system_id: str | None
    wanted: str | None = None
    reasons: tuple[str, ...] = ()  # why NVIDIA will not run as `wanted` (empty when it will)
    notes: tuple[str, ...] = ()  # rules this reader skipped that could change the answer

    @property
    def runs_as_wanted(self) -> bool:
        return self.wanted is not None and self.system == self.wanted and not self.reasons

    def message(self) -> str:
        head = (
            f"NVIDIA's detection will match {self.system} ({self.system_id})"
            if self.system
            else ("NVIDIA's detection will match no known system and exit without running anything")
        )
        return "; ".join((head, *self.reasons, *self.notes))


_LSCPU_LABELS = ("Model name", "Core(s) per socket", "Thread(s) per core", "Socket(s)")


def _detected_cpu(rules: Rules, host: HostFacts) -> tuple[DetectedCpu | None, int | None, list[str]]:
    """The CPU and socket count NVIDIA's CPU.detect() / CPUConfiguration.detect() build from lscpu, or why they
    stop with an exception."""
    cpu = host.cpu
    if rules.round == "v2.0":
        name, cores, threads, sockets = cpu.model_name, cpu.cores_per_socket, cpu.threads_per_core, cpu.sockets
        where = "cpu.py:72-77, 116"
    else:  # v4.1, cpu.py:70-79, 118
        name = cpu.model_name
        if name is None:
            name = f"{cpu.architecture or 'UnknownArch'}_{cpu.model if cpu.model is not None else 'UnknownNum'}"
        cores = next((n for n in (cpu.cores_per_socket, cpu.cores_per_cluster) if n is not None), 0)
        threads = cpu.threads_per_core if cpu.threads_per_core is not None else 1
        sockets = 1 if cpu.sockets_dash else cpu.sockets
        where = "cpu.py:70-79, 118"
    problems = [
        f"NVIDIA's CPU detection stops: lscpu shows no usable {label!r} (code/common/systems/{where})"
        for label, value in zip(_LSCPU_LABELS, (name, cores, threads, sockets), strict=True)
        if value is None
    ]
    architecture = rules.architecture(cpu.architecture)
    if architecture is None:
        known = ", ".join(m.name for m in rules.enums.get("CPUArchitecture", {}).values())
        problems.append(
            f"NVIDIA's CPU detection stops: architecture {cpu.architecture!r} is not one of {known} ({CONSTANTS})"
        )
    if problems:
        return None, None, problems
    return DetectedCpu(name, architecture, cores, threads), sockets, []


def _detected_accelerators(rules: Rules, host: HostFacts) -> Counter:
    """The GPUs and MIG slices NVIDIA's AcceleratorConfiguration.detect() counts. The devicetree's model (a
    Jetson) counts where v2.0 finds no nvidia-smi GPU (accelerator.py:287-300) and, in v4.1, before nvidia-smi
    (accelerator.py:263-277)."""
    discrete = rules.accelerator_type("Discrete")
    found: list[DetectedAccelerator] = []
    soc_first = rules.round != "v2.0" and host.soc_model is not None
    if (host.gpus or host.migs) and not soc_first:
        full = () if any(gpu.mig_enabled for gpu in host.gpus) else host.gpus  # accelerator.py:273-277
        for kind, gpus in (("GPU", full), ("MIG", host.migs)):
            for gpu in gpus:
                vram = (gpu.memory_bytes // 2**20) * 2**20 if gpu.memory_bytes is not None else None
                power = round(gpu.max_power_w, 2) if gpu.max_power_w is not None else None
                gpcs = gpu.num_gpcs if kind == "MIG" else None
                found.append(
                    DetectedAccelerator(kind, gpu.name, discrete, vram, power, gpu.pci_id, gpu.compute_sm, gpcs)
                )
    elif host.soc_model is not None:
        integrated = rules.accelerator_type("Integrated")
        found.append(DetectedAccelerator("GPU", host.soc_model, integrated, None, None, None, host.soc_compute_sm))
    return Counter(found)


def _needs(rule: SystemRule, what: str, where: str, have: str) -> str:
    return f"NVIDIA's detection needs {what} for {rule.name} ({where}); this host has {have}"


def _cpu_reasons(rule: SystemRule, cpu: DetectedCpu, sockets_seen: int, host: HostFacts) -> list[str]:
    if not isinstance(rule.cpu, Layout) or rule.cpu.matches(Counter({cpu: sockets_seen})):
        return []
    if len(rule.cpu.entries) != 1:
        return [_needs(rule, f"CPUs {rule.cpu.describe()}", rule.where, host.cpu.describe())]
    key, sockets = rule.cpu.entries[0]
    if not key.matches(cpu):
        have = host.cpu.describe()
        if cpu.name != host.cpu.model_name:
            have += f", which NVIDIA names {cpu.name!r}"
        if isinstance(key, CpuSpec):
            have += f", differing in {', '.join(key.differences(cpu))}"
        return [_needs(rule, f"CPU {key.describe()}", rule.where, have)]
    return [_needs(rule, f"{sockets.describe()} CPU sockets", rule.where, f"{sockets_seen}")]


def _memory_reasons(rule: SystemRule, host: HostFacts) -> list[str]:
    if rule.memory.matches(host.memory_bytes):
        return []
    have = "no MemTotal in /proc/meminfo"
    if host.memory_bytes is not None:
        have = f"{host.memory_bytes / 2**30:.1f} GiB ({host.memory_bytes} bytes: MemTotal read as kB = 1000 bytes)"
    return [_needs(rule, f"{rule.memory.describe()} memory", rule.memory.where or rule.where, have)]


def _accelerator_reasons(rule: SystemRule, host: HostFacts, detected: Counter) -> list[str]:
    layout = rule.accelerators
    if not isinstance(layout, Layout) or layout.matches(detected):
        return []
    shown = ", ".join(f"{count}x {accelerator.describe()}" for accelerator, count in detected.items()) or "no GPU"
    if any(gpu.mig_enabled for gpu in host.gpus) and not host.migs:
        shown += " (MIG mode is on, so NVIDIA's nvidia-smi query keeps no full GPU: accelerator.py:273-277)"
    if len(detected) != len(layout.entries) or len(layout.entries) != 1:
        return [_needs(rule, layout.describe(), rule.where, shown)]
    (spec, count), (accelerator, have) = layout.entries[0], next(iter(detected.items()))
    if not spec.matches(accelerator):
        differs = spec.differences(accelerator) if isinstance(spec, GpuSpec) else []
        detail = f"{shown}, differing in {', '.join(differs)}" if differs else shown
        return [_needs(rule, f"{count.describe()}x {spec.describe()}", rule.where, detail)]
    return [_needs(rule, f"exactly {count.describe()}x {spec.describe()}", rule.where, f"{have} of them")]


def _notes(rules: Rules) -> tuple[str, ...]:
    return tuple(
        f"this reader could not evaluate {skip.name} ({skip.where}: {skip.reason}); NVIDIA may match it"
        for skip in rules.skipped
        if not skip.inferentia
    )


def _first_match(systems, cpus: Counter, memory: int, detected: Counter) -> SystemRule | None:
    return next(
        (
            rule
            for rule in systems
            if rule.cpu.matches(cpus) and rule.memory.matches(memory) and rule.accelerators.matches(detected)
        ),
        None,
    )


def predict(rules: Rules, host: HostFacts, want: str | None = None) -> Prediction:
    """The KnownSystem NVIDIA's detection will match on `host` (the first in KnownSystem order), and, for `want`,
    each reason it will not run as that system, naming the rule's file:line and the host's value. In v4.1 a host
    that matches only a DeprecatedSystem gets a note: NVIDIA logs a warning and still matches nothing."""
    if want is not None and want not in rules:
        skipped = [skip for skip in rules.skipped if want in skip.name.split(", ")]
        detail = f"it was skipped: {skipped[0].reason}" if skipped else f"known: {', '.join(rules)}"
        if want in rules.deprecated:
            detail = f"it is a DeprecatedSystem ({rules.deprecated[want].where}), which NVIDIA no longer runs"
        raise ValueError(f"{want!r} is not a KnownSystem read from {rules.code_dir / SYSTEM_LIST} ({detail})")
    cpu, sockets, problems = _detected_cpu(rules, host)
    if host.memory_bytes is None:
        problems.append(f"NVIDIA's memory detection stops: /proc/meminfo has no MemTotal ({MEMORY}:74)")
    if cpu is None or problems:
        return Prediction(None, None, want, tuple(problems), _notes(rules))
    detected = _detected_accelerators(rules, host)
    cpus = Counter({cpu: sockets})
    matched = _first_match(rules.values(), cpus, host.memory_bytes, detected)
    notes = _notes(rules)
    if matched is None and rules.deprecated:
        old = _first_match(rules.deprecated.values(), cpus, host.memory_bytes, detected)
        if old is not None:
            notes += (
                f"the host is the deprecated system {old.name} ({old.where}): NVIDIA logs 'Detected system is a "
                "deprecated system, and is no longer supported' and matches nothing (system_list.py:226-240)",
            )
    reasons: list[str] = []
    if want is not None:
        rule = rules[want]
        reasons = (
            _cpu_reasons(rule, cpu, sockets, host)
            + _memory_reasons(rule, host)
            + _accelerator_reasons(rule, host, detected)
        )
        if not reasons and matched is not None and matched.name != want:
            reasons = [
                f"{want} matches, but NVIDIA takes the first match in KnownSystem order: "
                f"{matched.name} ({matched.where})"
            ]
    system_id = matched.system_id if matched else None
    return Prediction(matched.name if matched else None, system_id, want, tuple(reasons), notes)
