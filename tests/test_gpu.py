"""GPU detection end to end without a GPU.

The stand-in is at the outermost boundary: a fake libnvidia-ml.so.1, compiled here with gcc against NVIDIA's
nvml.h (PyPI nvidia-nvml-dev), answers the real nvidia-ml-py binding. The library is found through
LD_LIBRARY_PATH, which the dynamic loader reads at process start, so each check runs in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fake_gpu_env
from pytest_mlperf import catalog
from pytest_mlperf.machine import gpu

HERE = Path(__file__).parent
A100 = "name=NVIDIA A100-SXM4-80GB;memory_mib=81920;pci=0x20B210DE;power_w=400"
STATION = "count=4;name=NVIDIA A100-SXM4-80GB;memory_mib=81920;pci=0x20B210DE;power_w=275"
A30 = "count=8;name=NVIDIA A30;memory_mib=24576;pci=0x20B710DE;power_w=165"
H100 = "count=8;name=NVIDIA H100 80GB HBM3;memory_mib=81559;pci=0x233010DE;power_w=700"


def _gpus(lib, spec) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest_mlperf.cli", "gpus"],
        env=fake_gpu_env(lib, spec),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "spec,sku",
    [
        (f"count=8;{A100};driver=510.47.03;cuda=11060;vbios=92.00.45.00.03", "A100-SXM-80GBx8"),
        (f"count=1;{A100}", "A100-SXM-80GBx1"),
        (STATION, "A100-SXM-80GBx4"),
        (A30, "A30x8"),
        ("count=2;name=NVIDIA A2;memory_mib=15360;pci=0x25B610DE;power_w=60", "A2x2"),
        ("count=8;name=NVIDIA A100 80GB PCIe;memory_mib=81920;pci=0x20B510DE;power_w=300", "A100-PCIex8"),
        (H100, None),
    ],
)
def test_inventory_maps_to_sku(fake_nvml, spec, sku):
    proc = _gpus(fake_nvml, spec)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["sku"] == sku
    devices = data["inventory"]["devices"]
    assert len(devices) == int(spec.split("count=")[1].split(";")[0]) if "count=" in spec else 1


def test_inventory_fields(fake_nvml):
    proc = _gpus(fake_nvml, f"count=8;{A100};driver=510.47.03;cuda=11060;vbios=92.00.45.00.03;mig=1")
    data = json.loads(proc.stdout)["inventory"]
    assert data["driver_version"] == "510.47.03" and data["cuda_driver_version"] == "11.6"
    dev = data["devices"][7]
    assert dev["name"] == "NVIDIA A100-SXM4-80GB" and dev["pci_device_id"] == "0x20B210DE"
    assert dev["memory_bytes"] == 80 * 2**30 and dev["vbios"] == "92.00.45.00.03"
    assert dev["power_limit_w"] == 400.0 and dev["mig_mode"] == 1
    assert dev["pci_bus_id"] == "00000000:0E:00.0" and dev["uuid"].startswith("GPU-")
    assert dev["serial"] == "1650121000007"


def test_no_driver_is_a_clear_reason():
    proc = _gpus(None, None)
    assert proc.returncode == 3
    assert "NVML could not start" in proc.stderr and "no NVIDIA driver" in proc.stderr


def test_sku_auto_without_nvml_is_a_usage_error(pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--sku", "auto", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sku auto: NVML could not start*name the system with --sku NAME*"])


def test_sku_auto_detects_through_the_plugin(fake_nvml, pytester):
    pytester.makepyfile(test_x="def test_x(mlperf_system):\n    assert mlperf_system.sku == 'A30x8'\n")
    proc = _pytest(fake_nvml, A30, pytester.path, "--sku", "auto", str(pytester.path / "test_x.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlperf: system A30x8 (A30x8)" in proc.stdout
    assert "mlperf: detected 8x NVIDIA A30 (driver 510.47.03, CUDA 11.6)" in proc.stdout
    assert "1 passed" in proc.stdout


def test_wrong_sku_errors_with_expected_and_detected(fake_nvml, pytester):
    pytester.makepyfile(test_x="def test_needs_hardware(mlperf_system):\n    pass\n")
    proc = _pytest(
        fake_nvml, A30, pytester.path, "--sku", "A100-SXM-80GBx8", "-q", "-rE", str(pytester.path / "test_x.py")
    )
    assert proc.returncode == 1
    assert (
        "--sku A100-SXM-80GBx8 expects 8x A100-SXM-80GB, detected 8x NVIDIA A30 (driver 510.47.03, CUDA 11.6)"
        in proc.stdout
    )
    assert "GPU 0: name 'NVIDIA A30' / PCI id 0x20B710DE is not A100-SXM-80GB (0x20B210DE)" in proc.stdout
    assert "1 error" in proc.stdout


def test_hardware_tests_skip_without_nvml(pytester):
    pytester.makepyfile(test_x="def test_needs_hardware(mlperf_system):\n    pass\n")
    result = pytester.runpytest_subprocess("--sku", "A100-SXM-80GBx8", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no GPU inventory: NVML could not start*"])


def _device(**kw) -> gpu.GpuDevice:
    base = dict(
        index=0,
        name="NVIDIA A100-SXM4-80GB",
        uuid=None,
        memory_bytes=80 * 2**30,
        pci_device_id="0x20B210DE",
        pci_bus_id=None,
        vbios=None,
        power_limit_w=400.0,
        default_power_limit_w=400.0,
        mig_mode=0,
    )
    base.update(kw)
    return gpu.GpuDevice(**base)


def test_matching_rules_follow_nvidia():
    cat = catalog.load()
    a100 = cat.system("A100-SXM-80GBx8").gpu
    assert gpu.gpu_matches(a100, _device()) == []
    # the PCI id alone identifies the part when the marketing name differs
    assert gpu.gpu_matches(a100, _device(name="A100 renamed")) == []
    # memory within 5 %: 78 GiB passes, 70 GiB does not
    assert gpu.gpu_matches(a100, _device(memory_bytes=78 * 2**30)) == []
    assert "memory 70.0 GiB is not 80 GiB +-5%" in gpu.gpu_matches(a100, _device(memory_bytes=70 * 2**30))[0]
    # the DGX Station's 275 W part is not the DGX A100's 400 W part
    inventory = gpu.Inventory(
        "510.47.03", "11.6", tuple(_device(index=i, default_power_limit_w=275.0) for i in range(4))
    )
    assert gpu.match_sku(inventory, cat).sku == "A100-SXM-80GBx4"
    assert gpu.system_mismatch(cat.system("A100-SXM-80GBx8"), inventory)[0] == "4 GPU(s), expected 8"


def test_unknown_machine_gets_exact_custom_system_instructions(fake_nvml, pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    proc = _pytest(fake_nvml, H100, pytester.path, "--sku", "auto", "--mlperf-backend", "nvidia")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    err = proc.stderr
    assert "this machine (8x NVIDIA H100 80GB HBM3 (driver 510.47.03, CUDA 11.6)) is not a system NVIDIA's v2.0" in err
    assert "python3 scripts/custom_systems/add_custom_system.py" in err
    assert "system id: H100-80GB-HBM3x8" in err
    assert "GPU: NVIDIA H100 80GB HBM3 x8, 80 GiB, PCI id 0x233010DE, 700 W" in err
    assert "nearest known system, DGX-A100_A100-SXM-80GBx8 (8x A100-SXM-80GB)" in err


def test_auto_backend_says_why_it_runs_locally_on_a_gpu_machine(fake_nvml, suites):
    args = ("--co", "-m", "inference", "--sku", "auto", str(suites.path))
    listing = _pytest(fake_nvml, A30, suites.path, "-q", *args)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "test_inference[rnnt-Server-PerformanceOnly-local]" in listing.stdout
    header = _pytest(fake_nvml, A30, suites.path, *args).stdout
    assert (
        "mlperf: backend local (auto: 8x NVIDIA A30 (driver 510.47.03, CUDA 11.6) found, but no "
        "--mlperf-nvidia-code to run NVIDIA's code with" in header
    )


def _pytest(lib: Path, spec: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a fresh process that loads the fake NVML library (the loader reads LD_LIBRARY_PATH at start)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        env=fake_gpu_env(lib, spec),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _python(lib: Path, spec: str, code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh Python that loads the fake NVML library; what it prints."""
    return subprocess.run(
        [sys.executable, "-c", code], env=fake_gpu_env(lib, spec), capture_output=True, text=True, timeout=60
    )


