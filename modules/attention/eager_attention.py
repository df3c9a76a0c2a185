"""Eager softmax attention: materialized scores, -inf masks, softmax in the input dtype, grouped kv heads."""

from __future__ import annotations

import math

import torch

from harness import register


@register(kind="attention", variant=("causal", "non_causal", "key_padding", "gqa", "sliding_window"), exact=True)
class EagerAttention:
    """Textbook attention; GQA folds query heads into groups so k and v are never copied per head."""

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
        groups = h // kvh
        # (B, KVH, G, SQ, D) against (B, KVH, 1, SK, D): query head h = kv head * G + g, as repeat_interleave
        qg = q.reshape(b, kvh, groups, sq, d)
        scores = (qg @ k.unsqueeze(2).transpose(-2, -1)) * (1.0 / math.sqrt(d))
        blocked = self._blocked(sq, sk, causal, window, q.device)
        if blocked is not None:
            scores = scores.masked_fill(blocked, float("-inf"))
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask.view(b, 1, 1, 1, sk), float("-inf"))
        # torch.softmax subtracts the row max first, so scores in the hundreds do not overflow exp()
        probs = torch.softmax(scores, dim=-1)
        return (probs @ v.unsqueeze(2)).reshape(b, h, sq, d)

    @staticmethod
    def _blocked(sq: int, sk: int, causal: bool, window: int | None, device: torch.device) -> torch.Tensor | None:
        """(SQ, SK) True where query i may not see key j: j > i (causal), or j <= i - window."""
        if not causal and window is None:
            return None
        i = torch.arange(sq, device=device).unsqueeze(1)
        j = torch.arange(sk, device=device).unsqueeze(0)
        blocked = j > i
        if window is not None:
            blocked = blocked | (j <= i - window)
        return blocked
