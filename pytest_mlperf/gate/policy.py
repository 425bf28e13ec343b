"""The gate a run is held to: a saved baseline and its regression rules, and NVIDIA's published figures. Each
check returns what it found; the runner decides what the test does with it."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Catalog, InferenceCase
from ..judge.evaluate import CaseResult
from ..judge.metrics import Metric
from .baseline import Baseline, Comparison, Rule, compare_records, fingerprint_changes, unexpected_changes


@dataclass
class BaselineCheck:
    """A case against the baseline: its comparison, or None when the baseline has no such case."""

    name: str
    comparison: Comparison | None

    def to_dict(self) -> dict:
        if self.comparison is None:
            return {"name": self.name, "missing": True}
        return {"name": self.name, **self.comparison.to_dict()}


@dataclass
class Gate:
    catalog: Catalog
    baseline: Baseline | None = None
    rules: tuple[Rule, ...] = ()
    min_published: float | None = None
    min_published_source: str = ""  # how the floor was asked for, for the failure message
    expect_change: tuple[str, ...] = ()
    confidence: float = 0.95  # of the interval of a change (gate/stats.py)
    inconclusive: str = "fail"  # what an undecided comparison does: fail the test, or warn

    def published(self, case, result: CaseResult) -> Metric | None:
        """A performance case's share of NVIDIA's published figure (the round's) for the same system and case, as a
        metric (a latency scenario's share is published / measured, so above 100 % is better either way)."""
        if not isinstance(case, InferenceCase) or case.mode != "PerformanceOnly":
            return None
        figure = self.catalog.published_figure(case.system_name, case.benchmark.name, case.scenario.name)
        measured = next((m.value for m in result.metrics if m.name == case.scenario.perf_key), None)
        if not figure or not measured:
            return None
        share = measured / figure if case.scenario.higher_is_better else figure / measured
        return Metric("published_pct", share * 100.0, "%", True, {"published": figure})

    def tuned(self, case, result: CaseResult) -> Metric | None:
        """A performance case against what NVIDIA tuned it for (its user.conf: the Server's target_qps, the
        Offline expected QPS, the latency target of SingleStream/MultiStream), in percent: above 100 beats it.
        The Server target is the load a driver or firmware change is judged against."""
        if not isinstance(case, InferenceCase) or case.mode != "PerformanceOnly":
            return None
        conf = self.catalog.tuned_settings(case.system_name, case.benchmark.name, case.scenario.name) or {}
        measured = next((m.value for m in result.metrics if m.name == case.scenario.perf_key), None)
        if not measured:
            return None
        if case.scenario.higher_is_better and conf.get("target_qps"):
            target = float(conf["target_qps"])
            return Metric("tuned_target_pct", measured / target * 100.0, "%", True, dict(conf))
        if not case.scenario.higher_is_better and conf.get("target_latency"):
            target_ns = float(conf["target_latency"]) * 1e6  # user.conf latencies are in ms
            return Metric(
                "tuned_target_pct", target_ns / measured * 100.0, "%", True, {"target_latency_ns": target_ns, **conf}
            )
        return None

    def reference_notes(self, case, published: Metric | None) -> list[str]:
        """What the report says where NVIDIA has no figure for a case, instead of skipping the check silently."""
        if not isinstance(case, InferenceCase) or case.mode != "PerformanceOnly" or published is not None:
            return []
        if self.catalog.published_figure(case.system_name, case.benchmark.name, case.scenario.name) is not None:
            return []
        note = f"NVIDIA published no {self.catalog.inference_round} figure for {case.config_name}"
        if self.min_published is not None:
            note += f"; the published floor ({self.min_published_source}) does not apply to it"
        return [note]

    def compare(self, case_id: str, verdict: str, metrics: list[dict]) -> BaselineCheck | None:
        if self.baseline is None:
            return None
        before = self.baseline.record(case_id)
        if before is None:
            return BaselineCheck(self.baseline.name, None)
        now = {"id": case_id, "verdict": verdict, "metrics": metrics}
        return BaselineCheck(self.baseline.name, compare_records(before, now, list(self.rules), self.confidence))

    def undecided(self, case_id: str, result: CaseResult) -> list[str] | None:
        """For --mlperf-repeat auto after each run: the gated metrics the runs so far leave inconclusive ([] when
        every one is decided, a regression and a lost figure included), or None when there is nothing to decide
        against (no baseline, no rule, no record of the case, no gated figure)."""
        if self.baseline is None or not self.rules or self.baseline.record(case_id) is None:
            return None
        metrics = [m.to_dict() for m in result.metrics]
        check = self.compare(case_id, result.verdict.label, metrics)
        comp = check.comparison if check is not None else None
        if comp is None or (comp.gated == 0 and not comp.regressions):
            return None
        return [] if comp.regressions else list(comp.inconclusive)

    def problems(self, case_id: str, check: BaselineCheck | None, published: Metric | None) -> list[str]:
        """Why the gate fails this case: regressions against the baseline, a share below the published floor."""
        found = []
        if check is not None and check.comparison is not None and check.comparison.regressed:
            found.append(f"REGRESSED vs baseline {check.name}: " + "; ".join(check.comparison.regressions))
        if check is not None and check.comparison is not None and check.comparison.inconclusive:
            if self.inconclusive == "fail":
                found.append(f"INCONCLUSIVE vs baseline {check.name}: " + "; ".join(check.comparison.inconclusive))
        floor = self.min_published
        if floor is not None and published is not None and published.value / 100.0 < floor:
            found.append(
                f"BELOW PUBLISHED: {published.value:.1f}% of NVIDIA's published v2.0 figure for {case_id} "
                f"({self.min_published_source})"
            )
        return found

    def warnings(self, check: BaselineCheck | None) -> list[str]:
        """What the report says beside a passing case: an undecided comparison, when it only warns."""
        if check is None or check.comparison is None or self.inconclusive != "warn":
            return []
        return [f"INCONCLUSIVE vs baseline {check.name} (warn only): {line}" for line in check.comparison.inconclusive]

    def fingerprint_changes(self, fingerprint: dict) -> tuple[list, list[str]]:
        """The fingerprint fields that differ from the baseline's, and those of them a roll-out should not
        change (expect_change names the ones it should)."""
        if self.baseline is None:
            return [], []
        changes = fingerprint_changes(self.baseline.header.get("fingerprint") or {}, fingerprint)
        return changes, unexpected_changes(changes, self.expect_change)
