"""pytest_mlperf.catalog.nvidia_detection against NVIDIA's real v4.1 files, and against NVIDIA's own v4.1 code.

The rules are read from ../shared/upstream/inference_results_v4.1/closed/NVIDIA (conftest's nvidia_tree_v41). Each
machine below is handed to NVIDIA's v4.1 code too, as tests/test_nvidia_detection.py does for v2.0: its
code/common/systems modules run in a child Python with stand-ins only for what touches the machine (fake `lscpu` and
`nvidia-smi` on PATH, a fake `cuda` package (cuda-python) answering the compute capability, a meminfo file, a
devicetree model file), and its `match_known_system` verdict, and its DeprecatedSystem match, must equal the
prediction.

The stand-in hosts are the v4.1 catalog's systems, each built from its GPU as NVML shows it, and the hosts the
v4.1 rules turn on: H200 against H200-CTS (power limit, 2 TB), Grace's lscpu, the Jetson devicetree, a B200 and a
Hopper box with another CPU.
"""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from test_nvidia_detection import HARNESS_HEAD, HARNESS_LOOP, Machine, host_of, lscpu, memtotal_kb, run_nvidia

from pytest_mlperf import catalog
from pytest_mlperf.catalog.nvidia_detection import (
    BYTE_SUFFIXES,
    CpuFacts,
    DetectionRulesError,
    GpuFacts,
    load_rules,
    nvidia_memory_bytes,
    predict,
)

SYSTEM_LIST = "code/common/systems/system_list.py"

# memory.total as nvidia-smi shows it (MiB) for the v4.1 catalog's GPUs; stand-in figures a little under the
# board's GiB, within NVIDIA's 5 % (known_hardware.py:35-36).
NVML_MIB = {
    "H100-SXM-80GB": 81559,
    "H100-PCIe-80GB": 81559,
    "H100-NVL-94GB": 95830,
    "H200-SXM-141GB": 143771,
    "H200-SXM-141GB-CTS": 143771,
    "GH200-96GB": 97871,
    "GH200-144GB": 146081,
    "B200-SXM-180GB": 183359,
}
B200_PCI_ID = "0x290110DE"  # not in the catalog (no v4.1 detection); the B200's PCI device id
B200_POWER = 1000.0

XEON_8480C = lscpu("Intel(R) Xeon(R) Platinum 8480C", cores=56)
XEON_8480P = lscpu("Intel(R) Xeon(R) Platinum 8480+", cores=56)
EPYC_7742 = lscpu("AMD EPYC 7742 64-Core Processor")
EPYC_9654 = lscpu("AMD EPYC 9654 96-Core Processor", cores=96)
XEON_4410Y = lscpu("Intel(R) Xeon(R) Silver 4410Y", cores=12, sockets=1)  # NVIDIA's B200-SXM-180GBx1 system
# Grace as the v4.1 container's lscpu (util-linux 2.37) shows it: no "Model name", "Model: 0".
GRACE = textwrap.dedent(
    """\
    Architecture:                    aarch64
    CPU op-mode(s):                  64-bit
    Byte Order:                      Little Endian
    CPU(s):                          72
    On-line CPU(s) list:             0-71
    Vendor ID:                       ARM
    Model:                           0
    Thread(s) per core:              1
    Core(s) per socket:              72
    Socket(s):                       1
    Stepping:                        r0p0
    """
)
# A newer lscpu knows the part (as RHEL 9's does): "Model name: Neoverse-V2".
GRACE_NAMED = GRACE.replace("Model:        ", "Model name:                      Neoverse-V2\nModel:        ")
# Orin (JetPack 6): cores per cluster, no socket count.
ORIN = textwrap.dedent(
    """\
    Architecture:                    aarch64
    CPU op-mode(s):                  32-bit, 64-bit
    Byte Order:                      Little Endian
    CPU(s):                          12
    On-line CPU(s) list:             0-11
    Vendor ID:                       ARM
    Model name:                      Cortex-A78AE
    Model:                           1
    Thread(s) per core:              1
    Core(s) per cluster:             4
    Socket(s):                       -
    Cluster(s):                      3
    Stepping:                        r0p1
    """
)
ORIN_SOC = ("NVIDIA Jetson AGX Orin Developer Kit", "nvidia,p3737-0000\0nvidia,p3701-0005\0nvidia,tegra234\0", 87)
TB2 = memtotal_kb(2048 * 0.97)  # 2 TB of DIMMs, less what the kernel and firmware keep
TB1 = memtotal_kb(1024 * 0.97)
# [unverified] a GH200's MemTotal counting the Grace's 480 GB LPDDR5X and the HBM3e the driver onlines as system
# memory: NVIDIA's floors (500 GiB for GH200-96GB, 600 GiB for GH200-144GB) exceed the LPDDR5X alone.
GH200_96_MEM = memtotal_kb(480 + 96)
GH200_144_MEM = memtotal_kb(480 + 144)
GH200_LPDDR_ONLY = memtotal_kb(480 * 0.97)
ORIN_MEM = memtotal_kb(62.8)  # a 64 GB AGX Orin

