"""What every unit case shares: its context, the comparison of one returned tensor, and call hygiene."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.core.compare import compare_tensor, structure
from harness.core.contract import ModuleSpec
from harness.core.lineage import NOT_COMPUTED
from harness.core.seeding import case_seed
from harness.gates.unit.references import ReferenceCache
from harness.kinds.base import CallArgs, Case, Kind
from harness.protocol.messages import Call, CallReply

Ask = Callable[[Call], CallReply]


@dataclass
class CaseContext:
    """Everything a kind needs to judge one case against one module."""

    kind: Kind
    spec: ModuleSpec
    case: Case
    dtype: torch.dtype
    ask: Ask  # sends one Call to the contestant and returns its reply
    cache: ReferenceCache

    @property
    def seed(self) -> int:
        return case_seed(self.cache.run_seed, self.case.id, self.dtype)


def judge_tensor(
    ctx: CaseContext,
    name: str,
    got: object,
    reference: torch.Tensor,
    oracle: torch.Tensor,
    failures: list[str],
    metrics: dict[str, float],
    floor_scales: dict[str, float] | None = None,
) -> None:
    """Structure, then accuracy: exact modules by the tolerance policy, approximate ones by their bound."""
    problem = structure(name, got, reference.shape, reference.dtype)
    if problem:
        failures.append(problem)
        return
    assert isinstance(got, torch.Tensor)
    floor_scale = (floor_scales or {}).get(name)
    policy = ctx.kind.tolerance_for(ctx.case, ctx.dtype)
    bound = None if ctx.spec.exact else ctx.spec.bound
    comparison = compare_tensor(name, got, reference, oracle, ctx.dtype, policy, bound, floor_scale)
    metrics.update(comparison.metrics)
    if not comparison.passed:
        failures.append(comparison.message)


def call_hygiene(inputs: CallArgs, reply: CallReply) -> list[str]:
    """Inputs left untouched, output not aliasing an input."""
    failures = []
    for name, sent in inputs.items():
        if not isinstance(sent, torch.Tensor):
            continue
        after = reply.inputs_after.get(name)
        if type(after) is not torch.Tensor or after.shape != sent.shape or not same_bits(after, sent):
            failures.append(f"input {name!r} was modified in place by the call (inputs must not be mutated)")
    for name in reply.aliased:
        failures.append(f"output shares memory with input {name!r} (return a new tensor, not a view of an input)")
    for name in reply.unreached:
        failures.append(
            f"output does not depend on input {name!r}: its autograd graph never reaches it ({NOT_COMPUTED})"
        )
    return failures


def same_bits(a: object, b: object) -> bool:
    """Bitwise equality, NaNs in the same places counting as equal."""
    if type(a) is not torch.Tensor or type(b) is not torch.Tensor:
        return False
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()))
