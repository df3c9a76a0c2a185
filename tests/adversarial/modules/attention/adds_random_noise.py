"""Causal attention that adds torch.randn noise of about half a unit in the last place to its output.

Each call alone is about as accurate as the reference, so no single comparison against the oracle catches it;
two calls with the same inputs give different results.
"""

import math

import torch

from harness import register


@register(kind="attention", variant="causal", exact=True)
class AddsRandomNoise:
    def forward(self, q, k, v, causal, window, key_padding_mask):
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))
        n = q.shape[-2]
        blocked = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        out = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1) @ v
        ulp = out.detach().abs() * torch.finfo(out.dtype).eps
        return out + 0.5 * ulp * torch.randn_like(out)
