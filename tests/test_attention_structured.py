"""The attention battery's structured regime: concentrated attention that a local-only module cannot fake."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from harness.core.compare import compare_tensor
from harness.core.seeding import case_seed, generator
from harness.gates.unit.references import ReferenceCache
from harness.kinds import KINDS, Case
from harness.kinds.attention import AttentionKind
from modules.attention.sliding_window_attention import SlidingWindowAttention

KIND = KINDS["attention"]
BLOCK = 64  # the block size of the shipped block-sparse module (dynamic_window_attention)


def structured_case(variant: str) -> Case:
    (case,) = [c for c in KIND.battery(variant) if c.regime == "structured"]
    return case


def block_mass(case: Case, seed: int) -> torch.Tensor:
    """(B*H*query blocks, key blocks) float64: each query block's mean attention probability per key block."""
    args = ReferenceCache(seed).expected(KIND, case, torch.float32).inputs
    q, k = args["q"].double(), args["k"].double()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if args["causal"]:
        s = q.shape[2]
        scores = scores.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    b, h, sq, sk = probs.shape
    return probs.reshape(b * h, sq // BLOCK, BLOCK, sk // BLOCK, BLOCK).sum(-1).mean(2).flatten(0, 1)


@pytest.mark.parametrize("variant", ["causal", "non_causal"])
def test_structured_case_spans_several_blocks(variant: str) -> None:
    case = structured_case(variant)
    assert case.sizes["SQ"] == case.sizes["SK"] and case.sizes["SQ"] % BLOCK == 0
    assert case.sizes["SQ"] // BLOCK >= 8


@pytest.mark.parametrize("variant", ["causal", "non_causal"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_structured_attention_is_concentrated_on_a_few_blocks(variant: str, seed: int) -> None:
    mass = block_mass(structured_case(variant), seed)
    top4 = mass.sort(dim=-1, descending=True).values[:, :4].sum(-1)
    # on unit-normal q, k the mass spreads over every visible block; here 4 of 9-12 blocks carry most of it
    assert float((top4 >= 0.75).double().mean()) >= 0.9, top4
    assert float(top4.mean()) >= 0.85
    # ... and not only the query's own and previous block: a local window misses the retrieval keys
    own = torch.arange(mass.shape[-1]).repeat(mass.shape[0] // mass.shape[-1])
    local = mass.gather(1, own[:, None]) + mass.gather(1, (own - 1).clamp(min=0)[:, None]) * (own > 0)[:, None]
    assert float(local.mean()) < 0.75


def test_structured_inputs_come_from_the_judges_seed() -> None:
    case = structured_case("causal")
    draws = [
        KIND.make_inputs(case, torch.float32, generator(case_seed(seed, case.id, torch.float32))) for seed in (7, 7, 8)
    ]
    assert torch.equal(draws[0]["q"], draws[1]["q"]) and torch.equal(draws[0]["k"], draws[1]["k"])
    assert not torch.equal(draws[0]["q"], draws[2]["q"]) and not torch.equal(draws[0]["k"], draws[2]["k"])


class LocalOnly:
    """Sliding-window attention (128 keys) passed off as causal attention: right wherever the window covers."""

    def forward(self, q: Any, k: Any, v: Any, causal: bool, window: Any, key_padding_mask: Any) -> torch.Tensor:
        out: torch.Tensor = SlidingWindowAttention().forward(q, k, v, True, 128, None)
        return out


def judged(case: Case, dtype: torch.dtype, seed: int) -> list[str]:
    """Failures of LocalOnly on `case` at the kind's floor bound (the loosest an approximate module may declare)."""
    exp = ReferenceCache(seed).expected(KIND, case, dtype)
    leaves = {n: t.detach().clone().requires_grad_() if n in "qkv" else t for n, t in exp.inputs.items()}
    out = LocalOnly().forward(**leaves)
    grads = torch.autograd.grad(out, [leaves[n] for n in "qkv"], exp.grad_out)
    failures = []
    got = (out.detach(), *grads)
    refs = (exp.reference_out, *(exp.reference_grads[n] for n in "qkv"))
    oracles = (exp.oracle_out, *(exp.oracle_grads[n] for n in "qkv"))
    for name, g, r, o in zip(("output", "grad[q]", "grad[k]", "grad[v]"), got, refs, oracles, strict=True):
        assert r is not None and o is not None
        policy, floor = KIND.tolerance_for(case, dtype), AttentionKind.error_floor
        comparison = compare_tensor(name, g, r, o, dtype, policy, floor, exp.floor_scales.get(name))
        failures += [] if comparison.passed else [comparison.message]
    return failures


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_local_window_module_fails_the_structured_case(dtype: torch.dtype) -> None:
    short = next(c for c in KIND.battery("causal") if c.sizes["SQ"] == 37)  # within the window: exact
    assert judged(short, dtype, seed=5) == []
    failures = judged(structured_case("causal"), dtype, seed=5)
    assert [f.split(":")[0] for f in failures] == ["output", "grad[q]", "grad[k]", "grad[v]"]
    assert all("SQNR" in f for f in failures)
