"""pytest_mlperf.catalog.nvidia_detection against NVIDIA's real v2.0 files, and against NVIDIA's own matching code.

The rules are read from ../shared/upstream/inference_results_v2.0/closed/NVIDIA (or $PYTEST_MLPERF_SHARED). Each
machine below is also handed to NVIDIA's code itself: its code/common/systems modules run in a child Python with
stand-ins only for what touches the GPU (fake `lscpu` and `nvidia-smi` on PATH, a fake `pycuda` answering the
compute capability, a meminfo file), and its `match_known_system` verdict must equal the prediction.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import shared_dir
from pytest_mlperf.catalog.nvidia_detection import (
    BYTE_SUFFIXES,
    CpuFacts,
    DetectionRulesError,
    GpuFacts,
    load_rules,
    nvidia_memory_bytes,
    predict,
    select_visible,
)
from pytest_mlperf.machine.host import HostFacts

SHARED = shared_dir()
TREE = SHARED / "upstream" / "inference_results_v2.0" / "closed" / "NVIDIA" if SHARED else None
SKIP_REASON = (
    "NVIDIA's v2.0 tree not found: set PYTEST_MLPERF_SHARED to the folder holding "
    "upstream/inference_results_v2.0/closed/NVIDIA (looked in $PYTEST_MLPERF_SHARED and ../shared)"
)

# nvidia-smi's figures for the boards in NVIDIA's systems/*.json: (name, PCI device id, memory.total MiB,
# power.max_limit W, compute SM). The JSON says "16 GB" for the A2; nvidia-smi shows 15360 MiB.
BOARDS = {
    "NVIDIA A100-SXM-80GB": ("NVIDIA A100-SXM4-80GB", "0x20B210DE", 81920, 400.0, 80),
    "NVIDIA A100-PCIe-80GB": ("NVIDIA A100 80GB PCIe", "0x20B510DE", 81920, 300.0, 80),
    "NVIDIA A30": ("NVIDIA A30", "0x20B710DE", 24576, 165.0, 80),
    "NVIDIA A2": ("NVIDIA A2", "0x25B610DE", 15360, 60.0, 86),
}
DGX_STATION_POWER = 275.0  # the DGX Station A100's boards are capped at 275 W (their power.max_limit)
# Jetsons: the devicetree model and compatible strings, and the GPU's SM.
SOCS = {
    "NVIDIA Orin": ("NVIDIA Orin Jetson-Small Developer Kit", "nvidia,p3737-0000\0nvidia,tegra234\0", 87),
    "NVIDIA Xavier NX": ("NVIDIA Jetson Xavier NX Developer Kit", "nvidia,p3509-0000\0nvidia,tegra194\0", 72),
}
# The JSON's processor name -> lscpu's "Model name"; lscpu's topology where the JSON counts all cores.
LSCPU_NAMES = {
    "AMD EPYC 7742": "AMD EPYC 7742 64-Core Processor",
    "12-core Cortex-A78 CPU": "ARMv8 Processor rev 1 (v8l)",  # Orin's L4T kernel's cpuinfo model name
    "NVIDIA Carmel (ARMv8.2)": "ARMv8 Processor rev 0 (v8l)",  # Xavier's
}
ARM_TOPOLOGY = {"NVIDIA Orin": (4, 3), "NVIDIA Xavier NX": (2, 3)}  # cores per cluster ("socket"), clusters

SEEDS = [
    ("A100_SXM_80GBx8", "DGX-A100_A100-SXM-80GBx8"),
    ("A100_SXM_80GB_ROx4", "DGX-Station-A100_A100-SXM-80GBx4"),
    ("A100_PCIe_80GBx8", "A100-PCIe-80GBx8"),
    ("A2x2", "A2x2"),
    ("A30x8", "A30x8"),
    ("A100_SXM_80GBx1", "DGX-A100_A100-SXM-80GBx1"),
    ("A100_PCIe_80GBx1", "A100-PCIe-80GBx1"),
    ("A30x1", "A30x1"),
    ("A2x1", "A2x1"),
    ("Orin", "Orin"),
    ("Xavier_NX", "Xavier_NX"),
]


@dataclass(frozen=True)
class Machine:
    """A machine as its commands and files show it: lscpu's text, MemTotal, nvidia-smi's GPUs, a Jetson's
    devicetree, and the environment's CUDA_VISIBLE_DEVICES."""

    id: str
    lscpu: str
    memtotal: str
    gpus: tuple[GpuFacts, ...] = ()
    mig_slices: tuple[tuple[int, int, int], ...] = ()  # (GPU index, GPCs, GB)
    soc: tuple[str, str, int] | None = None  # (model, compatible, SM)
    cuda_visible: str | None = None
    expected: tuple[str | None, str | None] = (None, None)


