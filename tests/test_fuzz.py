"""Property-based tests (Hypothesis) over every parser and over evaluate, from the published fixtures mutated the
way real files break (truncated, lines duplicated, swapped or joined, numbers made NaN / Infinity / negative /
huge, CRLF, BOM, UTF-16, keys renamed) and from random bytes. Each input gives a record whose numbers are
finite and in their domain, or a ParseError; never another exception.

The default run tries a few dozen inputs per parser; benchmarks/fuzz_parsers.py runs thousands and times them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fuzz_cases import PARSERS, PERF, check, check_evaluate, mutated, seeds
from hypothesis import HealthCheck, given, settings

from conftest import shared_dir

SHARED = shared_dir()
pytestmark = pytest.mark.skipif(SHARED is None, reason="the published fixtures (../shared) seed the fuzzing")
SEEDS = seeds(SHARED) if SHARED else {}
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def _property(name: str, work: Path):
    file_name, seed = SEEDS.get(name, ("x", b""))

    @FEW
    @given(data=mutated(seed))
    def run(data: bytes) -> None:
        check(name, work / file_name, data)

    return run


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_broken_log_parses_or_says_why(name, tmp_path):
    _property(name, tmp_path)()


@pytest.mark.parametrize("log", ["mlperf_log_summary.txt", "mlperf_log_detail.txt"])
def test_evaluate_judges_or_says_why(log, tmp_path):
    folder = tmp_path / f"case-{log}"
    shutil.copytree(SHARED / "fixtures" / "inference" / PERF, folder)
    seed = (SHARED / "fixtures" / "inference" / PERF / log).read_bytes()

    @FEW
    @given(data=mutated(seed))
    def run(data: bytes) -> None:
        check_evaluate(folder, log, data)

    run()
