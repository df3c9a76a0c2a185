"""An RMSNorm committed with the markers of an unresolved merge conflict still in it."""

import torch

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class MergeConflict:
    def forward(self, x, weight, bias, eps):
<<<<<<< HEAD
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
=======
        xf = x.float()
        return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps) * weight).to(x.dtype)
>>>>>>> fused-rms-norm
