"""Unit gate: forward and backward of every battery case, in every dtype, against the float64 oracle.

The judge makes the inputs from the run's secret seed, computes the reference (same dtype) and the
oracle (float64) itself, and compares what the contestant returns. The contestant never sees a
reference output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.contract import ModuleSpec
from harness.gates import compare
from harness.kinds.base import CallArgs, Case, Kind, case_seed, generator, randn
from harness.perf.timer import seconds
from harness.protocol import Call, CandidateRaised, Reply

Ask = Callable[[Call], Reply]


@dataclass
class CaseResult:
    """The verdict on one (case, dtype): passed or the reasons it failed, and the numbers behind it."""

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
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "seconds": round(self.seconds, 4),
        }


def _json_number(value: float) -> float | str:
    return value if value == value and abs(value) != float("inf") else str(value)


@dataclass(frozen=True)
class Expected:
    """Judge-side results for one (case, dtype): the inputs sent, and reference and oracle outputs."""

    inputs: CallArgs
    grad_out: torch.Tensor
    reference_out: torch.Tensor
    reference_grads: dict[str, torch.Tensor | None]
    oracle_out: torch.Tensor
    oracle_grads: dict[str, torch.Tensor | None]
    floor_scales: dict[str, float]  # Kind.floor_scales of this case: tensor name -> scale of its eps floor


class ReferenceCache:
    """Reference and oracle results per (case, dtype), computed once per run and shared by all modules."""

    def __init__(self, run_seed: int) -> None:
        self.run_seed = run_seed
        self._items: dict[tuple[str, str, str], Expected] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def expected(self, kind: Kind, case: Case, dtype: torch.dtype) -> Expected:
        """Computed by the first module that needs it; modules judged in parallel wait instead of recomputing."""
        key = (kind.name, case.id, str(dtype))
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._items:
                self._items[key] = self._compute(kind, case, dtype)
        return self._items[key]

    def _compute(self, kind: Kind, case: Case, dtype: torch.dtype) -> Expected:
        gen = generator(case_seed(self.run_seed, case.id, dtype))
        inputs = kind.make_inputs(case, dtype, gen)
        names = kind.grad_inputs(case.variant)
        ref_out, ref_grads, grad_out = run_reference(
            kind, case.variant, inputs, names, lambda out: randn(tuple(out.shape), dtype, gen)
        )
        wide = {k: v.double() if _is_float(v) else v for k, v in inputs.items()}
        oracle_out, oracle_grads, _ = run_reference(kind, case.variant, wide, names, lambda out: grad_out.double())
        scales = kind.floor_scales(case, dtype, inputs, grad_out)
        return Expected(inputs, grad_out, ref_out, ref_grads, oracle_out, oracle_grads, scales)


def _is_float(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def run_reference(
    kind: Kind,
    variant: str,
    inputs: CallArgs,
    grad_names: tuple[str, ...],
    make_grad_out: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor | None], torch.Tensor]:
    """The kind's reference forward and backward on private copies of the inputs.

    `make_grad_out` receives the output and returns the upstream gradient to back-propagate.
    """
    args = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    for name in grad_names:
        args[name].requires_grad_(True)
    with torch.enable_grad():
        out = kind.reference(variant, args)
        grad_out = make_grad_out(out.detach())
        if grad_names:
            out.backward(grad_out)  # type: ignore[no-untyped-call]
    return out.detach(), {name: args[name].grad for name in grad_names}, grad_out


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


def check_case(ctx: CaseContext) -> CaseResult:
    """Judge one (case, dtype); a module exception fails the case with its message."""
    start = seconds()
    try:
        result = ctx.kind.unit_case(ctx) or function_case(ctx)
    except CandidateRaised as exc:
        result = CaseResult(ctx.case.id, _dtype_name(ctx.dtype), False, failures=[f"module raised: {exc}"])
    result.sizes = dict(ctx.case.sizes)
    result.seconds = seconds() - start
    return result


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
    if reply.out_repeat is not None and type(reply.out) is torch.Tensor and not _same(reply.out, reply.out_repeat):
        failures.append("output: two calls with the same inputs gave different results")
    for name in names:
        got = reply.grads.get(name)
        if got is None:
            failures.append(f"grad[{name}]: no gradient reached this input (is the output detached?)")
            continue
        ref, oracle = exp.reference_grads[name], exp.oracle_grads[name]
        assert ref is not None and oracle is not None
        judge_tensor(ctx, f"grad[{name}]", got, ref, oracle, failures, metrics, exp.floor_scales)
    return CaseResult(case.id, _dtype_name(dtype), not failures, failures=failures, metrics=metrics)


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
    problem = compare.structure(name, got, reference.shape, reference.dtype)
    if problem:
        failures.append(problem)
        return
    assert isinstance(got, torch.Tensor)
    floor_scale = (floor_scales or {}).get(name)
    policy = ctx.kind.tolerance_for(ctx.case, ctx.dtype)
    if ctx.spec.exact or ctx.spec.bound is None:
        verdict = compare.compare_exact(name, got, reference, oracle, ctx.dtype, policy, floor_scale)
    else:
        exact = (ctx.dtype, policy, floor_scale)
        verdict = compare.compare_approximate(name, got, reference, oracle, ctx.spec.bound, exact)
    metrics.update(verdict.metrics)
    if not verdict.passed:
        failures.append(verdict.message)


def call_hygiene(inputs: CallArgs, reply: Reply) -> list[str]:
    """Inputs left untouched, output not aliasing an input."""
    failures = []
    for name, sent in inputs.items():
        if not isinstance(sent, torch.Tensor):
            continue
        after = reply.inputs_after.get(name)
        if type(after) is not torch.Tensor or after.shape != sent.shape or not _same(after, sent):
            failures.append(f"input {name!r} was modified in place by the call (inputs must not be mutated)")
    for name in reply.aliased:
        failures.append(f"output shares memory with input {name!r} (return a new tensor, not a view of an input)")
    return failures


def _same(a: object, b: object) -> bool:
    """Bitwise equality, NaNs in the same places counting as equal."""
    if type(a) is not torch.Tensor or type(b) is not torch.Tensor:
        return False
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def run_unit_gate(kind: Kind, spec: ModuleSpec, ask: Ask, cache: ReferenceCache) -> list[CaseResult]:
    """Every case of every declared variant, in every dtype the kind checks."""
    results = []
    for variant in spec.variants:
        for case in kind.battery(variant):
            for dtype in kind.dtypes(variant):
                ctx = CaseContext(kind, spec, case, dtype, ask, cache)
                results.append(check_case(ctx))
    return results
