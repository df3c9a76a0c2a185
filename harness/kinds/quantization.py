"""Quantization kind: linear-weight quantizers, judged bit for bit against the reference schemes and by SQNR.

A module implements three calls (see quantization_schemes for the exact packed formats):

- quantize(weight, group_size) -> dict[str, Tensor]: weight (out_features, in_features) in float32, bfloat16
  or float16. group_size is 32, 64 or 128 for int4_group (in_features must be divisible by it) and None
  for the per-channel variants, which ignore it.
- dequantize(packed) -> float32 (out_features, in_features) weight.
- linear(x, packed, bias) -> x @ dequantize(packed).T + bias in x's dtype (bias may be None), differentiable
  with respect to x. The reference casts the float32 dequantized weight to x's dtype before the matmul.

Exact modules must return exactly {"qweight", "scale"} with the defined dtypes, shapes and bits. Approximate
modules may store anything (a dict of plain tensors) within the defined scheme's byte budget, and are judged
by SQNR only. Every module must reach the variant's SQNR floor on the dequantized weight and on the linear
output, both measured against the unquantized weight in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from harness.core.contract import ErrorBound
from harness.core.seeding import randn
from harness.kinds import quantization_schemes as schemes
from harness.kinds.base import CallArgs, CallStyle, Case, Kind

# Lowest SQNR (dB) a module may reach on a battery case, for the dequantized weight and for the linear output,
# each against the unquantized weight in float64. Measured with the reference schemes on the gated cases, all
# three dtypes, run seeds 0-49 (mean, and worst in brackets):
# - int8_channel: Gaussian 42.1 [42.0] weight, 41.7 [41.6] output; heavy_tailed (Student-t, 3 dof)
#   32.7 [30.2] weight, 32.7 [29.5] output. Floor 26.
# - int4_group: Gaussian 18.6 [18.6] (group 128) to 20.3 [20.0] (group 32); zero_row 18.6 [17.9];
#   heavy_tailed 16.8 [16.6] weight, 16.9 [15.8] output. Floor 12.5.
# - fp8_e4m3: 31.6-32.4 dB in every regime (floating-point codes do not care about the distribution);
#   worst 31.5 weight, 30.7 output (bfloat16 output rounding). Floor 27.
SQNR_FLOOR_DB = {"int8_channel": 26.0, "int4_group": 12.5, "fp8_e4m3": 27.0}
# The SQNR of fewer values than this is too noisy to gate on (the reference's int4 SQNR on a 3 x 64 Student-t
# weight ranged 11.4-19 dB over 50 seeds; a 1 x 1 output is one number): such cases record it, not judge it.
SQNR_MIN_VALUES = 256
# An approximate module may store at most the defined scheme's bytes for the same weight plus this allowance:
# 1% of that plus 16 bytes, room for a small header tensor (a shape, a format tag), not for extra precision.
BYTES_ALLOWANCE = (0.01, 16)
# regime -> (weight standard deviation, x and grad_out standard deviation). Weights around 0.02 are typical of
# transformer linears; "tiny" and "large" move x and grad_out the other way so outputs and gradients stay in
# float16's normal range for the battery's shapes (|x @ W.T| ~ w_std * x_std * sqrt(in_features)).
REGIME_SCALES = {
    "normal": (0.02, 1.0),
    "heavy_tailed": (0.02, 1.0),
    "zero_row": (0.02, 1.0),
    "ties": (0.02, 1.0),
    "tiny": (1e-6, 1e2),
    "large": (1e4, 1e-3),
}
# (out_features, in_features, tokens, int4 group size, bias, regime); 640 = 5 * 128 is not a power of two.
_SHAPES = (
    (1, 32, 1, 32, True, "ties"),
    (3, 64, 5, 64, True, "heavy_tailed"),
    (37, 128, 64, 128, False, "zero_row"),
    (256, 256, 64, 32, True, "tiny"),
    (96, 384, 5, 64, True, "large"),
    (768, 1024, 64, 128, True, "normal"),
    (130, 640, 5, 32, False, "heavy_tailed"),
)


class QuantizationKind(Kind):
    """Weight-only quantization of linear layers: int8 per channel, int4 per group, fp8 e4m3 per channel."""

    name: ClassVar[str] = "quantization"
    calls: ClassVar[CallStyle] = CallStyle.QUANTIZER
    variants: ClassVar[Mapping[str, str]] = schemes.VARIANTS
    methods: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "quantize": ("weight", "group_size"),
        "dequantize": ("packed",),
        "linear": ("x", "packed", "bias"),
    }
    # Registration rejects a declared bound looser than the loosest variant floor; the unit gate then holds
    # each case to max(declared bound, that variant's floor).
    error_floor: ClassVar[ErrorBound] = ErrorBound(min_sqnr_db=min(SQNR_FLOOR_DB.values()))

    def battery(self, variant: str) -> list[Case]:
        cases = []
        for out_f, in_f, tokens, group, bias, regime in _SHAPES:
            g = group if variant == "int4_group" else None
            label = f"o{out_f}-i{in_f}-n{tokens}" + (f"-g{g}" if g else "") + ("" if bias else "-nobias")
            sizes = {"out_features": out_f, "in_features": in_f, "tokens": tokens}
            # has_bias is not a call argument: make_inputs turns it into the bias tensor (or None).
            cases.append(Case(variant, label, regime, sizes, {"group_size": g, "has_bias": bias}))
        return cases

    perf_method: ClassVar[str] = "linear"

    def perf_cases(self, variant: str) -> list[Case]:
        # The quantized linear of a decode step (16 tokens, 1024 x 1024: ~0.1-1 ms) and of a prefill chunk
        # (64 tokens, 2048 x 2048: 4M weights, 16 MB once dequantized to fp32).
        g = 32 if variant == "int4_group" else None
        return [
            Case(
                variant,
                f"o{o}-i{i}-n{n}" + (f"-g{g}" if g else ""),
                "normal",
                {"out_features": o, "in_features": i, "tokens": n},
                {"group_size": g, "has_bias": True},
            )
            for o, i, n in ((1024, 1024, 16), (2048, 2048, 64))
        ]

    def timed_args(self, module: Any, args: CallArgs) -> CallArgs:
        """The weight packed by `module`'s own quantize (untimed); the timed call is linear(x, packed, bias)."""
        packed = module.quantize(weight=args["weight"], group_size=args["group_size"])
        return {"x": args["x"], "packed": packed, "bias": args["bias"]}

    def reference_module(self, variant: str) -> Any:
        return ReferenceQuantization(self, variant)

    def make_inputs(self, case: Case, dtype: torch.dtype, gen: torch.Generator) -> CallArgs:
        """The linear's arguments: x (tokens, in), weight (out, in), bias (out) or None, group_size."""
        out_f, in_f, tokens = (case.sizes[k] for k in ("out_features", "in_features", "tokens"))
        w_std, x_std = REGIME_SCALES[case.regime]
        weight = _weight(case, (out_f, in_f), w_std, gen)
        x = randn((tokens, in_f), dtype, gen, x_std)
        # A bias about a tenth of the output's size, so it cannot hide the weight's quantization noise.
        bias = randn((out_f,), dtype, gen, 0.1 * w_std * x_std * math.sqrt(in_f)) if case.params["has_bias"] else None
        return {"x": x, "weight": weight.to(dtype), "bias": bias, "group_size": case.params["group_size"]}

    def reference(self, variant: str, args: CallArgs) -> torch.Tensor:
        """Quantize, dequantize, then the linear in x's dtype (float64 inputs give the oracle)."""
        w_dq = self.reference_dequantize(variant, self.reference_quantize(variant, args["weight"], args["group_size"]))
        return F.linear(args["x"], w_dq.to(args["x"].dtype), args["bias"])

    def reference_quantize(self, variant: str, weight: torch.Tensor, group_size: int | None) -> dict[str, torch.Tensor]:
        return schemes.reference_quantize(variant, weight, group_size)

    def reference_dequantize(self, variant: str, packed: dict[str, torch.Tensor]) -> torch.Tensor:
        return schemes.reference_dequantize(variant, packed)

    def grad_inputs(self, variant: str) -> tuple[str, ...]:
        return ("x",)

    def flops(self, case: Case) -> int:
        out_f, in_f, tokens = (case.sizes[k] for k in ("out_features", "in_features", "tokens"))
        matmul = 2 * tokens * in_f * out_f  # one multiply and one add per (token, input, output)
        bias = tokens * out_f if case.params["has_bias"] else 0  # one add per output element
        dequant = out_f * in_f  # one code * scale multiply per weight (integer unpacking is not counted)
        return matmul + bias + dequant

    def bytes_moved(self, case: Case, dtype: torch.dtype) -> int:
        out_f, in_f, tokens = (case.sizes[k] for k in ("out_features", "in_features", "tokens"))
        size = torch.empty((), dtype=dtype).element_size()
        g = schemes.group_width(case.variant, in_f, case.params["group_size"])  # type: ignore[arg-type]
        codes = out_f * in_f * schemes.CODE_BITS[case.variant] // 8  # packed codes, read once
        scales = 4 * out_f * (in_f // g)  # one float32 scale per group, read once
        x = tokens * in_f * size  # activations read once
        bias = out_f * size if case.params["has_bias"] else 0  # bias read once
        out = tokens * out_f * size  # output written once
        return codes + scales + x + bias + out


class ReferenceQuantization:
    """The kind's reference scheme behind a module's quantize / dequantize / linear signature."""

    def __init__(self, kind: QuantizationKind, variant: str) -> None:
        self.kind, self.variant = kind, variant

    def quantize(self, weight: torch.Tensor, group_size: int | None) -> dict[str, torch.Tensor]:
        return self.kind.reference_quantize(self.variant, weight, group_size)

    def dequantize(self, packed: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.kind.reference_dequantize(self.variant, packed)

    def linear(self, x: torch.Tensor, packed: dict[str, torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor:
        """Dequantize, then F.linear in x's dtype: the plain path a fused kernel is measured against."""
        return F.linear(x, self.dequantize(packed).to(x.dtype), bias)


def _weight(case: Case, shape: tuple[int, int], std: float, gen: torch.Generator) -> torch.Tensor:
    """float64 weight for the case's regime."""
    if case.regime == "heavy_tailed":
        # Student-t with 3 degrees of freedom, z / sqrt(chi2_3 / 3), scaled to unit variance (/ sqrt(3)): a few
        # entries per row reach 10-30 standard deviations and set their channel's or group's scale, so the
        # remaining entries get few codes. Per-channel int8 drops from ~42 dB (Gaussian) to ~32 dB.
        z = torch.randn(shape, generator=gen, dtype=torch.float64)
        chi2 = torch.randn((3, *shape), generator=gen, dtype=torch.float64).square().sum(0)
        return z / torch.sqrt(chi2 / 3.0) / math.sqrt(3.0) * std
    w = randn(shape, torch.float64, gen, std)
    if case.regime == "zero_row":
        # All-zero rows (first, middle, last) and, in row 1, 32 zero inputs: zero groups need a finite scale.
        w[[0, shape[0] // 2, shape[0] - 1]] = 0.0
        w[1, :32] = 0.0
    elif case.regime == "ties":
        w = schemes.plant_ties(w, case.variant, case.params["group_size"], gen)  # type: ignore[arg-type]
    return w


def linear_and_grad(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """F.linear in x's dtype (weight cast to it) and its gradient with respect to x."""
    leaf = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = F.linear(leaf, w.to(x.dtype), bias)
        (grad,) = torch.autograd.grad(out, leaf, grad_out.to(x.dtype))
    return out.detach(), grad
