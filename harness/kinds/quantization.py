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

from harness.contract import ErrorBound
from harness.gates.compare import sqnr_db, structure
from harness.gates.unit import CaseContext, CaseResult, call_hygiene, judge_tensor
from harness.kinds import quantization_schemes as schemes
from harness.kinds.base import CallArgs, Case, Kind, generator, randn
from harness.protocol import Call, CandidateRaised, Reply

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
        return [Case(variant, f"o{o}-i{i}-n{n}" + (f"-g{g}" if g else ""), "normal",
                     {"out_features": o, "in_features": i, "tokens": n}, {"group_size": g, "has_bias": True})
                for o, i, n in ((1024, 1024, 16), (2048, 2048, 64))]

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

    def unit_case(self, ctx: CaseContext) -> CaseResult:
        """quantize (bits, determinism, hygiene), dequantize, linear with grad[x], then SQNR and storage."""
        return _QuantCase(self, ctx).run()


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


def _linear_and_grad(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """F.linear in x's dtype (weight cast to it) and its gradient with respect to x."""
    leaf = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = F.linear(leaf, w.to(x.dtype), bias)
        (grad,) = torch.autograd.grad(out, leaf, grad_out.to(x.dtype))
    return out.detach(), grad


class _QuantCase:
    """One (case, dtype) of the unit gate; collects failures and metrics step by step."""

    def __init__(self, kind: QuantizationKind, ctx: CaseContext) -> None:
        self.kind, self.ctx, self.variant = kind, ctx, ctx.case.variant
        gen = generator(ctx.seed)
        self.inputs = kind.make_inputs(ctx.case, ctx.dtype, gen)
        out_f, tokens = ctx.case.sizes["out_features"], ctx.case.sizes["tokens"]
        x_std = REGIME_SCALES[ctx.case.regime][1]
        self.grad_out = randn((tokens, out_f), ctx.dtype, gen, x_std)
        self.weight: torch.Tensor = self.inputs["weight"]
        self.ref_packed = schemes.reference_quantize(self.variant, self.weight, self.inputs["group_size"])
        self.failures: list[str] = []
        self.metrics: dict[str, float] = {}

    def run(self) -> CaseResult:
        try:
            packed = self.quantize()
            if packed is not None:
                w_dq = self.dequantize(packed)
                out = self.linear(packed, w_dq)
                self.quality(w_dq, out)
        except CandidateRaised as exc:  # keep what earlier steps found; the raising step fails the case
            self.failures.append(f"module raised: {exc}")
        case, dtype = self.ctx.case.id, str(self.ctx.dtype).removeprefix("torch.")
        return CaseResult(
            case=case, dtype=dtype, passed=not self.failures, failures=self.failures, metrics=self.metrics
        )

    @property
    def floor_db(self) -> float:
        """The variant's floor, raised to the declared bound for approximate modules."""
        floor = SQNR_FLOOR_DB[self.variant]
        bound = self.ctx.spec.bound
        if not self.ctx.spec.exact and bound is not None and bound.min_sqnr_db is not None:
            floor = max(floor, bound.min_sqnr_db)
        return floor

    def ask(self, call: Call) -> Reply:
        reply = self.ctx.ask(call)
        self.failures += [f"{call.method}: {problem}" for problem in call_hygiene(call.args, reply)]
        return reply

    def quantize(self) -> dict[str, torch.Tensor] | None:
        """Call quantize; check type, determinism, storage, and for exact modules every bit."""
        args = {"weight": self.weight, "group_size": self.inputs["group_size"]}
        reply = self.ask(Call("quantize", args, repeat=True))
        packed = reply.out
        if not isinstance(packed, dict) or not all(type(v) is torch.Tensor for v in packed.values()):
            self.failures.append(f"quantize: expected a dict of plain torch.Tensor, found {_describe(packed)}")
            return None
        if not _same_packed(packed, reply.out_repeat):
            self.failures.append("quantize: two calls with the same weight gave different packed tensors")
        stored, budget = schemes.packed_bytes(packed), schemes.packed_bytes(self.ref_packed)
        fp32 = self.weight.numel() * 4
        self.metrics.update(bytes_stored=stored, bytes_fp32=fp32, compression_ratio=fp32 / max(stored, 1))
        if self.ctx.spec.exact:
            return packed if self.check_exact(packed) else None
        allowed = int(budget * (1 + BYTES_ALLOWANCE[0])) + BYTES_ALLOWANCE[1]
        if stored > allowed:
            self.failures.append(
                f"quantize: stores {stored} bytes, expected at most {allowed} "
                f"({self.variant} packs this weight in {budget} bytes, plus 1% + {BYTES_ALLOWANCE[1]} for metadata)"
            )
        return packed

    def check_exact(self, packed: dict[str, torch.Tensor]) -> bool:
        """Keys, dtypes and shapes of the defined layout, then codes and scales bit for bit."""
        out_f, in_f = self.weight.shape
        layout = schemes.packed_layout(self.variant, out_f, in_f, self.inputs["group_size"])
        if set(packed) != set(layout):
            self.failures.append(f"quantize: expected keys {sorted(layout)}, found {sorted(packed)}")
            return False
        problems = [
            structure(f"quantize: {key}", packed[key], torch.Size(shape), dt) for key, (dt, shape) in layout.items()
        ]
        self.failures += [p for p in problems if p]
        if any(problems):
            return False
        ref_codes = schemes.codes_of(self.variant, self.ref_packed["qweight"])
        got_codes = schemes.codes_of(self.variant, packed["qweight"])
        self.mismatch("qweight codes", got_codes, ref_codes, schemes.code_values(self.variant, packed["qweight"]))
        scale_bits = packed["scale"].view(torch.int32), self.ref_packed["scale"].view(torch.int32)
        self.mismatch("scales", *scale_bits, packed["scale"])
        return True  # a wrong but well-formed packing still goes on to dequantize and linear

    def mismatch(self, what: str, got: torch.Tensor, want: torch.Tensor, got_values: torch.Tensor) -> None:
        """Report the first position where `got` and `want` differ, and how many do."""
        differ = got != want
        count = int(differ.sum())
        if count == 0:
            return
        index = tuple(int(i) for i in differ.nonzero()[0])
        want_values = (
            self.ref_packed["scale"]
            if what == "scales"
            else schemes.code_values(self.variant, self.ref_packed["qweight"])
        )
        where = f"first at {list(index)}: expected {float(want_values[index]):.9g}, got {float(got_values[index]):.9g}"
        if what != "scales":
            g = schemes.group_width(self.variant, self.weight.shape[1], self.inputs["group_size"])
            scale = float(self.ref_packed["scale"][index[0], index[1] // g])
            where += f" (weight {float(self.weight[index]):.9g}, reference scale {scale:.9g})"
            if self.variant == "int4_group":
                where += f" (packed byte {[index[0], index[1] // 2]}, {'high' if index[1] % 2 else 'low'} nibble)"
        self.failures.append(
            f"quantize: {what} differ from the {self.variant} reference at {count} of {got.numel()} positions; {where}"
        )

    def dequantize(self, packed: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Call dequantize; exact modules must match the reference dequantization of their packing."""
        reply = self.ask(Call("dequantize", {"packed": _copy(packed)}, repeat=False))
        problem = structure("dequantize", reply.out, self.weight.shape, torch.float32)
        if problem:
            self.failures.append(problem)
            return None
        got: torch.Tensor = reply.out
        finite = torch.isfinite(got)
        if not self.ctx.spec.exact and not bool(finite.all()):
            i = tuple(int(v) for v in (~finite).nonzero()[0])
            self.failures.append(
                f"dequantize: {int((~finite).sum())} non-finite values; first at {list(i)}: {float(got[i])} "
                f"(weight {float(self.weight[i]):.9g})"
            )
            return None
        if self.ctx.spec.exact:
            want = schemes.reference_dequantize(self.variant, packed)
            # code * scale is one float32 multiply: allow one unit of float32 rounding, nothing more.
            err = (got.double() - want.double()).abs().nan_to_num(math.inf)
            tol = torch.finfo(torch.float32).eps * want.double().abs()
            bad = err > tol
            if bool(bad.any()):
                i = tuple(int(v) for v in bad.nonzero()[0])
                self.failures.append(
                    f"dequantize: differs from code * scale at {int(bad.sum())} of {got.numel()} elements; "
                    f"first at {list(i)}: expected {float(want[i]):.9g}, got {float(got[i]):.9g}"
                )
        return got

    def linear(self, packed: dict[str, torch.Tensor], w_dq: torch.Tensor | None) -> torch.Tensor | None:
        """Call linear with backward; judge output and grad[x] against F.linear on the dequantized weight.

        Exact modules: the weight is the reference dequantization of the module's own packing, so a
        quantize bug is not reported twice. Approximate modules: the module's own dequantize output.
        """
        if self.ctx.spec.exact:
            w_dq = schemes.reference_dequantize(self.variant, packed)
        elif w_dq is None:
            self.failures.append("linear: not judged, because dequantize returned no usable weight")
            return None
        x, bias = self.inputs["x"], self.inputs["bias"]
        args = {"x": x, "packed": _copy(packed), "bias": bias}
        reply = self.ask(Call("linear", args, grad_inputs=("x",), grad_out=self.grad_out, repeat=True))
        if type(reply.out) is torch.Tensor and not _same_packed({"o": reply.out}, {"o": reply.out_repeat}):
            self.failures.append("linear: two calls with the same inputs gave different outputs")
        ref_out, ref_grad = _linear_and_grad(x, w_dq, bias, self.grad_out)
        wide_bias = None if bias is None else bias.double()
        oracle_out, oracle_grad = _linear_and_grad(x.double(), w_dq.double(), wide_bias, self.grad_out.double())
        before = len(self.failures)
        judge_tensor(self.ctx, "output", reply.out, ref_out, oracle_out, self.failures, self.metrics)
        self.failures[before:] = [f"linear: {f}" for f in self.failures[before:]]
        got_grad = reply.grads.get("x")
        if got_grad is None:
            self.failures.append("linear: grad[x]: no gradient reached x (is the output detached?)")
        else:
            before = len(self.failures)
            judge_tensor(self.ctx, "grad[x]", got_grad, ref_grad, oracle_grad, self.failures, self.metrics)
            self.failures[before:] = [f"linear: {f}" for f in self.failures[before:]]
        return reply.out if type(reply.out) is torch.Tensor and reply.out.shape == ref_out.shape else None

    def quality(self, w_dq: torch.Tensor | None, out: torch.Tensor | None) -> None:
        """SQNR of the dequantized weight and of the linear output against the unquantized weight (float64)."""
        self.metrics["sqnr_floor_db"] = self.floor_db
        w = self.weight.double()
        if w_dq is not None:
            self.check_sqnr("weight_sqnr_db", "dequantized weight vs the original weight", w, w_dq)
        if out is not None:
            bias = self.inputs["bias"]
            exact = F.linear(self.inputs["x"].double(), w, None if bias is None else bias.double())
            self.check_sqnr("output_sqnr_db", "linear output vs the unquantized linear", exact, out)

    def check_sqnr(self, metric: str, what: str, signal: torch.Tensor, got: torch.Tensor) -> None:
        """Record the SQNR; gate it on the floor when there are enough values (non-finite fails regardless)."""
        # compare.sqnr_db raises on an infinite input (log10 of 0), so non-finite values are -inf dB here.
        value = sqnr_db(signal, got) if bool(torch.isfinite(got).all()) else -math.inf
        self.metrics[metric] = value
        gated = signal.numel() >= SQNR_MIN_VALUES or not math.isfinite(value)
        if gated and not value >= self.floor_db:
            self.failures.append(
                f"quality: SQNR of the {what} is {value:.2f} dB, expected at least {self.floor_db:g} dB "
                f"(the {self.variant} floor{'' if self.ctx.spec.exact else ' or the declared bound'})"
            )


def _describe(value: object) -> str:
    """Types of a returned value, without its (possibly huge) contents."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    return value if isinstance(value, str) else type(value).__name__  # str: the worker's "<unsendable ...>"


def _copy(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Private copies to send, so a module that writes into its arguments cannot change the judge's tensors."""
    return {k: v.clone() for k, v in packed.items()}


def _same_packed(a: object, b: object) -> bool:
    """Same keys, and every tensor bitwise equal with the same dtype and shape."""
    if not isinstance(a, dict) or not isinstance(b, dict) or set(a) != set(b):
        return False
    for key, x in a.items():
        y = b[key]
        if type(x) is not torch.Tensor or type(y) is not torch.Tensor or x.dtype != y.dtype or x.shape != y.shape:
            return False
        if not torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8)):  # bits: NaN == NaN
            return False
    return True
