"""One typed record per case: what ran, its verdict and metrics, and what the gate, the telemetry and the
compliance checker found. Every report (JUnit, HTML, JSON, terminal, baseline) is written from these."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..judge.evaluate import CaseResult
from ..judge.metrics import headline
from ..logs import clean

# Kept inside "info" in the JSON file, where the files have always had them.
EXTRAS = ("baseline", "gate", "telemetry", "throttled", "contention", "contended", "compliance", "notes")
TEXT_LIMIT = 4000  # characters of any text a record carries (a reason, a value from a log); the rest is cut


def capped(value):
    """What a report may echo of a value: strings cleaned of control characters and escapes and capped,
    in lists and dicts too."""
    if isinstance(value, str):
        return clean(value, TEXT_LIMIT)
    if isinstance(value, list | tuple):
        return [capped(v) for v in value]
    if isinstance(value, dict):
        return {clean(str(k), 200): capped(v) for k, v in value.items()}
    return value


@dataclass
class CaseRecord:
    id: str
    nodeid: str = ""
    outcome: str = ""  # pytest's: passed, failed, skipped
    backend: str = ""
    reason: str = ""  # the verdict's reason, or why the test ended without one
    kind: str | None = None  # inference, training, training-score; None without a verdict
    verdict: str | None = None
    ok: bool | None = None
    metrics: list[dict] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # what the backend and the evaluation said (model, folder, ...)
    baseline: dict | None = None  # the comparison with the baseline, or {"name", "missing": True}
    gate: list[str] = field(default_factory=list)  # why the gate failed the test
    telemetry: dict | None = None
    throttled: list[str] = field(default_factory=list)
    contention: dict | None = None  # what the run really got: CPU, run queue, other GPU processes
    contended: list[str] = field(default_factory=list)  # why the run counts as contended (empty: it does not)
    compliance: dict | None = None
    notes: list[str] = field(default_factory=list)  # what the report should say beside the verdict

    @classmethod
    def judged(cls, case_id: str, result: CaseResult, backend: str, **extras) -> CaseRecord:
        return cls(
            id=case_id,
            backend=backend,
            reason=clean(result.verdict.reason, TEXT_LIMIT),
            kind=result.kind,
            verdict=result.verdict.label,
            ok=result.verdict.ok,
            metrics=[m.to_dict() for m in result.metrics],
            artifacts=[str(p) for p in result.artifacts],
            info=capped(dict(result.info)),
            **{key: capped(value) for key, value in extras.items()},
        )

    def ended(self, nodeid: str, outcome: str) -> CaseRecord:
        return replace(self, nodeid=nodeid, outcome=outcome)

    # ---- what the reports ask of a record -------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.verdict or self.outcome.upper()

    @property
    def headline(self) -> dict | None:
        return headline(self.metrics)

    @property
    def regressions(self) -> list[str]:
        return list((self.baseline or {}).get("regressions") or [])

    @property
    def worst(self) -> float:
        """The largest worsening against the baseline, as a fraction (0 without one)."""
        deltas = (self.baseline or {}).get("deltas") or []
        return max((d.get("worsening") or 0.0 for d in deltas if d.get("class")), default=0.0)

    def metric(self, name: str) -> dict | None:
        return next((m for m in self.metrics if m["name"] == name), None)

    # ---- the JSON file's layout -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"id": self.id, "nodeid": self.nodeid, "outcome": self.outcome, "backend": self.backend}
        out["reason"] = self.reason
        if self.verdict is None:
            if self.info:  # where a fleet's node test ran, say, when it ended without a verdict
                out["info"] = dict(self.info)
            return out
        info = dict(self.info)
        for name in EXTRAS:
            value = getattr(self, name)
            if value:
                info[name] = value
        out.update(kind=self.kind, verdict=self.verdict, ok=self.ok, metrics=self.metrics)
        out.update(artifacts=self.artifacts, info=info)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> CaseRecord:
        info = dict(data.get("info") or {})
        extras = {name: info.pop(name) for name in EXTRAS if name in info}
        known = {f.name for f in fields(cls)} - set(EXTRAS) - {"info"}
        return cls(**{k: v for k, v in data.items() if k in known}, info=info, **extras)


def write_json(path: Path, payload: dict) -> Path:
    """Write a strict JSON file (no NaN or Infinity) whole or not at all: a temporary file of its own beside
    it, renamed over it, so a reader never sees half of it and two writers never share a temporary name."""
    text = json.dumps(payload, indent=2, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
