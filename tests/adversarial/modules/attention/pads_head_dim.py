"""Causal attention that pads the head dimension to a power of two for its "vectorized" kernel, then takes the
softmax scale from the padded width: right whenever the head dimension already is a power of two."""

import math

import torch
import torch.nn.functional as F

from harness import register


@register(kind="attention", variant="causal", exact=True)
class PadsHeadDim:
    def forward(self, q, k, v, causal, window, key_padding_mask):
        d = q.shape[-1]
        padded = 1 << (d - 1).bit_length()  # next power of two
        qp, kp = F.pad(q, (0, padded - d)), F.pad(k, (0, padded - d))  # zeros: the dot products are unchanged
        scores = qp @ kp.transpose(-2, -1) * (1.0 / math.sqrt(padded))  # the bug: sqrt of the padded width
        n = q.shape[-2]
        blocked = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        return torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1) @ v
