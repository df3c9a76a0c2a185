"""LayerNorm through torch.nn.functional.layer_norm: the PyTorch baseline for the layer_norm variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import register

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@register(kind="norm", variant="layer_norm", exact=True)
class LayerNormTorch:
    """PyTorch's own LayerNorm kernel over the last dimension, run in float32 for half-precision inputs."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
        if x.dtype not in _LOW_PRECISION:
            return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
        # The CPU kernel keeps mean and rstd in the input dtype when everything is bf16/fp16, and its backward
        # reuses them: a bf16 mean is off by up to 16 at |mean| ~ 5e3, which skews grad[x] and grad[weight] by
        # 10-20% on offset rows (and on tiny rows such as hidden=3). Upcasting keeps both in float32.
        wide = None if bias is None else bias.float()
        return F.layer_norm(x.float(), (x.shape[-1],), weight.float(), wide, eps).to(x.dtype)
