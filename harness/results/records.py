"""Result records: what the judge concluded about each module and gate, as plain JSON-ready data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# pass: every check held. fail: the module ran but a check did not hold. error: it could not be loaded or
# broke the protocol. timeout / crash / oom: the contestant process hung, died, or passed its memory cap.
# tampered: the performance gate found the candidate interfering with the measurement (a fact, not a statistic).
# suspect: the performance gate measured a slowdown against the base branch smaller than its threshold.
VERDICTS = ("pass", "fail", "error", "timeout", "crash", "oom", "tampered", "suspect")
GATE_VERDICTS = (*VERDICTS, "skipped")  # skipped: the gate does not apply to this module (the reason says why)
PASSING = ("pass", "suspect")  # verdicts that do not fail a run (suspect is shown, labelled, and not blocking)


@dataclass
class GateResult:
    """One gate's verdict on one module, with its per-case details."""

    gate: str
    verdict: str
    reason: str = ""
    cases: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    summary: dict[str, float] = field(default_factory=dict)  # gate-level figures, e.g. geometric-mean speed ratios

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "summary": {k: v if v == v and abs(v) != float("inf") else str(v) for k, v in self.summary.items()},
            "verdict": self.verdict,
            "reason": self.reason,
            "cases_total": len(self.cases),
            "cases_failed": sum(1 for c in self.cases if not c.get("passed", False)),
            "cases": self.cases,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ModuleResult:
    """Everything the judge concluded about one module in one run."""

    name: str
    source: str
    kind: str | None = None
    variants: list[str] = field(default_factory=list)
    exact: bool | None = None
    bound: dict[str, float] | None = None
    verdict: str = "error"
    reason: str = ""
    gates: list[GateResult] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "variants": self.variants,
            "exact": self.exact,
            "bound": self.bound,
            "source": self.source,
            "verdict": self.verdict,
            "reason": self.reason,
            "gates": [g.as_dict() for g in self.gates],
            "seconds": round(self.seconds, 3),
        }


def overall(gates: list[GateResult]) -> tuple[str, str]:
    """A module's verdict from its gates: the first gate that neither passed nor was skipped decides."""
    for gate in gates:
        if gate.verdict not in ("pass", "skipped"):
            return gate.verdict, f"{gate.gate}: {gate.reason}"
    return "pass", ""