CPU_OF = {  # the CPU each catalog GPU's system has, as its v4.1 KnownSystem requires (known_hardware.py:284-311)
    "H100-SXM-80GB": XEON_8480C,
    "H200-SXM-141GB": XEON_8480C,
    "H200-SXM-141GB-CTS": XEON_8480C,
    "H100-NVL-94GB": XEON_8480P,
    "H100-PCIe-80GB": EPYC_7742,
    "GH200-96GB": GRACE,
    "GH200-144GB": GRACE,
    "B200-SXM-180GB": XEON_4410Y,
    "Orin": ORIN,
}
MEMORY_OF = {"H100-PCIe-80GB": TB1, "GH200-96GB": GH200_96_MEM, "GH200-144GB": GH200_144_MEM, "Orin": ORIN_MEM}


def gpus(key: str, count: int, *, power: float | None = None) -> tuple[GpuFacts, ...]:
    """`count` GPUs as NVML shows the catalog GPU `key` (B200: its figures here; it has no v4.1 catalog id)."""
    gpu = CATALOG.gpus[key]
    pci = gpu.pci_device_id or (B200_PCI_ID if key.startswith("B200") else None)
    watts = power or (float(gpu.max_power_w) if gpu.max_power_w else B200_POWER)
    return tuple(
        GpuFacts(gpu.names[0], pci, NVML_MIB[key] * 2**20, watts, gpu.sm, f"GPU-{i:08x}-0000-0000-0000-000000000000")
        for i in range(count)
    )


def catalog_machine(sku: str) -> Machine:
    """The catalog's v4.1 system on a host with the CPU and memory its KnownSystem requires, its GPUs as NVML
    shows them (a Jetson's through its devicetree)."""
    system = CATALOG.systems[sku]
    expected = (system.known_system or None, system.system_id if system.known_system else None)
    memory = MEMORY_OF.get(system.gpu.key, TB2)
    if system.gpu.integrated:
        return Machine(sku, CPU_OF[system.gpu.key], memory, soc=ORIN_SOC, expected=expected)
    return Machine(sku, CPU_OF[system.gpu.key], memory, gpus(system.gpu.key, system.count), expected=expected)


H100X8 = ("H100_SXM_80GBx8", "DGX-H100_H100-SXM-80GBx8")
H200X8 = ("H200_SXM_141GBx8", "H200-SXM-141GBx8")
CTSX8 = ("H200_SXM_141GB_CTSx8", "H200-SXM-141GB-CTSx8")
GH200_144 = ("GH200_144GB_ARMx1", "GH200-GraceHopper-Superchip_GH200-144GB_aarch64x1")
NONE = (None, None)


