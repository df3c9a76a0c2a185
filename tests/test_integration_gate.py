"""Integration gate: candidate and reference trained side by side; a harmful module fails with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core import paths
from harness.core.contract import ErrorBound, ModuleSpec
from harness.gates.integration import scoring
from harness.gates.integration.references import Spread, slot_variants
from harness.integration.model import ModelConfig
from harness.integration.policy import MixedPrecisionPolicy
from harness.integration.runs import TaskSetup
from harness.integration.setups import SPREAD_SEEDS
from harness.integration.tasks import MQAR
from harness.integration.train import TrainConfig
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.registry.sources import module_sources
from harness.results.records import ModuleResult
from tests.conftest import FIXTURES, REPO

# Small enough for the test suite (a couple of seconds per training), large enough to learn something.
SMALL = (
    TaskSetup("text", ModelConfig(vocab_size=256, d_model=32, d_ff=64), TrainConfig(steps=80, eval_batches=4)),
    TaskSetup(
        "mqar", ModelConfig(vocab_size=MQAR().vocab_size, d_model=32, d_ff=64), TrainConfig(steps=80, eval_batches=4)
    ),
)


POLICIES = (
    MixedPrecisionPolicy("int8_body_int4_head", (("lm_head", "int4_group"), ("layers.*", "int8_channel")), "test"),
    MixedPrecisionPolicy("names_a_missing_module", (("*", "int3_dream"),), "test"),
    MixedPrecisionPolicy("names_a_norm", (("*", "rms_norm_torch"),), "test"),
)


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleResult]:
    cache = tmp_path_factory.mktemp("spread-cache")
    original = paths.CACHE_DIR
    paths.CACHE_DIR = cache
    try:
        shipped = {s.name: s for s in module_sources(REPO / "modules", entry_points=False)}
        fixtures = {s.name: s for s in module_sources(FIXTURES / "integration_modules", entry_points=False)}
        sources = [
            shipped["rms_norm_torch"],
            shipped["int8_channel"],
            shipped["int4_group"],
            fixtures["rms_norm_dirty_workspace"],
        ]
        options = RunOptions(
            gates=("unit", "integration"),
            limits=Limits(timeout_s=300),
            seed=11,
            jobs=1,
            integration_setups=SMALL,
            policies=POLICIES,
        )
        results: list[ModuleResult] = []
        judge_all(sources, options, results.append, available=list(shipped.values()))
    finally:
        paths.CACHE_DIR = original
    out = {r.name: r for r in results}
    out["_cache"] = cache  # type: ignore[assignment]
    return out


def test_reference_equivalent_module_passes_with_metrics(judged: dict[str, ModuleResult]) -> None:
    result = judged["rms_norm_torch"]
    assert result.verdict == "pass", result.reason
    cases = {c.case: c for c in result.gates[1].cases}
    assert set(cases) == {"integration/text", "integration/mqar"}
    for case in cases.values():
        metrics = case.metrics
        for key in (
            "val_loss",
            "ref_val_loss",
            "val_loss_delta",
            "val_loss_tolerance",
            "perplexity",
            "recall",
            "ref_recall",
            "recall_delta",
            "recall_tolerance",
            "seconds",
            "spread_seeds",
        ):
            assert key in metrics, key
        assert abs(metrics["val_loss_delta"]) <= metrics["val_loss_tolerance"]
        assert metrics["train_loss_last"] < metrics["train_loss_first"]


def test_module_that_passes_unit_but_breaks_training_fails_integration(judged: dict[str, ModuleResult]) -> None:
    """A backward whose gradient workspace is never zeroed: exact in every single call, wrong from the 2nd step."""
    result = judged["rms_norm_dirty_workspace"]
    unit_gate, integration_gate = result.gates
    assert unit_gate.verdict == "pass", unit_gate.reason
    assert integration_gate.verdict == "fail" and result.verdict == "fail"
    text = next(c for c in integration_gate.cases if c.case == "integration/text")
    assert not text.passed
    assert "training loss became non-finite at step" in text.failures[0], text.failures


def _quality(delta: float, recall_delta: float = 0.0, exact: bool = False, **declared: float) -> list[str]:
    """The gate's own rule (scoring.quality_metrics, then quality_failures) on given losses and recalls."""
    bound = None if exact else ErrorBound(min_cosine=0.999, **declared)
    spec = ModuleSpec("m", "norm", ("rms_norm",), exact, bound, "M", "m.py")
    spread = Spread(loss_sd=0.005, recall_sd=0.01, seeds=3)  # 3 sd = 0.015 nats, under the 0.02 floor
    m = scoring.quality_metrics(spec, 2.0 + delta, 2.0, 0.9 + recall_delta, 0.9, spread)
    return scoring.quality_failures("text", m, spread) + scoring.quality_failures("mqar", m, spread)