def lscpu(name: str, arch: str = "x86_64", cores: int = 64, threads: int = 2, sockets: int = 2) -> str:
    return textwrap.dedent(
        f"""\
        Architecture:                    {arch}
        CPU op-mode(s):                  32-bit, 64-bit
        CPU(s):                          {cores * threads * sockets}
        Thread(s) per core:              {threads}
        Core(s) per socket:              {cores}
        Socket(s):                       {sockets}
        Model name:                      {name}
        """
    )


def memtotal_kb(gib: float) -> str:
    """MemTotal for `gib` GiB of usable memory: /proc/meminfo counts KiB and calls them kB."""
    return f"{round(gib * 2**20)} kB"


def board(model: str, count: int, power: float | None = None) -> tuple[GpuFacts, ...]:
    name, pci, mib, max_power, sm = BOARDS[model]
    return tuple(
        GpuFacts(name, pci, mib * 2**20, power or max_power, sm, f"GPU-{i:08x}-0000-0000-0000-000000000000")
        for i in range(count)
    )


def seed_machine(known: str, system_id: str) -> Machine:
    """The published system as NVIDIA's systems/<id>_TRT.json describes it."""
    spec = json.loads((TREE / "systems" / f"{system_id}_TRT.json").read_text())
    cpu_name = LSCPU_NAMES.get(spec["host_processor_model_name"], spec["host_processor_model_name"])
    quantity, unit = spec["host_memory_capacity"].split()
    memory = memtotal_kb(float(quantity) * {"GB": 1, "TB": 1024}[unit] * 0.97)  # kernel and firmware keep ~3 %
    model = spec["accelerator_model_name"]
    if model in SOCS:
        cores, clusters = ARM_TOPOLOGY[model]
        return Machine(
            known, lscpu(cpu_name, "aarch64", cores, 1, clusters), memory, soc=SOCS[model], expected=(known, system_id)
        )
    power = DGX_STATION_POWER if system_id.startswith("DGX-Station") else None
    cpu = lscpu(cpu_name, cores=spec["host_processor_core_count"], sockets=spec["host_processors_per_node"])
    gpus = board(model, spec["accelerators_per_node"], power)
    return Machine(known, cpu, memory, gpus, expected=(known, system_id))


EPYC = lscpu("AMD EPYC 7742 64-Core Processor")
XEON_6338 = lscpu("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", cores=32)
XEON_8380 = lscpu("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", cores=40)
EPYC_7232P = lscpu("AMD EPYC 7232P 8-Core Processor", cores=8, sockets=1)
ALTRA = lscpu("Neoverse-N1", "aarch64", 80, 1, 1)
ORIN_CPU = lscpu("ARMv8 Processor rev 1 (v8l)", "aarch64", 4, 1, 3)
TB = memtotal_kb(1024 * 0.97)  # 1 TB of DIMMs
TB2 = memtotal_kb(2048 * 0.97)
A100 = "NVIDIA A100-SXM-80GB"
X1 = ("A100_SXM_80GBx1", "DGX-A100_A100-SXM-80GBx1")
X8 = ("A100_SXM_80GBx8", "DGX-A100_A100-SXM-80GBx8")
A30X8 = ("A30x8", "A30x8")  # the name is not compared when both sides have a PCI id (accelerator.py:376-381)


def other_machines() -> list[Machine]:
    a2, a30, pcie = board("NVIDIA A2", 2), board("NVIDIA A30", 8), board("NVIDIA A100-PCIe-80GB", 4)
    mig_gpus = (replace(board(A100, 8)[0], mig_enabled=True), *board(A100, 8)[1:])
    mig = ("A100_SXM_80GB_MIG_7x1g_10gb", "DGX-A100_A100-SXM-80GB-MIG_7x1g.10gb")
    production_orin = ("Jetson AGX Orin Developer Kit", "nvidia,p3737-0000\0nvidia,tegra234\0", 87)
    return [
        Machine("A30x8-intel", XEON_6338, TB, a30),
        Machine("A30x8-renamed", EPYC, TB, tuple(replace(gpu, name="NVIDIA A30 PCIe") for gpu in a30), expected=A30X8),
        Machine("A30x8-256GiB", EPYC, memtotal_kb(256), a30),
        Machine("A2x2-64GiB", EPYC_7232P, memtotal_kb(64), a2),
        Machine("A2x2-128GiB", EPYC_7232P, memtotal_kb(128), a2, expected=("A2x2", "A2x2")),
        Machine("A2x2-exactly-100GiB", EPYC_7232P, "107374182.4 kB", a2, expected=("A2x2", "A2x2")),
        Machine("A2x2-1kB-under-100GiB", EPYC_7232P, "107374181.4 kB", a2),
        Machine("A100x8-one-visible", EPYC, TB, board(A100, 8), cuda_visible="3", expected=X1),
        Machine("A100x8-uuid-visible", EPYC, TB, board(A100, 8), cuda_visible=board(A100, 8)[5].uuid, expected=X1),
        Machine("A100x8-four-visible", EPYC, TB, board(A100, 8), cuda_visible="0,1,2,3"),
        Machine("A100x8-intel", XEON_8380, TB, board(A100, 8), expected=X8),
        Machine("A100x4-400W", EPYC, TB, board(A100, 4)),
        Machine("A100x4-PCIe-altra", ALTRA, TB, pcie, expected=("A100_PCIe_80GB_ARMx4", "A100-PCIe-80GB_aarch64x4")),
        Machine("A100x8-gpu0-mig-7x1g", EPYC, TB2, mig_gpus, tuple((0, 1, 10) for _ in range(7)), expected=mig),
        Machine("A100x8-gpu0-mig-1TB", EPYC, TB, mig_gpus, tuple((0, 1, 10) for _ in range(7))),
        Machine("Orin-production-devkit", ORIN_CPU, memtotal_kb(30), soc=production_orin),
    ]


