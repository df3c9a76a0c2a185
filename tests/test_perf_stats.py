"""Speed-ratio statistics and the decision rule: intervals from scipy, decisions that need effect and interval."""

from __future__ import annotations

import math
import random

import pytest

from harness.perf.stats import Ratio, block_value, decide, geometric_mean, ratio_interval, settled


def _ratio(estimate: float, half: float) -> Ratio:
    return Ratio(estimate, estimate * math.exp(-half), estimate * math.exp(half), 20, half / 2.86, 19.0)


def test_block_value_is_the_median_log_ratio() -> None:
    assert block_value([110, 100, 1000], [100, 100, 100]) == pytest.approx(math.log(1.1))


def test_interval_covers_the_true_ratio_and_narrows_with_blocks() -> None:
    rng = random.Random(3)
    true = math.log(1.07)
    few = ratio_interval([true + rng.gauss(0, 0.02) for _ in range(5)])
    many = ratio_interval([true + rng.gauss(0, 0.02) for _ in range(80)])
    assert few.low < 1.07 < few.high and many.low < 1.07 < many.high
    assert many.half_width < few.half_width / 2
    with pytest.raises(ValueError):
        ratio_interval([0.1])


def test_geometric_mean_pools_the_cases() -> None:
    g = geometric_mean([_ratio(1.2, 0.02), _ratio(0.8, 0.02)])
    assert g.estimate == pytest.approx(math.sqrt(1.2 * 0.8))
    assert g.low < g.estimate < g.high and g.half_width < 0.02  # two independent cases: narrower than each


@pytest.mark.parametrize(
    ("estimate", "half", "outcome"),
    [
        (1.002, 0.001, "pass"),  # a steady 0.2% bias excludes 1.0 but is no regression
        (1.000, 0.03, "pass"),
        (1.04, 0.02, "suspect"),  # slower for sure, by less than half the threshold
        (1.06, 0.03, "suspect"),  # beyond half the threshold, but the interval reaches below it
        (1.10, 0.02, "fail"),  # a 10% slowdown: the whole interval is beyond 5%
        (1.30, 0.10, "fail"),
        (0.85, 0.02, "faster"),
        (1.03, 0.05, "pass"),  # too noisy to say
    ],
)
def test_decision_needs_effect_and_interval(estimate: float, half: float, outcome: str) -> None:
    decision = decide(_ratio(estimate, half), threshold=0.10)
    assert decision.outcome == outcome, decision.reason


@pytest.mark.parametrize(
    ("estimate", "half", "outcome"),
    [
        (1.000, 0.02, "pass"),  # inside (1/1.05, 1.025): no estimate in it can be suspect, fail or faster
        (1.000, 0.03, None),  # reaches beyond 1.025: might still turn out suspect
        (1.04, 0.01, None),  # the suspect band is measured to the end
        (1.10, 0.02, "fail"),
        (0.80, 0.05, "faster"),
        (0.96, 0.02, None),  # reaches below 1/1.05: might still turn out faster
    ],
)
def test_settled_only_when_every_estimate_in_the_interval_gets_one_outcome(
    estimate: float, half: float, outcome: str | None
) -> None:
    ratio = _ratio(estimate, half)
    assert settled(ratio, threshold=0.10) == outcome
    if outcome is not None:  # the stop rule never contradicts the decision on the same interval
        assert decide(ratio, threshold=0.10).outcome == outcome
