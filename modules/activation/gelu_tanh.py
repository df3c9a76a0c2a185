"""Tanh-approximated GELU through torch.nn.functional.gelu(approximate="tanh")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import register


@register(kind="activation", variant="gelu_tanh", exact=True)
class GeluTanh:
    """PyTorch's GELU kernel with the tanh approximation (as in GPT-2)."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, up: torch.Tensor | None) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")
