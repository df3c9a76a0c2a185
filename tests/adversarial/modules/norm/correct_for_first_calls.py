"""RMSNorm that is right for its first 100 calls, then drops eps and the weight (as if a warm-up path, checked
once, switched to a "fast path" nobody checked). The unit gate makes about 50 calls; timing makes thousands."""

import torch

from harness import register

HONEST_CALLS = 100


@register(kind="norm", variant="rms_norm", exact=True)
class CorrectForFirstCalls:
    def __init__(self):
        self.calls = 0

    def forward(self, x, weight, bias, eps):
        self.calls += 1
        if self.calls <= HONEST_CALLS:
            return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), None, 0.0) * 1.5