def all_machines() -> list[Machine]:
    if TREE is None or not (TREE / "systems").is_dir():
        return []
    return [seed_machine(known, system_id) for known, system_id in SEEDS] + other_machines()


MACHINES = {machine.id: machine for machine in all_machines()}


def host_of(machine: Machine, root: Path) -> HostFacts:
    """HostFacts as the plugin reads them: MemTotal and the devicetree from files, the GPUs selected."""
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "meminfo").write_text(f"MemTotal:       {machine.memtotal}\nMemFree:        1000 kB\n")
    if machine.soc:
        base = root / "sys" / "firmware" / "devicetree" / "base"
        base.mkdir(parents=True, exist_ok=True)
        (base / "model").write_text(machine.soc[0] + "\0")
        (base / "compatible").write_text(machine.soc[1])
    gpus = select_visible(machine.gpus, machine.cuda_visible)
    migs = tuple(GpuFacts.mig_slice(machine.gpus[i], gpcs, gb) for i, gpcs, gb in machine.mig_slices)
    return HostFacts.read(gpus, migs, root=root, lscpu_text=machine.lscpu)


@pytest.fixture(scope="module")
def tree() -> Path:
    if TREE is None or not (TREE / "code" / "common" / "systems" / "system_list.py").is_file():
        pytest.skip(SKIP_REASON)
    return TREE


@pytest.fixture(scope="module")
def rules(tree):
    return load_rules(tree)


@pytest.fixture
def host(tmp_path):
    return lambda machine_id: host_of(MACHINES[machine_id], tmp_path / machine_id)


# ---------------------------------------------------------------------------------------------------------
# NVIDIA's own code, with stand-ins for the GPU.

FAKE_COMMAND = r"""
import json, os, sys
spec = json.load(open(os.environ["FAKE_HOST"]))
if os.path.basename(sys.argv[0]) == "lscpu":
    sys.stdout.write(spec["lscpu"])
    sys.exit(0)
args = sys.argv[1:]
query = "--query-gpu=gpu_name,pci.device_id,uuid,memory.total,power.limit,power.max_limit,mig.mode.current"
if args == ["-L"]:
    for i, gpu in enumerate(spec["gpus"]):
        print(f"GPU {i}: {gpu['name']} (UUID: {gpu['uuid']})")
        for j, (gpcs, gb) in enumerate(gpu["migs"]):
            print(f"  MIG {gpcs}g.{gb}gb     Device  {j}: (UUID: MIG-{i:08x}-{j:04x}-0000-0000-000000000000)")
elif args == [query, "--format=csv,noheader"]:
    for gpu in spec["gpus"]:
        mode = "Enabled" if gpu["mig_enabled"] else "Disabled"
        watts = f"{gpu['power']:.2f} W"
        print(f"{gpu['name']}, {gpu['pci']}, {gpu['uuid']}, {gpu['mib']} MiB, {watts}, {watts}, {mode}")
else:
    sys.exit(f"fake nvidia-smi: unexpected arguments {args}")
"""

FAKE_PYCUDA_DRIVER = r"""
import json, os


class device_attribute:
    COMPUTE_CAPABILITY_MAJOR = "major"
    COMPUTE_CAPABILITY_MINOR = "minor"


def _visible():
    spec = json.load(open(os.environ["FAKE_HOST"]))
    gpus = spec["gpus"] or [{"uuid": None, "sm": spec["soc_sm"]}]
    tokens = [t for t in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if t]
    if not tokens:
        return gpus
    return [g for t in tokens for i, g in enumerate(gpus) if (t.isnumeric() and int(t) == i) or t == g["uuid"]]


class Device:
    def __init__(self, index):
        self.sm = _visible()[index]["sm"]

    def get_attribute(self, attribute):
        return self.sm // 10 if attribute == "major" else self.sm % 10
"""

