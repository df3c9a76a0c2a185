"""Showcase, attention: windowed, top-k and dynamic-window attention against dense attention at long sequences.

For each sequence length, on one input with realistic structure (`structured_qkv`), every method is called once under
the harness's memory helper (peak bytes of the call, `harness.perf.memory.peak_bytes`) and then in rounds, each
round calling every method once in a shuffled order and timed by the harness's one timer
(`harness.perf.timer.CpuTimer`); a method's speed is the median over rounds of its time divided by dense sdpa's time
in the same round. Inference only (no autograd), float32, one torch thread (as the performance gate times).

Recall, against dense causal attention (probabilities in float64):
- mass recall: for a query i, the share of its dense attention probability that falls on the keys the method
  attends to (sliding window: the last `window` keys; top-k: the k highest-scoring; dynamic window: the keys of the
  blocks it chose for i's query block), averaged over sampled queries (uniform over positions) and heads;
  the 5th percentile is the worst-served queries;
- output cosine: cosine similarity of the method's output row with dense sdpa's, averaged over every query and
  head; output SQNR: harness.core.numerics.sqnr_db of the whole output against sdpa's.
The same mass recall is also reported on the attention kind's own random inputs (unit-normal q, k: nearly uniform
attention, where nothing can be dropped for free).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from harness.core.contract import ModuleSource
from harness.core.numerics import error_stats, sqnr_db
from harness.kinds import KINDS, Case
from harness.kinds.attention import reference_attention
from harness.perf.memory import peak_bytes
from harness.perf.timer import make_timer, quiet_gc, seconds
from harness.registry.loader import Registry, load

MODULES = Path(__file__).resolve().parents[1] / "modules" / "attention"
DENSE = "sdpa_attention"  # the dense reference every ratio and recall is taken against
METHODS = (
    "eager_attention",
    "sdpa_attention",
    "sliding_window_attention",
    "topk_sparse_attention",
    "dynamic_window_attention",
)
# Per head type (cycled over heads): (copy-target weight, sink weight, weights of the keys at lags 0, 1, ...). A
# "retrieval" head mostly reads one earlier key it copies from; a "local" head mostly reads the last few keys.
HEAD_TYPES = ((2.0, 1.0, (1.2, 0.8, 0.5)), (0.8, 1.0, (1.8, 1.2, 0.8, 0.5)))
QUERY_NOISE = 0.3  # standard deviation of the noise added to every query element
SEGMENT = (64, 512)  # copied segments are this many tokens long (uniform)
MASS_SWEEP = (0.8, 0.9, 0.95, 0.99)  # dynamic window's mass targets for the selection-only sweep


@dataclass(frozen=True)
class AttentionConfig:
    """What the attention part measures."""

    lengths: tuple[int, ...] = (4096, 8192, 16384)  # sequence lengths
    heads: int = 2  # batch 1, this many heads (alternating retrieval and local heads)
    head_dim: int = 64
    window: int = 512  # sliding window's keys per query
    eager_max: int = 8192  # longest sequence eager attention runs at (16k: 3 x 2 GiB of scores, ~30 s a call)
    min_rounds: int = 3  # timed rounds at least ...
    max_rounds: int = 7  # ... and at most,
    budget_s: float = 20.0  # stopping once this many seconds of rounds are spent (after min_rounds)
    samples: int = 512  # queries per head whose mass recall is computed exactly
    grad_length: int = 2048  # length at which the sparse methods' gradients are compared with dense ones (0: skip)
    seed: int = 0


def structured_qkv(b: int, h: int, s: int, d: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """q, k, v (B, H, S, D) whose attention has a local part, a sink and long-range copy targets.

    k and v are unit normal. The sequence is cut into segments (SEGMENT tokens long); the queries of a segment copy an
    earlier span of the same length at a random place (an induction/retrieval pattern), so query i's target is key
    src + (i - start). Query i = sum over lags l of w_l k[i-l] (local) + w_sink k[0] + w_copy k[target] + noise,
    with the weights of its head type (HEAD_TYPES). A weight w gives its key a score of about 8w against a
    background spread of about sqrt(sum w^2) (D = 64), so these keys carry most but not all of the mass; the
    background share grows with the length, as in long-context models.
    """
    k = torch.randn(b, h, s, d, generator=gen)
    v = torch.randn(b, h, s, d, generator=gen)
    q = QUERY_NOISE * torch.randn(b, h, s, d, generator=gen)
    types = [HEAD_TYPES[i % len(HEAD_TYPES)] for i in range(h)]
    for head, (_, sink, local) in enumerate(types):
        for lag, weight in enumerate(local):
            q[:, head, lag:] += weight * k[:, head, : s - lag]
        q[:, head] += sink * k[:, head, :1]
    start = 0
    while start < s:
        stop = min(start + int(torch.randint(SEGMENT[0], SEGMENT[1] + 1, (1,), generator=gen)), s)
        if start >= stop - start:  # room for an earlier span of the same length
            src = int(torch.randint(0, start - (stop - start) + 1, (1,), generator=gen))
            for head, (copy, _, _) in enumerate(types):
                q[:, head, start:stop] += copy * k[:, head, src : src + stop - start]
        start = stop
    return q, k, v


def random_qkv(h: int, s: int, d: int, seed: int) -> tuple[torch.Tensor, ...]:
    """The attention kind's own inputs for a causal case of this size (unit-normal q, k, v)."""
    sizes = {"B": 1, "H": h, "KVH": h, "SQ": s, "SK": s, "D": d}
    args = KINDS["attention"].make_inputs(
        Case("causal", f"b1-h{h}-s{s}-d{d}", "normal", sizes), torch.float32, torch.Generator().manual_seed(seed)
    )
    return args["q"], args["k"], args["v"]


