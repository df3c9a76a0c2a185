"""What the bot needs to know about each module of a schema-valid results document, in one small record.

Figures come from the records harness/results/records.py writes: verdicts per gate, the perf gate's summary (`all.ratio`
with its 99% interval `all.low`..`all.high`), the memory ratio of its largest forward case, and for failing cases
their failure messages and the tensor whose error is furthest beyond its tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.bot.labels import PerfOutcome, against_base, perf_outcome
from harness.results.records import PASSING, GateName, Verdict

CASES_SHOWN = 5  # failing cases listed per module
MESSAGES_SHOWN = 2  # failure messages listed per case
_PASSING = frozenset(str(v) for v in PASSING)


@dataclass(frozen=True)
class CaseFailure:
    """One failing case: where, its first messages, and its worst tensor when the metrics say."""

    gate: str
    case: str
    dtype: str
    messages: tuple[str, ...]
    worst: str | None


@dataclass(frozen=True)
class ModuleFacts:
    """One module of one results document (every string untrusted, escaped when rendered)."""

    name: str
    kind: str | None
    variant: str | None
    exact: bool | None
    source: str
    device: str
    verdict: str
    reason: str
    gates: Mapping[str, str]  # gate name -> its verdict
    speed: tuple[float, float, float] | None  # time ratio, 99% low, high (perf gate, all cases)
    versus: str  # "base", "reference" or "" (no ratio)
    memory_ratio: float | None  # peak memory of the largest forward call over the baseline's
    perf: PerfOutcome
    failures: tuple[CaseFailure, ...]
    cases_failed: int  # failing cases in all, of which `failures` lists the first

    @property
    def passing(self) -> bool:
        return self.verdict in _PASSING

    @property
    def importance(self) -> int:
        """0 for a perf regression, 1 another failure, 2 suspect, 3 the rest: the comment's order."""
        if self.perf is PerfOutcome.REGRESSION:
            return 0
        if not self.passing:
            return 1
        return 2 if self.verdict == Verdict.SUSPECT else 3


def module_facts(document: Mapping[str, Any]) -> list[ModuleFacts]:
    """Every module of a schema-valid results document, most important first (regressions, failures, suspect)."""
    device = str(document["config"]["device"])
    facts = [_facts(module, device) for module in document["modules"]]
    return sorted(facts, key=lambda f: (f.importance, f.name))


def _facts(module: Mapping[str, Any], device: str) -> ModuleFacts:
    gates = {str(g["gate"]): g for g in module["gates"]}
    perf = gates.get(GateName.PERF)
    variants = module["variants"]
    return ModuleFacts(
        name=module["name"],
        kind=module["kind"],
        variant=str(variants[0]) if variants else None,
        exact=module["exact"],
        source=module["source"],
        device=device,
        verdict=module["verdict"],
        reason=module["reason"],
        gates={name: str(g["verdict"]) for name, g in gates.items()},
        speed=_speed(perf["summary"]) if perf else None,
        versus=("base" if against_base(perf) else "reference") if perf and _speed(perf["summary"]) else "",
        memory_ratio=_memory_ratio(perf["cases"]) if perf else None,
        perf=perf_outcome(perf),
        failures=_failures(module["gates"]),
        cases_failed=sum(int(g["cases_failed"]) for g in module["gates"]),
    )


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _speed(summary: Mapping[str, Any]) -> tuple[float, float, float] | None:
    figures = [_finite(summary.get(f"all.{key}")) for key in ("ratio", "low", "high")]
    ratio, low, high = figures
    if ratio is None or low is None or high is None or not 0 < low <= ratio <= high:
        return None
    return ratio, low, high


def _memory_ratio(cases: list[Mapping[str, Any]]) -> float | None:
    """The memory ratio of the last forward case, the largest shape (as the leaderboard reads it)."""
    forward = [c for c in cases if str(c["case"]).startswith("perf/forward/")]
    return _finite(forward[-1]["metrics"].get("memory_ratio")) if forward else None


def _failures(gates: list[Mapping[str, Any]]) -> tuple[CaseFailure, ...]:
    failing = [(g["gate"], c) for g in gates for c in g["cases"] if not c["passed"]]
    return tuple(
        CaseFailure(
            gate=str(gate),
            case=case["case"],
            dtype=case["dtype"],
            messages=tuple(case["failures"][:MESSAGES_SHOWN]),
            worst=worst_tensor(case["metrics"]),
        )
        for gate, case in failing[:CASES_SHOWN]
    )


def worst_tensor(metrics: Mapping[str, Any]) -> str | None:
    """The tensor whose max-abs error is the largest multiple of its tolerance (`<t>.max_abs_err` over
    `<t>.tolerance`), e.g. "grad[x]: max abs error 0.0031, 4.2x its tolerance 0.00074"; None when no tensor says."""
    worst: tuple[float, str, float, float] | None = None
    for key, value in metrics.items():
        tensor = key.removesuffix(".max_abs_err")
        error, tolerance = _finite(value), _finite(metrics.get(f"{tensor}.tolerance"))
        if tensor == key or error is None or tolerance is None or tolerance <= 0:
            continue
        share = error / tolerance
        if worst is None or share > worst[0]:
            worst = (share, tensor, error, tolerance)
    if worst is None:
        return None
    share, tensor, error, tolerance = worst
    return f"{tensor}: max abs error {error:.3g}, {share:.3g}x its tolerance {tolerance:.3g}"
