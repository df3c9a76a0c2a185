"""RMSNorm through torch.nn.functional.rms_norm: the PyTorch baseline for the rms_norm variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class RmsNormTorch:
    """PyTorch's own RMSNorm over the last dimension."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