def test_quality_tolerance_both_directions_and_declared_bounds() -> None:
    assert _quality(0.01) == []
    (worse,) = _quality(0.03)
    assert "+0.0300 nats from the reference" in worse and "3 x seed-to-seed sd 0.0050" in worse
    (better,) = _quality(-0.03)  # a causal module that sees later tokens scores like this
    assert "below the reference" in better and "later positions" in better
    assert _quality(0.04, max_val_loss_increase=0.05) == []  # an approximate module judged by its declared bound
    assert _quality(0.04, exact=True) != []  # an exact module never gets a declared bound's room
    (declared,) = _quality(0.06, max_val_loss_increase=0.05)
    assert "declared bound 0.05" in declared
    (recall,) = _quality(0.0, recall_delta=-0.05)
    assert "recall accuracy" in recall and "tolerance 0.030" in recall
    assert _quality(0.0, recall_delta=-0.05, max_recall_drop=0.08) == []
    (peeks,) = _quality(0.0, recall_delta=+0.05)  # a window module reaching past its window
    assert "above the reference" in peeks
    with pytest.raises(ValueError, match="max_val_loss_increase"):
        ErrorBound(max_val_loss_increase=0.5)  # beyond what any approximate module may declare


def test_mixed_precision_policy_is_reported_like_a_module(judged: dict[str, ModuleResult]) -> None:
    result = judged["int8_body_int4_head"]
    assert result.kind == "quantization" and result.verdict == "pass", result.reason
    gates = {g.gate: g for g in result.gates}
    assert gates["unit"].verdict == "skipped"
    (case,) = gates["integration"].cases
    m = case.metrics
    assert m["bits[lm_head]"] == 4.0 and m["bits[layers.0.attn.wq]"] == 8.0 and m["bits[layers.1.mlp.down]"] == 8.0
    int8 = judged["int8_channel"].gates[1].cases[0].metrics
    int4 = judged["int4_group"].gates[1].cases[0].metrics
    assert int4["quantized_model_bytes"] < m["quantized_model_bytes"] < int8["quantized_model_bytes"]
    assert m["perplexity_increase_limit"] == int4["perplexity_increase_limit"]  # the narrowest code sets the limit
    assert m["sqnr_db[lm_head]"] == pytest.approx(int4["sqnr_db[lm_head]"])


def test_policy_errors_name_the_problem(judged: dict[str, ModuleResult]) -> None:
    missing = judged["names_a_missing_module"]
    assert missing.verdict == "error" and "'int3_dream'" in missing.reason and "harness list" in missing.reason
    wrong = judged["names_a_norm"]
    assert wrong.verdict == "error" and "rms_norm_torch (norm)" in wrong.reason


def test_policies_load_from_pyproject(tmp_path: Path) -> None:
    from harness.integration.policy import PolicyError, load_policies

    (path := tmp_path / "pyproject.toml").write_text(
        '[tool.harness.mixed_precision.mix]\n"lm_head" = "int4_group"\n"layers.*" = "fp8_e4m3"\n'
    )
    (policy,) = load_policies(path)
    assert policy.modules == ["int4_group", "fp8_e4m3"]
    assert policy.assign(["layers.0.attn.wq", "lm_head", "other"]) == {
        "layers.0.attn.wq": "fp8_e4m3",
        "lm_head": "int4_group",
    }
    path.write_text('[tool.harness.mixed_precision.mix]\n"lm_head" = 4\n')
    with pytest.raises(PolicyError, match="quantization module name"):
        load_policies(path)
    assert [p.name for p in load_policies(REPO / "pyproject.toml")] == ["fp8_body_int4_head"]


def test_quantization_in_the_trained_model(judged: dict[str, ModuleResult]) -> None:
    metrics = {}
    for name in ("int8_channel", "int4_group"):
        result = judged[name]
        assert result.verdict == "pass", result.reason
        (case,) = result.gates[1].cases
        assert case.case == "integration/quantized-text"
        metrics[name] = case.metrics
        layers = [k for k in case.metrics if k.startswith("sqnr_db[")]
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
    assert len(data["losses"]) == len(SPREAD_SEEDS) and data["loss_sd"] >= 0


def test_slot_variants() -> None:
    from harness.core.contract import ModuleSpec

    def spec(kind: str, *variants: str) -> ModuleSpec:
        return ModuleSpec("m", kind, variants, True, None, "M", "x.py")

    assert slot_variants(spec("attention", "non_causal", "causal")) == ("causal", "rms_norm", "swiglu")
    assert slot_variants(spec("attention", "sliding_window"))[0] == "sliding_window"  # type: ignore[index]
    assert slot_variants(spec("attention", "non_causal")) is None
    assert slot_variants(spec("norm", "layer_norm")) == ("causal", "layer_norm", "swiglu")
    assert slot_variants(spec("activation", "gelu")) == ("causal", "rms_norm", "gelu")