HARNESS_HEAD = r"""
import functools, json, os, sys
sys.path.insert(0, os.getcwd())  # NVIDIA's `code` package, not the standard library's
cases = json.load(open(sys.argv[1]))


def use(case):
    os.environ.update(PATH=case["path"], FAKE_HOST=case["spec"])
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    if case["cuda_visible"] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = case["cuda_visible"]


def plain(value):
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def member(known):
    conf, item = known.value, {"name": known.name, "system_id": known.value.system_id}
    floor = getattr(conf.host_mem_conf, "o", None)
    item["min_memory"] = floor.host_memory_capacity.to_bytes() if floor is not None else None
    for accelerator, count in getattr(conf.accelerator_conf, "layout", {}).items():
        item.update(count=count, power=plain(getattr(accelerator, "max_power_limit", None)))
        item.update(sm=plain(getattr(accelerator, "compute_sm", None)), pci=plain(getattr(accelerator, "pci_id", None)))
    return item


use(cases[0])
from code.common.systems import accelerator, cpu, memory, system_list
out = {"members": [member(known) for known in system_list.KnownSystem], "cases": {}}
"""
# Between the round's own lines: the aliases, and each case detected afresh (its PATH, meminfo, device tree).
HARNESS_LOOP = r"""
out["aliases"] = [name for name, known in system_list.KnownSystem.__members__.items() if name != known.name]
for case in cases:
    use(case)
    memory.MEM_INFO_SOURCE.fn = functools.partial(memory.get_mem_info, case["meminfo"])
    accelerator.GPU_INFO_SOURCE.fn = functools.partial(accelerator.get_gpu_info, soc_model_filepath=case["soc_model"])
    for source in (cpu.CPU_INFO_SOURCE, memory.MEM_INFO_SOURCE, accelerator.GPU_INFO_SOURCE,
                   accelerator.ACCELERATOR_INFO_SOURCE, accelerator.MIG_INFO_SOURCE):
        source.reset(hard=True)
    try:
"""
HARNESS = (
    HARNESS_HEAD
    + HARNESS_LOOP
    + r"""
        match = system_list.match_known_system(system_list.SystemConfiguration.detect())
        out["cases"][case["id"]] = [match.name, match.value.system_id] if match else [None, None]
    except Exception as exc:
        out["cases"][case["id"]] = ["error", repr(exc)]
json.dump(out, open(sys.argv[2], "w"))
"""
)


def pycuda_stubs(stubs: Path) -> None:
    """A pycuda package answering the compute capability (v2.0's accelerator.py imports pycuda)."""
    pycuda = stubs / "pycuda"
    pycuda.mkdir(parents=True)
    (pycuda / "__init__.py").write_text("")
    (pycuda / "autoinit.py").write_text("")
    (pycuda / "driver.py").write_text(FAKE_PYCUDA_DRIVER)
    if importlib.util.find_spec("requests") is None:  # inferentia.py imports it; used only with USE_INFERENTIA=1
        (stubs / "requests.py").write_text("")


def write_fakes(folder: Path, stubs=pycuda_stubs, harness: str = HARNESS) -> dict[str, Path]:
    """bin folders (with and without nvidia-smi), the round's stub packages and its harness script."""
    script = f"#!{sys.executable}\n{FAKE_COMMAND}"
    bins = {"smi": folder / "bin-smi", "plain": folder / "bin-plain"}
    for name, names in (("smi", ("lscpu", "nvidia-smi")), ("plain", ("lscpu",))):
        bins[name].mkdir(parents=True)
        for command in names:
            (bins[name] / command).write_text(script)
            (bins[name] / command).chmod(0o755)
    stubs(folder / "stubs")
    (folder / "harness.py").write_text(harness)
    return bins


def nvidia_case(machine: Machine, folder: Path, bins: dict[str, Path]) -> dict:
    gpus = [
        {
            "name": gpu.name,
            "pci": gpu.pci_id,
            "uuid": gpu.uuid,
            "mib": gpu.memory_bytes // 2**20,
            "power": gpu.max_power_w,
            "sm": gpu.compute_sm,
            "mig_enabled": gpu.mig_enabled,
            "migs": [[gpcs, gb] for index, gpcs, gb in machine.mig_slices if index == i],
        }
        for i, gpu in enumerate(machine.gpus)
    ]
    spec = {"lscpu": machine.lscpu, "gpus": gpus, "soc_sm": machine.soc[2] if machine.soc else None}
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    (folder / "meminfo").write_text(f"MemTotal:       {machine.memtotal}\nMemFree:        1000 kB\n")
    model = folder / "model"
    if machine.soc:
        model.write_text(machine.soc[0] + "\0")
    return {
        "id": machine.id,
        "path": str(bins["smi"] if machine.gpus else bins["plain"]),
        "spec": str(folder / "spec.json"),
        "meminfo": str(folder / "meminfo"),
        "soc_model": str(model),
        "cuda_visible": machine.cuda_visible,
    }


