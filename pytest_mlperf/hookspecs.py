"""Hooks that users' conftest.py files may implement (registered through pytest_addhooks)."""

from __future__ import annotations

import pluggy
import pytest

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_mlperf_modify_cases(config: pytest.Config, kind: str, cases: list) -> None:
    """Change, in place, the list of cases the suite of ``kind`` ("inference" or "training") will run.

    Remove cases a site never runs, or add cases built with ``pytest_mlperf.catalog``.
    """


@hookspec
def pytest_mlperf_result(config: pytest.Config, case, result) -> None:
    """Called with each judged case before it is reported; may add to ``result.metrics`` or ``result.info``."""


@hookspec(firstresult=True)
def pytest_mlperf_make_sut(config: pytest.Config, case):
    """Return the model the local backend should drive under LoadGen for ``case``, or None for the built-in
    stand-in. The object follows ``pytest_mlperf.backends.standin.LocalModel``: ``total_samples``,
    ``performance_samples``, ``batch_size``, ``predict(indices) -> list[numpy array]`` and
    ``score(responses) -> AccuracyReport``.
    """


@hookspec(firstresult=True)
def pytest_mlperf_make_backend(config: pytest.Config, kind: str, options, context):
    """Return the backend that runs the cases of ``kind`` ("inference" or "training"), or None for the plugin's
    own choice. ``options`` is the run's ``pytest_mlperf.options.Options``; ``context`` a
    ``pytest_mlperf.backends.BuildContext`` (catalog, output folder, system). The object follows
    ``pytest_mlperf.backends.Backend``: ``name``, ``needs_gpu``, ``cases(kind, catalog_cases)``,
    ``run(case, workdir) -> Artifacts``, ``describe()``, ``identity()`` and ``close()`` (subclass
    ``pytest_mlperf.backends.BackendBase`` for the last three).
    """
