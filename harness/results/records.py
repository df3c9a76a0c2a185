"""Result records: what the judge concluded about each module, gate and case, as JSON-ready data.

These records are shared by every gate, the runner, the results document and the terminal report; they sit
in the bottom layer so that none of those has to import another to use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """A module's or a gate's verdict; the string values are what results.json stores."""

    PASS = "pass"  # every check held
    FAIL = "fail"  # the module ran, but a check did not hold (each case says why)
    ERROR = "error"  # it could not be loaded, broke its kind's contract, or broke the protocol
    TIMEOUT = "timeout"  # the contestant process gave no answer within the time limit
    CRASH = "crash"  # the contestant process died (a signal, os._exit, sys.exit)
    OOM = "oom"  # the contestant passed its memory cap
    TAMPERED = "tampered"  # (perf) the candidate interfered with the measurement: a fact, not a statistic
    SUSPECT = "suspect"  # (perf, with a base) slower than the base by less than the threshold; not blocking
    SKIPPED = "skipped"  # (gate only) the gate does not apply, or an earlier gate failed; the reason says which


MODULE_VERDICTS = tuple(v for v in Verdict if v is not Verdict.SKIPPED)  # what a module as a whole can get
PASSING = (Verdict.PASS, Verdict.SUSPECT)  # verdicts that do not fail a run (suspect is shown, labelled)
PROCESS_VERDICTS = (Verdict.ERROR, Verdict.TIMEOUT, Verdict.CRASH, Verdict.OOM)  # the contestant could not go on


class GateName(StrEnum):
    """The gates, in the order a run takes them; the values are the CLI's and results.json's names."""

    UNIT = "unit"
    INTEGRATION = "integration"
    PERF = "perf"


QUANTIZED_CASE = "integration/quantized-text"  # the one integration case of a quantization module or policy


def json_number(value: float) -> float | str:
    """A finite float as is; NaN and infinities as strings (JSON has no literal for them)."""
    return value if math.isfinite(value) else str(value)


def from_json_number(value: float | int | str) -> float:
    """The inverse of `json_number`."""
    return float(value)


@dataclass
class CaseResult:
    """The verdict on one case (a unit-gate case in one dtype, an integration task, a timed perf case)."""

    case: str
    dtype: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "dtype": self.dtype,
            "passed": self.passed,
            "sizes": self.sizes,
            "failures": self.failures,
            "metrics": {k: json_number(v) for k, v in self.metrics.items()},
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        """A case back from `as_dict` (of a validated document)."""
        return cls(
            case=data["case"],
            dtype=data["dtype"],
            passed=bool(data["passed"]),
            failures=list(data["failures"]),
            sizes={k: int(v) for k, v in data["sizes"].items()},
            metrics={k: from_json_number(v) for k, v in data["metrics"].items()},
            seconds=float(data["seconds"]),
        )


@dataclass
class GateResult:
    """One gate's verdict on one module, with its per-case details."""

    gate: GateName
    verdict: Verdict
    reason: str = ""
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0
    summary: dict[str, float] = field(default_factory=dict)  # gate-level figures, e.g. geometric-mean speed ratios

    @property
    def failed_cases(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": str(self.gate),
            "summary": {k: json_number(v) for k, v in self.summary.items()},
            "verdict": str(self.verdict),
            "reason": self.reason,
            "cases_total": len(self.cases),
            "cases_failed": len(self.failed_cases),
            "cases": [c.as_dict() for c in self.cases],
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """A gate back from `as_dict` (of a validated document)."""
        return cls(
            gate=GateName(data["gate"]),
            verdict=Verdict(data["verdict"]),
            reason=data["reason"],
            cases=[CaseResult.from_dict(c) for c in data["cases"]],
            seconds=float(data["seconds"]),
            summary={k: from_json_number(v) for k, v in data["summary"].items()},
        )


@dataclass
class ModuleResult:
    """Everything the judge concluded about one module in one run."""

    name: str
    source: str
    kind: str | None = None
    variants: list[str] = field(default_factory=list)
    exact: bool | None = None
    bound: dict[str, float] | None = None
    verdict: Verdict = Verdict.ERROR
    reason: str = ""
    gates: list[GateResult] = field(default_factory=list)
    seconds: float = 0.0
    # Set when the verdict was reused from an earlier run with the same module file, harness, torch, device and
    # settings (harness/judge/reuse.py): when that run started ("date"), its commit and seed, and the cache key.
    reused: dict[str, str] | None = None

    def gate(self, name: GateName) -> GateResult | None:
        return next((g for g in self.gates if g.gate == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "variants": self.variants,
            "exact": self.exact,
            "bound": self.bound,
            "source": self.source,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "gates": [g.as_dict() for g in self.gates],
            "seconds": round(self.seconds, 3),
            **({} if self.reused is None else {"reused": dict(self.reused)}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleResult:
        """A module back from `as_dict` (of a validated document)."""
        return cls(
            name=data["name"],
            source=data["source"],
            kind=data["kind"],
            variants=list(data["variants"]),
            exact=data["exact"],
            bound=None if data["bound"] is None else {k: float(v) for k, v in data["bound"].items()},
            verdict=Verdict(data["verdict"]),
            reason=data["reason"],
            gates=[GateResult.from_dict(g) for g in data["gates"]],
            seconds=float(data["seconds"]),
            reused=None if data.get("reused") is None else dict(data["reused"]),
        )


def overall(gates: list[GateResult]) -> tuple[Verdict, str]:
    """A module's verdict from its gates: the first gate that neither passed nor was skipped decides."""
    for gate in gates:
        if gate.verdict not in (Verdict.PASS, Verdict.SKIPPED):
            return gate.verdict, f"{gate.gate}: {gate.reason}"
    return Verdict.PASS, ""
