"""Which backend runs each kind of case, and why: a pure function of the options and of what the machine's GPUs
are; then the chosen backend builds itself from the options."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options, flag
from . import BackendBase, BuildContext, NoBackend


class ChoiceError(ValueError):
    """Options that name no backend or contradict each other (a usage error)."""


@dataclass(frozen=True)
class Choice:
    backend: str  # results | local | nvidia | nvidia-training | none
    why: str  # said in the report header, before the backend's own description
    name: str = ""  # for "none": the backend the kind would have needed
    shared: bool = False  # training runs on the very backend object inference runs on


def choose_inference(options: Options, gpus: str | None, no_gpu: str, system_known: bool) -> Choice:
    """gpus: the machine's NVIDIA GPUs in words, or None when NVML cannot start (no_gpu says why)."""
    results, backend = options.results, options.backend
    if backend == "results" and not results:
        raise ChoiceError(f"{flag('backend')} results needs {flag('results')} DIR")
    if results and backend in ("auto", "results"):
        return Choice("results", f"{flag('results')} {results}")
    if results:
        raise ChoiceError(f"{flag('results')} replays a tree; it cannot be combined with {flag('backend')} {backend}")
    if backend == "nvidia" or (backend == "auto" and options.nvidia_code):
        if not options.nvidia_code and options.training_code:
            why = f"inference on the nvidia backend needs {flag('nvidia_code')} DIR; only training code was given"
            return Choice("none", why, name="nvidia")
        if not system_known:
            raise ChoiceError(
                f"{flag('backend')} nvidia runs one system: name it with {flag('sku')} NAME or {flag('sku')} auto"
            )
        return Choice("nvidia", "")
    if backend == "local":
        return Choice("local", f"{flag('backend')} local")
    if gpus:
        return Choice("local", f"auto: {gpus} found, but no {flag('nvidia_code')} to run NVIDIA's code with")
    return Choice("local", f"auto: no NVIDIA GPU ({no_gpu})")


def choose_training(options: Options, inference: Choice) -> Choice:
    """A replay and the local backend judge training too; NVIDIA's training needs its own code."""
    if inference.backend == "results":
        return Choice("results", inference.why, shared=True)
    if options.training_code:
        return Choice("nvidia-training", "")
    if inference.backend == "local":
        return Choice("local", inference.why, shared=True)
    why = (
        f"training on the nvidia backend needs {flag('training_code')} DIR (NVIDIA's pytorch-22.09 BERT "
        "implementation of mlcommons/training_results_v2.1)"
    )
    return Choice("none", why, name=inference.name or inference.backend)


def build(choice: Choice, options: Options, context: BuildContext) -> BackendBase:
    """The chosen backend, built from the options; BackendUnavailable says why it cannot run here."""
    if choice.backend == "none":
        return NoBackend(choice.name)
    if choice.backend == "results":
        from .results import ResultsBackend as cls
    elif choice.backend == "local":
        from .local import LocalBackend as cls
    elif choice.backend == "nvidia":
        from .nvidia_inference import NvidiaInferenceBackend as cls
    else:
        from .nvidia_training import NvidiaTrainingBackend as cls
    return cls.build(options, context)


def reason(choice: Choice | None, backend) -> str:
    """The header's words for a backend: why it was chosen, then what it runs with."""
    why = choice.why if choice is not None else "supplied by a conftest (pytest_mlperf_make_backend)"
    return "; ".join(part for part in (why, backend.describe()) if part)
