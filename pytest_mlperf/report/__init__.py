"""Reports: JUnit properties, pytest-html tables, the results JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluate import CaseResult


def result_record(
    case_id: str, nodeid: str, outcome: str, result: CaseResult | None, reason: str, backend: str
) -> dict:
    """One JSON-ready row: what ran, the verdict and its metrics."""
    record = {
        "id": case_id,
        "nodeid": nodeid,
        "outcome": outcome,
        "backend": backend,
        "reason": reason,
    }
    if result is not None:
        record.update(
            {
                "kind": result.kind,
                "verdict": result.verdict.label,
                "ok": result.verdict.ok,
                "reason": result.verdict.reason,
                "metrics": [m.to_dict() for m in result.metrics],
                "artifacts": [str(p) for p in result.artifacts],
                "info": result.info,
            }
        )
    return record


def junit_properties(result: CaseResult, backend: str) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("mlperf:verdict", result.verdict.label),
        ("mlperf:reason", result.verdict.reason),
        ("mlperf:backend", backend),
    ]
    if "config_name" in result.info:
        props.append(("mlperf:config_name", result.info["config_name"]))
    if "compliance" in result.info:
        props.append(("mlperf:compliance", result.info["compliance"]["status"]))
    if result.info.get("throttled"):
        props.append(("mlperf:throttled", ",".join(result.info["throttled"])))
    found = result.info.get("baseline")
    if found and not found.get("missing"):
        props.append(("mlperf:baseline", found["name"]))
        props.append(("mlperf:regressions", "; ".join(found.get("regressions", [])) or "none"))
    props += [(m.name, _number(m.value)) for m in result.metrics]
    return props


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def write_json(path: Path, header: dict, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**header, "results": records}, indent=2, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
