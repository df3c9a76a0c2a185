"""The contract every kind implements: variants, reference, inputs, shape battery, formulas, tolerance."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import torch

from harness.core.contract import ErrorBound
from harness.core.tolerance import TolerancePolicy

Scalar = int | float | bool | None
CallArgs = dict[str, Any]  # keyword arguments of one call: tensors and scalars


@dataclass(frozen=True)
class Case:
    """One entry of a kind's shape battery: sizes and a value regime for one variant."""

    variant: str  # variant of the kind this case exercises
    label: str  # sizes in short form, e.g. "b2-h3-s37-d24"
    regime: str  # value regime, e.g. "normal", "tiny", "huge"
    sizes: Mapping[str, int]  # named dimensions, read by the input generator and the FLOP/byte formulas
    params: Mapping[str, Scalar] = field(default_factory=dict)  # non-tensor call arguments (window, eps, ...)

    @property
    def id(self) -> str:
        return f"{self.variant}/{self.label}/{self.regime}"


class CallStyle(StrEnum):
    """The shape of a kind's methods, which decides how the unit gate exercises a module."""

    FUNCTION = "function"  # forward(**args) -> Tensor, differentiable in the kind's grad_inputs
    QUANTIZER = "quantizer"  # quantize(weight, group_size) -> packed, dequantize(packed), linear(x, packed, bias)


class Kind(ABC):
    """A family of interchangeable components (attention, norm, ...) and everything needed to judge one.

    A kind owns: the variants it defines, a reference implementation in plain eager PyTorch that is also
    the float64 oracle, a seeded input generator, a shape battery with odd and edge sizes and hostile value
    regimes, FLOP and byte formulas, and the tolerance policy. Modules only supply an implementation.
    """

    name: ClassVar[str]
    variants: ClassVar[Mapping[str, str]]  # variant -> one-line description
    # method name -> parameter names the contestant passes as keywords; checked against the module's
    # signature when it registers
    methods: ClassVar[Mapping[str, tuple[str, ...]]]
    error_floor: ClassVar[ErrorBound]  # loosest bound an approximate module may declare
    tolerance: ClassVar[TolerancePolicy] = TolerancePolicy()
    # How a module of this kind is called: FUNCTION (one differentiable call, judged on its output and
    # gradients) or QUANTIZER (quantize, dequantize, linear). The unit gate picks its check by this.
    calls: ClassVar[CallStyle] = CallStyle.FUNCTION

    def dtypes(self, variant: str) -> tuple[torch.dtype, ...]:
        """Dtypes the unit gate checks; float16 joins when this machine computes it."""
        common = (torch.float32, torch.bfloat16)
        return (*common, torch.float16) if float16_supported() else common

    @abstractmethod
    def battery(self, variant: str) -> list[Case]:
        """Cases the unit gate runs for `variant`: always odd sizes, edge sizes and hostile value regimes."""

    @abstractmethod
    def make_inputs(self, case: Case, dtype: torch.dtype, gen: torch.Generator) -> CallArgs:
        """Keyword arguments for one call of the module on `case`, drawn from `gen` (seeded by the judge)."""

    @abstractmethod
    def reference(self, variant: str, args: CallArgs) -> torch.Tensor:
        """Plain eager PyTorch; computes in the dtype of its inputs, so float64 inputs give the oracle."""

    @abstractmethod
    def grad_inputs(self, variant: str) -> tuple[str, ...]:
        """Names of tensor arguments whose gradients the unit gate compares."""

    @abstractmethod
    def flops(self, case: Case) -> int:
        """Floating-point operations of one forward call on `case` (each term commented in the kind)."""

    @abstractmethod
    def bytes_moved(self, case: Case, dtype: torch.dtype) -> int:
        """Minimum bytes one forward call reads and writes on `case` (each term commented in the kind)."""

    def tolerance_for(self, case: Case, dtype: torch.dtype) -> TolerancePolicy:
        """The policy for one (case, dtype); a kind widens it only where it documents a measured reason."""
        return self.tolerance

    def floor_scales(
        self, case: Case, dtype: torch.dtype, inputs: CallArgs, grad_out: torch.Tensor
    ) -> dict[str, float]:
        """Per judged tensor ("output", "grad[x]"), the magnitude its rounding error scales with.

        The tolerance floor is `floor_eps` eps of this scale. By default (an empty dict) it is max|oracle|;
        a kind overrides it where cancellation makes the value understate the sum of |terms| behind it.
        """
        return {}

    # --- performance gate -------------------------------------------------------------------------------

    @abstractmethod
    def perf_cases(self, variant: str) -> list[Case]:
        """Shapes the performance gate times: a small case (tens of microseconds a call) and a large one."""

    perf_method: ClassVar[str] = "forward"  # the method the performance gate times

    def salted_arg(self, variant: str) -> str:
        """The floating tensor argument whose elements the timing pools salt before each call."""
        return "x"

    def timed_args(self, module: Any, args: CallArgs) -> CallArgs:
        """The timed method's arguments from `make_inputs`' (work such as packing weights is done here, untimed)."""
        return args

    def reference_module(self, variant: str) -> Any:
        """The kind's reference as an object with the module methods: the baseline a new module is timed against."""
        return ReferenceForward(self, variant)


class ReferenceForward:
    """A kind's reference behind a module's `forward` signature."""

    def __init__(self, kind: Kind, variant: str) -> None:
        self.kind, self.variant = kind, variant

    def forward(self, **args: Any) -> torch.Tensor:
        return self.kind.reference(self.variant, args)


@functools.cache
def float16_supported() -> bool:
    """Whether this build's CPU kernels cover the float16 ops the references use (matmul, softmax, erf)."""
    try:
        x = torch.ones(4, 4, dtype=torch.float16)
        (torch.softmax(x @ x, dim=-1) + torch.erf(x) + torch.rsqrt(x)).sum().item()
    except (RuntimeError, NotImplementedError):
        return False
    return True
