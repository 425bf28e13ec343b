"""The gate's decision on one metric of one case: the baseline's runs against this run's, at a confidence, against a
rule's limit.

Why a t-interval on the logarithms of the figures, and not a bootstrap: a gate sees 3 to 20 runs a side, where a
percentile bootstrap's interval cannot reach past the range of the runs it resamples and so claims more certainty
than the data hold (it undercovers at small n), while Student's and Welch's intervals carry the small-sample
uncertainty in the t distribution's tails. Logarithms, because what a roll-out changes is a ratio (a driver 5 %
slower is 5 % slower at any speed), the spread of a machine's runs grows with its speed, and the interval of a
difference of log means is the interval of the ratio of the geometric means: `now / baseline - 1` with its bounds
is the "% change" the rule's limit speaks of. Welch's interval when both sides have a spread (their spreads need not
match: another driver, another noise); the pooled interval when one side has a single run (its spread is taken to
be the other side's, the only one measured); with one run a side there is no spread at all, which is said, and the
point rule applies: worse than the limit is a regression.

The three outcomes, for a rule `throughput:5%` (worse means slower for a throughput, longer for a latency):
- regression: the whole interval of the change is worse than the limit;
- no regression: the whole interval is better than the limit;
- inconclusive: the interval straddles the limit (more runs would narrow it).

`detectable` is the smallest true worsening the measured spread would show as a regression four times in five
(80 % power) at this confidence and these run counts: (t_{1-a/2} + t_{0.8}) x the standard error of the difference,
as a ratio. A gate whose detectable change is above its limit cannot call that limit's regressions reliably.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

POWER = 0.8  # the power `detectable` is stated at
LOG_CAP = 50.0  # log ratios are held within +-50 (see decide)
REGRESSION, NO_REGRESSION, INCONCLUSIVE = "regression", "no regression", "inconclusive"
OUTCOMES = (REGRESSION, NO_REGRESSION, INCONCLUSIVE)
WELCH = "Welch t-interval on log figures"
POOLED = "pooled t-interval on log figures (one side has a single run)"
POINT = "one run a side: no spread, the point rule"
EXACT = "every run alike on both sides: no spread, the point rule"


class StatsError(ValueError):
    """Samples the gate cannot decide on: the message says which and why."""


@dataclass(frozen=True)
class Decision:
    outcome: str  # regression, no regression, inconclusive
    change: float  # now / baseline - 1 (geometric means), as a fraction
    low: float  # the interval of the change at `confidence` (low == high == change without a spread)
    high: float
    confidence: float
    limit: float  # a fraction (0 for "any worsening")
    higher_is_better: bool
    runs_before: int
    runs_now: int
    method: str
    detectable: float | None  # smallest worsening detectable at 80 % power (None without a spread)
    median_before: float
    median_now: float

    @property
    def spread(self) -> bool:
        return self.method in (WELCH, POOLED)

    def sentence(self, metric: str) -> str:
        """`throughput -3.1 % (95 % CI -6.8 % .. +0.4 %), limit 5 %: inconclusive after 8 runs`."""
        limit = f"limit {_pct(self.limit, sign=False)}" if self.limit else "limit: any worsening"
        if self.spread:
            shape = f"{_pct(self.change)} ({self.confidence * 100:g} % CI {_pct(self.low)} .. {_pct(self.high)})"
        else:
            shape = f"{_pct(self.change)} ({self.method})"
        runs = f"{self.runs_before} baseline run{'s' if self.runs_before != 1 else ''} vs {self.runs_now}"
        if self.detectable is not None:
            runs += f"; detectable {_pct(self.detectable, sign=False)}"
        return f"{metric} {shape}, {limit}: {self.outcome} ({runs})"

    def to_dict(self) -> dict:
        return asdict(self)


def _pct(value: float | None, sign: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.1f} %" if sign else f"{value * 100:.1f} %"


def _positive(samples: Sequence[float], side: str) -> np.ndarray:
    values = np.asarray(list(samples), dtype=float)
    if values.size == 0:
        raise StatsError(f"no {side} runs to compare")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        bad = next(v for v in values if not math.isfinite(v) or v <= 0)
        raise StatsError(f"a {side} figure is {bad:g}: a change from it cannot be measured as a ratio")
    return values


def decide(
    before: Sequence[float],
    now: Sequence[float],
    higher_is_better: bool,
    limit: float | None,
    confidence: float = 0.95,
) -> Decision:
    """The gate's outcome for one metric: see the module's docstring. `limit` is a fraction (None: any worsening,
    taken as a limit of 0)."""
    from scipy import stats  # here, not at import: the plugin loads this module in every pytest process

    if not 0.5 <= confidence < 1:
        raise StatsError(f"confidence {confidence!r} is not in [0.5, 1)")
    base, mine = _positive(before, "baseline"), _positive(now, "this run's")
    limit = 0.0 if limit is None else float(limit)
    log_base, log_now = np.log(base), np.log(mine)
    diff = float(log_now.mean() - log_base.mean())
    n1, n2 = base.size, mine.size
    # Figures equal to a part in a million have no spread: LoadGen logs six significant digits, so nothing measured
    # tells them apart (and scipy's moments lose their precision there).
    spread = n1 + n2 > 2 and max(np.ptp(log_base), np.ptp(log_now)) > 1e-6
    detectable = None
    if not spread:
        low = high = diff
        method = POINT if n1 == n2 == 1 else EXACT
    else:
        with warnings.catch_warnings():
            # one side's runs all equal (an accuracy, say): its variance is exactly 0, which scipy doubts aloud
            warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
            result = stats.ttest_ind(log_now, log_base, equal_var=min(n1, n2) == 1)
        interval = result.confidence_interval(confidence_level=confidence)
        low, high = float(interval.low), float(interval.high)
        method = POOLED if min(n1, n2) == 1 else WELCH
        t_crit = stats.t.ppf(0.5 + confidence / 2, result.df)
        se = (high - low) / (2 * t_crit)
        detectable = math.expm1(min(LOG_CAP, (t_crit + stats.t.ppf(POWER, result.df)) * se))
    # Bounds of wildly spread runs (one degree of freedom, runs a thousandfold apart) can pass any float's range:
    # a log ratio past +-50 (a factor of 5e21) says no more than that, and stays a finite number for the reports.
    change, lo, hi = (math.expm1(max(-LOG_CAP, min(LOG_CAP, x))) for x in (diff, low, high))
    # worse-than-limit in the metric's own direction: below -limit for a throughput, above +limit for a latency
    if higher_is_better:
        regression, clear = hi < -limit, lo >= -limit
    else:
        regression, clear = lo > limit, hi <= limit
    if not spread:  # the point rule: the figure itself against the limit
        outcome = REGRESSION if regression else NO_REGRESSION
    else:
        outcome = REGRESSION if regression else NO_REGRESSION if clear else INCONCLUSIVE
    return Decision(
        outcome,
        change,
        lo,
        hi,
        confidence,
        limit,
        bool(higher_is_better),
        int(n1),
        int(n2),
        method,
        detectable,
        float(np.median(base)),
        float(np.median(mine)),
    )
