"""Scaled dot-product attention, layout (B, H, S, D): causal, non-causal, key padding, GQA, sliding window."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from harness.core.contract import ErrorBound
from harness.core.seeding import randn
from harness.core.tolerance import TolerancePolicy
from harness.kinds.base import CallArgs, Case, Kind

# Raw scaled scores q.k/sqrt(D) of unit-normal q, k are ~N(0, 1); scaling q and k by 10 makes them
# ~N(0, 100), so the largest reach several hundred and exp() of an unshifted score overflows even fp32
# (exp(x) = inf for x > 88.7). Only a softmax that subtracts the row maximum survives.
LARGE_LOGIT_SCALE = 10.0
# ~1e-4: products q.k ~1e-8 sit below fp16's smallest subnormal (6e-8), so scores underflow to zero in
# half precision and gradients become subnormal; a module must still not produce NaN or garbage.
TINY_SCALE = 1e-4
# Outputs and dO.V^T products of ~1e3 (|v| up to ~4e3) stay well inside fp16's range (65504) but expose
# modules that accumulate P@V in a narrow dtype with poor ordering.
LARGE_VALUE_SCALE = 1e3
# "structured": concentrated attention, as in trained models (`structured_qk`): a local part and long-range
# retrieval keys, so a block-sparse or top-k module must find the few distant keys that matter.
REGIMES = {"normal", "tiny", "large_logits", "large_values", "structured"}
# structured: per head type (cycled over query heads) the logit gap of (copy target, first key, keys at lags 0,
# 1, ...) over the background. A retrieval head mostly reads one distant key it copies from; a local head mostly
# the last few keys. The background score spread grows with these (std ~ gap * sqrt(terms / D)), so gaps of 6-12
# at D ~ 64 leave most but not all of the mass on these keys (cf. benchmarks/showcase_attention.py).
STRUCTURED_HEADS = ((12.0, 6.0, (8.0, 6.0, 4.0)), (7.0, 6.0, (10.0, 8.0, 6.0, 4.0)))
STRUCTURED_NOISE = 0.3  # std of the unit-normal noise added to every query element
STRUCTURED_SPAN = (16, 256)  # queries in a run copying one contiguous earlier span (uniform): a few runs per block
# Flops per unmasked score in the softmax: scale multiply, running max, subtract max, exp, sum, normalize.
SOFTMAX_FLOPS_PER_SCORE = 6


def allowed_pairs(sq: int, sk: int, causal: bool, window: int | None) -> torch.Tensor | None:
    """Boolean (SQ, SK) mask of (query, key) pairs that may attend; None when every pair may.

    Causal is aligned top-left (key j visible to query i when j <= i), as in sdpa's is_causal. A window w
    implies causality and keeps only the last w keys: i - w < j <= i.
    """
    if not causal and window is None:
        return None
    i = torch.arange(sq).unsqueeze(1)
    j = torch.arange(sk).unsqueeze(0)
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)
    return allowed


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    window: int | None,
    key_padding_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Textbook attention in the inputs' dtype: materialized scores, -inf masking, torch.softmax, P@V."""
    heads, kv_heads = q.shape[1], k.shape[1]
    if kv_heads != heads:  # GQA: query head h reads kv head h // (heads // kv_heads)
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))
    allowed = allowed_pairs(q.shape[-2], k.shape[-2], causal, window)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    if key_padding_mask is not None:  # (B, SK), True = attend
        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    # torch.softmax subtracts the row maximum, so large logits do not overflow; computed in the input
    # dtype, which makes the bf16/fp16 reference the honest low-precision baseline of the tolerance policy.
    return torch.softmax(scores, dim=-1) @ v


def _visible(q: torch.Tensor, k: torch.Tensor, args: CallArgs) -> torch.Tensor:
    """(B, 1, SQ, SK) bool: pairs that take part in attention under causal, window and key padding."""
    visible = torch.ones(q.shape[0], 1, q.shape[-2], k.shape[-2], dtype=torch.bool)
    allowed = allowed_pairs(q.shape[-2], k.shape[-2], args["causal"], args["window"])
    if allowed is not None:
        visible = visible & allowed
    if args["key_padding_mask"] is not None:
        visible = visible & args["key_padding_mask"][:, None, None, :]
    return visible


