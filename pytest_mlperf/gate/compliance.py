"""MLPerf's own compliance checker (PyPI mlperf-logging, optional extra [compliance]) over a training log.

mlperf-logging's training 2.1.0 rules were changed upstream on 2022-11-22 to require `opt_lamb_epsilon`, while
the v2.1 implementations log `opt_epsilon`; so every v2.1 log fails the current package's 2.1.0 ruleset on that
one key. That finding is reported as the known rename it is, apart from anything else the checker says.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..logs import last_lines

RULESET = "2.1.0"
RENAMED_KEY = "opt_lamb_epsilon"
KNOWN_RENAME = (
    "mlperf-logging's 2.1.0 rules now require opt_lamb_epsilon where v2.1 logs write opt_epsilon "
    "(an upstream rule change, not a broken log)"
)


def installed() -> bool:
    return importlib.util.find_spec("mlperf_logging") is not None


@dataclass
class Findings:
    status: str  # PASSED, FAILED, KNOWN RENAME ONLY (failed only on the renamed key)
    findings: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    log: str = ""

    def to_dict(self) -> dict:
        return {"status": self.status, "findings": self.findings, "known": self.known, "log": self.log}


def check(log: Path, out_dir: Path, ruleset: str = RULESET) -> Findings:
    """Run the checker on one trial log; its own log goes to out_dir (it would write into the cwd otherwise)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checker_log = out_dir / f"{log.stem}.compliance.log"
    argv = [
        sys.executable,
        "-m",
        "mlperf_logging.compliance_checker",
        "--usage",
        "training",
        "--ruleset",
        ruleset,
        "--log_output",
        str(checker_log),
        str(log),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=out_dir)
    text = proc.stdout + proc.stderr
    findings, known, verdict = [], [], None
    for raw in text.splitlines():
        line = raw.strip()
        if line in ("ERROR - FAILED", "SUCCESS") or line.endswith("- SUCCESS"):
            verdict = "FAILED" if "FAILED" in line else "PASSED"
        elif line.startswith(("WARNING -", "ERROR -", "Failed checks")):
            message = line.split(" - ", 1)[1].strip() if " - " in line else line
            (known if f"'{RENAMED_KEY}'" in message else findings).append(message)
    if verdict is None:
        tail = last_lines(text, 3, " | ")
        return Findings("ERROR", [f"the checker ended (exit {proc.returncode}) without a verdict: {tail}"])
    if verdict == "FAILED" and known and not findings:
        verdict = "KNOWN RENAME ONLY"
    return Findings(verdict, findings, [KNOWN_RENAME] if known else [], str(checker_log))