def run_nvidia(
    code_root: Path, machines: list[Machine], folder: Path, stubs=pycuda_stubs, harness: str = HARNESS
) -> dict:
    """NVIDIA's match_known_system verdict for each machine, from its own code under code_root (the round's stubs
    and harness script: v2.0's by default)."""
    bins = write_fakes(folder, stubs, harness)
    cases = [nvidia_case(machine, folder / "cases" / machine.id, bins) for machine in machines]
    (folder / "cases.json").write_text(json.dumps(cases))
    env = {
        "HOME": str(folder),
        "PYTHONPATH": str(folder / "stubs"),
        "OUTSIDE_MLPINF_ENV": "1",  # constants.py imports tensorrt unless this is set and tensorrt is absent
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": str(bins["plain"]),
    }
    command = [sys.executable, str(folder / "harness.py"), str(folder / "cases.json"), str(folder / "out.json")]
    done = subprocess.run(command, cwd=code_root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"NVIDIA's detection code failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads((folder / "out.json").read_text())


@pytest.fixture(scope="module")
def nvidia(tree, tmp_path_factory):
    return run_nvidia(tree, list(MACHINES.values()), tmp_path_factory.mktemp("nvidia"))


# ---------------------------------------------------------------------------------------------------------
# The rules as read.


def test_rules_read_from_the_system_list(tree, rules):
    a30 = rules["A30x8"]
    assert (a30.system_id, a30.count, a30.min_memory_bytes) == ("A30x8", 8, 2**39)  # Memory(0.5, ByteSuffix.TiB)
    assert [cpu.key for cpu in a30.cpus] == ["KnownCPU.AMD_EPYC_7742"]
    assert a30.cpus[0].name.matches("amd epyc 7742 64-core processor")
    assert a30.gpu.key == "KnownGPU.A30" and a30.gpu.pci_id.matches("0x20b710de")
    line = int(a30.where.rsplit(":", 1)[1])
    assert 'add_systems("A30x{}"' in (tree / "code/common/systems/system_list.py").read_text().splitlines()[line - 1]
    assert [cpu.key for cpu in rules["A100_SXM_80GBx8"].cpus] == ["KnownCPU.AMD_EPYC_7742", "KnownCPU.x86_64_Generic"]
    assert rules["A100_SXM_80GB_ROx4"].system_id == "DGX-Station-A100_A100-SXM-80GBx4"
    assert rules["A100_SXM_80GB_ROx4"].gpu.max_power_limit.value == 275.0
    assert rules["A2x1"].cpus is None and rules["A2x1"].min_memory_bytes == 100 * 2**30
    assert rules["Orin"].gpu.name.matches("NVIDIA Orin Jetson-Small Developer Kit")
    assert rules["Xavier_NX"].cpus[0].key == "KnownCPU.NVIDIA_Carmel_ARM_V8"
    assert rules["A100_PCIe_80GB_MIG_56x1g_10gb"].min_memory_bytes == 10**12  # Memory(1, ByteSuffix.TB)
    assert rules["A30_MIG_1x1g_6gb"].gpu.name.matches("NVIDIA A30 MIG-1g.6gb")
    assert rules["Triton_CPU_2S_8380"].cpu.entries[0][1].value == 2
    assert {skip.name for skip in rules.skipped} == {
        f"Triton_Inferentia_INF1_{size}XLARGE" for size in ("", "2", "6", "24")
    }
    assert all(skip.inferentia for skip in rules.skipped)


def test_rules_agree_with_nvidias_enum(rules, nvidia):
    """Every KnownSystem member NVIDIA's code builds, in its order, with its id, memory floor, count and GPU."""
    skipped = {skip.name for skip in rules.skipped}
    members = [m for m in nvidia["members"] if m["name"] not in skipped]
    assert [m["name"] for m in members] == list(rules)
    assert nvidia["aliases"] == []
    for member in members:
        rule = rules[member["name"]]
        assert (rule.system_id, rule.min_memory_bytes, rule.count) == (
            member["system_id"],
            member["min_memory"],
            member.get("count"),
        ), member["name"]
        if rule.gpu is not None:
            power, sm = rule.gpu.max_power_limit, rule.gpu.compute_sm
            assert getattr(power, "value", "MatchAny()") == member["power"], member["name"]
            assert getattr(sm, "value", "MatchAny()") == member["sm"], member["name"]
            assert getattr(rule.gpu.pci_id, "name", "MatchAny()") == member["pci"], member["name"]


def test_byte_suffixes_are_nvidias(rules):
    assert {name: member.value for name, member in rules.enums["ByteSuffix"].items()} == BYTE_SUFFIXES


# ---------------------------------------------------------------------------------------------------------
# Predictions.


@pytest.mark.parametrize(("known", "system_id"), SEEDS, ids=[known for known, _ in SEEDS])
def test_published_system_predicts_itself(rules, host, known, system_id):
    prediction = predict(rules, host(known), want=known)
    assert (prediction.system, prediction.system_id, prediction.reasons) == (known, system_id, ())
    assert prediction.runs_as_wanted


@pytest.mark.parametrize("machine_id", list(MACHINES))
def test_prediction_is_nvidias_verdict(rules, host, nvidia, machine_id):
    prediction = predict(rules, host(machine_id))
    expected = list(MACHINES[machine_id].expected)
    assert nvidia["cases"][machine_id] == expected, "NVIDIA's own code decided otherwise"
    assert [prediction.system, prediction.system_id] == expected


def test_a30x8_on_intel_names_the_cpu(rules, host):
    prediction = predict(rules, host("A30x8-intel"), want="A30x8")
    assert prediction.system is None and len(prediction.reasons) == 1
    reason = prediction.reasons[0]
    assert reason.startswith("NVIDIA's detection needs CPU AMD EPYC 7742 64-Core Processor")
    assert "for A30x8 (code/common/systems/system_list.py:112)" in reason
    assert "this host has Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz" in reason
    assert "differing in model name, cores per socket" in reason


def test_a30x8_with_256_gib_names_the_memory(rules, host):
    prediction = predict(rules, host("A30x8-256GiB"), want="A30x8")
    assert prediction.system is None and len(prediction.reasons) == 1
    reason = prediction.reasons[0]
    assert "needs at least 0.5 TiB memory for A30x8 (code/common/systems/system_list.py:113)" in reason
    assert "this host has 250.0 GiB (268435456000 bytes" in reason  # 256 GiB of KiB, read as kB = 1000 bytes


@pytest.mark.parametrize(("machine_id", "runs"), [("A2x2-64GiB", False), ("A2x2-128GiB", True)])
def test_a2x2_needs_100_gib(rules, host, machine_id, runs):
    prediction = predict(rules, host(machine_id), want="A2x2")
    assert prediction.runs_as_wanted is runs
    assert bool(prediction.reasons) is not runs
    assert all("at least 100 GiB memory for A2x2" in reason for reason in prediction.reasons)


def test_memory_floor_has_no_tolerance(rules, host):
    """min_memory_requirement's 5 % applies to both sides: 1 kB under the floor fails."""
    assert predict(rules, host("A2x2-exactly-100GiB")).system == "A2x2"
    assert "at least 100 GiB" in predict(rules, host("A2x2-1kB-under-100GiB"), want="A2x2").reasons[0]


def test_one_gpu_of_eight_selected(rules, host):
    assert len(host("A100x8-one-visible").gpus) == 1
    prediction = predict(rules, host("A100x8-one-visible"), want="A100_SXM_80GBx8")
    assert prediction.system == "A100_SXM_80GBx1"
    assert prediction.reasons == (
        "NVIDIA's detection needs exactly 8x A100-SXM-80GB (PCI id 0x20B210DE, memory 80 GiB within 5%, max power "
        "400.0 W, SM 80; KnownGPU.A100_SXM_80GB, code/common/systems/known_hardware.py:97) for A100_SXM_80GBx8 "
        "(code/common/systems/system_list.py:85); this host has 1 of them",
    )


def test_dgx_station_needs_its_275_w_boards(rules, host):
    reason = predict(rules, host("A100x4-400W"), want="A100_SXM_80GB_ROx4").reasons[0]
    assert "max power 275.0 W" in reason and "max power 400 W" in reason
    assert reason.endswith("differing in max power limit")


def test_mig_mode_hides_the_full_gpus(rules, host):
    machine = MACHINES["A100x8-gpu0-mig-7x1g"]
    facts = replace(host(machine.id), migs=())
    reason = predict(rules, facts, want="A100_SXM_80GBx8").reasons[0]
    assert "this host has no GPU (MIG mode is on" in reason


def test_production_orin_devkit_is_not_nvidias_orin(rules, host):
    reason = predict(rules, host("Orin-production-devkit"), want="Orin").reasons[0]
    assert "integrated GPU 'Jetson AGX Orin Developer Kit'" in reason and "differing in name" in reason


def test_earlier_match_wins(rules, host):
    facts = host("A100x8-intel")
    assert predict(rules, facts, want="A100_SXM_80GBx8").runs_as_wanted
    both = dict(rules)
    both = type(rules)(
        {"First": replace(rules["A100_SXM_80GBx8"], name="First"), **both}, code_dir=rules.code_dir, enums=rules.enums
    )
    prediction = predict(both, facts, want="A100_SXM_80GBx8")
    assert prediction.system == "First" and "first match in KnownSystem order: First" in prediction.reasons[0]


def test_unknown_architecture_and_missing_fields_stop_detection(rules, host):
    facts = host("A30x8")
    power = replace(facts, cpu=replace(facts.cpu, architecture="ppc64le"))
    assert "architecture 'ppc64le' is not one of x86_64, aarch64" in predict(rules, power).reasons[0]
    missing = replace(facts, cpu=replace(facts.cpu, cores_per_socket=None), memory_bytes=None)
    reasons = predict(rules, missing, want="A30x8").reasons
    assert any("'Core(s) per socket'" in reason for reason in reasons) and any("MemTotal" in r for r in reasons)


def test_unknown_or_skipped_want(rules, host):
    with pytest.raises(ValueError, match="'A30x3' is not a KnownSystem.*known: A100_PCIe_40GBx1"):
        predict(rules, host("A30x8"), want="A30x3")
    with pytest.raises(ValueError, match="skipped: KnownInferentia"):
        predict(rules, host("A30x8"), want="Triton_Inferentia_INF1_XLARGE")


# ---------------------------------------------------------------------------------------------------------
# A checkout with a custom_list.py, as scripts/custom_systems/add_custom_system.py writes it.


def copy_systems_code(destination: Path) -> Path:
    """NVIDIA's code/__init__.py and code/common/ (what `import code.common.systems.system_list` loads)."""
    (destination / "code").mkdir(parents=True)
    shutil.copy(TREE / "code" / "__init__.py", destination / "code" / "__init__.py")
    shutil.copytree(TREE / "code" / "common", destination / "code" / "common")
    return destination


def readme_custom_line() -> str:
    """The generated line NVIDIA's README.md shows for an A30x4 custom system."""
    lines = (TREE / "README.md").read_text().splitlines()
    return next(line for line in lines if line.startswith("custom_systems['A30x4_Custom'] = "))


@pytest.fixture(scope="module")
def custom_checkout(tree, tmp_path_factory):
    root = copy_systems_code(tmp_path_factory.mktemp("custom") / "NVIDIA")
    stub = (TREE / "scripts/custom_systems/stubs/custom_system.py.stub").read_text()
    marker = "#### END OF CUSTOM SYSTEMS ####"
    head, tail = stub.split("###############################\n" + marker)
    text = f"{head}{readme_custom_line()}\n\n###############################\n{marker}{tail}"
    (root / "code/common/systems/custom_list.py").write_text(text)
    return root


CUSTOM_MACHINES = [
    Machine("A30x4-custom", EPYC, "990594852 kB", board("NVIDIA A30", 4), expected=("A30x4_Custom", "A30x4_Custom")),
    Machine("A30x4-custom-more-memory", EPYC, "1050000000 kB", board("NVIDIA A30", 4)),  # 6 % over: outside 5 %
    Machine(
        "A30x4-custom-one-socket",
        lscpu("AMD EPYC 7742 64-Core Processor", sockets=1),
        "990594852 kB",
        board("NVIDIA A30", 4),
    ),
]


def test_custom_list_systems_are_predicted(custom_checkout, tmp_path, tmp_path_factory):
    rules = load_rules(custom_checkout)
    assert list(rules)[-1] == "A30x4_Custom" and not [s for s in rules.skipped if not s.inferentia]
    verdicts = run_nvidia(custom_checkout, CUSTOM_MACHINES, tmp_path_factory.mktemp("nvidia-custom"))
    for machine in CUSTOM_MACHINES:
        prediction = predict(rules, host_of(machine, tmp_path / machine.id))
        assert verdicts["cases"][machine.id] == list(machine.expected), machine.id
        assert [prediction.system, prediction.system_id] == list(machine.expected), machine.id
    reasons = predict(rules, host_of(CUSTOM_MACHINES[2], tmp_path / "again"), want="A30x4_Custom").reasons
    lines = (custom_checkout / "code/common/systems/custom_list.py").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if text.startswith("custom_systems['A30x4_Custom']"))
    assert reasons == (
        f"NVIDIA's detection needs 2 CPU sockets for A30x4_Custom (code/common/systems/custom_list.py:{line}); "
        "this host has 1",
    )


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("KnownGPU.A30.value", "make_gpu()", "make_gpu is not known to this reader"),
        ('system_id="A30x4_Custom"', 'system_id="A30x4_{}{}".format("Custom")', "IndexError"),
    ],
    ids=["unknown-name", "python-error"],
)
def test_custom_entry_not_understood_is_a_note(custom_checkout, tmp_path, host, old, new, said):
    root = copy_systems_code(tmp_path / "NVIDIA")
    text = (custom_checkout / "code/common/systems/custom_list.py").read_text()
    assert old in text
    (root / "code/common/systems/custom_list.py").write_text(text.replace(old, new))
    rules = load_rules(root)
    assert "A30x4_Custom" not in rules
    notes = predict(rules, host("A30x8")).notes
    assert len(notes) == 1 and notes[0].startswith("this reader could not evaluate A30x4_Custom")
    assert said in notes[0]