def condition_scales(args: CallArgs, grad_out: torch.Tensor, accumulated: float = 1.0) -> dict[str, float]:
    """Per tensor, the largest sum of |terms| behind one element (float64), and the largest visible |score|.

    Rounding error of a sum scales with the sum of its terms' magnitudes, not with its value. Where terms
    cancel, the value understates it: a query with one visible key has P one-hot and dS = P (dP - rowsum(P dP))
    exactly zero, so dq (and dk of the other keys) is zero in the oracle and the reference, while a kernel that
    forms the rowsum as dO.O (FlashAttention's backward) leaves rounding noise of size eps * |dO||v||k|, with
    |dO||v| the sum of |dO_d v_d|, not |dO.v| (which can itself cancel: seen on sdpa's kernel, fp32, one key).
    """
    q, k, v = (args[name].detach().double() for name in ("q", "k", "v"))
    d_out = grad_out.double()
    b, heads, _, d = q.shape
    groups = heads // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scale = 1.0 / math.sqrt(d)
    scores = q @ k.transpose(-2, -1) * scale
    visible = _visible(q, k, args)
    p = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    # dP = dO V^T is itself a sum that can cancel (dO nearly orthogonal to v): kernels accumulate it in float32,
    # with rounding of float32 eps times |dO| |V|^T, then round the result to the dtype. In units of the dtype's eps
    # (`accumulated` = float32 eps / dtype eps) that is |dP| + accumulated |dO| |V|^T per pair.
    dp = d_out @ v.transpose(-2, -1)
    dp_sum = d_out.abs() @ v.abs().transpose(-2, -1)  # sum of |terms| of each dP_ij
    dp_scale = dp.abs() + accumulated * dp_sum
    d_scale = (p * dp).sum(-1, keepdim=True).abs() + accumulated * (p * dp_sum).sum(-1, keepdim=True)  # D_i
    terms = p * (dp_scale + d_scale)  # |P_ij| (|dP_ij| + |D_i|) before cancelling, with their rounding

    def per_kv_head(t: torch.Tensor) -> torch.Tensor:  # gradients of shared kv heads sum over their group
        return t.reshape(b, -1, groups, *t.shape[2:]).sum(2)

    return {
        "output": float((p @ v.abs()).max()),
        "grad[q]": float((scale * terms @ k.abs()).max()),
        "grad[k]": float(per_kv_head(scale * terms.transpose(-2, -1) @ q.abs()).max()),
        "grad[v]": float(per_kv_head(p.transpose(-2, -1) @ d_out.abs()).max()),
        "logits": float(scores.masked_fill(~visible, 0.0).abs().max()),
    }


def _case(
    variant: str,
    regime: str,
    b: int,
    h: int,
    sq: int,
    d: int,
    *,
    sk: int | None = None,
    kvh: int | None = None,
    w: int | None = None,
) -> Case:
    """One battery entry; the label names only the sizes that differ from the plain b-h-s-d shape."""
    sk = sq if sk is None else sk
    kvh = h if kvh is None else kvh
    label = f"b{b}-h{h}-s{sq}-d{d}"
    label += f"-kv{kvh}" if kvh != h else ""
    label += f"-sk{sk}" if sk != sq else ""
    label += f"-w{w}" if w is not None else ""
    sizes = {"B": b, "H": h, "KVH": kvh, "SQ": sq, "SK": sk, "D": d}
    if w is not None:
        sizes["W"] = w
    return Case(variant, label, regime, sizes, {"window": w} if w is not None else {})


