"""How a Case gets run. Each backend returns where its artifacts lie; judging them is the judge's job.

Every backend builds itself from the options (`build(options, context)`), gets its output folder at
construction, says in one line what it runs with (`describe`), tells the fingerprint what identifies it
(`identity`: NVIDIA's code commit, the image), and releases what it holds (`close`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..catalog import Catalog, InferenceCase, System, TrainingCase
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


@dataclass(frozen=True)
class BuildContext:
    """What a backend builds itself from, besides the options."""

    catalog: Catalog
    output: Callable[[], Path]  # the run's results folder, resolved when a backend first writes there
    system: System | None = None
    make_model: Callable[[Case], object] | None = None  # users' pytest_mlperf_make_sut, for the local backend
    gpu_keys: Callable[..., list[str]] | None = None  # lock names (UUIDs) of the selected GPUs, or of the indices given
    host_facts: Callable[[], object] | None = None  # what NVIDIA's system detection will see here, read lazily


class Backend(Protocol):
    name: str
    needs_gpu: bool

    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        """The cases this backend will run: the catalog's for a SKU, or, without one, what it can find."""

    def run(self, case: Case, workdir: Path) -> Artifacts:
        """Run (or find) the case; raise ResultMissing when there is nothing to judge."""

    def describe(self) -> str:
        """What it runs with, in one line for the report header ('' when the choice said it all)."""

    def identity(self) -> dict:
        """Fingerprint fields of what it runs: code_commit, image, image_id, image_digest ({} when none)."""

    def close(self) -> None:
        """Release what it holds (containers, jobs); called once at the end of the session, on every path."""


class BackendBase:
    """Defaults for the protocol's optional parts, and the output folder given at construction."""

    name = ""
    needs_gpu = False

    def __init__(self, output: Path | Callable[[], Path] | None = None):
        self._output = output

    @property
    def output(self) -> Path | None:
        """Where runs write their results tree (None for a backend built without one)."""
        if callable(self._output):
            self._output = Path(self._output())
        return self._output

    def describe(self) -> str:
        return ""

    def identity(self) -> dict:
        return {}

    def own_cgroups(self) -> list[str]:
        """Marks (in /proc/<pid>/cgroup) of processes that run this backend's work outside this process tree (its
        containers' ids): the contention watcher counts them as the run's own, not as neighbours."""
        return []

    def close(self) -> None:
        pass


class NvidiaCodeBackend(BackendBase):
    """A backend that runs NVIDIA's code from a checkout in an image: the two identify what it ran."""

    code: Path
    image: str
    docker_host: str | None = None

    @staticmethod
    def container_options(options, context: BuildContext) -> dict:
        """The constructor arguments both take from the options: the image, where logs go, the container's
        profile, and whether NVIDIA's output streams to the terminal (pytest -s)."""
        import sys

        echo = sys.stdout.write if options.live_output else None
        return {"image": options.image, "output": context.output, "profile": options.container_profile, "echo": echo}

    def identity(self) -> dict:
        from ..machine.containers import image_identity
        from ..machine.git import code_commit

        return {"code_commit": code_commit(self.code), **image_identity(self.image, self.docker_host)}


class NoBackend(BackendBase):
    """Stands where a kind of case has no backend in this run (the reason is said where the suite skips)."""

    def __init__(self, name: str, reason: str = ""):
        super().__init__()
        self.name = name
        self.reason = reason

    def describe(self) -> str:
        return self.reason

    def cases(self, kind: str, catalog_cases: list[Case] | None) -> list[Case]:
        return []

    def run(self, case: Case, workdir: Path) -> Artifacts:
        raise ResultMissing(f"no {case.kind} backend in this run")