def other_machines() -> list[Machine]:
    h200 = gpus("H200-SXM-141GB", 8)
    station = tuple(  # a DGX Station A100: four A100-SXM-80GB capped at 275 W
        GpuFacts(
            "NVIDIA A100-SXM4-80GB", "0x20B210DE", 81920 * 2**20, 275.0, 80, f"GPU-{i:08x}-0000-0000-0000-00000000"
        )
        for i in range(4)
    )
    return [
        Machine("H100x8-8480C", XEON_8480C, TB2, gpus("H100-SXM-80GB", 8), expected=H100X8),
        # The 8480C's alias, hyper-threading off.
        Machine(
            "H100x8-8480C-1-thread",
            lscpu("Intel(R) Xeon(R) Platinum 8480CL", cores=56, threads=1),
            TB2,
            gpus("H100-SXM-80GB", 8),
            expected=H100X8,
        ),
        Machine("H100x8-epyc-9654", EPYC_9654, TB2, gpus("H100-SXM-80GB", 8), expected=NONE),
        # v4.1 has no x86_64_Generic for Hopper: an Intel CPU other than the 8480C is no H100-SXM system.
        Machine(
            "H100x8-xeon-8380",
            lscpu("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", cores=40),
            TB2,
            gpus("H100-SXM-80GB", 8),
            expected=NONE,
        ),
        Machine("H200x8-700W", XEON_8480C, TB2, h200, expected=H200X8),
        Machine(
            "H200x8-700W-one-visible",
            XEON_8480C,
            TB2,
            h200,
            cuda_visible="3",
            expected=("H200_SXM_141GBx1", "H200-SXM-141GBx1"),
        ),
        Machine("H200x8-700W-1TB", XEON_8480C, TB1, h200, expected=H200X8),  # 30 GiB will do
        Machine("H200-CTSx8-1000W-2TB", XEON_8480C, TB2, gpus("H200-SXM-141GB-CTS", 8), expected=CTSX8),
        Machine("H200-CTSx8-1000W-1TB", XEON_8480C, TB1, gpus("H200-SXM-141GB-CTS", 8), expected=NONE),
        Machine("H200x8-900W", XEON_8480C, TB2, gpus("H200-SXM-141GB", 8, power=900.0), expected=NONE),
        Machine("GH200-144GB-aarch64", GRACE, GH200_144_MEM, gpus("GH200-144GB", 1), expected=GH200_144),
        Machine("GH200-144GB-lpddr-only", GRACE, GH200_LPDDR_ONLY, gpus("GH200-144GB", 1), expected=NONE),
        Machine("GH200-144GB-neoverse-v2-named", GRACE_NAMED, GH200_144_MEM, gpus("GH200-144GB", 1), expected=NONE),
        Machine("Orin-devkit", ORIN, ORIN_MEM, soc=ORIN_SOC, expected=("Orin", "Orin")),
        Machine(
            "Orin-v2.0-name",
            ORIN,
            ORIN_MEM,
            soc=("NVIDIA Orin Jetson-Small Developer Kit", *ORIN_SOC[1:]),
            expected=NONE,
        ),
        Machine("B200x8-8480C", XEON_8480C, TB2, gpus("B200-SXM-180GB", 8), expected=NONE),
        Machine("A100x4-DGX-Station", EPYC_7742, TB1, station, expected=NONE),
    ]


DEPRECATED = {"A100x4-DGX-Station": "A100_SXM_80GB_ROx4"}  # NVIDIA's DeprecatedSystem match, where one is expected


CATALOG = catalog.load("inference-v4.1")
MACHINES = {machine.id: machine for machine in [catalog_machine(sku) for sku in CATALOG.systems] + other_machines()}


@pytest.fixture(scope="module")
def tree(nvidia_tree_v41) -> Path:
    """NVIDIA's v4.1 tree (conftest's fixture skips without it)."""
    if not (nvidia_tree_v41 / SYSTEM_LIST).is_file():
        pytest.skip(f"NVIDIA's v4.1 system list is not at {nvidia_tree_v41 / SYSTEM_LIST}")
    return nvidia_tree_v41


