"""Top-k sparse attention: each query keeps only its k highest-scoring keys (exact when SK <= k)."""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from harness import ErrorBound, register


# Bound measured over the causal battery, 8 seeds x fp32/bf16/fp16: worst cosine 0.984 and SQNR 14.1 dB, both
# on grad[q] of the S=1024 case (the only one with more than k visible keys). non_causal is not declared: there
# every query of S=1024 drops 768 keys of near-uniform random attention, cosine 0.95 and SQNR ~4 dB.
@register(kind="attention", variant="causal", exact=False, bound=ErrorBound(min_cosine=0.975, min_sqnr_db=13.0))
class TopkSparseAttention:
    """Query chunks score all keys, keep the top k per row, and renormalize; chunks recompute in backward."""

    def __init__(self, top_k: int = 256, chunk: int = 64) -> None:
        self.top_k = top_k  # keys kept per query
        self.chunk = chunk  # queries scored at once: peak memory ~ chunk * SK scores, not SQ * SK

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
        kvh = k.shape[1]
        qg = q.reshape(b, kvh, h // kvh, sq, d)  # query head h = kv head * G + g
        outs = []
        for start in range(0, sq, self.chunk):
            stop = min(start + self.chunk, sq)
            args = (qg[:, :, :, start:stop], k, v, start, causal, window, key_padding_mask)
            if torch.is_grad_enabled():
                # Without checkpointing autograd would keep every chunk's scores, i.e. the dense SQ x SK
                # matrix; recomputing a chunk in backward keeps memory at one chunk (top-k is deterministic).
                outs.append(checkpoint(self._chunk, *args, use_reentrant=False))
            else:
                outs.append(self._chunk(*args))
        return torch.cat(outs, dim=3).reshape(b, h, sq, d)

    def _chunk(
        self,
        qc: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        start: int,
        causal: bool,
        window: int | None,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Attention of the queries start.. of one chunk, (B, KVH, G, C, D)."""
        stop, sk = start + qc.shape[-2], k.shape[2]
        banded = causal or window is not None
        hi = min(stop, sk) if banded else sk  # causal chunks never see keys past their last query
        lo = 0 if window is None else max(0, start - window + 1)
        kb, vb = k[:, :, lo:hi].unsqueeze(2), v[:, :, lo:hi].unsqueeze(2)
        scores = (qc @ kb.transpose(-2, -1)) * (1.0 / math.sqrt(qc.shape[-1]))
        i = torch.arange(start, stop, device=qc.device).unsqueeze(1)
        j = torch.arange(lo, hi, device=qc.device).unsqueeze(0)
        blocked = (j > i) if banded else torch.zeros_like(j > i)
        if window is not None:
            blocked = blocked | (j <= i - window)
        scores = scores.masked_fill(blocked, float("-inf"))
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask[:, lo:hi].view(k.shape[0], 1, 1, 1, -1), float("-inf"))
        if scores.shape[-1] > self.top_k:
            # Masked keys score -inf, so they are picked only when a row has fewer than k visible keys,
            # and then softmax still gives them zero weight.
            idx = scores.detach().topk(self.top_k, dim=-1).indices
            keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device).scatter_(-1, idx, True)
            scores = scores.masked_fill(~keep, float("-inf"))
        return torch.softmax(scores, dim=-1) @ vb
