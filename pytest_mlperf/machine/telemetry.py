"""NVML telemetry sampled on a background thread while a test runs: power, SM and memory clocks, temperature,
utilization, clock-throttle reasons, ECC error counts and retired pages; summarised as min/mean/max, with the
throttling seen named next to the verdict."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

# nvmlClocksThrottleReason* bits
THROTTLE_BITS = {
    0x4: ("power", "SW power cap"),
    0x8: ("power", "HW slowdown"),
    0x20: ("thermal", "SW thermal slowdown"),
    0x40: ("thermal", "HW thermal slowdown"),
    0x80: ("power", "HW power brake"),
}
FIELDS = ("power_w", "sm_clock_mhz", "mem_clock_mhz", "temperature_c", "gpu_util_pct", "mem_util_pct")


@dataclass
class Sample:
    t: float
    values: dict[str, float]  # the mean over GPUs of each field
    throttle: int  # OR of every GPU's reasons
    ecc_corrected: int
    ecc_uncorrected: int
    retired_pages: int | None


@dataclass
class Telemetry:
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    gpus: list[int] | None = None  # the NVML indices sampled; None until NVML has said which

    def summary(self) -> dict:
        out: dict = {"samples": len(self.samples)}
        if self.gpus is not None:
            out["gpus"] = list(self.gpus)
        if self.error:
            out["error"] = self.error
        if not self.samples:
            return out
        stats = {}
        for name in FIELDS:
            values = [s.values[name] for s in self.samples if name in s.values]
            if values:
                stats[name] = {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}
        out["stats"] = stats
        seen = 0
        for s in self.samples:
            seen |= s.throttle
        out["throttle"] = sorted({kind for bit, (kind, _) in THROTTLE_BITS.items() if seen & bit})
        out["throttle_reasons"] = [text for bit, (_, text) in THROTTLE_BITS.items() if seen & bit]
        last = self.samples[-1]
        out["ecc_errors"] = {"corrected": last.ecc_corrected, "uncorrected": last.ecc_uncorrected}
        out["ecc_errors_during"] = {
            "corrected": last.ecc_corrected - self.samples[0].ecc_corrected,
            "uncorrected": last.ecc_uncorrected - self.samples[0].ecc_uncorrected,
        }
        if last.retired_pages is not None:
            out["retired_pages"] = last.retired_pages
        start = self.samples[0].t
        out["series"] = [
            {"t": round(s.t - start, 3), **{k: round(v, 2) for k, v in s.values.items()}} for s in self.samples
        ]
        return out


def _read(pynvml, handles) -> Sample:
    def opt(fn, *args):
        try:
            return fn(*args)
        except pynvml.NVMLError:
            return None

    per_gpu: dict[str, list[float]] = {name: [] for name in FIELDS}
    throttle, corrected, uncorrected, retired = 0, 0, 0, None
    for h in handles:
        power = opt(pynvml.nvmlDeviceGetPowerUsage, h)
        if power is not None:
            per_gpu["power_w"].append(power / 1000.0)
        for name, clock in (("sm_clock_mhz", pynvml.NVML_CLOCK_SM), ("mem_clock_mhz", pynvml.NVML_CLOCK_MEM)):
            value = opt(pynvml.nvmlDeviceGetClockInfo, h, clock)
            if value is not None:
                per_gpu[name].append(float(value))
        temp = opt(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
        if temp is not None:
            per_gpu["temperature_c"].append(float(temp))
        util = opt(pynvml.nvmlDeviceGetUtilizationRates, h)
        if util is not None:
            per_gpu["gpu_util_pct"].append(float(util.gpu))
            per_gpu["mem_util_pct"].append(float(util.memory))
        throttle |= opt(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons, h) or 0
        counter = pynvml.NVML_VOLATILE_ECC
        corrected += opt(pynvml.nvmlDeviceGetTotalEccErrors, h, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, counter) or 0
        uncorrected += (
            opt(pynvml.nvmlDeviceGetTotalEccErrors, h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, counter) or 0
        )
        pages = opt(
            pynvml.nvmlDeviceGetRetiredPages, h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
        )
        if pages is not None:
            retired = (retired or 0) + len(pages)
    values = {name: sum(v) / len(v) for name, v in per_gpu.items() if v}
    if "temperature_c" in per_gpu and per_gpu["temperature_c"]:
        values["temperature_c"] = max(per_gpu["temperature_c"])  # the hottest GPU is the one that throttles
    return Sample(time.monotonic(), values, throttle, corrected, uncorrected, retired)


class Sampler:
    """Samples every `interval` seconds until stop(); never raises into the test (errors are recorded).
    `indices`: the NVML indices of the GPUs to watch (a test's leased GPUs); None watches every GPU."""

    def __init__(self, interval: float = 1.0, indices: tuple[int, ...] | None = None):
        self.interval = interval
        self.indices = tuple(indices) if indices is not None else None
        self.telemetry = Telemetry()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlperf-telemetry", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> Telemetry:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.telemetry

    def _loop(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - no NVML: said in the summary, the test goes on
            self.telemetry.error = f"NVML unavailable: {exc}"
            return
        try:
            indices = self.indices if self.indices is not None else tuple(range(pynvml.nvmlDeviceGetCount()))
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
            self.telemetry.gpus = list(indices)
            while True:
                self.telemetry.samples.append(_read(pynvml, handles))
                if self._stop.wait(self.interval):
                    break
            self.telemetry.samples.append(_read(pynvml, handles))  # the state at the end
        except Exception as exc:  # noqa: BLE001
            self.telemetry.error = f"sampling stopped: {exc}"
        finally:
            try:
                pynvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
