"""GPU inventory through NVML (nvidia-ml-py), and the catalog SKU it matches.

Matching follows NVIDIA's own rules (code/common/systems in their v2.0 code): GPU name or PCI device id,
memory within 5 %, GPU count; A100-SXM-80GB parts at 275 W are the DGX Station's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..catalog import Catalog, Gpu, System


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver or library on this machine: the reason, for a skip message."""


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    uuid: str | None
    memory_bytes: int | None
    pci_device_id: str | None  # "0x20B210DE"
    pci_bus_id: str | None
    vbios: str | None
    power_limit_w: float | None
    default_power_limit_w: float | None
    mig_mode: int | None  # 1 enabled, 0 disabled, None unsupported
    ecc_mode: int | None = None  # current ECC mode: 1 on, 0 off
    persistence_mode: int | None = None
    app_clock_sm_mhz: int | None = None  # application clocks
    app_clock_mem_mhz: int | None = None
    max_power_limit_w: float | None = None  # the board's maximum (nvidia-smi power.max_limit)
    compute_sm: int | None = None  # compute capability as NVIDIA's code writes it: 8.0 -> 80
    serial: str | None = None  # the board's serial number (nvidia-smi serial), None where NVML has none

    @property
    def memory_gib(self) -> float | None:
        return self.memory_bytes / 2**30 if self.memory_bytes is not None else None


@dataclass(frozen=True)
class Inventory:
    driver_version: str | None
    cuda_driver_version: str | None  # "11.6"
    devices: tuple[GpuDevice, ...] = field(default_factory=tuple)

    @property
    def count(self) -> int:
        return len(self.devices)

    def to_dict(self) -> dict:
        return asdict(self)


def _optional(fn, *args):
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def detect() -> Inventory:
    """Read the machine's GPUs. Raises NvmlUnavailable with the reason when NVML cannot be used."""
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise NvmlUnavailable(f"nvidia-ml-py is not installed ({exc})") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML could not start: {exc} (no NVIDIA driver on this machine?)") from None
    try:
        cuda = _optional(pynvml.nvmlSystemGetCudaDriverVersion)
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pci = _optional(pynvml.nvmlDeviceGetPciInfo, handle)
            memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
            limit = _optional(pynvml.nvmlDeviceGetPowerManagementLimit, handle)
            default_limit = _optional(pynvml.nvmlDeviceGetPowerManagementDefaultLimit, handle)
            mig = _optional(pynvml.nvmlDeviceGetMigMode, handle)
            ecc = _optional(pynvml.nvmlDeviceGetEccMode, handle)
            limits = _optional(pynvml.nvmlDeviceGetPowerManagementLimitConstraints, handle)
            capability = _optional(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            devices.append(
                GpuDevice(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)) or "",
                    uuid=_text(_optional(pynvml.nvmlDeviceGetUUID, handle)),
                    memory_bytes=int(memory.total) if memory is not None else None,
                    pci_device_id=f"0x{pci.pciDeviceId:08X}" if pci is not None else None,
                    pci_bus_id=_text(pci.busId) if pci is not None else None,
                    vbios=_text(_optional(pynvml.nvmlDeviceGetVbiosVersion, handle)),
                    power_limit_w=limit / 1000.0 if limit is not None else None,
                    default_power_limit_w=default_limit / 1000.0 if default_limit is not None else None,
                    mig_mode=int(mig[0]) if mig is not None else None,
                    ecc_mode=int(ecc[0]) if ecc is not None else None,
                    persistence_mode=_optional(pynvml.nvmlDeviceGetPersistenceMode, handle),
                    app_clock_sm_mhz=_optional(pynvml.nvmlDeviceGetApplicationsClock, handle, pynvml.NVML_CLOCK_SM),
                    app_clock_mem_mhz=_optional(pynvml.nvmlDeviceGetApplicationsClock, handle, pynvml.NVML_CLOCK_MEM),
                    max_power_limit_w=limits[1] / 1000.0 if limits is not None else None,
                    compute_sm=capability[0] * 10 + capability[1] if capability is not None else None,
                    serial=_text(_optional(pynvml.nvmlDeviceGetSerial, handle)),
                )
            )
        return Inventory(
            driver_version=_text(_optional(pynvml.nvmlSystemGetDriverVersion)),
            cuda_driver_version=f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
            devices=tuple(devices),
        )
    finally:
        _optional(pynvml.nvmlShutdown)


class SelectionError(ValueError):
    """--mlperf-gpus names a GPU this machine does not have."""


def select(inventory: Inventory, indices: tuple[int, ...] | None) -> Inventory:
    """The GPUs that make the system under test: those named (NVML indices), or all of them."""
    if indices is None:
        return inventory
    present = {device.index: device for device in inventory.devices}
    missing = [str(i) for i in indices if i not in present]
    if missing:
        raise SelectionError(
            f"GPU {', '.join(missing)} not found: this machine has GPUs {', '.join(map(str, present)) or 'none'}"
        )
    return Inventory(inventory.driver_version, inventory.cuda_driver_version, tuple(present[i] for i in indices))


