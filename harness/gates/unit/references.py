"""The judge's side of a unit case: inputs from the secret seed, the same-dtype reference and the float64 oracle.

Computed once per run and (case, dtype), shared by every module; the contestant never sees any of it but the
inputs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.core.seeding import case_seed, generator, randn
from harness.kinds.base import CallArgs, Case, Kind


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
