"""The integration model, its tasks, training loop and quantization hooks: determinism and agreement with modules."""

from __future__ import annotations

import hashlib
import math
import sysconfig
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from harness.core.contract import ModuleSource
from harness.integration import (
    IGNORE_INDEX,
    MQAR,
    STDLIB_FILES,
    ModelConfig,
    QuantizedLinear,
    TrainConfig,
    Transformer,
    batches,
    linear_layers,
    lm_loss,
    load_text_corpus,
    logits_for,
    model_bytes,
    perplexity,
    quant_plan,
    quantize_linears,
    recall_accuracy,
    reference_slots,
    slots_from_modules,
    train,
)
from harness.registry.loader import Registry, load

REPO = Path(__file__).resolve().parents[1]
SMALL = ModelConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4, d_ff=48, max_seq=32)


def module_instance(kind: str, name: str) -> Any:
    """A shipped module, imported the way the contestant does, into a registry of its own."""
    _, cls = load(ModuleSource(name=name, kind=kind, path=REPO / "modules" / kind / f"{name}.py"), Registry())
    return cls()


def tokens(batch: int, seq: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def test_same_seed_gives_bit_identical_weights_whatever_the_global_rng() -> None:
    torch.manual_seed(1)
    a = Transformer(SMALL, reference_slots(), seed=7)
    state = torch.get_rng_state()
    torch.manual_seed(12345)
    torch.rand(100)
    b = Transformer(SMALL, reference_slots(), seed=7)
    c = Transformer(SMALL, reference_slots(), seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    torch.manual_seed(1)
    Transformer(SMALL, reference_slots(), seed=7)
    assert torch.equal(torch.get_rng_state(), state), "building a model must not draw from the global RNG"


@pytest.mark.parametrize(
    ("variant", "kv_heads", "window"), [("causal", 4, None), ("gqa", 2, None), ("sliding_window", 4, 5)]
)
def test_module_slots_match_reference_slots_forward_and_gradients(
    variant: str, kv_heads: int, window: int | None
) -> None:
    config = replace(SMALL, n_kv_heads=kv_heads, window=window)
    modules = slots_from_modules(
        attention=module_instance("attention", "eager_attention"),
        norm=module_instance("norm", "rms_norm_torch"),
        activation=module_instance("activation", "swiglu_fused"),
        attention_variant=variant,
    )
    reference = Transformer(config, reference_slots(attention_variant=variant), seed=3)
    candidate = Transformer(config, modules, seed=3)
    x, y = tokens(3, 29, config.vocab_size, 0), tokens(3, 29, config.vocab_size, 1)
    out_ref, out_mod = reference(x), candidate(x)
    torch.testing.assert_close(out_mod, out_ref, rtol=1e-5, atol=1e-6)
    F.cross_entropy(out_ref.flatten(0, 1), y.flatten()).backward()
    F.cross_entropy(out_mod.flatten(0, 1), y.flatten()).backward()
    for (name, p_ref), p_mod in zip(reference.named_parameters(), candidate.parameters(), strict=True):
        assert p_ref.grad is not None and p_mod.grad is not None, name
        torch.testing.assert_close(p_mod.grad, p_ref.grad, rtol=1e-4, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")


def test_window_changes_what_the_model_computes() -> None:
    """The window reaches the attention slot: a window of 1 gives different logits than full causal attention."""
    full = Transformer(SMALL, reference_slots(), seed=0)
    narrow_cfg = replace(SMALL, window=1)
    narrow = Transformer(narrow_cfg, reference_slots(attention_variant="sliding_window"), seed=0)
    x = tokens(2, 20, SMALL.vocab_size, 0)
    assert torch.equal(full(x)[:, 0], narrow(x)[:, 0])  # the first token sees only itself either way
    assert not torch.allclose(full(x)[:, 5:], narrow(x)[:, 5:])


def test_model_rejects_slot_and_config_mismatches() -> None:
    with pytest.raises(ValueError, match=r"needs ModelConfig\.window"):
        Transformer(SMALL, reference_slots(attention_variant="sliding_window"), seed=0)
    with pytest.raises(ValueError, match="only the gqa variant"):
        Transformer(replace(SMALL, n_kv_heads=2), reference_slots(), seed=0)
    with pytest.raises(ValueError, match="attention_variant"):
        reference_slots(attention_variant="non_causal")


def test_text_corpus_hash_is_stable_and_matches_the_recorded_files() -> None:
    corpus = load_text_corpus()
    load_text_corpus.cache_clear()
    again = load_text_corpus()
    assert corpus is not again and corpus.sha256 == again.sha256
    assert corpus.files == STDLIB_FILES == tuple(sorted(STDLIB_FILES))
    root = Path(sysconfig.get_paths()["stdlib"])
    raw = b"".join((root / name).read_bytes() + b"\n" for name in corpus.files)[:400_000]
    assert corpus.sha256 == hashlib.sha256(raw).hexdigest()
    assert bytes(torch.cat((corpus.train, corpus.validation)).tolist()) == raw
    assert corpus.validation.numel() == math.ceil(len(raw) * 0.1)
    assert 2.5 < corpus.unigram_entropy() < math.log(256)


def test_mqar_targets_are_the_values_of_the_queried_keys() -> None:
    task = MQAR(n_pairs=6, n_queries=4, n_keys=10, n_values=12, n_filler=3, min_distance=20)
    seq_len = 2 * (6 + 4) + 20 - 3  # the shortest sequence that keeps min_distance
    ((inputs, targets),) = batches(task, "train", 1, 64, seq_len, seed=5)
    keys = range(task.n_filler, task.n_filler + task.n_keys)
    for row_in, row_tg in zip(inputs.tolist(), targets.tolist(), strict=True):
        pairs = dict(zip(row_in[0:12:2], row_in[1:12:2], strict=True))
        assert len(pairs) == 6 and all(k in keys for k in pairs), "keys are distinct and from the key range"
        scored = [p for p, t in enumerate(row_tg) if t != IGNORE_INDEX]
        assert len(scored) == 4 and len({row_in[p] for p in scored}) == 4
        for p in scored:
            assert row_tg[p] == pairs[row_in[p]], "the target is the value stated with the queried key"
            assert p - row_in.index(row_in[p]) >= task.min_distance
    with pytest.raises(ValueError, match="min_distance"):
        batches(task, "train", 1, 1, seq_len - 1, seed=0)


def test_batches_are_deterministic_per_seed_and_split() -> None:
    task = MQAR()
    first = batches(task, "train", 2, 4, 64, seed=0)
    assert all(
        torch.equal(a, b)
        for pa, pb in zip(first, batches(task, "train", 2, 4, 64, 0), strict=True)
        for a, b in zip(pa, pb, strict=True)
    )
    assert not torch.equal(first[0][0], batches(task, "train", 1, 4, 64, seed=1)[0][0])
    assert not torch.equal(first[0][0], batches(task, "validation", 1, 4, 64, seed=0)[0][0])
    text = batches(load_text_corpus(), "validation", 1, 3, 16, seed=0)[0]
    assert torch.equal(text[0][:, 1:], text[1][:, :-1]), "text targets are the inputs shifted by one"


def test_training_decreases_loss_and_is_bit_reproducible() -> None:
    task = load_text_corpus()
    config = ModelConfig(vocab_size=task.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, d_ff=32)
    cfg = TrainConfig(steps=40, batch_size=4, seq_len=32, lr=1e-2, warmup=5, seed=1)
    runs = []
    for _ in range(2):
        model = Transformer(config, reference_slots(), seed=0)
        runs.append((model, train(model, task, cfg)))
    (model, log), (_, log_again) = runs
    assert log.losses == log_again.losses, "same seed, same thread count: bit-identical losses"
    assert len(log.losses) == 40 and sum(log.losses[-5:]) / 5 < log.losses[0] - 1.0
    val = batches(task, "validation", 2, 4, 32, seed=0)
    logits = logits_for(model, val)
    assert lm_loss(logits, [t for _, t in val]) < math.log(256) - 1.0


def test_scores_count_only_scored_positions() -> None:
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
    targets = torch.tensor([[0, 2, IGNORE_INDEX]])
    assert lm_loss([logits], [targets]) == pytest.approx((math.log(2) + math.log(10)) / 2)
    assert perplexity([logits], [targets]) == pytest.approx(math.sqrt(20))
    assert recall_accuracy([logits], [targets]) == 0.5
    with pytest.raises(ValueError, match="no scored positions"):
        lm_loss([logits], [torch.full((1, 3), IGNORE_INDEX)])


def test_int8_quantization_changes_logits_slightly_and_stores_a_quarter_of_the_bytes() -> None:
    config = replace(SMALL, d_model=64, d_ff=128)
    model = Transformer(config, reference_slots(), seed=0)
    x = tokens(2, 24, config.vocab_size, 0)
    before, fp32_bytes = logits_for(model, [(x, x)])[0], model_bytes(model, {})
    int8 = module_instance("quantization", "int8_channel")
    info = quantize_linears(model, quant_plan(model, int8, "int8_channel"))
    after = logits_for(model, [(x, x)])[0]
    assert not linear_layers(model) and isinstance(model.lm_head, QuantizedLinear)
    assert set(info) == {
        f"layers.{i}.{p}"
        for i in range(2)
        for p in ("attn.wq", "attn.wk", "attn.wv", "attn.wo", "mlp.gate", "mlp.up", "mlp.down")
    } | {"lm_head"}
    assert 0 < (after - before).abs().max() < 0.02 * before.abs().max()
    packed, dense = sum(i.packed_bytes for i in info.values()), sum(i.fp32_bytes for i in info.values())
    assert 3.5 < dense / packed <= 4.0
    embed_and_norms = fp32_bytes - dense
    assert model_bytes(model, info) == embed_and_norms + packed
    for layer in info.values():
        assert layer.group_size is None and layer.dequantized.shape == layer.weight.shape
        sqnr = 10 * math.log10(layer.weight.square().sum() / (layer.weight - layer.dequantized).square().sum())
        assert sqnr > 35  # ~ 6 dB per bit for a Gaussian weight


def test_int4_plan_uses_group_32_and_rejects_sizes_that_do_not_divide() -> None:
    model = Transformer(SMALL, reference_slots(), seed=0)  # in_features 32 (d_model) and 48 (d_ff)
    int4 = module_instance("quantization", "int4_group")
    plan = quant_plan(model, int4, "int4_group", names=["lm_head", "layers.0.attn.wq"])
    assert {name: spec.group_size for name, spec in plan.items()} == {"lm_head": 32, "layers.0.attn.wq": 32}
    with pytest.raises(ValueError, match="divisible"):
        quant_plan(model, int4, "int4_group", names=["layers.0.mlp.down"])
    with pytest.raises(ValueError, match="divisible"):
        quant_plan(model, int4, "int4_group", group_size=64, names=["lm_head"])
    info = quantize_linears(model, plan)
    assert info["lm_head"].packed_bytes == 40 * 32 // 2 + 40 * 1 * 4  # two codes per byte + one scale per group
    with pytest.raises(KeyError, match="no linear layer 'lm_head'"):
        quant_plan(model, int4, "int4_group", names=["lm_head"])  # already quantized
