"""--sku auto on Hopper and Blackwell machines: the GPUs NVML reports (the fake NVML library stands in for the driver:
no GPU here) pick the v4.1 system whose GPU, count and power limit they are, and with it the round; the figures
are those NVIDIA's v4.1 known_hardware.py gives (PCI id, memory, max power limit)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import fake_gpu_env

H200 = "name=NVIDIA H200;memory_mib=143771;pci=0x233510DE"


@pytest.mark.parametrize(
    ("spec", "sku"),
    [
        (f"count=8;{H200};power_w=700", "H200-SXM-141GBx8"),
        (f"count=8;{H200};power_w=1000", "H200-SXM-141GB-CTSx8"),  # the same GPU, its CTS power limit
        (f"count=1;{H200};power_w=700", "H200-SXM-141GBx1"),
        ("count=8;name=NVIDIA H100 80GB HBM3;memory_mib=81559;pci=0x233010DE;power_w=700", "H100-SXM-80GBx8"),
        ("count=1;name=NVIDIA B200;memory_mib=183359;pci=0x290110DE;power_w=1000", "B200-SXM-180GBx1"),
    ],
)
def test_sku_auto_finds_the_v41_system_and_its_round(fake_nvml, suites, tmp_path, spec, sku):
    empty = tmp_path / "results"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-m", "inference", "--sku", "auto"]
        + [f"--mlperf-results={empty}", str(suites.path)],
        env=fake_gpu_env(fake_nvml, spec),
        capture_output=True,
        text=True,
        cwd=suites.path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"mlperf: round inference-v4.1 (inference-v2.0 has no case for {sku})" in proc.stdout
    assert f"mlperf: system {sku} " in proc.stdout
