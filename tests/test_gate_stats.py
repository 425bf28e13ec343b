"""The gate's decision from two sets of runs (gate/stats.py): its three outcomes, the point rule with one run a
side, the interval's coverage and the false-alarm rate it claims, checked by simulation with seeded noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlperf.gate.stats import (
    EXACT,
    INCONCLUSIVE,
    NO_REGRESSION,
    POINT,
    POOLED,
    REGRESSION,
    WELCH,
    StatsError,
    decide,
)

BASE = [1000.0, 1012.0, 991.0, 1004.0, 997.0]


def test_a_clear_slowdown_is_a_regression_with_its_interval():
    now = [v * 0.85 for v in (1003.0, 995.0, 1010.0, 999.0, 990.0)]
    d = decide(BASE, now, higher_is_better=True, limit=0.05)
    assert d.outcome == REGRESSION and d.method == WELCH
    assert d.high < -0.05 and d.low < d.change < d.high
    assert d.change == pytest.approx(-0.15, abs=0.01)
    sentence = d.sentence("result_samples_per_second")
    assert sentence.startswith("result_samples_per_second -15.")
    assert "(95 % CI -1" in sentence and "limit 5.0 %: regression (5 baseline runs vs 5; detectable " in sentence


def test_the_same_speed_is_no_regression():
    now = [1001.0, 1006.0, 995.0, 1009.0, 998.0]
    d = decide(BASE, now, higher_is_better=True, limit=0.05)
    assert d.outcome == NO_REGRESSION and d.low > -0.05
    assert d.detectable is not None and 0 < d.detectable < 0.05  # this spread resolves a 5 % limit


def test_a_change_near_the_limit_with_a_wide_spread_is_inconclusive():
    noisy_base = [1000.0, 1100.0, 900.0]
    now = [960.0, 1050.0, 870.0]
    d = decide(noisy_base, now, higher_is_better=True, limit=0.05)
    assert d.outcome == INCONCLUSIVE and d.low < -0.05 < d.high
    assert d.detectable > 0.05
    assert "limit 5.0 %: inconclusive (3 baseline runs vs 3; detectable " in d.sentence("x")


def test_latency_is_worse_when_it_grows():
    before = [10.0e6, 10.1e6, 9.9e6, 10.0e6]
    assert decide(before, [v * 1.2 for v in before], higher_is_better=False, limit=0.05).outcome == REGRESSION
    assert decide(before, [v * 0.8 for v in before], higher_is_better=False, limit=0.05).outcome == NO_REGRESSION


def test_one_run_a_side_has_no_spread_and_applies_the_point_rule():
    d = decide([1000.0], [940.0], higher_is_better=True, limit=0.05)
    assert d.outcome == REGRESSION and d.method == POINT and d.detectable is None
    assert d.sentence("x") == (
        "x -6.0 % (one run a side: no spread, the point rule), limit 5.0 %: regression (1 baseline run vs 1)"
    )
    assert decide([1000.0], [960.0], True, 0.05).outcome == NO_REGRESSION
    # "any": every worsening is one, with no spread
    assert decide([1000.0], [999.0], True, None).outcome == REGRESSION


def test_one_baseline_run_against_several_uses_the_measured_spread():
    """An old baseline (one figure) still decides: the spread of this run's repeats stands for both sides."""
    d = decide([1000.0], [1001.0, 1006.0, 995.0, 1009.0, 998.0], True, 0.05)
    assert d.method == POOLED and d.outcome == NO_REGRESSION
    d = decide([1000.0], [850.0, 856.0, 848.0, 851.0], True, 0.05)
    assert d.method == POOLED and d.outcome == REGRESSION


def test_identical_runs_are_exact():
    d = decide([90.5, 90.5, 90.5], [90.5, 90.5], True, None)  # an accuracy: the same every run
    assert d.method == EXACT and d.outcome == NO_REGRESSION and d.low == d.high == 0.0
    assert decide([90.5, 90.5], [90.4, 90.4], True, None).outcome == REGRESSION


@pytest.mark.parametrize(
    ("before", "now", "message"),
    [
        ([], [1.0], "no baseline runs"),
        ([1.0], [0.0], "this run's figure is 0"),
        ([1.0, float("nan")], [1.0], "baseline figure is nan"),
        ([1.0], [-3.0], "is -3"),
    ],
)
def test_figures_a_ratio_cannot_use_are_refused(before, now, message):
    with pytest.raises(StatsError, match=message):
        decide(before, now, True, 0.05)


@settings(max_examples=100, deadline=None)
@given(
    before=st.lists(st.floats(0.01, 1e9), min_size=1, max_size=12),
    now=st.lists(st.floats(0.01, 1e9), min_size=1, max_size=12),
    higher=st.booleans(),
    limit=st.sampled_from([None, 0.02, 0.05, 0.10]),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_the_outcome_agrees_with_the_interval(before, now, higher, limit, confidence):
    d = decide(before, now, higher, limit, confidence)
    assert all(math.isfinite(x) for x in (d.change, d.low, d.high))
    assert d.low <= d.change + 1e-9 and d.change <= d.high + 1e-9
    worse_all = d.high < -d.limit if higher else d.low > d.limit
    clear = d.low >= -d.limit if higher else d.high <= d.limit
    assert (d.outcome == REGRESSION) == worse_all
    if d.spread:
        assert (d.outcome == NO_REGRESSION) == (clear and not worse_all)
    else:
        assert d.outcome in (REGRESSION, NO_REGRESSION)


def _runs(rng, n: int, speed: float, sigma: float) -> list[float]:
    return list(speed * np.exp(rng.normal(0.0, sigma, n)))


@pytest.mark.parametrize("n", [3, 5, 8])
def test_false_alarms_stay_within_the_stated_rate(n):
    """1000 gates on runs of one speed with 3 % log-normal noise, n runs a side, limit 0 % ("any"): an unchanged
    build is called a regression in at most (1 - 0.95) / 2 of them, plus simulation error (the interval is
    two-sided; a regression is one tail)."""
    rng = np.random.default_rng(20261207 + n)
    alarms = sum(
        decide(_runs(rng, n, 1000, 0.03), _runs(rng, n, 1000, 0.03), True, None).outcome == REGRESSION
        for _ in range(1000)
    )
    assert alarms / 1000 <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / 1000), alarms


def test_a_ten_percent_slowdown_is_caught_at_the_spread_it_can_resolve():
    """With 2 % noise and 5 runs a side at a 5 % limit: a 10 % slowdown is a regression in at least 95 % of gates;
    an unchanged build is never one, and is cleared in at least 85 % (the rest are inconclusive: the interval's
    half-width at this n is about 3 %, so a chance -2 % reaches past the limit)."""
    rng = np.random.default_rng(7)
    slow = [decide(_runs(rng, 5, 1000, 0.02), _runs(rng, 5, 900, 0.02), True, 0.05).outcome for _ in range(400)]
    same = [decide(_runs(rng, 5, 1000, 0.02), _runs(rng, 5, 1000, 0.02), True, 0.05).outcome for _ in range(400)]
    assert slow.count(REGRESSION) >= 380, slow.count(REGRESSION)
    assert same.count(REGRESSION) == 0 and same.count(NO_REGRESSION) >= 340, same.count(NO_REGRESSION)
