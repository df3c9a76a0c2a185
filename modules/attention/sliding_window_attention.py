"""Sliding-window attention computed block by block over the band, so memory is O(S * window), not O(S^2)."""

from __future__ import annotations

import math

import torch

from harness import register


@register(kind="attention", variant="sliding_window", exact=True)
class SlidingWindowAttention:
    """Each block of queries scores only the keys its window can reach; the softmax per row is still exact."""

    block: int = 64  # queries per block; a block reads block + window - 1 keys

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        window: int | None,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        b, h, sq, d = q.shape
        kvh, sk = k.shape[1], k.shape[2]
        qg = q.reshape(b, kvh, h // kvh, sq, d)  # query head h = kv head * G + g
        banded = causal or window is not None  # a window implies causality: i - window < j <= i
        scale = 1.0 / math.sqrt(d)
        outs = []
        for start in range(0, sq, self.block):
            stop = min(start + self.block, sq)
            # Keys the block can see: from the window start of its first query to its last query.
            lo = 0 if window is None else max(0, start - window + 1)
            hi = min(stop, sk) if banded else sk
            kb, vb = k[:, :, lo:hi].unsqueeze(2), v[:, :, lo:hi].unsqueeze(2)
            scores = (qg[:, :, :, start:stop] @ kb.transpose(-2, -1)) * scale
            i = torch.arange(start, stop, device=q.device).unsqueeze(1)
            j = torch.arange(lo, hi, device=q.device).unsqueeze(0)
            blocked = (j > i) if banded else torch.zeros_like(j > i)
            if window is not None:
                blocked = blocked | (j <= i - window)
            scores = scores.masked_fill(blocked, float("-inf"))
            if key_padding_mask is not None:
                scores = scores.masked_fill(~key_padding_mask[:, lo:hi].view(b, 1, 1, 1, -1), float("-inf"))
            # Every key a query may see lies inside [lo, hi), so this row softmax equals the full one;
            # torch.softmax subtracts the row max, so large logits do not overflow.
            outs.append(torch.softmax(scores, dim=-1) @ vb)
        return torch.cat(outs, dim=3).reshape(b, h, sq, d)
