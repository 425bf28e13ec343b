"""JUnit XML properties: per test from its record, per suite from the run's header (xunit1 keeps them)."""

from __future__ import annotations

import re

from ..logs import clean
from .records import CaseRecord

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.:/%@+-]")
VALUE_LIMIT = 2000


def case_properties(record: CaseRecord) -> list[tuple[str, str]]:
    props = [("mlperf:verdict", record.verdict), ("mlperf:reason", record.reason), ("mlperf:backend", record.backend)]
    if "config_name" in record.info:
        props.append(("mlperf:config_name", record.info["config_name"]))
    for key in ("fleet", "gpu"):
        props += peer_properties(record.info.get(key) or {}, key)
    if record.compliance:
        props.append(("mlperf:compliance", record.compliance["status"]))
    if record.throttled:
        props.append(("mlperf:throttled", ",".join(record.throttled)))
    if record.contended:
        props.append(("mlperf:contended", "; ".join(record.contended)))
    if record.baseline and not record.baseline.get("missing"):
        props.append(("mlperf:baseline", record.baseline["name"]))
        props.append(("mlperf:regressions", "; ".join(record.regressions) or "none"))
        for decision in record.baseline.get("decisions") or []:  # each gated figure's change, interval, decision
            prefix = f"mlperf:gate.{decision['metric']}"
            props += [
                (f"{prefix}.change", _number(decision["change"])),
                (f"{prefix}.ci_low", _number(decision["low"])),
                (f"{prefix}.ci_high", _number(decision["high"])),
                (f"{prefix}.confidence", _number(decision["confidence"])),
                (f"{prefix}.decision", decision["outcome"]),
                (f"{prefix}.runs", f"{decision['runs_before']} vs {decision['runs_now']}"),
            ]
    props += [("mlperf:note", note) for note in record.notes]
    props += [(m["name"], _number(m["value"])) for m in record.metrics]
    return [_safe(name, value) for name, value in props]


def peer_properties(where: dict, key: str = "fleet") -> list[tuple[str, str]]:
    """Where a case ran: a fleet node's name, Slurm job and state; a pinned GPU's index, name, UUID and serial."""
    prefix = "mlperf:" if key == "fleet" else "mlperf:gpu_"
    return [_safe(f"{prefix}{name}", value) for name, value in where.items() if value is not None]


def suite_properties(header: dict) -> list[tuple[str, str]]:
    props = []
    for key, value in header.items():
        if key == "fingerprint":
            props += [(f"mlperf:fingerprint.{f}", str(v)) for f, v in (value or {}).items() if v is not None]
        elif value is not None:
            props.append((f"mlperf:{key}", str(value)))
    return [_safe(name, value) for name, value in props]


def _safe(name: str, value: object) -> tuple[str, str]:
    """pytest escapes a property's value, not its name: a name keeps a plain set of characters (a control
    character in one made the XML unreadable), and a value is cleaned and capped."""
    return _UNSAFE_NAME.sub("_", str(name))[:200], clean(str(value), VALUE_LIMIT)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
