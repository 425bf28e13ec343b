"""What a run ran on, so two runs can be compared knowingly: GPUs and their settings, driver, firmware, the
image and the harness code, the plugin and the kernel."""

from __future__ import annotations

import platform

from .. import __version__
from ..machine.gpu import Inventory


def _same(values: list) -> object:
    """One value when every GPU agrees, else the list (a mixed machine shows as such)."""
    unique = sorted({v for v in values if v is not None}, key=str)
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else unique


def gpu_fields(inventory: Inventory | None, why_none: str = "") -> dict:
    if inventory is None:
        return {"gpus": f"none ({why_none})" if why_none else "none"}
    devices = inventory.devices
    return {
        "driver_version": inventory.driver_version,
        "cuda_driver_version": inventory.cuda_driver_version,
        "gpu_names": _same([d.name for d in devices]),
        "gpu_count": len(devices),
        "gpu_memory_gib": _same([round(d.memory_gib, 1) if d.memory_gib else None for d in devices]),
        "vbios": _same([d.vbios for d in devices]),
        "ecc_mode": _same([d.ecc_mode for d in devices]),
        "mig_mode": _same([d.mig_mode for d in devices]),
        "power_limit_w": _same([d.power_limit_w for d in devices]),
        "app_clocks_mhz": _same(
            [f"{d.app_clock_sm_mhz}/{d.app_clock_mem_mhz}" if d.app_clock_sm_mhz else None for d in devices]
        ),
        "persistence_mode": _same([d.persistence_mode for d in devices]),
    }


def fingerprint(inventory: Inventory | None, why_no_gpu: str, identities: dict[str, dict]) -> dict:
    """identities: field-name prefix ("" for the inference backend, "training_" for training) -> what the
    backend says identifies it (code_commit, image, image_id, image_digest)."""
    out = {"pytest_mlperf": __version__, "kernel": platform.release(), "host": platform.node()}
    out.update(gpu_fields(inventory, why_no_gpu))
    for prefix, identity in identities.items():
        for key, value in identity.items():
            name = (prefix or "harness_") + key if key == "code_commit" else prefix + key
            out[name] = value
    return out