@pytest.fixture(scope="module")
def rules(tree):
    return load_rules(tree)


@pytest.fixture
def host(tmp_path):
    return lambda machine_id: host_of(MACHINES[machine_id], tmp_path / machine_id)


# ---------------------------------------------------------------------------------------------------------
# NVIDIA's own v4.1 code, with stand-ins for the machine.

FAKE_CUDA_DRIVER = r"""
import json, os

from .cudart import cudaError_t


class CUdevice_attribute:
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = "major"
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = "minor"


class CUdevice:
    pass


class CUcontext:
    pass


def _visible():
    spec = json.load(open(os.environ["FAKE_HOST"]))
    gpus = spec["gpus"] or [{"uuid": None, "sm": spec["soc_sm"]}]
    tokens = [t for t in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if t]
    if not tokens:
        return gpus
    return [g for t in tokens for i, g in enumerate(gpus) if (t.isnumeric() and int(t) == i) or t == g["uuid"]]


def cuInit(flags):
    return (cudaError_t.cudaSuccess,)


def cuDeviceGet(index):
    return (cudaError_t.cudaSuccess, index)


def cuCtxCreate(flags, device):
    return (cudaError_t.cudaSuccess, CUcontext())


def cuCtxDestroy(context):
    return (cudaError_t.cudaSuccess,)


def cuDeviceGetAttribute(attribute, device):
    sm = _visible()[device]["sm"]
    return (cudaError_t.cudaSuccess, sm // 10 if attribute == "major" else sm % 10)
"""

# v2.0's harness script with DeprecatedSystem read too, and each verdict with its deprecated match.
HARNESS = (
    HARNESS_HEAD
    + r"""out["deprecated"] = [member(old) for old in system_list.DeprecatedSystem]
"""
    + HARNESS_LOOP
    + r"""
        detected = system_list.SystemConfiguration.detect()
        match = system_list.match_known_system(detected)
        old = system_list.DeprecatedSystem.get_first_match(detected)
        verdict = [match.name, match.value.system_id] if match else [None, None]
        out["cases"][case["id"]] = {"match": verdict, "deprecated": old.name if old else None}
    except Exception as exc:
        out["cases"][case["id"]] = {"match": ["error", repr(exc)], "deprecated": None}
json.dump(out, open(sys.argv[2], "w"))
"""
)


def cuda_stubs(stubs: Path) -> None:
    """A `cuda` package (cuda-python's `cuda.cuda` and `cuda.cudart`, what accelerator.py:209-229 and
    code/common/cuda_python.py import) answering the compute capability."""
    cuda = stubs / "cuda"
    cuda.mkdir(parents=True)
    (cuda / "__init__.py").write_text("")
    (cuda / "cudart.py").write_text("class cudaError_t:\n    cudaSuccess = 0\n")
    (cuda / "cuda.py").write_text(FAKE_CUDA_DRIVER)


@pytest.fixture(scope="module")
def nvidia(tree, tmp_path_factory):
    return run_nvidia(tree, list(MACHINES.values()), tmp_path_factory.mktemp("nvidia-v4.1"), cuda_stubs, HARNESS)


# ---------------------------------------------------------------------------------------------------------
# The rules as read.


def line_of(tree: Path, where: str) -> str:
    rel, line = where.rsplit(":", 1)
    return (tree / rel).read_text().splitlines()[int(line) - 1]


