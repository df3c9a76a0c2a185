"""Integration gate: candidate and reference trained side by side; a harmful module fails with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.gates import integration
from harness.integration.model import ModelConfig
from harness.integration.runs import TaskSetup
from harness.integration.tasks import MQAR
from harness.integration.train import TrainConfig
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.registry import module_sources
from harness.results.records import ModuleResult
from tests.conftest import FIXTURES, REPO

# Small enough for the test suite (a couple of seconds per training), large enough to learn something.
SMALL = (
    TaskSetup("text", ModelConfig(vocab_size=256, d_model=32, d_ff=64), TrainConfig(steps=80, eval_batches=4)),
    TaskSetup("mqar", ModelConfig(vocab_size=MQAR().vocab_size, d_model=32, d_ff=64),
              TrainConfig(steps=80, eval_batches=4)),
)


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleResult]:
    cache = tmp_path_factory.mktemp("spread-cache")
    original = integration.CACHE_DIR
    integration.CACHE_DIR = cache
    try:
        shipped = {s.name: s for s in module_sources(REPO / "modules", entry_points=False)}
        fixtures = {s.name: s for s in module_sources(FIXTURES / "integration_modules", entry_points=False)}
        sources = [shipped["rms_norm_torch"], shipped["int8_channel"], shipped["int4_group"],
                   fixtures["rms_norm_large_eps"]]
        options = RunOptions(gates=("integration",), limits=Limits(timeout_s=300), seed=11, jobs=1,
                             integration_setups=SMALL)
        results: list[ModuleResult] = []
        judge_all(sources, options, results.append)
    finally:
        integration.CACHE_DIR = original
    out = {r.name: r for r in results}
    out["_cache"] = cache  # type: ignore[assignment]
    return out


def test_reference_equivalent_module_passes_with_metrics(judged: dict[str, ModuleResult]) -> None:
    result = judged["rms_norm_torch"]
    assert result.verdict == "pass", result.reason
    cases = {c["case"]: c for c in result.gates[0].cases}
    assert set(cases) == {"integration/text", "integration/mqar"}
    for case in cases.values():
        metrics = case["metrics"]
        for key in ("val_loss", "ref_val_loss", "val_loss_delta", "val_loss_tolerance", "perplexity", "recall",
                    "ref_recall", "recall_delta", "recall_tolerance", "seconds", "spread_seeds"):
            assert key in metrics, key
        assert abs(metrics["val_loss_delta"]) <= metrics["val_loss_tolerance"]
        assert metrics["train_loss_last"] < metrics["train_loss_first"]


def test_harmful_norm_fails_with_a_clear_reason(judged: dict[str, ModuleResult]) -> None:
    result = judged["rms_norm_large_eps"]
    assert result.verdict == "fail"
    text = next(c for c in result.gates[0].cases if c["case"] == "integration/text")
    assert not text["passed"]
    assert "nats from the reference" in text["failures"][0] and "seed-to-seed sd" in text["failures"][0]


def test_quantization_in_the_trained_model(judged: dict[str, ModuleResult]) -> None:
    metrics = {}
    for name in ("int8_channel", "int4_group"):
        result = judged[name]
        assert result.verdict == "pass", result.reason
        (case,) = result.gates[0].cases
        assert case["case"] == "integration/quantized-text"
        metrics[name] = case["metrics"]
        layers = [k for k in case["metrics"] if k.startswith("sqnr_db[")]
        assert "sqnr_db[lm_head]" in layers and len(layers) >= 8
    int8, int4 = metrics["int8_channel"], metrics["int4_group"]
    # The small test model is barely trained, so its perplexity change is noise; layer SQNR is not.
    assert int4["sqnr_db[lm_head]"] < int8["sqnr_db[lm_head]"] - 15
    assert int8["perplexity_increase"] <= int8["perplexity_increase_limit"]
    assert int4["quantized_linear_bytes"] < int8["quantized_linear_bytes"] < int8["linear_bytes"] / 3.5
    assert int4["quantized_model_bytes"] < int4["model_bytes"]


def test_spread_is_cached_per_configuration(judged: dict[str, ModuleResult]) -> None:
    cache: Path = judged["_cache"]  # type: ignore[assignment]
    files = sorted(cache.glob("spread-*.json"))
    assert len(files) == 2  # text and mqar for the one (rms_norm, swiglu, causal) configuration judged here
    data = json.loads(files[0].read_text())
    assert len(data["losses"]) == len(integration.SPREAD_SEEDS) and data["loss_sd"] >= 0


def test_slot_variants() -> None:
    from harness.contract import ModuleSpec

    def spec(kind: str, *variants: str) -> ModuleSpec:
        return ModuleSpec("m", kind, variants, True, None, "M", "x.py")

    assert integration.slot_variants(spec("attention", "non_causal", "causal")) == ("causal", "rms_norm", "swiglu")
    assert integration.slot_variants(spec("attention", "sliding_window"))[0] == "sliding_window"  # type: ignore[index]
    assert integration.slot_variants(spec("attention", "non_causal")) is None
    assert integration.slot_variants(spec("norm", "layer_norm")) == ("causal", "layer_norm", "swiglu")
    assert integration.slot_variants(spec("activation", "gelu")) == ("causal", "rms_norm", "gelu")