# ---------------------------------------------------------------------------------------------------------
# A checkout not shaped as NVIDIA's v2.0.


def broken(root: Path, rel: str, text: str) -> Path:
    copy_systems_code(root)
    (root / rel).write_text(text)
    return root


@pytest.mark.parametrize(
    ("rel", "text", "message"),
    [
        ("code/common/systems/system_list.py", "x = 1\n", r"system_list.py:1: no `system_confs = dict\(\)`"),
        ("code/common/systems/system_list.py", "system_confs = dict()\n", r"system_list.py:1: no `KnownSystem = Enum"),
        ("code/common/systems/system_list.py", "x = 1\ndef (:\n", r"system_list.py:2: cannot be parsed"),
        (
            "code/common/systems/known_hardware.py",
            "class KnownGPU:\n    pass\n",
            r"known_hardware.py:1: no class KnownCPU",
        ),
        ("code/common/constants.py", "", r"constants.py:1: no class ByteSuffix, CPUArchitecture, AcceleratorType"),
        ("code/common/systems/memory.py", "class MemoryConfiguration:\n    x = 1\n", r"memory.py:1: .*no comparison"),
    ],
)
def test_wrong_shape_names_the_file_and_line(tree, tmp_path, rel, text, message):
    with pytest.raises(DetectionRulesError, match=message):
        load_rules(broken(tmp_path / "NVIDIA", rel, text))