def test_rules_read_from_the_v4_1_system_list(tree, rules):
    assert rules.round == "v4.1" and rules.skipped == ()
    assert len(rules) == 74 and len(rules.deprecated) == 17
    assert list(rules)[:3] == ["GH200_96GB_ARMx1", "GH200_144GB_ARMx1", "GH200_144GB_ARMx2"]
    h200, cts = rules["H200_SXM_141GBx8"], rules["H200_SXM_141GB_CTSx8"]
    assert 'add_systems("H200_SXM_141GBx{}"' in line_of(tree, h200.where)
    assert (h200.gpu.max_power_limit.value, cts.gpu.max_power_limit.value) == (700.0, 1000.0)
    assert (h200.min_memory_bytes, cts.min_memory_bytes) == (30 * 2**30, 2 * 10**12)  # Memory(2, ByteSuffix.TB)
    assert h200.gpu.pci_id.matches("0x233510de") and h200.gpu.key == "KnownGPU.H200_SXM_141GB"
    assert [cpu.key for cpu in rules["H100_SXM_80GBx8"].cpus] == ["KnownCPU.Intel_Xeon_Platinum_8480C"]
    assert rules["H100_SXM_80GBx8"].cpus[0].name.matches("INTEL(R) XEON(R) PLATINUM 8480CL")  # the alias
    assert [cpu.key for cpu in rules["H100_PCIe_80GBx8"].cpus] == ["KnownCPU.AMD_EPYC_7742"]
    assert [cpu.key for cpu in rules["H100_NVL_94GBx8"].cpus] == ["KnownCPU.Intel_Xeon_Platinum_8480P"]
    grace = rules["GH200_144GB_ARMx1"].cpus[0]
    assert grace.key == "KnownCPU.GraceHopper_ARM" and grace.name.matches("AARCH64_0")
    assert not grace.name.matches("NVIDIA Grace CPU")  # a str as aliases: one alias a character
    assert grace.name.matches("n")  # ... so a one-character name would match, as in NVIDIA's AliasedName.__eq__
    assert rules["GH200_144GB_ARMx1"].min_memory_bytes == 600 * 2**30
    orin = rules["Orin"].gpu
    assert orin.name.matches("NVIDIA Jetson AGX Orin Developer Kit") and orin.name.matches("NVIDIA Jetson AGX Orin")
    assert not orin.name.matches("NVIDIA Orin Jetson-Small Developer Kit")  # v2.0's name
    assert rules["Orin"].cpus[0].name.matches("Cortex-A78AE")
    drive = rules.deprecated["DRIVE_A100_PCIE"]  # Memory(quantity=30.0, byte_suffix=ByteSuffix.GB)
    assert drive.min_memory_bytes == 30 * 10**9 and drive.system_id == "Drive-A100-PCIex1"
    assert "target_dict=_deprecated_systems" in "\n".join(
        (tree / SYSTEM_LIST).read_text().splitlines()[int(drive.where.rsplit(":", 1)[1]) - 1 :][:5]
    )
    assert rules["A100_SXM_80GBx8"].cpu.rules_first  # v4.1: the known system's layout leads


def test_rules_agree_with_nvidias_enum(rules, nvidia):
    """Every KnownSystem and DeprecatedSystem member NVIDIA's v4.1 code builds, in its order, with its id, memory
    floor, count and GPU."""
    assert nvidia["aliases"] == []
    for members, read in ((nvidia["members"], rules), (nvidia["deprecated"], rules.deprecated)):
        assert [m["name"] for m in members] == list(read)
        for member in members:
            rule = read[member["name"]]
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


def test_the_round_is_told_from_the_list(tree, nvidia_tree):
    v2_0 = nvidia_tree
    assert load_rules(v2_0).round == "v2.0"
    with pytest.raises(DetectionRulesError, match=r"system_list.py:1: no `_system_confs = dict\(\)` \(not NVIDIA's v4"):
        load_rules(v2_0, round="v4.1")
    with pytest.raises(ValueError, match="no system list shape for round 'v3.0'"):
        load_rules(tree, round="v3.0")


# ---------------------------------------------------------------------------------------------------------
# Predictions, and NVIDIA's own verdict on the same stand-in hosts.


