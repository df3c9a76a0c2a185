"""Dynamic-window causal attention: per block of queries, the window grows until it covers the probed attention mass.

Queries and keys are cut into blocks of 64. Every query block attends to its own block and the one before it (the
local window). Beyond that, a few probe queries of the block (its first, last and evenly spaced ones) are scored
against every key they may see; each probe needs the key blocks that, taken largest first, cover `mass` of its
softmax, and the block attends to the union of those blocks, plus the neighbours of any block holding `spread` of a
probe's mass (a retrieval target: the queries between probes read the span next to it). Within the chosen blocks the
softmax is exact, so the result is attention renormalized over the chosen keys. Where attention is concentrated (a
local window, a few long-range keys) few blocks are computed; where it is spread out (random q and k) the window grows
to every block and the result is dense attention. Choosing blocks from a cheap estimate of the attention pattern
follows MInference (https://arxiv.org/abs/2407.02490) and Quest (https://arxiv.org/abs/2406.10774); the mass target
picks as many blocks as the probes need instead of a fixed number.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from harness import ErrorBound, register


# Bound measured over the causal battery, 77 run seeds x float32/bfloat16/float16. Cases up to 128 tokens lie in the
# local window (dense attention); on the 1024-token random case (nearly uniform attention) the probes ask for every
# block (SQNR >= 47 dB). The structured case (768 tokens, local and retrieval heads: concentrated attention) runs the
# sparse path: worst cosine 0.9946 and SQNR 19.7 dB (grad[q], bfloat16, one draw in 231; the next worst 20.4 dB;
# output >= 26.3 dB), so the bound keeps ~4.7 dB for rarer draws where probes miss more. With 4 probes, a 0.9 mass
# target and no neighbours the same case fell to 11.5 dB (cosine 0.965): probes 21 queries apart missed retrieval
# runs that start between them. Longer structured inputs drop more background mass (README showcase: dq, dk ~17 dB
# at 2048 tokens).
@register(kind="attention", variant="causal", exact=False, bound=ErrorBound(min_cosine=0.98, min_sqnr_db=15.0))
class DynamicWindowAttention:
    """Block-sparse causal attention whose key blocks are chosen per query block by probed attention mass."""

    def __init__(
        self,
        block: int = 64,
        local_blocks: int = 1,
        probes: int = 8,
        mass: float = 0.8,
        probe_group: int = 16,
        spread: float = 0.02,
    ) -> None:
        self.block = block  # queries per query block and keys per key block
        self.local_blocks = local_blocks  # key blocks before the diagonal one always attended (the fixed window)
        self.probes = probes  # queries per block whose exact attention estimates where the block's mass lies
        self.mass = mass  # share of each probe's softmax mass the chosen blocks must cover
        self.spread = spread  # share of a probe's mass on one block that also brings the blocks beside it
        self.probe_group = probe_group  # query blocks probed in one matmul (probes x keys scores held at once)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        window: int | None,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if not causal or window is not None or key_padding_mask is not None or k.shape[1] != q.shape[1]:
            raise ValueError("dynamic_window_attention implements causal self-attention only (no window, mask or gqa)")
        chosen = self.selected_blocks(q, k)  # chosen from the values alone: the same with or without autograd
        kp, vp = self._padded(k), self._padded(v)
        outs = []
        for qb in range(self._blocks(q.shape[2])):
            picked = None
            if not bool(chosen[:, :, qb, : qb + 1].all()):
                picked = [row.nonzero().flatten() for row in chosen[:, :, qb, : qb + 1].flatten(0, 1)]
            args = (q[:, :, qb * self.block : (qb + 1) * self.block], kp, vp, picked, qb)
            if torch.is_grad_enabled():
                # Recomputing a block in backward keeps memory at one block's scores instead of every chosen score.
                outs.append(checkpoint(self._attend, *args, use_reentrant=False))
            else:
                outs.append(self._attend(*args))
        return torch.cat(outs, dim=2)

    @torch.no_grad()
    def selected_blocks(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, H, query blocks, key blocks) bool: the key blocks each query block attends to."""
        n = self._blocks(q.shape[2])
        chosen = torch.zeros(q.shape[0], q.shape[1], n, n, dtype=torch.bool, device=q.device)
        for first in range(0, n, self.probe_group):
            last = min(first + self.probe_group, n) - 1
            chosen[:, :, first : last + 1, : last + 1] = self._probe(q, k, first, last)
        return chosen

    def _blocks(self, length: int) -> int:
        return -(-length // self.block)

    def _padded(self, t: torch.Tensor) -> torch.Tensor:
        """(B, H, S, D) zero-padded to whole blocks; padded keys follow every query, so the causal mask hides them."""
        extra = self._blocks(t.shape[2]) * self.block - t.shape[2]
        return F.pad(t, (0, 0, 0, extra)) if extra else t

    def _probe(self, q: torch.Tensor, k: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """(B, H, G, V) bool for query blocks first..last (G of them) over key blocks 0..last (V = last + 1)."""
        s, dev = q.shape[2], q.device
        qbs = torch.arange(first, last + 1, device=dev)
        starts, stops = qbs * self.block, (qbs * self.block + self.block).clamp(max=s)
        steps = torch.linspace(0.0, 1.0, self.probes, device=dev)
        pos = (starts[:, None] + steps * (stops - 1 - starts)[:, None]).round().long()  # (G, P), first and last
        keys = min((last + 1) * self.block, s)
        scores = (q[:, :, pos.flatten()].float() @ k[:, :, :keys].float().transpose(-2, -1)) / math.sqrt(q.shape[-1])
        future = torch.arange(keys, device=dev) > pos.flatten()[:, None]
        probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        width = last + 1
        padded = F.pad(probs, (0, width * self.block - keys))
        b, h = q.shape[0], q.shape[1]
        mass = padded.reshape(b, h, *pos.shape, width, self.block).sum(-1)  # (B, H, G, P, V)
        blocks = torch.arange(width, device=dev)
        hidden = blocks > qbs[:, None]  # (G, V): key blocks after the query block
        forced = (blocks >= qbs[:, None] - self.local_blocks) & ~hidden
        # Forced blocks first, then the rest by mass, hidden ones last; a block is needed while the mass of the
        # blocks ranked before it is short of the target.
        rank_key = mass + (2.0 * forced - 4.0 * hidden)[:, None, :]
        order = torch.argsort(rank_key, dim=-1, descending=True)
        ranked = mass.gather(-1, order)
        needed = torch.zeros(mass.shape, dtype=torch.bool, device=dev).scatter(
            -1, order, (ranked.cumsum(-1) - ranked) < self.mass
        )
        # A block holding `spread` of a probe's mass is a retrieval target; the queries between two probes read the
        # span next to it, so its neighbours come too (cheap: few blocks are that heavy).
        heavy = (mass >= self.spread).any(dim=3)
        near = heavy.clone()
        near[..., :-1] |= heavy[..., 1:]
        near[..., 1:] |= heavy[..., :-1]
        return (needed.any(dim=3) | forced | near) & ~hidden  # the union over each block's probes

    def _attend(
        self, qc: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor, picked: list[torch.Tensor] | None, qb: int
    ) -> torch.Tensor:
        """Exact softmax attention of one query block over its chosen key blocks (every visible one when None)."""
        b, h, rows, d = qc.shape
        if picked is None:
            stop = (qb + 1) * self.block
            bias = self._bias(rows, stop, qc)
            return F.scaled_dot_product_attention(qc, kp[:, :, :stop], vp[:, :, :stop], attn_mask=bias)
        out = []
        for i, blocks in enumerate(picked):  # each (batch row, head) reads only its own chosen blocks
            row, head = divmod(i, h)
            kc = kp[row, head].reshape(-1, self.block, d).index_select(0, blocks).flatten(0, 1)
            vc = vp[row, head].reshape(-1, self.block, d).index_select(0, blocks).flatten(0, 1)
            # 4-D operands: sdpa's fused CPU kernel takes only batched inputs (2-D ones fall back to the math path).
            qi = qc[row : row + 1, head : head + 1]
            out.append(
                F.scaled_dot_product_attention(qi, kc[None, None], vc[None, None], self._bias(rows, len(kc), qc))
            )
        return torch.cat(out, dim=1).view(b, h, rows, -1)  # (1, B*H, rows, D) in (batch row, head) order

    def _bias(self, rows: int, keys: int, like: torch.Tensor) -> torch.Tensor:
        """(rows, keys) additive mask: 0, and -inf above the diagonal of the last key block (the query block's own).

        Chosen blocks are in ascending order, so the diagonal block is last; its padded keys (past the sequence end)
        lie after every query and are hidden by the same triangle. A float mask spares sdpa a bool conversion.
        """
        bias = torch.zeros(rows, keys, dtype=like.dtype, device=like.device)
        future = torch.ones(rows, self.block, dtype=torch.bool, device=like.device).triu(1)
        bias[:, keys - self.block :].masked_fill_(future, float("-inf"))
        return bias