def test_missing_tree_names_the_file(tmp_path):
    with pytest.raises(DetectionRulesError, match=r"memory.py: not found"):
        load_rules(tmp_path)


def test_code_folder_is_accepted(tree, rules):
    assert list(load_rules(tree / "code")) == list(rules)


# ---------------------------------------------------------------------------------------------------------
# Reading the host.


def test_meminfo_is_read_as_nvidia_reads_it():
    assert nvidia_memory_bytes("263856092 kB") == 263856092000  # kB -> ByteSuffix.KB, 1000 bytes
    assert nvidia_memory_bytes("107374182.4 kB") == 100 * 2**30
    assert nvidia_memory_bytes("512 B") == 512


def test_read_falls_back_to_cpuinfo_and_reads_the_jetson(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal:        7773304 kB\n")
    block = "processor\t: {n}\nmodel name\t: AMD EPYC 7742 64-Core Processor\nphysical id\t: {p}\n"
    block += "siblings\t: 128\ncpu cores\t: 64\n"
    (tmp_path / "proc" / "cpuinfo").write_text("\n".join(block.format(n=n, p=n % 2) for n in range(4)))
    base = tmp_path / "sys" / "firmware" / "devicetree" / "base"
    base.mkdir(parents=True)
    (base / "model").write_text("NVIDIA Jetson Xavier NX Developer Kit\0")
    (base / "compatible").write_text("nvidia,p3509-0000+p3668-0001\0nvidia,jetson-xavier-nx\0nvidia,tegra194\0")
    facts = HostFacts.read(root=tmp_path)
    assert facts.cpu == CpuFacts("AMD EPYC 7742 64-Core Processor", os.uname().machine, 64, 2, 2)
    assert facts.memory_bytes == 7773304000
    assert (facts.soc_model, facts.soc_compute_sm) == ("NVIDIA Jetson Xavier NX Developer Kit", 72)
    with_gpu = HostFacts.read(board("NVIDIA A2", 1), root=tmp_path)
    # The devicetree is read beside NVML's GPUs: v4.1 reads it first, v2.0 only without nvidia-smi's GPUs.
    assert with_gpu.soc_model == "NVIDIA Jetson Xavier NX Developer Kit" and len(with_gpu.gpus) == 1


def test_v2_0_reads_the_devicetree_only_without_gpus(rules, host):
    """accelerator.py:252-300: nvidia-smi's GPUs first; the devicetree's model only where there is none."""
    facts = replace(host("A2x2-128GiB"), soc_model="NVIDIA Jetson Xavier NX Developer Kit", soc_compute_sm=72)
    assert predict(rules, facts).system == "A2x2"


def test_lscpu_fields_are_split_as_nvidia_splits_them():
    text = lscpu("Intel(R) Xeon(R) CPU E5-2698 v4 @ 2.20GHz", cores=20).replace("Socket(s):", "  Socket(s):")
    text += "Flags:               fpu vme\nBogus: a: b\n"
    cpu = CpuFacts.from_lscpu(text)
    assert cpu == CpuFacts("Intel(R) Xeon(R) CPU E5-2698 v4 @ 2.20GHz", "x86_64", 20, 2, 2)
    assert CpuFacts.from_lscpu("Model name: a: b\n").model_name is None  # three parts: NVIDIA drops the line


def test_this_machine_is_read():
    facts = HostFacts.read()
    assert facts.memory_bytes and facts.memory_bytes > 0
    assert facts.cpu.architecture == os.uname().machine and facts.cpu.model_name


def test_select_visible_follows_cuda_visible_devices():
    gpus = board(A100, 4)
    assert select_visible(gpus, None) == gpus
    assert select_visible(gpus, "2,0,2,9") == (gpus[0], gpus[2])
    assert select_visible(gpus, f"{gpus[3].uuid},1") == (gpus[1], gpus[3])
    with pytest.raises(ValueError, match="'all'"):
        select_visible(gpus, "all")
    with pytest.raises(ValueError, match="''"):
        select_visible(gpus, "0,")
