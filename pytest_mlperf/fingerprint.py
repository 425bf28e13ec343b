"""What a run ran on, so two runs can be compared knowingly: GPUs and their settings, driver, firmware, the
image and the harness code, the plugin and the kernel."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from . import __version__
from .gpu import Inventory


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


def code_commit(path: Path | None) -> str | None:
    if path is None or shutil.which("git") is None:
        return None
    proc = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def image_identity(image: str | None, docker_host: str | None = None) -> dict:
    """The image's id and registry digest, when a Docker engine can say."""
    if not image:
        return {}
    try:
        from .containers import connect

        found = connect(docker_host, timeout=10).images.get(image)
    except Exception as exc:  # noqa: BLE001 - the fingerprint says what it could not read
        return {"image": image, "image_id": f"unknown ({type(exc).__name__})"}
    digests = found.attrs.get("RepoDigests") or []
    return {"image": image, "image_id": found.id, "image_digest": digests[0] if digests else None}


def fingerprint(inventory: Inventory | None, why_no_gpu: str, backends: dict[str, object]) -> dict:
    """backends: field-name prefix -> backend ("" for inference, "training_" for training); a backend with
    NVIDIA's code and image adds its commit and the image's identity."""
    out = {"pytest_mlperf": __version__, "kernel": platform.release(), "host": platform.node()}
    out.update(gpu_fields(inventory, why_no_gpu))
    for prefix, backend in backends.items():
        code = getattr(backend, "code", None)
        if code is not None:
            out[f"{prefix or 'harness_'}code_commit"] = code_commit(Path(code))
        if getattr(backend, "image", None):
            out.update({prefix + k: v for k, v in image_identity(backend.image, backend.docker_host).items()})
    return out
