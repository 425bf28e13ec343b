"""Metric records, named as users of VirtualClient's MLPerf workload already know them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..logs.accuracy import AccuracyResult
from ..logs.harness import AccuracyMessage, PerfMessage
from ..logs.loadgen import LoadgenDetail, LoadgenSummary
from ..logs.mllog import TrainingRun
from .verdict import Verdict


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    higher_is_better: bool | None  # None: a state (PASS/FAIL), not a quantity to trend
    metadata: dict = field(default_factory=dict)
    samples: tuple[float, ...] = ()  # every run's figure when the case ran more than once (value: their median)

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.samples:
            out["samples"] = list(self.samples)
        else:
            del out["samples"]
        return out


_LATENCY_STATS = ("min", "mean", "max")


def metric_class(metric: dict) -> str | None:
    """throughput, latency, accuracy, time, or None for a state (PASS/FAIL) or a figure with no direction."""
    higher = metric.get("higher_is_better")
    if higher is None:
        return None
    name, unit = metric["name"], metric.get("unit", "")
    if unit.endswith("/s"):
        return "throughput"
    if name in ("AccuracyValue", "AccuracyThresholdRatio", "eval_mlm_accuracy"):
        return "accuracy"
    if "latency" in name or unit in ("ns", "ms"):
        return "latency"
    if unit in ("s", "min"):
        return "time"
    return None


def headline(metrics: list[dict]) -> dict | None:
    """The figure a case is judged on: the first metric with a direction and a class (the scenario's perf key,
    the accuracy value, the eval accuracy, the score). Every metric list starts with its state, then this."""
    return next((metric for metric in metrics if metric_class(metric) is not None), None)


def accuracy_metrics(config_name: str, result: AccuracyResult, threshold: float, verdict: Verdict) -> list[Metric]:
    return _accuracy_state(config_name, verdict.ok, result.value, threshold, result.metric)


def _accuracy_state(config_name: str, passed: bool, value: float, threshold: float, unit: str) -> list[Metric]:
    return [
        Metric(f"{config_name}-AccuracyMode", 1.0 if passed else 0.0, "PASS/FAIL", None),
        Metric("AccuracyValue", value, unit, True),
        Metric("ThresholdValue", threshold, unit, None),
        Metric("AccuracyThresholdRatio", value / threshold if threshold else 0.0, "ratio", True),
    ]


def harness_metrics(config_name: str, message: PerfMessage | AccuracyMessage, unit: str = "") -> list[Metric]:
    """VirtualClient's metrics of one message of NVIDIA's harness summaries (perf_harness_summary.json,
    accuracy_summary.json, the printed blocks): the state, then its figures. `unit` is the accuracy metric's name
    (F1, mAP, 100-WER), which the message does not say. An AccuracyOnly perf message and a PerformanceOnly accuracy
    message have nothing to measure: no metrics."""
    if isinstance(message, AccuracyMessage):
        if message.passed is None or message.value is None or message.threshold is None:
            return []
        return _accuracy_state(config_name, message.passed, message.value, message.threshold, unit)
    if message.accuracy_only or message.key is None or message.value is None:
        return []
    latency = message.key.endswith("_ns")
    return [
        Metric(f"{config_name}-PerformanceMode", 1.0 if message.validity == "VALID" else 0.0, "VALID/INVALID", None),
        Metric(message.key, message.value, "ns" if latency else "", not latency),
    ]


TTFT_P99 = "result_first_token_99.00_percentile_latency_ns"
TPOT_P99 = "result_time_per_output_token_99.00_percentile_ns"


def performance_metrics(
    config_name: str,
    perf_key: str,
    unit: str,
    higher_is_better: bool,
    summary: LoadgenSummary | None,
    detail: LoadgenDetail | None,
    verdict: Verdict,
) -> list[Metric]:
    out = [Metric(f"{config_name}-PerformanceMode", 1.0 if verdict.ok else 0.0, "VALID/INVALID", None)]
    headline, key = None, perf_key
    if detail is not None and isinstance(detail.get(perf_key), int | float):
        headline = float(detail.get(perf_key))
    elif summary is not None and perf_key in summary.figures:
        headline = float(summary.figures[perf_key][0])
    elif summary is not None and summary.headline is not None:
        # another LoadGen's headline (v4.1 prints Server's completed rate, v2.0 its scheduled one): under its own name
        key, headline = summary.headline
    if headline is not None:
        out.append(Metric(key, headline, unit, higher_is_better))
    if summary is not None and summary.tokens is not None:  # the LLMs' figure the round scores them on
        out.append(Metric(summary.tokens[0], summary.tokens[1], "tokens/s", True))
    if summary is not None and detail is None:
        for name in (TTFT_P99, TPOT_P99):
            if name in summary.figures:
                out.append(Metric(name, float(summary.figures[name][0]), "ns", False))
    if detail is None:
        return out
    for key in ("result_samples_per_second", "result_scheduled_samples_per_sec", "result_completed_samples_per_sec"):
        value = detail.get(key)
        if key != perf_key and isinstance(value, int | float):
            out.append(Metric(key, float(value), "samples/s", True))
    for key in ("result_qps_with_loadgen_overhead", "result_qps_without_loadgen_overhead"):
        value = detail.get(key)  # SingleStream / MultiStream: queries per second around the latency figure
        if isinstance(value, int | float):
            out.append(Metric(key, float(value), "queries/s", True))
    for key in ("early_stopping_latency_ss", "early_stopping_latency_ms"):
        value = detail.get(key)  # what the submission checker scores SingleStream / MultiStream on
        if isinstance(value, int | float):
            out.append(Metric(key, float(value), "ns", False))
    for key, value in sorted(detail.percentiles_ns.items()):
        if key != perf_key:
            out.append(Metric(key, value, "ns", False))
    for stat in _LATENCY_STATS:
        value = detail.get(f"result_{stat}_latency_ns")
        if isinstance(value, int | float):
            out.append(Metric(f"result_{stat}_latency_ns", float(value), "ns", False))
    count = detail.get("result_query_count")
    if isinstance(count, int | float):
        out.append(Metric("result_query_count", float(count), "queries", None))
    return out


def training_metrics(run: TrainingRun, verdict: Verdict) -> list[Metric]:
    out = [Metric("converged", 1.0 if verdict.ok else 0.0, "CONVERGED/NOT CONVERGED", None)]
    if run.last_accuracy is not None:
        out.append(Metric("eval_mlm_accuracy", run.last_accuracy, "fraction", True))
    if run.time_to_train_s is not None:
        out.append(Metric("time_to_train", run.time_to_train_s, "s", False, {"source": "MLLOG run_stop - run_start"}))
    samples = run.train_samples or (run.evals[-1].samples if run.evals else None)
    if samples:
        out.append(Metric("samples_to_converge" if verdict.ok else "samples_seen", float(samples), "samples", None))
        if run.time_to_train_s:
            # Measured from what ran, unlike the printed figure, which uses max_steps (see REFERENCE).
            out.append(
                Metric(
                    "measured_sequences_per_second",
                    samples / run.time_to_train_s,
                    "sequences/s",
                    True,
                    {"source": "samples / (run_stop - run_start)"},
                )
            )
    if run.summary:
        for key, value in run.summary.items():
            unit, higher = _SUMMARY_UNITS.get(key, ("", None))
            out.append(Metric(key, value, unit, higher, {"source": "run summary line"}))
    return out


_SUMMARY_UNITS = {
    "e2e_time": ("s", False),
    "training_sequences_per_second": ("sequences/s", True),
    "final_loss": ("", False),
    "raw_train_time": ("s", False),
}
MEAN_METRICS = ("eval_mlm_accuracy", *_SUMMARY_UNITS)


def training_means(runs: list[TrainingRun]) -> list[Metric]:
    """The figures VirtualClient averages over the runs of one console capture, converged or not, each over the runs
    that have it (NVIDIA's own logs print no summary line). eval_mlm_accuracy is each run's last evaluation (MLLOG's
    eval_accuracy), where VirtualClient's regex takes every evaluation it finds printed, early ones included. The
    names are the runs' own, so the metadata says what they are: aggregate "mean", and how many runs they are over."""
    figures: dict[str, list[float]] = {name: [] for name in MEAN_METRICS}
    for run in runs:
        if run.last_accuracy is not None:
            figures["eval_mlm_accuracy"].append(run.last_accuracy)
        for key in _SUMMARY_UNITS:
            if run.summary and key in run.summary:
                figures[key].append(run.summary[key])
    units = {"eval_mlm_accuracy": ("fraction", True), **_SUMMARY_UNITS}
    out = []
    for name, values in figures.items():
        if values:
            unit, higher = units[name]
            out.append(
                Metric(name, math.fsum(values) / len(values), unit, higher, {"aggregate": "mean", "runs": len(values)})
            )
    return out