def test_detect_reads_a_serial_and_a_uuid_per_gpu(fake_nvml):
    code = (
        "import json\nfrom pytest_mlperf.machine import gpu\n"
        "print(json.dumps([[d.index, d.serial, d.uuid] for d in gpu.detect().devices]))"
    )
    proc = _python(fake_nvml, f"count=8;{A100}", code)
    assert proc.returncode == 0, proc.stderr
    devices = json.loads(proc.stdout)
    assert [index for index, _, _ in devices] == list(range(8))
    serials, uuids = [serial for _, serial, _ in devices], [uuid for _, _, uuid in devices]
    assert serials[3] == "1650121000003" and uuids[3] == "GPU-fa4e0000-0000-0000-0000-000000000003"
    assert len(set(serials)) == 8 and len(set(uuids)) == 8


def _sampled(lib: Path, indices: tuple[int, ...] | None) -> dict:
    """A Sampler over the fake count=8 machine, where GPU i reads 60 - i degrees and has 1 << i corrected ECC
    errors (their sum is a mask of the GPUs read): its summary."""
    code = (
        "import json, time\nfrom pytest_mlperf.machine import telemetry\n"
        f"sampler = telemetry.Sampler(0.01, indices={indices!r}).start()\ntime.sleep(0.05)\n"
        "print(json.dumps(sampler.stop().summary()))"
    )
    proc = _python(lib, f"count=8;{A100};temp_c=60;ecc_errors=1", code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_sampler_watches_only_the_gpus_named(fake_nvml):
    watched = _sampled(fake_nvml, (3,))
    assert "error" not in watched and watched["samples"] >= 2
    assert watched["gpus"] == [3]
    assert watched["ecc_errors"]["corrected"] == 1 << 3  # GPU 3's errors and no other GPU's
    assert watched["stats"]["temperature_c"] == {"min": 57.0, "mean": 57.0, "max": 57.0}


def test_sampler_watches_every_gpu_by_default(fake_nvml):
    watched = _sampled(fake_nvml, None)
    assert "error" not in watched and watched["samples"] >= 2
    assert watched["gpus"] == list(range(8))
    assert watched["ecc_errors"]["corrected"] == 0xFF
    assert watched["stats"]["temperature_c"]["max"] == 60.0  # the hottest GPU, GPU 0


def test_sampler_names_a_missing_gpu_in_its_summary(fake_nvml):
    watched = _sampled(fake_nvml, (9,))
    assert watched["samples"] == 0 and "gpus" not in watched
    assert watched["error"].startswith("sampling stopped:")
