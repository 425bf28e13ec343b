"""JUnit XML properties: per test from its record, per suite from the run's header (xunit1 keeps them)."""

from __future__ import annotations

from .records import CaseRecord


def case_properties(record: CaseRecord) -> list[tuple[str, str]]:
    props = [("mlperf:verdict", record.verdict), ("mlperf:reason", record.reason), ("mlperf:backend", record.backend)]
    if "config_name" in record.info:
        props.append(("mlperf:config_name", record.info["config_name"]))
    if record.compliance:
        props.append(("mlperf:compliance", record.compliance["status"]))
    if record.throttled:
        props.append(("mlperf:throttled", ",".join(record.throttled)))
    if record.baseline and not record.baseline.get("missing"):
        props.append(("mlperf:baseline", record.baseline["name"]))
        props.append(("mlperf:regressions", "; ".join(record.regressions) or "none"))
    props += [(m["name"], _number(m["value"])) for m in record.metrics]
    return props


def suite_properties(header: dict) -> list[tuple[str, str]]:
    props = []
    for key, value in header.items():
        if key == "fingerprint":
            props += [(f"mlperf:fingerprint.{f}", str(v)) for f, v in (value or {}).items() if v is not None]
        elif value is not None:
            props.append((f"mlperf:{key}", str(value)))
    return props


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
