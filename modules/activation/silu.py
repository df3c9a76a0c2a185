"""SiLU (swish) through torch.nn.functional.silu."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import register


@register(kind="activation", variant="silu", exact=True)
class Silu:
    """PyTorch's SiLU kernel: x * sigmoid(x), overflow-safe for large |x|."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, up: torch.Tensor | None) -> torch.Tensor:
        return F.silu(x)
