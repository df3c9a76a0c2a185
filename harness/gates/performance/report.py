"""From measurements to records and a verdict: per-case figures, roofline, memory, geometric means, decision."""

from __future__ import annotations

import math
import statistics

from harness.gates.performance.inputs import TimingPlan
from harness.gates.performance.measure import Measurement
from harness.gates.performance.settings import DTYPE
from harness.perf import stats
from harness.perf.roofline import MARGIN, Roofline
from harness.results.records import CaseResult, GateResult, Verdict

SUMMARY_GROUPS = ("forward", "forward_backward", "all")  # geometric means reported; "all" is decided on


def record(plan: TimingPlan, roofline: Roofline, m: Measurement, clean: dict[str, float] | None = None) -> CaseResult:
    """One (case, mode) as a case record: times, ratio and interval, memory, and for forward cases the roofline."""
    cand = statistics.median(m.times["candidate"]) if m.times["candidate"] else math.nan
    base = statistics.median(m.times["baseline"]) if m.times["baseline"] else math.nan
    metrics: dict[str, float] = {
        "candidate_ns": cand,
        "baseline_ns": base,
        "blocks": float(m.blocks),
        "rounds_per_block": float(m.rounds),
        "settled_early": float(m.settled is not None),  # 1: stopped once the interval lay in one decision band
    }
    if m.ratio is not None:
        metrics.update({"ratio": m.ratio.estimate, "ratio_low": m.ratio.low, "ratio_high": m.ratio.high})
    if clean and m.label in clean:
        metrics["clean_baseline_ns"] = clean[m.label]
    if m.peak:
        metrics["candidate_peak_bytes"] = float(m.peak.get("candidate", 0))
        metrics["baseline_peak_bytes"] = float(m.peak.get("baseline", 0))
        if m.peak.get("baseline"):
            metrics["memory_ratio"] = m.peak.get("candidate", 0) / m.peak["baseline"]
    failures = list(m.failures)
    if not m.mode.backward and not math.isnan(cand):
        failures += _roofline(plan, roofline, m, cand, metrics)
    return CaseResult(m.label, "float32", not failures, failures, dict(m.mode.case.sizes), metrics, m.seconds)


def beyond_roofline(case: CaseResult) -> bool:
    """The case's time beat the machine's bound by more than the margin (so it fails unless the bound was low)."""
    return case.metrics.get("roofline_pct", 0.0) > 100.0 * MARGIN


def _roofline(
    plan: TimingPlan, roofline: Roofline, m: Measurement, cand: float, metrics: dict[str, float]
) -> list[str]:
    """Achieved rates and the share of the machine's bound; a time beyond the bound means skipped work."""
    case = m.mode.case
    flops, moved = plan.kind.flops(case), plan.kind.bytes_moved(case, DTYPE)
    bound = roofline.bound_ns(flops, moved)
    metrics.update(
        {
            "flops": float(flops),
            "bytes": float(moved),
            "gflops": flops / cand,
            "gbps": moved / cand,
            "bound_ns": bound,
            "roofline_pct": 100.0 * bound / cand,
        }
    )
    if cand * MARGIN < bound:
        return [
            f"{m.label}: {cand / 1e3:.1f} us per call is faster than this machine can move {moved:,} bytes and "
            f"compute {flops:,} flops ({bound / 1e3:.1f} us, measured roofline; {MARGIN:g}x margin): work is "
            "skipped or cached"
        ]
    return []


def summarize(measurements: list[Measurement], threshold: float) -> tuple[dict[str, float], stats.Decision | None]:
    """Geometric means (forward, forward+backward, all) with intervals, and the decision on the overall one."""
    summary: dict[str, float] = {}
    decision = None
    groups = dict(
        zip(
            SUMMARY_GROUPS,
            (
                [m for m in measurements if not m.mode.backward],
                [m for m in measurements if m.mode.backward],
                measurements,
            ),
            strict=True,
        )
    )
    for name, group in groups.items():
        ratios = [m.ratio for m in group if m.ratio is not None]
        if not ratios:
            continue
        g = stats.geometric_mean(ratios)
        summary.update({f"{name}.ratio": g.estimate, f"{name}.low": g.low, f"{name}.high": g.high})
        if name == "all":
            decision = stats.decide(g, threshold)
    return summary, decision


def verdict(
    gate: GateResult, decision: stats.Decision | None, fresh: list[str], against_base: bool
) -> tuple[Verdict, str]:
    """fail on any wrong or impossible output; otherwise the decision on the ratio, which can fail only a
    comparison with the base branch's version (against the kind's reference the ratio is information)."""
    failures = [f for c in gate.cases for f in c.failures] + fresh
    if failures:
        return Verdict.FAIL, failures[0]
    if decision is None:
        return Verdict.ERROR, "no measurement finished"
    label = "base" if against_base else "reference"
    outcome = Verdict.PASS
    if against_base and decision.outcome in (Verdict.FAIL, Verdict.SUSPECT):
        outcome = Verdict(decision.outcome)
    return outcome, f"vs {label}: {decision.reason}"
