"""Normalization over the last dimension (LayerNorm, RMSNorm): reference, inputs, battery, formulas, tolerance."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch

from harness.core.contract import ErrorBound
from harness.core.seeding import randn, uniform
from harness.core.tolerance import TolerancePolicy
from harness.kinds.base import CallArgs, Case, Kind

_Shape = tuple[str, dict[str, int], str, float]  # (label, sizes, regime, eps); the last size is the normalized dim

# Small tensors are where the tolerance (a multiple of the same-dtype reference's max error) is least stable:
# with few elements, and gradients that are sums of a few random-signed terms, the reference's error can be tiny
# by luck. The edge sizes below were chosen so honest implementations pass on 1000+ seeds (see each comment).
_SHARED: tuple[_Shape, ...] = (
    ("r1-h37", {"rows": 1, "hidden": 37}, "large", 1e-6),  # single row; odd width leaves a vector tail
    ("r13-h127", {"rows": 13, "hidden": 127}, "tiny", 1e-5),  # eps dominates the mean square
    ("b3-s5-h768", {"batch": 3, "seq": 5, "hidden": 768}, "normal", 1e-6),  # 3-D (batch, seq, hidden)
    # 32 rows so the max error spans many row means (6 rows left the reference's error to luck)
    ("r32-h257", {"rows": 32, "hidden": 257}, "offset", 1e-5),  # |mean| >> spread
    ("r8-h4096", {"rows": 8, "hidden": 4096}, "large", 1e-5),  # large feature dim
    ("r3-h5000", {"rows": 3, "hidden": 5000}, "normal", 1e-6),  # large, not a power of two
)
_EDGES: dict[str, tuple[_Shape, ...]] = {
    "rms_norm": (
        ("r64-h3", {"rows": 64, "hidden": 3}, "normal", 1e-5),  # rows shorter than any vector width
        # hidden == 1 with x ~ sqrt(eps): y = x / sqrt(x^2 + eps) * w is neither sign(x) * w nor x / sqrt(eps).
        # One row, because at unit |x| dy/dx ~ eps / |x|^3 is pure cancellation, and a 1-element weight
        # gradient summed over rows is a cancellation-prone scalar: both are rounding noise, not a check.
        ("r1-h1", {"rows": 1, "hidden": 1}, "eps", 1e-5),
    ),
    "layer_norm": (
        # hidden 7, not 3 or 1: with 3 features a row's spread is often tiny next to its mean (chi-square with
        # 2 degrees of freedom), which turns dL/dx into cancellation noise; with 1 feature y == bias and
        # dL/dx == 0 exactly, which a kernel using fma in dy*w - mean(dy*w) misses by ulp * rstd.
        ("r7-h7", {"rows": 7, "hidden": 7}, "normal", 1e-5),
    ),
}


def _tiny_scale(dtype: torch.dtype) -> float:
    """Magnitude of the "tiny" regime: squares far below eps, while the values themselves stay representable.

    1e-20 is a normal number in float32 and bfloat16 (their squares, ~1e-40, are float32 subnormals); it would
    flush to zero in float16, whose smallest subnormal is 6e-8, so float16 uses 1e-4 (partly subnormal inputs,
    squares ~1e-8 that underflow a naive float16 mean of squares).
    """
    return 1e-4 if dtype == torch.float16 else 1e-20


def _offset_noise(dtype: torch.dtype) -> float:
    """Spread of the "offset" regime around a row mean of 1e3..1e4.

    Unit spread in float32 makes E[x^2] - E[x]^2 lose every significant digit (E[x^2] ~ 1e7 has an ulp of ~1).
    Low-precision inputs cannot hold unit noise on top of 1e4 (bfloat16 has an ulp of 64 there), so the spread
    grows to about two ulps of the largest mean, keeping rows non-constant after rounding.
    """
    return max(1.0, 2.0 * torch.finfo(dtype).eps * 1e4)


def _values(regime: str, shape: tuple[int, ...], eps: float, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    if regime == "normal":
        return randn(shape, dtype, gen)
    if regime == "tiny":
        return randn(shape, dtype, gen, _tiny_scale(dtype))
    if regime == "large":
        # ~1e3: squares reach 1e6-1e7, beyond float16's 65504, so only an upcasting implementation survives.
        return randn(shape, dtype, gen, 1e3)
    if regime == "eps":
        return randn(shape, dtype, gen, math.sqrt(eps))
    if regime == "offset":
        mean = uniform((*shape[:-1], 1), torch.float64, gen, 1e3, 1e4)
        return (mean + randn(shape, torch.float64, gen, _offset_noise(dtype))).to(dtype)
    raise ValueError(f"unknown norm value regime {regime!r}")


class NormKind(Kind):
    """Normalize each vector along the last dimension, then scale by `weight` (and shift by `bias`)."""

    name = "norm"
    variants: ClassVar[Mapping[str, str]] = {
        "layer_norm": "(x - mean) / sqrt(biased var + eps) * weight + bias over the last dim",
        "rms_norm": "x / sqrt(mean(x^2) + eps) * weight over the last dim (bias is None)",
    }
    methods: ClassVar[Mapping[str, tuple[str, ...]]] = {"forward": ("x", "weight", "bias", "eps")}
    # Approximate norms must keep the direction (cosine) and ~3 decimal digits of signal (30 dB).
    error_floor: ClassVar[ErrorBound] = ErrorBound(min_cosine=0.999, min_sqnr_db=30.0)
    tolerance: ClassVar[TolerancePolicy] = TolerancePolicy()

    def battery(self, variant: str) -> list[Case]:
        shapes = _EDGES[variant] + _SHARED
        return [
            Case(variant=variant, label=label, regime=regime, sizes=sizes, params={"eps": eps})
            for label, sizes, regime, eps in shapes
        ]

    def perf_cases(self, variant: str) -> list[Case]:
        # 64 x 1024 fp32 (256 KB, cache resident, ~tens of us) and 1024 x 4096 (16 MB, memory bound, ~ms)
        return [
            Case(variant, f"r{r}-h{h}", "normal", {"rows": r, "hidden": h}, {"eps": 1e-5})
            for r, h in ((64, 1024), (1024, 4096))
        ]

    def make_inputs(self, case: Case, dtype: torch.dtype, gen: torch.Generator) -> CallArgs:
        shape = tuple(case.sizes.values())
        hidden = case.sizes["hidden"]
        eps = case.params["eps"]
        assert isinstance(eps, float), f"norm case {case.id} needs a float eps, found {eps!r}"
        x = _values(case.regime, shape, eps, dtype, gen)
        # Weights around 1 (not all ones, so a module that ignores them fails); rounded once to `dtype`.
        weight = (1.0 + randn((hidden,), torch.float64, gen, 0.2)).to(dtype)
        bias = randn((hidden,), dtype, gen, 0.5) if case.variant == "layer_norm" else None
        return {"x": x, "weight": weight, "bias": bias, "eps": eps}

    def reference(self, variant: str, args: CallArgs) -> torch.Tensor:
        x: torch.Tensor = args["x"]
        eps = float(args["eps"])
        # Low-precision inputs are normalized in float32 and rounded once at the end (as LLaMA's RMSNorm and
        # PyTorch's kernels do); float64 inputs stay float64, which makes this the oracle.
        wide = torch.float64 if x.dtype == torch.float64 else torch.float32
        xf = x.to(wide)
        weight_in: torch.Tensor = args["weight"]
        weight = weight_in.to(wide)
        if variant == "rms_norm":
            y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps) * weight
        elif variant == "layer_norm":
            # Two-pass variance, mean((x - mean)^2), so the statistics stay exact to rounding when |mean| >> spread.
            mean = xf.mean(-1, keepdim=True)
            var = (xf - mean).square().mean(-1, keepdim=True)
            # The output is formed as x * scale + shift, the way fused kernels (PyTorch's CPU kernel among them)
            # apply it. On a row with |mean| >> spread this costs ~eps * |mean| / spread forward and backward, the
            # accuracy of any backward-stable implementation. (x - mean) * scale is more accurate there (measured
            # 5-30x in dL/dx), and the tolerance, anchored to this reference's own error, would reject PyTorch's
            # kernel far more often than the policy of _IllConditioned allows for.
            bias: torch.Tensor = args["bias"]
            scale = torch.rsqrt(var + eps) * weight
            y = xf * scale + (bias.to(wide) - mean * scale)
        else:
            raise ValueError(f"unknown norm variant {variant!r}")
        return y.to(x.dtype)

    def tolerance_for(self, case: Case, dtype: torch.dtype) -> TolerancePolicy:
        """The default policy, except float32 LayerNorm on offset rows (see ILL_CONDITIONED_TOLERANCE)."""
        if case.variant == "layer_norm" and case.regime == "offset" and dtype == torch.float32:
            return ILL_CONDITIONED_TOLERANCE
        return self.tolerance

    def grad_inputs(self, variant: str) -> tuple[str, ...]:
        return ("x", "weight", "bias") if variant == "layer_norm" else ("x", "weight")

    def flops(self, case: Case) -> int:
        hidden = case.sizes["hidden"]
        rows = _rows(case)
        if case.variant == "rms_norm":
            # per element: square, accumulate, scale by rstd, scale by weight;
            # per row: divide by hidden, add eps, rsqrt
            return rows * (4 * hidden + 3)
        # per element: accumulate (mean), subtract mean, square, accumulate (var), scale by rstd,
        # scale by weight, add bias; per row: two divides by hidden, add eps, rsqrt
        return rows * (7 * hidden + 4)

    def bytes_moved(self, case: Case, dtype: torch.dtype) -> int:
        size = torch.finfo(dtype).bits // 8
        hidden = case.sizes["hidden"]
        elements = _rows(case) * hidden
        params = 2 if case.variant == "layer_norm" else 1  # weight (+ bias), each `hidden` long, read once
        # read x once + write y once (the two passes over a row can stay in cache) + read the parameters
        return size * (2 * elements + params * hidden)


# Float32 LayerNorm on rows with |mean| / spread ~ 1e3..1e4 is judged with a wider multiplier.
# There dL/dx from fast kernels is only backward stable: PyTorch's CPU kernel forms it as
# a*dy*w + b*x + c, where b*x and c (each ~|mean|) cancel, and its max error measured 3-4x the reference's
# (autograd through the centred graph) in a typical run and up to 14x over 2000 seeds. 32x still rejects what
# this regime exists to catch: E[x^2] - E[x]^2 is off by ~1e6x the reference error here, and a float32 request
# computed in bfloat16 loses the unit spread entirely. Other dtypes keep the default: their offset rows have
# a spread of a few ulps of the mean, so the float32 cancellation is far below their own rounding.
ILL_CONDITIONED_TOLERANCE = TolerancePolicy(multiplier=32.0)


def _rows(case: Case) -> int:
    """Number of normalized vectors: the product of every size but the last (hidden)."""
    rows = 1
    for name, value in case.sizes.items():
        if name != "hidden":
            rows *= value
    return rows
