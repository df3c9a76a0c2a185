"""The unit check of function-like kinds (attention, norm, activation): forward and gradients of one call."""

from __future__ import annotations

import torch

from harness.core.seeding import dtype_name
from harness.gates.unit.case import CaseContext, call_hygiene, judge_tensor, same_bits
from harness.protocol.messages import Call
from harness.results.records import CaseResult


def function_case(ctx: CaseContext) -> CaseResult:
    """The standard check for function-like kinds: forward and gradients of one call."""
    kind, case, dtype = ctx.kind, ctx.case, ctx.dtype
    exp = ctx.cache.expected(kind, case, dtype)
    names = kind.grad_inputs(case.variant)
    reply = ctx.ask(Call("forward", exp.inputs, names, exp.grad_out))
    failures: list[str] = []
    metrics: dict[str, float] = {}
    failures += call_hygiene(exp.inputs, reply)
    judge_tensor(ctx, "output", reply.out, exp.reference_out, exp.oracle_out, failures, metrics, exp.floor_scales)
    if reply.out_repeat is not None and type(reply.out) is torch.Tensor and not same_bits(reply.out, reply.out_repeat):
        failures.append("output: two calls with the same inputs gave different results")
    for name in names:
        got = reply.grads.get(name)
        if name in reply.unreached:
            continue  # reported by call_hygiene; another call's graph is never backpropagated
        if got is None:
            failures.append(f"grad[{name}]: no gradient reached this input (is the output detached?)")
            continue
        ref, oracle = exp.reference_grads[name], exp.oracle_grads[name]
        assert ref is not None and oracle is not None
        judge_tensor(ctx, f"grad[{name}]", got, ref, oracle, failures, metrics, exp.floor_scales)
    return CaseResult(case.id, dtype_name(dtype), not failures, failures=failures, metrics=metrics)