@pytest.mark.parametrize("machine_id", list(MACHINES))
def test_prediction_is_nvidias_verdict(rules, host, nvidia, machine_id):
    machine = MACHINES[machine_id]
    prediction = predict(rules, host(machine_id))
    verdict = nvidia["cases"][machine_id]
    assert verdict["match"] == list(machine.expected), "NVIDIA's own v4.1 code decided otherwise"
    assert verdict["deprecated"] == DEPRECATED.get(machine_id)
    assert [prediction.system, prediction.system_id] == list(machine.expected)
    deprecated = [note.split()[6] for note in prediction.notes if note.startswith("the host is the deprecated")]
    assert deprecated == ([DEPRECATED[machine_id]] if machine_id in DEPRECATED else [])


@pytest.mark.parametrize("sku", [sku for sku, system in CATALOG.systems.items() if system.known_system])
def test_catalog_system_predicts_itself(rules, host, sku):
    """Each v4.1 catalog system, on the host its KnownSystem describes, runs as that system."""
    system = CATALOG.systems[sku]
    prediction = predict(rules, host(sku), want=system.known_system)
    assert (prediction.system, prediction.system_id, prediction.reasons) == (
        system.known_system,
        system.system_id,
        (),
    )


def test_b200_matches_nothing(rules, host):
    prediction = predict(rules, host("B200-SXM-180GBx1"))
    assert (prediction.system, prediction.notes) == (None, ())
    assert prediction.message().startswith("NVIDIA's detection will match no known system")
    assert CATALOG.systems["B200-SXM-180GBx1"].known_system == ""  # no KnownSystem to want


def test_wrong_cpu_names_the_8480c(rules, host):
    prediction = predict(rules, host("H100x8-epyc-9654"), want="H100_SXM_80GBx8")
    assert prediction.system is None and len(prediction.reasons) == 1
    reason = prediction.reasons[0]
    assert reason.startswith("NVIDIA's detection needs CPU Intel(R) Xeon(R) Platinum 8480C (x86_64, 56 cores")
    assert "KnownCPU.Intel_Xeon_Platinum_8480C, code/common/systems/known_hardware.py:287" in reason
    assert "for H100_SXM_80GBx8 (code/common/systems/system_list.py:87)" in reason
    assert "this host has AMD EPYC 9654 96-Core Processor" in reason
    assert reason.endswith("differing in model name, cores per socket")


def test_h200_power_limit_and_cts_memory(rules, host):
    cts = predict(rules, host("H200-CTSx8-1000W-1TB"), want="H200_SXM_141GB_CTSx8")
    assert cts.system is None
    assert len(cts.reasons) == 1 and "needs at least 2 TB memory for H200_SXM_141GB_CTSx8" in cts.reasons[0]
    assert "(code/common/systems/system_list.py:84)" in cts.reasons[0]  # where its Memory(2, ByteSuffix.TB) is
    plain = predict(rules, host("H200x8-700W"), want="H200_SXM_141GB_CTSx8")
    assert plain.system == "H200_SXM_141GBx8"
    assert plain.reasons[0].endswith("differing in max power limit")
    assert "max power 1000.0 W" in plain.reasons[0] and "max power 700 W" in plain.reasons[0]


def test_gh200_reads_graces_lscpu(rules, host):
    facts = host("GH200-144GB-aarch64")
    assert (facts.cpu.model_name, facts.cpu.model) == (None, "0")
    assert predict(rules, facts, want="GH200_144GB_ARMx1").runs_as_wanted
    low = predict(rules, host("GH200-144GB-lpddr-only"), want="GH200_144GB_ARMx1").reasons
    assert len(low) == 1 and "at least 600 GiB memory for GH200_144GB_ARMx1" in low[0]
    named = predict(rules, host("GH200-144GB-neoverse-v2-named"), want="GH200_144GB_ARMx1").reasons
    assert len(named) == 1 and "this host has Neoverse-V2 (aarch64, 72 cores per socket" in named[0]
    assert named[0].endswith("differing in model name")