def _battery(variant: str) -> list[Case]:
    """Odd and edge sizes, every value regime, and one long sequence per variant."""
    if variant == "causal":
        return [
            _case(variant, "normal", 1, 1, 1, 8),  # a single query sees a single key
            _case(variant, "normal", 2, 3, 37, 24),
            _case(variant, "tiny", 1, 2, 127, 64),
            _case(variant, "large_logits", 3, 1, 64, 80),
            _case(variant, "large_values", 2, 2, 50, 96),
            _case(variant, "large_logits", 1, 1, 2, 16),  # S=2, saturated: both rows ~one-hot, grads underflow
            _case(variant, "normal", 1, 2, 1024, 32),  # long sequence
            _case(variant, "structured", 1, 2, 768, 64),  # 12 blocks of 64, a few far keys carry the mass
        ]
    if variant == "non_causal":
        return [
            _case(variant, "normal", 1, 1, 1, 8),
            _case(variant, "normal", 2, 3, 1, 24, sk=37),  # decode: one query over a cache
            _case(variant, "large_logits", 2, 2, 37, 64, sk=53),  # cross-attention, SQ < SK
            _case(variant, "tiny", 1, 3, 127, 24),
            _case(variant, "large_values", 3, 1, 53, 80, sk=17),  # SQ > SK
            _case(variant, "normal", 1, 2, 45, 96),
            _case(variant, "normal", 1, 2, 1024, 32),
            _case(variant, "structured", 1, 2, 576, 40),  # targets before and after the query
        ]
    if variant == "key_padding":
        return [
            _case(variant, "normal", 1, 1, 1, 8),
            _case(variant, "normal", 2, 3, 37, 24),  # batch row 0 keeps exactly one key
            _case(variant, "large_logits", 3, 2, 17, 64, sk=53),
            _case(variant, "tiny", 2, 1, 127, 80),
            _case(variant, "large_values", 2, 2, 50, 96),
            _case(variant, "normal", 3, 1, 1, 16, sk=29),  # decode over a padded cache
            _case(variant, "normal", 1, 2, 1024, 32),
        ]
    if variant == "gqa":
        return [
            _case(variant, "normal", 1, 2, 1, 8, kvh=1),
            _case(variant, "normal", 2, 4, 37, 24, kvh=1),  # one kv head shared by all query heads
            _case(variant, "tiny", 1, 6, 127, 64, kvh=2),
            _case(variant, "large_logits", 2, 6, 53, 80, kvh=3),
            _case(variant, "large_values", 1, 4, 50, 96, kvh=2),
            _case(variant, "normal", 1, 2, 1024, 32, kvh=1),
        ]
    if variant == "sliding_window":
        return [
            _case(variant, "normal", 1, 1, 1, 8, w=1),
            _case(variant, "normal", 2, 3, 37, 24, w=1),  # each query sees only itself
            _case(variant, "tiny", 2, 2, 127, 64, w=16),
            _case(variant, "large_logits", 1, 3, 53, 80, w=200),  # window longer than the sequence
            _case(variant, "large_values", 3, 1, 50, 96, w=7),
            _case(variant, "normal", 1, 2, 37, 24, w=36),  # window one short of the sequence
            _case(variant, "normal", 1, 2, 1024, 32, w=128),
        ]
    raise KeyError(f"attention has no variant {variant!r}; expected one of {sorted(AttentionKind.variants)}")