def load_module(name: str, **params: Any) -> Any:
    """A shipped attention module, imported as the contestant imports it, into a registry of its own."""
    _, cls = load(ModuleSource(name=name, kind="attention", path=MODULES / f"{name}.py"), Registry())
    return cls(**params)


def _call(module: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None) -> Callable[[], Any]:
    def run() -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = module.forward(q=q, k=k, v=v, causal=True, window=window, key_padding_mask=None)
        return out

    return run


def _keeping(outputs: dict[str, torch.Tensor], name: str, call: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        outputs[name] = call()

    return run


def _sample_rows(s: int, n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, s, (min(n, s),), generator=gen).sort().values


def attended(
    name: str,
    rows: torch.Tensor,
    scores: torch.Tensor,
    cfg: AttentionConfig,
    chosen: torch.Tensor | None,
    top_k: int,
    block: int = 64,
) -> torch.Tensor:
    """(B, H, R, S) bool: the keys `name` attends to for query rows `rows` (scores: their dense causal scores)."""
    s = scores.shape[-1]
    j = torch.arange(s)
    visible = (j <= rows[:, None]).expand_as(scores)
    if name == "sliding_window_attention":
        return visible & (j > rows[:, None] - cfg.window)
    if name == "topk_sparse_attention":
        kth = scores.topk(min(top_k, s), dim=-1).values[..., -1:]  # masked keys score -inf, never above the kth
        return visible & (scores >= kth)
    if name == "dynamic_window_attention" and chosen is not None:
        return visible & chosen[:, :, rows // block].repeat_interleave(block, dim=-1)[..., :s]
    return visible


def mass_recall(
    q: torch.Tensor,
    k: torch.Tensor,
    names: list[str],
    cfg: AttentionConfig,
    chosen: dict[str, torch.Tensor],
    top_k: int,
) -> dict[str, dict[str, float]]:
    """Per method: mean and 5th percentile over sampled queries of the dense probability mass it keeps."""
    rows = _sample_rows(q.shape[2], cfg.samples, torch.Generator().manual_seed(cfg.seed + 1))
    kept: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for first in range(0, len(rows), 128):
        part = rows[first : first + 128]
        scores = (q[:, :, part].double() @ k.double().transpose(-2, -1)) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(torch.arange(k.shape[2]) > part[:, None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        for n in names:
            kept[n].append((probs * attended(n, part, scores, cfg, chosen.get(n), top_k)).sum(-1).flatten())
    out = {}
    for n, parts in kept.items():
        values = torch.cat(parts).clamp(0.0, 1.0)
        out[n] = {"mean": float(values.mean()), "p5": float(values.quantile(0.05))}
    return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def block_fraction(chosen: torch.Tensor) -> float:
    """Share of the causal (query block, key block) pairs that were computed."""
    n = chosen.shape[-1]
    return float(chosen.sum()) / (chosen.shape[0] * chosen.shape[1] * n * (n + 1) / 2)


def score_fraction(name: str, s: int, cfg: AttentionConfig, module: Any, chosen: torch.Tensor | None) -> float:
    """Scores a method computes per head, over the S(S+1)/2 causal pairs (from each module's own loop structure)."""
    causal, step = s * (s + 1) / 2, 64  # the sliding-window and top-k modules work in blocks of 64 queries
    starts = range(0, s, step)
    if name == "eager_attention":
        return s * s / causal  # the full S x S matrix, then masked
    if name == "sliding_window_attention":  # each block scores the keys from its first query's window start on
        return sum((min(b + step, s) - b) * (min(b + step, s) - max(0, b - cfg.window + 1)) for b in starts) / causal
    if name == "topk_sparse_attention":  # each block scores every key up to its last query, then keeps the top k
        return sum((min(b + step, s) - b) * min(b + step, s) for b in starts) / causal
    if name == "dynamic_window_attention" and chosen is not None:  # chosen blocks, plus each probe's causal row
        block, probes, heads = int(module.block), int(module.probes), chosen.shape[0] * chosen.shape[1]
        return (float(chosen.sum()) / heads * block * block + probes * causal / block) / causal
    return 1.0  # sdpa: the fused kernel skips key blocks above the diagonal


def run_length(s: int, cfg: AttentionConfig, modules: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Memory, time, recall and compute of every method at one sequence length."""
    started = seconds()
    gen = torch.Generator().manual_seed(cfg.seed)
    q, k, v = structured_qkv(1, cfg.heads, s, cfg.head_dim, gen)
    names = [n for n in METHODS if n in modules and (n != "eager_attention" or s <= cfg.eager_max)]
    windows = {n: (cfg.window if n == "sliding_window_attention" else None) for n in names}
    calls = {n: _call(modules[n], q, k, v, windows[n]) for n in names}
    peaks = {}
    for n in names:
        peaks[n] = peak_bytes(calls[n])
        log(f"  {s}: {n} peak {peaks[n] / 2**20:.1f} MiB")
    timer, order = make_timer("cpu"), random.Random(cfg.seed)
    times: dict[str, list[int]] = {n: [] for n in names}
    outputs: dict[str, torch.Tensor] = {}
    rounds, spent = 0, seconds()
    while rounds < cfg.min_rounds or (rounds < cfg.max_rounds and seconds() - spent < cfg.budget_s):
        outputs = {}  # the last round's outputs are freed here, outside the timed calls
        with quiet_gc():
            for n in order.sample(names, len(names)):
                times[n].append(timer.time(_keeping(outputs, n, calls[n])))
        rounds += 1
        log(f"  {s}: round {rounds} " + " ".join(f"{n.split('_')[0]} {times[n][-1] / 1e6:.0f} ms" for n in names))
    chosen = {"dynamic_window_attention": modules["dynamic_window_attention"].selected_blocks(q, k)}
    top_k = int(getattr(modules.get("topk_sparse_attention"), "top_k", 256))
    recall = mass_recall(q, k, names, cfg, chosen, top_k)
    dense = outputs[DENSE]
    methods = {}
    for n in names:
        ratios = [t / d for t, d in zip(times[n], times[DENSE], strict=True)]
        methods[n] = {
            "peak_bytes": peaks[n],
            "memory_vs_dense": peaks[n] / peaks[DENSE] if peaks[DENSE] else math.nan,
            "median_ms": statistics.median(times[n]) / 1e6,
            "time_vs_dense": statistics.median(ratios),
            "time_vs_dense_range": [min(ratios), max(ratios)],
            "mass_recall": recall[n]["mean"],
            "mass_recall_p5": recall[n]["p5"],
            "output_cosine": float(F.cosine_similarity(outputs[n], dense, dim=-1).mean()),
            "output_sqnr_db": _finite(sqnr_db(dense, outputs[n])),  # None: identical to sdpa's output
            "score_fraction": score_fraction(n, s, cfg, modules[n], chosen.get(n)),
        }
    dynamic = chosen["dynamic_window_attention"]
    methods["dynamic_window_attention"]["block_fraction"] = block_fraction(dynamic)
    gib = cfg.heads * s * s * 4 / 2**30
    skipped = {} if "eager_attention" in names else {"eager_attention": f"not run: {gib:.0f} GiB per score matrix"}
    return {
        "length": s,
        "rounds": rounds,
        "methods": methods,
        "skipped": skipped,
        "random_inputs": random_control(s, cfg, modules, top_k),
        "dynamic_mass_sweep": mass_sweep(q, k, cfg),
        "seconds": seconds() - started,
    }


def random_control(s: int, cfg: AttentionConfig, modules: dict[str, Any], top_k: int) -> dict[str, Any]:
    """Mass recall of each sparse method, and the dynamic window's block share, on the kind's random inputs."""
    q, k, _ = random_qkv(cfg.heads, s, cfg.head_dim, cfg.seed)
    chosen = {"dynamic_window_attention": modules["dynamic_window_attention"].selected_blocks(q, k)}
    names = ["sliding_window_attention", "topk_sparse_attention", "dynamic_window_attention"]
    recall = mass_recall(q, k, names, cfg, chosen, top_k)
    return {
        "mass_recall": {n: recall[n]["mean"] for n in names},
        "dynamic_block_fraction": block_fraction(chosen["dynamic_window_attention"]),
    }


def mass_sweep(q: torch.Tensor, k: torch.Tensor, cfg: AttentionConfig) -> list[dict[str, float]]:
    """The dynamic window's block share and mass recall at other mass targets (selection only, not timed)."""
    rows = []
    for target in MASS_SWEEP:
        module = load_module("dynamic_window_attention", mass=target)
        chosen = module.selected_blocks(q, k)
        recall = mass_recall(q, k, ["dynamic_window_attention"], cfg, {"dynamic_window_attention": chosen}, 0)
        rows.append(
            {
                "mass": target,
                "block_fraction": block_fraction(chosen),
                **{
                    f"mass_recall{'' if key == 'mean' else '_' + key}": value
                    for key, value in recall["dynamic_window_attention"].items()
                },
            }
        )
    return rows


def gradient_fidelity(cfg: AttentionConfig, modules: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per sparse method: cosine and SQNR (dB) of its output and of dq, dk, dv against float64 dense attention.

    On the structured inputs at `grad_length` tokens, for a random output gradient: what training through the
    method would see. The float64 dense reference is the attention kind's own.
    """
    s = cfg.grad_length
    q, k, v = structured_qkv(1, cfg.heads, s, cfg.head_dim, torch.Generator().manual_seed(cfg.seed))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(cfg.seed + 2))
    exact = [t.double().requires_grad_() for t in (q, k, v)]
    dense = reference_attention(exact[0], exact[1], exact[2], True, None, None)
    expected = [dense, *torch.autograd.grad(dense, exact, grad_out.double())]
    out = {}
    for name in ("sliding_window_attention", "topk_sparse_attention", "dynamic_window_attention"):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        window = cfg.window if name == "sliding_window_attention" else None
        got = modules[name].forward(*leaves, causal=True, window=window, key_padding_mask=None)
        tensors = [got, *torch.autograd.grad(got, leaves, grad_out)]
        out[name] = {
            label: {"cosine": error_stats(t, e).cosine, "sqnr_db": error_stats(t, e).sqnr_db}
            for label, t, e in zip(("output", "grad[q]", "grad[k]", "grad[v]"), tensors, expected, strict=True)
        }
    return out


def run(cfg: AttentionConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Every length of `cfg`, one torch thread."""
    modules = {n: load_module(n) for n in METHODS}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started, lengths = seconds(), []
        for s in cfg.lengths:
            log(f"attention: {s} tokens, {cfg.heads} heads x {cfg.head_dim}")
            lengths.append(run_length(s, cfg, modules, log))
            log(f"attention: {s} tokens done in {lengths[-1]['seconds']:.1f} s")
        grads = gradient_fidelity(cfg, modules) if cfg.grad_length else {}
        log(f"attention: gradients at {cfg.grad_length} tokens compared with float64 dense attention")
    finally:
        torch.set_num_threads(before)
    return {
        "config": {
            **cfg.__dict__,
            "lengths": list(cfg.lengths),
            "threads": 1,
            "dtype": "float32",
            "batch": 1,
            "dense_reference": DENSE,
            "head_types": [{"copy": c, "sink": k, "local": list(w)} for c, k, w in HEAD_TYPES],
        },
        "lengths": lengths,
        "gradients": grads,
        "seconds": seconds() - started,
    }
