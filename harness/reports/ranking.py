"""Ranking by time ratio with a 99% interval, and Pareto layers: pure functions over plain numbers.

The rule (project issue "Results store and published leaderboards"): each module's speed is its time ratio to the
kind's reference measured in its own run, interval included; comparing two modules divides their ratios and combines
their intervals in log space, where a ratio's interval is close to symmetric (Welch-style: the log standard errors add
in quadrature). Entries that are not significantly different share a rank.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import norm

Z99 = float(norm.ppf(0.995))  # two-sided 99%: the perf gate reports 99% intervals (harness/perf/stats.py)


@dataclass(frozen=True)
class Speed:
    """A time ratio (candidate / reference; lower is faster) with its 99% interval."""

    ratio: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low <= self.ratio <= self.high < math.inf):
            raise ValueError(
                f"a time ratio needs 0 < low <= ratio <= high < inf, found ratio {self.ratio} "
                f"with interval [{self.low}, {self.high}]"
            )

    @property
    def log_se(self) -> float:
        """The standard error of ln(ratio), read back from the width of its 99% interval."""
        return (math.log(self.high) - math.log(self.low)) / (2 * Z99)


def compare(a: Speed, b: Speed) -> Speed:
    """a's time over b's: the ratio a/b with a 99% interval combining both intervals in log space
    (se = sqrt(se_a^2 + se_b^2)). Below 1 a is faster; an interval wholly below 1 means significantly faster."""
    diff = math.log(a.ratio) - math.log(b.ratio)
    half = Z99 * math.hypot(a.log_se, b.log_se)
    return Speed(math.exp(diff), math.exp(diff - half), math.exp(diff + half))


def significantly_faster(a: Speed, b: Speed) -> bool:
    """True when a is faster than b at 99%: ln r_a - ln r_b + z99 * sqrt(se_a^2 + se_b^2) < 0 (the upper end of
    `compare(a, b)` below 1, decided in log space so rounding in exp cannot flip it)."""
    return math.log(a.ratio) - math.log(b.ratio) + Z99 * math.hypot(a.log_se, b.log_se) < 0


def rank_entries(ratios: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[int]:
    """Competition ranks by speed: rank(i) = 1 + the number of entries significantly faster than i (rule in the
    module docstring). Entries whose difference is within the noise share a rank; the next rank skips, as in sport."""
    speeds = [Speed(r, lo, hi) for r, lo, hi in zip(ratios, lows, highs, strict=True)]
    return [1 + sum(significantly_faster(other, speed) for other in speeds) for speed in speeds]


def rank_labels(ranks: Sequence[int]) -> list[str]:
    """ "=k" for a rank another entry shares, else "k"."""
    counts = Counter(ranks)
    return [f"={rank}" if counts[rank] > 1 else str(rank) for rank in ranks]


def pareto_layers(costs: Sequence[float], times: Sequence[float]) -> list[int]:
    """Non-dominated sorting on (quality cost, time ratio), both lower-is-better: layer 1 is every entry no other
    entry dominates, layer 2 the same once layer 1 is removed, and so on (Deb et al. 2002, NSGA-II). A NaN cost
    (no quality measurement) counts as 0."""
    points = [(0.0 if math.isnan(c) else c, t) for c, t in zip(costs, times, strict=True)]
    layers = [0] * len(points)
    remaining = set(range(len(points)))
    layer = 0
    while remaining:
        layer += 1
        front = {i for i in remaining if not any(_dominates(points[j], points[i]) for j in remaining)}
        for i in front:
            layers[i] = layer
        remaining -= front
    return layers


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and a != b


def would_rank(speed: Speed, others: Sequence[Speed]) -> int:
    """The rank `speed` would take on a board of `others`: 1 + the number of them significantly faster than it (the
    rule of `rank_entries`), so a newcomer never ranks ahead on noise."""
    return 1 + sum(significantly_faster(other, speed) for other in others)
