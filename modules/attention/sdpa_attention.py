"""Attention through torch.nn.functional.scaled_dot_product_attention (fused CPU/GPU kernels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import register


@register(kind="attention", variant=("causal", "non_causal", "key_padding", "gqa", "sliding_window"), exact=True)
class SdpaAttention:
    """sdpa with is_causal for the plain causal case, a boolean attn_mask otherwise, enable_gqa for kv heads."""

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        window: int | None,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        gqa = k.shape[1] != q.shape[1]
        if window is None and key_padding_mask is None:
            # is_causal lets the kernel skip fully masked blocks instead of reading a mask
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
        mask = self._attn_mask(q, k, causal, window, key_padding_mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)

    @staticmethod
    def _attn_mask(
        q: torch.Tensor, k: torch.Tensor, causal: bool, window: int | None, key_padding_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Boolean mask broadcastable to (B, H, SQ, SK), True = attend (sdpa's convention)."""
        sq, sk = q.shape[-2], k.shape[-2]
        i = torch.arange(sq, device=q.device).unsqueeze(1)
        j = torch.arange(sk, device=q.device).unsqueeze(0)
        allowed = torch.ones(sq, sk, dtype=torch.bool, device=q.device)
        if causal or window is not None:
            allowed = allowed & (j <= i)
        if window is not None:
            allowed = allowed & (j > i - window)
        if key_padding_mask is not None:
            return allowed[None, None] & key_padding_mask[:, None, None, :]
        return allowed[None, None]