def test_cpuinfo_gives_lscpus_model():
    """Without lscpu, /proc/cpuinfo's "CPU revision" is lscpu's ARM "Model" (Grace: 0, so NVIDIA's "aarch64_0")."""
    grace = "processor\t: 0\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd4f\nCPU revision\t: 0\n"
    assert CpuFacts.from_cpuinfo(grace, "aarch64").model == "0"


def test_grace_without_model_name_is_named_by_architecture(rules, host):
    reason = predict(rules, host("GH200-144GB-aarch64"), want="H100_PCIe_80GB_ARMx1").reasons[0]
    assert "no model name (model 0)" in reason and "which NVIDIA names 'aarch64_0'" in reason


def test_orin_is_read_from_the_devicetree(rules, host):
    facts = host("Orin-devkit")
    assert (facts.cpu.cores_per_socket, facts.cpu.cores_per_cluster, facts.cpu.sockets_dash) == (None, 4, True)
    assert predict(rules, facts, want="Orin").runs_as_wanted
    # accelerator.py:263: the devicetree comes before nvidia-smi; a GPU NVML shows on the Jetson is not counted.
    nvml = GpuFacts("Orin (nvgpu)", None, None, None, 87, "GPU-00000000-0000-0000-0000-000000000000")
    assert predict(rules, replace(facts, gpus=(nvml,)), want="Orin").runs_as_wanted
    reason = predict(rules, host("Orin-v2.0-name"), want="Orin").reasons[0]
    assert "integrated GPU 'NVIDIA Orin Jetson-Small Developer Kit'" in reason and "differing in name" in reason


def test_deprecated_system_is_a_note(rules, host):
    prediction = predict(rules, host("A100x4-DGX-Station"))
    assert prediction.system is None
    assert prediction.notes == (
        "the host is the deprecated system A100_SXM_80GB_ROx4 (code/common/systems/system_list.py:179): NVIDIA "
        "logs 'Detected system is a deprecated system, and is no longer supported' and matches nothing "
        "(system_list.py:226-240)",
    )
    with pytest.raises(ValueError, match="'A100_SXM_80GB_ROx4' is not a KnownSystem.*it is a DeprecatedSystem"):
        predict(rules, host("A100x4-DGX-Station"), want="A100_SXM_80GB_ROx4")


def test_lscpu_without_socket_count_stops_v4_1(rules, host):
    facts = host("H100x8-8480C")
    missing = replace(facts, cpu=replace(facts.cpu, sockets=None))
    assert "no usable 'Socket(s)' (code/common/systems/cpu.py:70-79, 118)" in predict(rules, missing).reasons[0]
    bare = CpuFacts.from_lscpu("Architecture: x86_64\nSocket(s): 2\n")  # no name, cores or threads: 0 and 1
    assert predict(rules, replace(facts, cpu=bare)).system is None
    assert (
        "which NVIDIA names 'x86_64_UnknownNum'" in predict(rules, replace(facts, cpu=bare), want=H100X8[0]).reasons[0]
    )


# ---------------------------------------------------------------------------------------------------------
# A checkout not shaped as NVIDIA's v4.1.


