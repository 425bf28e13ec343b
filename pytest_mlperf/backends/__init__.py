"""How a Case gets run. Each backend returns where its artifacts lie; judging them is evaluate's job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..catalog import InferenceCase, TrainingCase
from ..logs.harness import AccuracyMessage, PerfMessage

Case = InferenceCase | TrainingCase


class ResultMissing(LookupError):
    """The backend has nothing for this case (the test is skipped with this message)."""


class RunFailed(RuntimeError):
    """A run ended without logs to judge (a failed step, a crashed trial, a lost job): the message says how."""


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine or with these options (a usage error)."""


@dataclass
class Artifacts:
    """Where a case's logs are: a LoadGen log folder, or one training trial log."""

    path: Path
    harness_perf: PerfMessage | None = None
    harness_accuracy: AccuracyMessage | None = None
    files: list[Path] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # what the backend wants the report to say (model, settings)


class Backend(Protocol):
    name: str
    needs_gpu: bool

    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        """The cases this backend will run: the catalog's for a SKU, or, without one, what it can find."""

    def run(self, case: Case, workdir: Path) -> Artifacts:
        """Run (or find) the case; raise ResultMissing when there is nothing to judge."""


class NoBackend:
    """Stands where a kind of case has no backend in this run (the reason is said where the suite skips)."""

    needs_gpu = False

    def __init__(self, name: str):
        self.name = name

    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        return []

    def run(self, case: Case, workdir: Path) -> Artifacts:
        raise ResultMissing(f"no {case.kind} backend in this run")
