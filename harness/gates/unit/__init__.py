"""Unit gate: forward and backward of every battery case, in every dtype, against the float64 oracle.

The judge makes the inputs from the run's secret seed, computes the reference (same dtype) and the oracle
(float64) itself (references.py), and compares what the contestant returns (case.py). Function-like kinds
are checked call by call (function.py), quantizers step by step (quantization.py). The contestant never sees
a reference output.
"""

from __future__ import annotations

from typing import ClassVar

from harness.core.seeding import dtype_name
from harness.gates.base import Gate, GateJob, Needs, RunConfig, conclude
from harness.gates.unit.case import CaseContext
from harness.gates.unit.function import function_case
from harness.gates.unit.quantization import QuantizationCase
from harness.gates.unit.references import ReferenceCache
from harness.kinds import KINDS
from harness.kinds.base import CallStyle
from harness.perf.timer import seconds
from harness.protocol.errors import CandidateRaised
from harness.results.records import CaseResult, GateName, GateResult, Verdict


def check_case(ctx: CaseContext) -> CaseResult:
    """Judge one (case, dtype) the way its kind is called; a module exception fails the case with its message."""
    start = seconds()
    try:
        if ctx.kind.calls is CallStyle.QUANTIZER:
            result = QuantizationCase(ctx).run()
        else:
            result = function_case(ctx)
    except CandidateRaised as exc:
        result = CaseResult(ctx.case.id, dtype_name(ctx.dtype), False, failures=[f"module raised: {exc}"])
    result.sizes = dict(ctx.case.sizes)
    result.seconds = seconds() - start
    return result


class UnitGate(Gate):
    """Every case of every declared variant, in every dtype the kind checks."""

    name: ClassVar[GateName] = GateName.UNIT
    needs: ClassVar[Needs] = Needs(loaded_candidate=True, exclusive=False)

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.references = ReferenceCache(config.seed)

    def blocked_by(self, earlier: list[GateResult]) -> str | None:
        return None

    def run(self, job: GateJob, gate: GateResult) -> tuple[Verdict, str]:
        assert job.channel is not None
        kind, selection = KINDS[job.spec.kind], self.config.cases
        for variant in job.spec.variants:
            for case in kind.battery(variant):
                for dtype in kind.dtypes(variant):
                    if not selection.wants_unit(case.id, dtype_name(dtype)):
                        continue
                    gate.reason = f"while running case {case.id} in {dtype_name(dtype)}"
                    ctx = CaseContext(kind, job.spec, case, dtype, job.channel.send, self.references)
                    gate.cases.append(check_case(ctx))
        if not gate.cases and selection.limited:
            return selection.none_of(self.name, job.spec.variants)
        return conclude(gate)


__all__ = ["CaseContext", "ReferenceCache", "UnitGate", "check_case"]