def detection_facts(inventory: Inventory | None, root: Path):
    """This host as NVIDIA's system detection will see it (its lscpu or /proc/cpuinfo and /proc/meminfo under
    `root`, the GPUs given to its container, or, without NVML, a Jetson's device tree), for
    `catalog.nvidia_detection.predict`."""
    from . import host as nd

    gpus = [
        nd.GpuFacts(
            d.name, d.pci_device_id, d.memory_bytes, d.max_power_limit_w, d.compute_sm, d.uuid, bool(d.mig_mode)
        )
        for d in (inventory.devices if inventory is not None else ())
    ]
    return nd.HostFacts.read(gpus=gpus, root=root)


def gpu_matches(gpu: Gpu, device: GpuDevice) -> list[str]:
    """Why a device is not this catalog GPU (empty when it is)."""
    problems = []
    pci_ok = (
        gpu.pci_device_id is not None
        and device.pci_device_id is not None
        and (gpu.pci_device_id.upper() == device.pci_device_id.upper())
    )
    name_ok = device.name in gpu.names
    if not (pci_ok or name_ok):
        problems.append(
            f"name {device.name!r} / PCI id {device.pci_device_id} is not {gpu.names[0]} ({gpu.pci_device_id})"
        )
    if gpu.memory_gib is not None and device.memory_gib is not None:
        if abs(device.memory_gib - gpu.memory_gib) > 0.05 * gpu.memory_gib:
            problems.append(f"memory {device.memory_gib:.1f} GiB is not {gpu.memory_gib} GiB +-5%")
    if gpu.max_power_w is not None and device.default_power_limit_w is not None:
        if abs(device.default_power_limit_w - gpu.max_power_w) > 1.0:
            problems.append(f"power limit {device.default_power_limit_w:.0f} W is not {gpu.max_power_w:.0f} W")
    return problems


def system_mismatch(system: System, inventory: Inventory) -> list[str]:
    """Why this machine is not the catalog system (empty when it is)."""
    problems = []
    if inventory.count != system.count:
        problems.append(f"{inventory.count} GPU(s), expected {system.count}")
    for device in inventory.devices:
        for problem in gpu_matches(system.gpu, device):
            problems.append(f"GPU {device.index}: {problem}")
    return problems


def match_sku(inventory: Inventory, catalog: Catalog) -> System | None:
    for system in catalog.systems.values():
        if not system_mismatch(system, inventory):
            return system
    return None


def describe(inventory: Inventory) -> str:
    if not inventory.devices:
        return "no GPUs"
    names: dict[str, int] = {}
    for device in inventory.devices:
        names[device.name] = names.get(device.name, 0) + 1
    gpus = ", ".join(f"{count}x {name}" for name, count in names.items())
    return f"{gpus} (driver {inventory.driver_version}, CUDA {inventory.cuda_driver_version})"


def nearest_system(inventory: Inventory, catalog: Catalog) -> System | None:
    """The catalog system closest to this machine: same GPU count first, then the nearest memory size."""
    if not inventory.devices:
        return None
    memory = inventory.devices[0].memory_gib or 0.0

    def distance(system: System) -> tuple[int, float]:
        return (abs(system.count - inventory.count), abs((system.gpu.memory_gib or 0.0) - memory))

    return min(catalog.systems.values(), key=distance)


def custom_system_hint(inventory: Inventory, catalog: Catalog) -> str:
    """What to add to NVIDIA's code for a machine its system list does not know, said exactly."""
    device = inventory.devices[0]
    name = re.sub(r"^NVIDIA\s+", "", device.name).replace(" ", "-")
    system_id = f"{name}x{inventory.count}"
    near = nearest_system(inventory, catalog)
    memory = f"{device.memory_gib:.0f} GiB" if device.memory_gib else "unknown memory"
    power = f"{device.default_power_limit_w:.0f} W" if device.default_power_limit_w else "unknown max power"
    lines = [
        f"this machine ({describe(inventory)}) is not a system NVIDIA's v2.0 code knows; its harness would stop with "
        "'Detected system did not match any known systems'. Add it before running:",
        "  inside the container: python3 scripts/custom_systems/add_custom_system.py, and answer",
        f"    system id: {system_id}",
        f"    GPU: {device.name} x{inventory.count}, {memory}, PCI id {device.pci_device_id}, {power}",
        "  it writes code/common/systems/custom_list.py and configs/<benchmark>/<scenario>/custom.py stubs;",
    ]
    if near is not None:
        lines.append(
            f"  fill the stubs from the nearest known system, {near.system_id} ({near.count}x {near.gpu.names[0]}): "
            "copy its batch sizes and copy streams, and scale offline_expected_qps / server_target_qps "
            f"by {inventory.count}/{near.count} GPUs"
        )
    lines.append(f"  then add the SKU to pytest-mlperf's catalog (or a conftest hook) with system id {system_id}")
    return "\n".join(lines)