def structured_qk(
    b: int, h: int, kvh: int, s: int, d: int, causal: bool, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """float64 q (B, H, S, D) and k (B, KVH, S, D) whose attention is concentrated: local keys, a sink, copy targets.

    k is unit normal. The queries are cut into runs (STRUCTURED_SPAN long, at random); the queries of a run copy a
    span of the same length at a random place (earlier when causal: an induction/retrieval pattern), so query i's
    target is key src + (i - start). Query i of head h = its head type's gaps / sqrt(D) times k[i - lag] (local),
    k[0] (sink) and k[target] (copy), of kv head h // (H / KVH), plus noise. Every draw comes from `gen`.
    """
    k = torch.randn((b, kvh, s, d), generator=gen, dtype=torch.float64)
    q = STRUCTURED_NOISE * torch.randn((b, h, s, d), generator=gen, dtype=torch.float64)
    unit = 1.0 / math.sqrt(d)  # a key scaled by g / sqrt(D) in q scores ~g against itself
    for head in range(h):
        copy, sink, local = STRUCTURED_HEADS[head % len(STRUCTURED_HEADS)]
        kh = k[:, head // (h // kvh)]
        for lag, gap in enumerate(local):
            q[:, head, lag:] += gap * unit * kh[:, : s - lag]
        q[:, head] += sink * unit * kh[:, :1]
        start = 0
        while start < s:
            stop = min(start + int(torch.randint(*STRUCTURED_SPAN, (1,), generator=gen)), s)
            room = start - (stop - start) if causal else s - (stop - start)  # last allowed source start
            if room >= 0:
                src = int(torch.randint(0, room + 1, (1,), generator=gen))
                q[:, head, start:stop] += copy * unit * kh[:, src : src + stop - start]
            start = stop
    return q, k


def _padding_mask(b: int, sk: int, gen: torch.Generator) -> torch.Tensor:
    """(B, SK) bool, True = attend: ~70% of keys at random, at least one per row; with B > 1, row 0 keeps one."""
    mask = torch.rand((b, sk), generator=gen, dtype=torch.float64) < 0.7
    forced = torch.randint(0, sk, (b,), generator=gen)
    mask[torch.arange(b), forced] = True  # every row keeps at least one key, so no row is all -inf
    if b > 1:  # a row with a single visible key: softmax is exactly one-hot, dq = 0 for that row
        mask[0] = False
        mask[0, forced[0]] = True
    return mask


def unmasked_pairs(case: Case) -> int:
    """(query, key) pairs per (batch, head) that take part in attention, counted exactly."""
    sq, sk = case.sizes["SQ"], case.sizes["SK"]
    if case.variant in ("causal", "gqa"):
        # query i sees keys 0..min(i, SK-1): sum_{i<SQ} min(i+1, SK)
        n = min(sq, sk)
        return n * (n + 1) // 2 + (sq - n) * sk
    if case.variant == "sliding_window":
        # query i sees min(i+1, W) keys (SQ == SK): a triangle up to W, then W per query
        w, n = case.sizes["W"], sq
        m = min(w, n)
        return m * (m + 1) // 2 + (n - m) * w
    # non_causal: every pair; key_padding: the mask is drawn per run, so count the dense upper bound
    # (a dense kernel computes every score before masking).
    return sq * sk


class AttentionKind(Kind):
    """Softmax attention softmax(q k^T / sqrt(D)) v with masks and grouped kv heads."""

    name: ClassVar[str] = "attention"
    variants: ClassVar[dict[str, str]] = {
        "causal": "causal self-attention, SQ == SK, no window or padding mask",
        "non_causal": "full attention, including decode (SQ=1) and cross-length SQ != SK",
        "key_padding": "full attention with a (B, SK) bool key mask, True = attend, >= 1 key per row",
        "gqa": "causal attention where k, v have KVH heads dividing H (query head h uses kv head h // (H/KVH))",
        "sliding_window": "causal attention over the last `window` keys: query i sees keys i-window < j <= i",
    }
    methods: ClassVar[dict[str, tuple[str, ...]]] = {
        "forward": ("q", "k", "v", "causal", "window", "key_padding_mask"),
    }
    # The loosest an approximate attention may be: still pointing the same way (cosine 0.95) with the
    # error at most a tenth of the signal power (10 dB).
    error_floor: ClassVar[ErrorBound] = ErrorBound(min_cosine=0.95, min_sqnr_db=10.0)
    # Default multiplier and floor_eps (3x the same-dtype reference error + 4 eps); the eps floor is measured
    # against each tensor's condition scale instead of max|oracle| (see `floor_scales`).
    tolerance: ClassVar[TolerancePolicy] = TolerancePolicy()

    def battery(self, variant: str) -> list[Case]:
        return _battery(variant)

    def perf_cases(self, variant: str) -> list[Case]:
        # Small: 4 heads x 128 tokens (~0.1 ms a call); large: 8 heads x 512 tokens, 8 MB of fp32 scores
        # materialized by an eager kernel (~10 ms). Longer sequences would take most of the time budget.
        kv = {"kvh": 2} if variant == "gqa" else {}
        window = {"w": 64} if variant == "sliding_window" else {}
        return [
            _case(variant, "normal", 1, 4, 128, 64, **kv, **window),
            _case(variant, "normal", 1, 8, 512, 64, **kv, **window),
        ]

    def salted_arg(self, variant: str) -> str:
        return "q"

    def make_inputs(self, case: Case, dtype: torch.dtype, gen: torch.Generator) -> CallArgs:
        s = case.sizes
        b, h, kvh, sq, sk, d = s["B"], s["H"], s["KVH"], s["SQ"], s["SK"], s["D"]
        if case.regime not in REGIMES:
            raise ValueError(f"attention case {case.id}: unknown regime {case.regime!r}, expected {REGIMES}")
        if case.regime == "structured":
            if sq != sk:
                raise ValueError(f"attention case {case.id}: the structured regime needs SQ == SK, got {sq} != {sk}")
            causal = case.variant in ("causal", "gqa", "sliding_window")
            q64, k64 = structured_qk(b, h, kvh, sq, d, causal, gen)
            q, k = q64.to(dtype), k64.to(dtype)
            v = randn((b, kvh, sk, d), dtype, gen)
            return self._call_args(case, q, k, v, gen)
        qk_scale = {"tiny": TINY_SCALE, "large_logits": LARGE_LOGIT_SCALE}.get(case.regime, 1.0)
        v_scale = {"tiny": TINY_SCALE, "large_values": LARGE_VALUE_SCALE}.get(case.regime, 1.0)
        q = randn((b, h, sq, d), dtype, gen, qk_scale)
        k = randn((b, kvh, sk, d), dtype, gen, qk_scale)
        v = randn((b, kvh, sk, d), dtype, gen, v_scale)
        return self._call_args(case, q, k, v, gen)

    def _call_args(
        self, case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gen: torch.Generator
    ) -> CallArgs:
        b, sk = case.sizes["B"], case.sizes["SK"]
        mask = _padding_mask(b, sk, gen) if case.variant == "key_padding" else None
        window = case.params.get("window")
        return {
            "q": q,
            "k": k,
            "v": v,
            "causal": case.variant in ("causal", "gqa", "sliding_window"),
            "window": None if window is None else int(window),
            "key_padding_mask": mask,
        }

    def reference(self, variant: str, args: CallArgs) -> torch.Tensor:
        return reference_attention(
            args["q"], args["k"], args["v"], args["causal"], args["window"], args["key_padding_mask"]
        )

    def floor_scales(
        self, case: Case, dtype: torch.dtype, inputs: CallArgs, grad_out: torch.Tensor
    ) -> dict[str, float]:
        """Sum-of-|terms| scales (`condition_scales`), widened for softmax statistics kept in float32.

        Measured on sdpa's fused CPU kernel (fp32): cancellation costs up to 33x the reference error on dq/dk of
        single-key rows, and rebuilding P = exp(s - lse) from an fp32 logsumexp, whose rounding eps32 * |lse| is
        a relative error of every probability, up to 36x on dv with logits near 400. Both stay below 2 eps of
        these scales, so the default floor_eps (4) holds with a 2x margin, while a module computing an fp32
        request in bf16 (~65000 fp32 eps) still fails, as do wrong scales and masks.
        """
        accumulated = min(1.0, torch.finfo(torch.float32).eps / torch.finfo(dtype).eps)
        scales = condition_scales(inputs, grad_out, accumulated)
        widen = 1.0 + scales.pop("logits") * accumulated
        return {name: value * widen for name, value in scales.items()}

    def grad_inputs(self, variant: str) -> tuple[str, ...]:
        return ("q", "k", "v")

    def flops(self, case: Case) -> int:
        s = case.sizes
        pairs = s["B"] * s["H"] * unmasked_pairs(case)  # scores actually needed, over all batch rows and heads
        qk = 2 * s["D"] * pairs  # QK^T: one multiply-add per element of D for each score
        softmax = SOFTMAX_FLOPS_PER_SCORE * pairs  # scale, max, subtract, exp, sum, normalize per score
        pv = 2 * s["D"] * pairs  # P@V: one multiply-add per element of D for each kept probability
        return qk + softmax + pv

    def bytes_moved(self, case: Case, dtype: torch.dtype) -> int:
        s = case.sizes
        e = torch.empty((), dtype=dtype).element_size()
        q = s["B"] * s["H"] * s["SQ"] * s["D"] * e  # read q once
        kv = 2 * s["B"] * s["KVH"] * s["SK"] * s["D"] * e  # read k and v once, at their own KVH heads
        mask = s["B"] * s["SK"] if case.variant == "key_padding" else 0  # bool key mask, one byte per key
        out = s["B"] * s["H"] * s["SQ"] * s["D"] * e  # write the output once
        return q + kv + mask + out
