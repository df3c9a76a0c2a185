"""Speed ratios with confidence intervals (scipy), and the decision rule that turns them into verdicts.

A ratio is candidate time / baseline time (above 1: the candidate is slower). Within a block, candidate and
baseline are called alternately in random order; each round gives a log ratio and the block's value is the
median of its rounds (robust to a preempted call). The estimate is exp(mean of block values) and the interval
a Student-t interval over blocks. Blocks are short and many, so their values are close to independent; the
rounds inside one block are not, which is why the interval is never built over rounds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.99  # two-sided; a decision needs the interval to agree, so the interval is a strict one


@dataclass(frozen=True)
class Ratio:
    """A speed ratio with its interval; all three on the ratio scale (not log)."""

    estimate: float
    low: float
    high: float
    blocks: int  # independent samples behind the interval (blocks, or cases for a geometric mean)
    log_se: float  # standard error of the mean log ratio
    df: float  # degrees of freedom of the t interval

    def as_dict(self) -> dict[str, float]:
        return {
            "ratio": self.estimate,
            "low": self.low,
            "high": self.high,
            "blocks": float(self.blocks),
            "log_se": self.log_se,
            "df": self.df,
        }

    @property
    def half_width(self) -> float:
        """Half the interval's width in log space (0.01 is about +-1%)."""
        return (math.log(self.high) - math.log(self.low)) / 2


def block_value(candidate_ns: list[int], baseline_ns: list[int]) -> float:
    """Median over a block's rounds of log(candidate / baseline)."""
    logs = [math.log(c / b) for c, b in zip(candidate_ns, baseline_ns, strict=True) if c > 0 and b > 0]
    if not logs:
        raise ValueError("a block needs at least one round with positive times")
    return statistics.median(logs)


def ratio_interval(block_values: list[float], confidence: float = CONFIDENCE) -> Ratio:
    """exp(mean) of per-block log ratios with a t interval over blocks (scipy.stats.t)."""
    n = len(block_values)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 blocks, got {n}")
    from scipy import stats  # imported when first needed: a command that times nothing does not wait for scipy

    mean = statistics.fmean(block_values)
    se = float(stats.sem(block_values))
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=se) if se > 0 else (mean, mean)
    return Ratio(math.exp(mean), math.exp(low), math.exp(high), n, se, float(n - 1))


def geometric_mean(ratios: list[Ratio], confidence: float = CONFIDENCE) -> Ratio:
    """Geometric mean of independent ratios; the interval pools their standard errors (Welch-Satterthwaite df)."""
    if not ratios:
        raise ValueError("a geometric mean needs at least one ratio")
    k = len(ratios)
    mean = sum(math.log(r.estimate) for r in ratios) / k
    variances = [(r.log_se / k) ** 2 for r in ratios]
    var = sum(variances)
    if var == 0:
        return Ratio(math.exp(mean), math.exp(mean), math.exp(mean), sum(r.blocks for r in ratios), 0.0, math.inf)
    df = var**2 / sum(v**2 / r.df for v, r in zip(variances, ratios, strict=True) if r.df > 0)
    from scipy import stats

    low, high = stats.t.interval(confidence, df, loc=mean, scale=math.sqrt(var))
    return Ratio(math.exp(mean), math.exp(low), math.exp(high), sum(r.blocks for r in ratios), math.sqrt(var), df)


@dataclass(frozen=True)
class Decision:
    """What a ratio means against a threshold: pass, suspect or fail for slowdowns; faster when clearly faster."""

    outcome: str  # "pass" | "suspect" | "fail" | "faster"
    reason: str


def settled(ratio: Ratio, threshold: float) -> str | None:
    """The outcome `decide` gives for every estimate inside this interval, or None while the interval still
    spans more than one outcome. The measurement of a case stops as soon as it is settled: more blocks would
    only narrow an interval that already lies wholly in one band.

    - "fail": the interval lies beyond 1 + T/2;
    - "faster": the interval lies below 1 / (1 + T/2);
    - "pass": the interval lies inside (1 / (1 + T/2), 1 + T/4): no estimate in it can be suspect, fail or faster.

    The suspect band (beyond 1 + T/4 with 1 excluded, not beyond 1 + T/2) is never settled early: a slowdown near
    the threshold is measured until the interval is narrow or the budget is spent.
    """
    if ratio.low > 1 + threshold / 2:
        return "fail"
    if ratio.high < 1 / (1 + threshold / 2):
        return "faster"
    if ratio.low > 1 / (1 + threshold / 2) and ratio.high < 1 + threshold / 4:
        return "pass"
    return None


def decide(ratio: Ratio, threshold: float) -> Decision:
    """Call a change only when the effect is large enough and the interval agrees.

    `threshold` T is the slowdown the gate exists to catch (default 10%). An interval alone is not a decision:
    a steady 0.2% bias between two identical functions excludes 1.0 half the time. So:

    - fail: the whole interval lies beyond 1 + T/2, i.e. slower by more than half the threshold for certain,
      which a slowdown of T clears with room for noise;
    - suspect: the point estimate is beyond 1 + T/4 and the interval excludes 1: slower, by less than that;
    - faster: the whole interval lies below 1 / (1 + T/2);
    - pass: anything else, including every difference the interval cannot tell from none.
    """
    pct = f"{100 * (ratio.estimate - 1):+.1f}% [{100 * (ratio.low - 1):+.1f}%, {100 * (ratio.high - 1):+.1f}%]"
    if ratio.low > 1 + threshold / 2:
        return Decision("fail", f"slower by {pct}: the whole interval is beyond {100 * threshold / 2:g}%")
    if ratio.estimate > 1 + threshold / 4 and ratio.low > 1:
        return Decision("suspect", f"slower by {pct}: beyond {100 * threshold / 4:g}% and the interval excludes 0")
    if ratio.high < 1 / (1 + threshold / 2):
        return Decision("faster", f"faster: time {pct}")
    return Decision("pass", f"time {pct}")
