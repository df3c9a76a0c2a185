"""The showcase benchmark at tiny sizes: every part runs, its figures have the documented shape and basic sense.

The figures themselves are measured by `python -m benchmarks.showcase` on the real machine (README, Showcase).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import showcase, showcase_attention, showcase_policy, showcase_roofline
from harness.core import paths
from harness.integration.runs import TaskSetup
from harness.integration.train import TrainConfig
from harness.kinds.attention import reference_attention
from harness.perf.roofline import SIZES, Roofline


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def attention() -> dict[str, Any]:
    cfg = showcase_attention.AttentionConfig(
        lengths=(512,), heads=2, window=64, eager_max=512, min_rounds=1, max_rounds=1, samples=64, grad_length=256
    )
    return showcase_attention.run(cfg, quiet)


def test_attention_part_measures_memory_time_and_recall(attention: dict[str, Any]) -> None:
    (length,) = attention["lengths"]
    methods = length["methods"]
    assert list(methods) == list(showcase_attention.METHODS)
    assert length["rounds"] == 1 and length["skipped"] == {}
    for name, m in methods.items():
        assert 0.0 <= m["mass_recall_p5"] <= m["mass_recall"] <= 1.0, name
        assert -1.0 <= m["output_cosine"] <= 1.0 + 1e-6 and m["median_ms"] > 0 and m["peak_bytes"] > 0, name
    for dense in ("eager_attention", "sdpa_attention"):
        assert methods[dense]["mass_recall"] == pytest.approx(1.0) and methods[dense]["output_cosine"] > 0.9999
    # the window's scores are O(S x window): below eager's S x S matrix, and it keeps less of the mass
    assert methods["sliding_window_attention"]["peak_bytes"] < methods["eager_attention"]["peak_bytes"]
    assert methods["sliding_window_attention"]["mass_recall"] < methods["topk_sparse_attention"]["mass_recall"]
    assert methods["sliding_window_attention"]["score_fraction"] < 1.0 < methods["eager_attention"]["score_fraction"]
    dynamic = methods["dynamic_window_attention"]
    assert 0.0 < dynamic["block_fraction"] <= 1.0 and dynamic["time_vs_dense"] > 0
    grads = attention["gradients"]
    assert set(grads) == {"sliding_window_attention", "topk_sparse_attention", "dynamic_window_attention"}
    for name, tensors in grads.items():
        assert list(tensors) == ["output", "grad[q]", "grad[k]", "grad[v]"], name
        assert all(-1.0 <= t["cosine"] <= 1.0 + 1e-9 for t in tensors.values()), name


def test_dynamic_window_grows_where_attention_is_spread_out(attention: dict[str, Any]) -> None:
    (length,) = attention["lengths"]
    structured = length["methods"]["dynamic_window_attention"]["block_fraction"]
    assert structured < 1.0, "on structured inputs the probes should let some blocks go"
    assert length["random_inputs"]["dynamic_block_fraction"] > structured  # nearly uniform attention: more blocks
    sweep = length["dynamic_mass_sweep"]
    assert [row["mass"] for row in sweep] == list(showcase_attention.MASS_SWEEP)
    fractions = [row["block_fraction"] for row in sweep]
    assert fractions == sorted(fractions), "a higher mass target never computes fewer blocks"


def test_policy_part_uses_the_gate_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path)  # the reference trained here is tiny: keep it out of the cache
    setup = TaskSetup("text", showcase_policy.TEXT_SETUP.model, TrainConfig(steps=5, eval_batches=1))
    part = showcase_policy.run(showcase_policy.PolicyConfig(setup=setup), quiet)
    points = {p["label"]: p for p in part["points"]}
    assert list(points)[:4] == ["float32", "all int8_channel", "all fp8_e4m3", "all int4_group"]
    assert {"fp8_body_int4_head", "int4_body_fp8_head"} <= set(points)
    full = points["float32"]["model_bytes"]
    for label, p in points.items():
        assert math.isfinite(p["perplexity"]) and p["perplexity"] > 1.0, label
        assert p["model_bytes"] <= full and p["bytes_vs_float"] == pytest.approx(p["model_bytes"] / full), label
    policy = points["fp8_body_int4_head"]
    assert policy["bits"] == [4, 8]
    assert points["all int4_group"]["model_bytes"] < policy["model_bytes"] < points["all fp8_e4m3"]["model_bytes"]


def test_roofline_part_reports_a_percentage_per_case() -> None:
    flat = Roofline({size: 10.0 for size in SIZES}, 10.0, 1, "test machine")  # 10 GB/s, 10 GFLOP/s: no measuring
    cfg = showcase_roofline.RooflineConfig(calls=3, large_calls=2, modules=("rms_norm_fused", "silu"))
    part = showcase_roofline.run(cfg, quiet, roofline=flat)
    assert [(r["module"], r["case"]) for r in part["rows"]] == [
        ("silu", "r64-h1024"),
        ("silu", "r1024-h4096"),
        ("rms_norm_fused", "r64-h1024"),
        ("rms_norm_fused", "r1024-h4096"),
    ]
    for row in part["rows"]:
        assert row["roofline_pct"] == pytest.approx(100 * row["bound_us"] / row["median_us"])
        assert row["vs_reference"] > 0
    assert set(part["best"]) == {"norm", "activation"}


def test_document_is_strict_json_and_renders_every_table(attention: dict[str, Any]) -> None:
    flat = Roofline({size: 10.0 for size in SIZES}, 10.0, 1, "test machine")
    roof = showcase_roofline.run(
        showcase_roofline.RooflineConfig(calls=2, large_calls=1, modules=("silu",)), quiet, flat
    )
    policy = {
        "points": [
            {
                "label": "float32",
                "bits": [32],
                "model_bytes": 10,
                "bytes_vs_float": 1.0,
                "perplexity": 7.0,
                "perplexity_retained": 1.0,
            }
        ],
        "seconds": 1.0,
    }
    env = showcase.provenance(0)
    doc: dict[str, Any] = {
        "provenance": env,
        "parts": {"attention": attention, "policy": policy, "roofline": roof},
        "seconds": 3.0,
    }
    json.loads(json.dumps(doc, allow_nan=False))
    text = showcase.markdown(doc)
    assert env["torch_version"] in text and "| 512 | `dynamic_window_attention` |" in text
    assert "| float32 | 32 | 10 |" in text and "| `silu` | r64-h1024 |" in text


def test_dynamic_window_is_exact_attention_over_the_blocks_it_chose() -> None:
    module = showcase_attention.load_module("dynamic_window_attention")
    q, k, v = showcase_attention.structured_qkv(1, 2, 700, 64, torch.Generator().manual_seed(3))
    chosen = module.selected_blocks(q, k)  # (B, H, 11, 11) blocks of 64; the last one is partial
    assert not bool(chosen.all()) and bool(chosen.diagonal(dim1=2, dim2=3).all())
    keys = chosen.repeat_interleave(64, dim=2).repeat_interleave(64, dim=3)[:, :, :700, :700]
    causal = torch.ones(700, 700, dtype=torch.bool).tril()
    scores = (q.double() @ k.double().transpose(-2, -1)) / 8.0
    expected = torch.softmax(scores.masked_fill(~(keys & causal), float("-inf")), dim=-1) @ v.double()
    with torch.no_grad():
        got = module.forward(q=q, k=k, v=v, causal=True, window=None, key_padding_mask=None)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)
    # the same blocks with autograd recording (a call's result may not depend on it), and gradients reach q, k, v
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    trained = module.forward(*leaves, causal=True, window=None, key_padding_mask=None)
    assert torch.equal(trained.detach(), got)
    trained.sum().backward()
    assert all(t.grad is not None and bool(t.grad.abs().sum() > 0) for t in leaves)
    # on the kind's random inputs (nearly uniform attention) every block is chosen: dense attention
    rq, rk, rv = showcase_attention.random_qkv(2, 700, 64, seed=3)
    assert bool(module.selected_blocks(rq, rk).tril().eq(torch.ones(11, 11, dtype=torch.bool).tril()).all())
    with torch.no_grad():
        dense = module.forward(q=rq, k=rk, v=rv, causal=True, window=None, key_padding_mask=None)
    torch.testing.assert_close(dense, reference_attention(rq, rk, rv, True, None, None), rtol=1e-4, atol=1e-5)
