"""Exact (erf) GELU through torch.nn.functional.gelu."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import register


@register(kind="activation", variant="gelu", exact=True)
class GeluExact:
    """PyTorch's GELU kernel with approximate="none"."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, up: torch.Tensor | None) -> torch.Tensor:
        return F.gelu(x, approximate="none")
