"""This host as NVIDIA's system detection reads it: lscpu (or, where it is not installed, /proc/cpuinfo),
/proc/meminfo and the Jetson devicetree, under a root folder. What the text means, and what NVIDIA's detection
will match, is `catalog.nvidia_detection`'s (`CpuFacts.from_lscpu`, `HostFacts.from_texts`, `predict`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..catalog import nvidia_detection as nd
from ..catalog.nvidia_detection import CpuFacts, GpuFacts

__all__ = ["CpuFacts", "GpuFacts", "HostFacts", "read_cpu", "read_text", "run_lscpu"]

DEVICETREE = "sys/firmware/devicetree/base"


def read_text(path: Path) -> str | None:
    """A file's text, or None where it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def run_lscpu() -> str | None:
    """lscpu's output in the C locale (the field names NVIDIA's cpu.py reads), or None where it cannot run. It is
    this host's lscpu, not the one in NVIDIA's container: where their util-linux versions differ, so can the CPU's
    name (a Grace is "Neoverse-V2" to a newer lscpu, and nameless, so "aarch64_0" to NVIDIA, to an older one)."""
    try:
        env = {**os.environ, "LC_ALL": "C"}
        done = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30, env=env, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def read_cpu(root: Path) -> CpuFacts:
    """The CPU from lscpu (on this host's own root), else from `root`/proc/cpuinfo with the kernel's architecture."""
    root = Path(root)
    if root == Path("/"):
        text = run_lscpu()
        if text is not None:
            return CpuFacts.from_lscpu(text)
    machine = (read_text(root / "proc/sys/kernel/arch") or "").strip() or os.uname().machine  # the kernel's own
    return CpuFacts.from_cpuinfo(read_text(root / "proc/cpuinfo") or "", machine)


class HostFacts(nd.HostFacts):
    """`catalog.nvidia_detection.HostFacts`, read from this host."""

    @classmethod
    def read(cls, gpus=(), migs=(), *, root: str | Path = "/", lscpu_text: str | None = None) -> HostFacts:
        """Reads lscpu (or, without it, /proc/cpuinfo), /proc/meminfo and the Jetson devicetree's model and
        compatible, under `root`. `gpus`/`migs` come from NVML, as GpuFacts, those given to NVIDIA's container.
        The devicetree is read whether or not there are GPUs: v4.1 reads it before nvidia-smi."""
        root = Path(root)
        cpu = CpuFacts.from_lscpu(lscpu_text) if lscpu_text is not None else read_cpu(root)
        return cls.from_texts(
            cpu,
            read_text(root / "proc/meminfo"),
            gpus,
            migs,
            read_text(root / DEVICETREE / "model"),
            read_text(root / DEVICETREE / "compatible"),
        )
