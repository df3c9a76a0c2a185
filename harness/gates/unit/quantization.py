"""The unit check of quantization modules: quantize bit for bit, dequantize, linear with grad[x], SQNR, bytes.

The packed layouts, reference schemes, SQNR floors and byte allowance are the kind's contract
(harness/kinds/quantization.py and quantization_schemes.py); this file only exercises a module against them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.core.compare import structure
from harness.core.numerics import sqnr_db
from harness.core.seeding import dtype_name, generator, randn
from harness.gates.unit.case import CaseContext, call_hygiene, judge_tensor
from harness.kinds import quantization_schemes as schemes
from harness.kinds.quantization import (
    BYTES_ALLOWANCE,
    REGIME_SCALES,
    SQNR_FLOOR_DB,
    SQNR_MIN_VALUES,
    linear_and_grad,
)
from harness.protocol.errors import CandidateRaised
from harness.protocol.messages import Call, CallReply
from harness.results.records import CaseResult


class QuantizationCase:
    """One (case, dtype) of the unit gate; collects failures and metrics step by step."""

    def __init__(self, ctx: CaseContext) -> None:
        self.kind, self.ctx, self.variant = ctx.kind, ctx, ctx.case.variant
        gen = generator(ctx.seed)
        self.inputs = ctx.kind.make_inputs(ctx.case, ctx.dtype, gen)
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
        case, dtype = self.ctx.case.id, dtype_name(self.ctx.dtype)
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

    def ask(self, call: Call) -> CallReply:
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
        ref_out, ref_grad = linear_and_grad(x, w_dq, bias, self.grad_out)
        wide_bias = None if bias is None else bias.double()
        oracle_out, oracle_grad = linear_and_grad(x.double(), w_dq.double(), wide_bias, self.grad_out.double())
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