def copy_systems_code(tree: Path, destination: Path) -> Path:
    """NVIDIA's code/ (whose __init__.py imports each benchmark's constants module, v4.1 code/__init__.py:23-31)
    and the VERSION file code/common/__init__.py reads: what `import code.common.systems.system_list` loads."""
    destination.mkdir(parents=True)
    shutil.copy(tree / "VERSION", destination / "VERSION")
    shutil.copytree(tree / "code", destination / "code")
    return destination


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'KnownSystem = MatchableEnum("KnownSystem", _system_confs)',
            "KnownSystem = None",
            r"system_list.py:1: no `KnownSystem = MatchableEnum\(\"KnownSystem\", _system_confs\)`",
        ),
        (
            'DeprecatedSystem = MatchableEnum("DeprecatedSystem", _deprecated_systems)',
            "DeprecatedSystem = None",
            r"system_list.py:1: no `DeprecatedSystem = MatchableEnum\(\"DeprecatedSystem\", _deprecated_systems\)`",
        ),
        (
            "KnownCPU.AMD_EPYC_7313P.value,\n            KnownGPU.L40.value",
            "KnownCPU.AMD_EPYC_7313P.value,\n            make_gpu()",
            r"system_list.py:73: cannot be read: make_gpu is not known to this reader",
        ),
        (
            "Memory(2, ByteSuffix.TB))",
            "Memory(2, ByteSuffix.TB), extra=1)",
            r"system_list.py:83: cannot be read: add_systems\(\) got an unexpected argument extra",
        ),
    ],
    ids=["no-known-system", "no-deprecated-system", "unknown-name", "unknown-argument"],
)
def test_wrong_shape_names_the_file_and_line(tree, tmp_path, old, new, message):
    root = copy_systems_code(tree, tmp_path / "NVIDIA")
    path = root / SYSTEM_LIST
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    with pytest.raises(DetectionRulesError, match=message):
        load_rules(root)


def test_copied_checkout_reads_as_the_tree(tree, rules, tmp_path):
    assert list(load_rules(copy_systems_code(tree, tmp_path / "NVIDIA"))) == list(rules)


# ---------------------------------------------------------------------------------------------------------
# A checkout with a custom_list.py, as scripts/custom_systems/add_custom_system.py writes it.


def custom_line(tree: Path, name: str, cpu: str, cores: int, memory_gb: float, gpu: str, count: int) -> str:
    """The line NVIDIA's README.md shows for an A30x4 custom system, for another machine."""
    line = next(
        line for line in (tree / "README.md").read_text().splitlines() if line.startswith("custom_systems['A30x4_")
    )
    for old, new in (
        ("A30x4_Custom", name),
        ("AMD EPYC 7742 64-Core Processor", cpu),
        ("core_count=64", f"core_count={cores}"),
        ("quantity=990.594852", f"quantity={memory_gb}"),
        ("KnownGPU.A30.value: 4", f"KnownGPU.{gpu}.value: {count}"),
    ):
        assert old in line
        line = line.replace(old, new)
    return line


def test_custom_list_describes_the_wrong_cpu_box(tree, tmp_path, tmp_path_factory):
    """The H100 box with an EPYC 9654, described in code/common/systems/custom_list.py: NVIDIA's v4.1 code and
    the prediction both match it there; the 8480C box still matches the built-in system, which comes first."""
    root = copy_systems_code(tree, tmp_path / "NVIDIA")
    stub = (tree / "scripts/custom_systems/stubs/custom_system.py.stub").read_text()
    marker = "###############################\n#### END OF CUSTOM SYSTEMS ####"
    assert marker in stub
    memory_gb = nvidia_memory_bytes(TB2) / 1e9  # MemoryConfiguration: within 5 % of what NVIDIA reads
    line = custom_line(tree, "H100x8_EPYC9654", "AMD EPYC 9654 96-Core Processor", 96, memory_gb, "H100_SXM_80GB", 8)
    (root / "code/common/systems/custom_list.py").write_text(stub.replace(marker, f"{line}\n\n{marker}"))
    rules = load_rules(root)
    assert list(rules)[-1] == "H100x8_EPYC9654" and rules.skipped == ()
    machines = [
        replace(MACHINES["H100x8-epyc-9654"], expected=("H100x8_EPYC9654", "H100x8_EPYC9654")),
        MACHINES["H100x8-8480C"],
    ]
    verdicts = run_nvidia(root, machines, tmp_path_factory.mktemp("nvidia-v4.1-custom"), cuda_stubs, HARNESS)
    for machine in machines:
        prediction = predict(rules, host_of(machine, tmp_path / machine.id))
        assert verdicts["cases"][machine.id]["match"] == list(machine.expected), machine.id
        assert [prediction.system, prediction.system_id] == list(machine.expected), machine.id
