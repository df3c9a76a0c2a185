"""Pointwise activations (GELU, tanh-GELU, SiLU, SwiGLU): reference, inputs, battery, formulas, tolerance."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch

from harness.core.contract import ErrorBound
from harness.core.seeding import randn, uniform
from harness.core.tolerance import TolerancePolicy
from harness.kinds.base import CallArgs, Case, Kind

# (label, sizes, regime); the sizes multiply out to the tensor's shape in order.
_SHAPES: tuple[tuple[str, dict[str, int], str], ...] = (
    # A single element: no vector body at all. Tiny values, because the tolerance scales with max|oracle|, and
    # one normal value near a zero of the derivative (gelu' vanishes at x ~ -0.75, silu' at x ~ -1.28) makes
    # the 1-element gradient pure cancellation noise, which honest kernels do not reproduce within the policy.
    ("n1", {"n": 1}, "tiny"),
    ("n7", {"n": 7}, "normal"),  # shorter than any vector width, only a tail
    ("n1000", {"n": 1000}, "large"),  # exp/x^3 overflow territory
    ("n4097", {"n": 4097}, "normal"),  # one past a power of two: a one-element tail
    ("n4097", {"n": 4097}, "large"),
    ("b2-s37-h129", {"batch": 2, "seq": 37, "hidden": 129}, "saturating"),  # 3-D, odd everywhere
    ("n1048573", {"n": 1048573}, "normal"),  # ~1M elements (odd), the memory-bound size
)
# SwiGLU's "large" gate is multiplied by `up`; keep the product inside float16 (|gate*up| <= 100 * 8).
_UP_SCALE = {"normal": 1.0, "tiny": 1e-6, "large": 2.0, "saturating": 1.0}
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)


def _draw(regime: str, count: int, gen: torch.Generator) -> torch.Tensor:
    """`count` float64 values of the regime; their negations are added by `_values`."""
    if regime == "normal":
        return randn((count,), torch.float64, gen)
    if regime == "tiny":
        # ~1e-6: float16 subnormals (below 6.1e-5); gelu/silu are ~x/2 here, so relative accuracy of the
        # linear term matters, not of exp/erf.
        return randn((count,), torch.float64, gen, 1e-6)
    if regime == "large":
        # |x| up to 100: exp(-x) overflows float32 for x < -88 and float16 for x < -11, and x^3 in tanh-GELU
        # overflows float16 for |x| > 40. Every value (and its gradient) is finite in every dtype.
        return uniform((count,), torch.float64, gen, 0.0, 100.0)
    if regime == "saturating":
        # |x| in [3, 20]: erf/tanh/sigmoid within an ulp of +-1, where the small tail (x * Phi(x) for x < 0)
        # is easy to lose to cancellation.
        return uniform((count,), torch.float64, gen, 3.0, 20.0)
    raise ValueError(f"unknown activation value regime {regime!r}")


def _values(regime: str, shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Values of the regime in sign-symmetric pairs (v, -v), in random order, rounded once to `dtype`.

    The tolerance floor scales with max|oracle|. GELU and SiLU are ~0 for negative inputs, so a small tensor
    that drew only negative values had a tiny scale, while the honest error of 1 + erf(x) near -1 (PyTorch's
    GELU: ~4 ulps of erf at x ~ -2.5) is relative to |x|: 7-element cases failed honest kernels. With every
    negative value's magnitude also present as a positive value, max|oracle| is at least about the largest |x|.
    """
    count = math.prod(shape)
    half = _draw(regime, (count + 1) // 2, gen).abs()
    # For an odd count the last -v is cut, so the unpaired value is positive: no negative input lacks its mirror.
    paired = torch.stack((half, -half), dim=-1).flatten()[:count]
    order = torch.randperm(count, generator=gen)
    return paired[order].view(shape).to(dtype)


class ActivationKind(Kind):
    """Elementwise activations; SwiGLU is silu(gate) * up on two equal-shape tensors."""

    name = "activation"
    variants: ClassVar[Mapping[str, str]] = {
        "gelu": "0.5 * x * (1 + erf(x / sqrt(2))) (exact GELU)",
        "gelu_tanh": "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) (tanh approximation)",
        "silu": "x * sigmoid(x)",
        "swiglu": "silu(gate) * up (x is None)",
    }
    methods: ClassVar[Mapping[str, tuple[str, ...]]] = {"forward": ("x", "gate", "up")}
    # Approximate activations must keep the direction (cosine) and ~3 decimal digits of signal (30 dB).
    error_floor: ClassVar[ErrorBound] = ErrorBound(min_cosine=0.999, min_sqnr_db=30.0)
    # multiplier 4, not 3: where GELU and its derivative are small they are rounding noise in every float32
    # kernel (1 + erf(x) and 1 - tanh(u)^2 with erf, tanh within ulps of -1; PyTorch's vectorized erf is several
    # ulps off there), so the ratio to the reference's own noise is heavy-tailed. PyTorch's kernels measured up
    # to 3.4x (tanh-GELU dL/dx, 1 run in ~4500) and 2.6x (GELU dL/dx on 7 elements, 1000 runs). Silent
    # downcasts stay caught by orders of magnitude (bfloat16 inside a float32 request: >1000x).
    tolerance: ClassVar[TolerancePolicy] = TolerancePolicy(multiplier=4.0)

    def battery(self, variant: str) -> list[Case]:
        return [Case(variant=variant, label=label, regime=regime, sizes=sizes) for label, sizes, regime in _SHAPES]

    def perf_cases(self, variant: str) -> list[Case]:
        # 64 x 1024 (256 KB per tensor, cache resident) and 1024 x 4096 (16 MB per tensor, memory bound)
        return [Case(variant, f"r{r}-h{h}", "normal", {"rows": r, "hidden": h}) for r, h in ((64, 1024), (1024, 4096))]

    def salted_arg(self, variant: str) -> str:
        return "gate" if variant == "swiglu" else "x"

    def make_inputs(self, case: Case, dtype: torch.dtype, gen: torch.Generator) -> CallArgs:
        shape = tuple(case.sizes.values())
        if case.variant != "swiglu":
            return {"x": _values(case.regime, shape, dtype, gen), "gate": None, "up": None}
        gate = _values(case.regime, shape, dtype, gen)
        up = randn(shape, dtype, gen, _UP_SCALE[case.regime])
        return {"x": None, "gate": gate, "up": up}

    def reference(self, variant: str, args: CallArgs) -> torch.Tensor:
        # Plain formulas in the input dtype: every intermediate is rounded to it, which is the error scale an
        # honest low-precision implementation is measured against; float64 inputs give the oracle.
        if variant == "swiglu":
            gate: torch.Tensor = args["gate"]
            up: torch.Tensor = args["up"]
            return gate * torch.sigmoid(gate) * up
        x: torch.Tensor = args["x"]
        if variant == "gelu":
            return 0.5 * x * (1.0 + torch.erf(x * _SQRT_HALF))
        if variant == "gelu_tanh":
            return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))))
        if variant == "silu":
            return x * torch.sigmoid(x)
        raise ValueError(f"unknown activation variant {variant!r}")

    def grad_inputs(self, variant: str) -> tuple[str, ...]:
        return ("gate", "up") if variant == "swiglu" else ("x",)

    def flops(self, case: Case) -> int:
        # A transcendental (erf, tanh, exp) counts as one operation, the usual convention, though it costs
        # several on any hardware.
        per_element = {
            "gelu": 5,  # x/sqrt(2), erf, +1, *x, *0.5
            "gelu_tanh": 9,  # x*x*x (2), *0.044715, +x, *sqrt(2/pi), tanh, +1, *x, *0.5
            "silu": 4,  # -x, exp, +1, x / (...)
            "swiglu": 5,  # silu(gate) (4), * up
        }[case.variant]
        return per_element * _elements(case)

    def bytes_moved(self, case: Case, dtype: torch.dtype) -> int:
        size = torch.finfo(dtype).bits // 8
        # read x and write y once; SwiGLU reads two inputs (gate, up) and writes one output
        tensors = 3 if case.variant == "swiglu" else 2
        return size * tensors * _elements(case)


def _elements(case: Case) -> int:
    count = 1
    for value in case.sizes.values():
        count *= value
    return count
