"""SwiGLU, silu(gate) * up, as one autograd.Function whose backward saves only gate and up."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from harness import register

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class _SwiGLU(torch.autograd.Function):
    """Forward keeps no intermediate; backward recomputes sigmoid(gate) from the saved inputs."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        # F.silu is overflow-safe for very negative gates; the in-place product avoids a second buffer.
        return F.silu(gate).mul_(up)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        gate, up = ctx.saved_tensors
        # Half-precision gradients are computed in float32 and rounded once, so they are never less accurate
        # than the same formula evaluated step by step in the input dtype.
        wide = torch.float32 if gate.dtype in _LOW_PRECISION else gate.dtype
        g, a = grad.to(wide), gate.to(wide)
        sig = torch.sigmoid(a)
        silu = a * sig
        grad_up = (g * silu).to(up.dtype) if ctx.needs_input_grad[1] else None
        grad_gate = None
        if ctx.needs_input_grad[0]:
            # d silu(a)/da = sig * (1 + a * (1 - sig)) = sig + silu * (1 - sig): no overflow at either end
            dsilu = torch.addcmul(sig, silu, 1.0 - sig)
            grad_gate = dsilu.mul_(g).mul_(up.to(wide)).to(gate.dtype)
        return grad_gate, grad_up


@register(kind="activation", variant="swiglu", exact=True)
class SwigluFused:
    """silu(gate) * up with a hand-written backward; `x` is unused (None) for this variant."""

    def forward(self, x: torch.Tensor | None, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _SwiGLU.apply(gate, up)
        return out
