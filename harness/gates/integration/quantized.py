"""Quantization in the integration gate: the judge's trained reference model quantized layer by layer in the
contestant, judged by perplexity change, per-layer SQNR and bytes."""

from __future__ import annotations

import math

import torch

from harness.core.contract import ModuleSpec
from harness.core.numerics import sqnr_db
from harness.gates.integration.references import BASE, References, model_slots
from harness.gates.integration.scoring import task_case
from harness.integration.model import Transformer
from harness.integration.quantize import linear_layers
from harness.integration.runs import TaskSetup
from harness.integration.setups import TRAIN_SEED
from harness.integration.train import lm_loss
from harness.kinds.quantization_schemes import CODE_BITS, packed_bytes
from harness.protocol.messages import Quantized, QuantizeModel
from harness.results.records import QUANTIZED_CASE, CaseResult

# Largest validation-perplexity increase a quantization module may cause in the trained reference model, by code
# width. Measured on this model: int8 per channel +0.01%, int4 group 32 +1.5%; the limits leave room for honest
# new schemes while rejecting a quantizer that wrecks the model.
MAX_PERPLEXITY_INCREASE = {8: 0.02, 4: 0.10}


LayerPlan = dict[str, tuple[str, str]]  # layer name -> (quantization module name, variant it is used as)


def reference_layers(refs: References) -> list[str]:
    """Names of the linear layers of the reference text model, in model order."""
    setup = next(s for s in refs.setups if s.task == "text")
    return list(linear_layers(Transformer(setup.model, model_slots(BASE), TRAIN_SEED)))


def module_plan(spec: ModuleSpec, refs: References) -> LayerPlan:
    """Every linear layer quantized by `spec` as its first declared variant."""
    return {layer: (spec.name, spec.variants[0]) for layer in reference_layers(refs)}


def quantization_request(plan: LayerPlan, refs: References) -> tuple[TaskSetup, QuantizeModel]:
    """The trained reference text model, sent for quantization by `plan` with the evaluation inputs (no targets)."""
    setup = next(s for s in refs.setups if s.task == "text")
    ref = refs.run(setup, BASE)
    message = QuantizeModel(
        setup=setup.as_dict(), state=ref.state, plan=dict(plan), eval_inputs=refs.eval(setup).inputs
    )
    return setup, message


def score_quantization(setup: TaskSetup, refs: References, plan: LayerPlan, got: Quantized) -> CaseResult:
    """Perplexity change, per-layer SQNR, code bits and bytes of the quantized reference model, judged by the judge.

    The perplexity limit is that of the narrowest code width the plan uses.
    """
    ev, ref = refs.eval(setup), refs.run(setup, BASE)
    logits, packed, dequantized = list(got.eval_logits), dict(got.packed), dict(got.dequantized)
    if len(logits) != len(ev.targets) or not all(
        type(t) is torch.Tensor and bool(torch.isfinite(t).all()) for t in logits
    ):
        return task_case(setup, False, ["evaluation logits of the quantized model are missing or not finite"], {})
    if set(packed) != set(plan) or set(dequantized) != set(plan):
        return task_case(setup, False, [f"quantized layers {sorted(packed)} differ from the plan's {sorted(plan)}"], {})
    loss, ref_loss = lm_loss(logits, ev.targets), lm_loss(ref.eval_logits, ev.targets)
    increase = math.exp(loss - ref_loss) - 1.0
    bits = min((CODE_BITS[variant] for _, variant in plan.values()), default=32)
    limit = MAX_PERPLEXITY_INCREASE.get(bits, 0.0)
    fp32_linear = sum(ref.state[f"{name}.weight"].numel() * 4 for name in packed)
    fp32_model = sum(t.numel() * 4 for t in ref.state.values())
    stored = sum(packed_bytes(p) for p in packed.values())
    metrics: dict[str, float] = {
        "perplexity": math.exp(loss),
        "ref_perplexity": math.exp(ref_loss),
        "perplexity_increase": increase,
        "perplexity_increase_limit": limit,
        "model_bytes": float(fp32_model),
        "quantized_model_bytes": float(fp32_model - fp32_linear + stored),
        "linear_bytes": float(fp32_linear),
        "quantized_linear_bytes": float(stored),
    }
    for name, weight in dequantized.items():
        metrics[f"sqnr_db[{name}]"] = sqnr_db(ref.state[f"{name}.weight"], weight)
    for layer in reference_layers(refs):
        metrics[f"bits[{layer}]"] = float(CODE_BITS[plan[layer][1]]) if layer in plan else 32.0
    failures = []
    if increase > limit:
        failures.append(
            f"validation perplexity {math.exp(loss):.4f} is {100 * increase:+.2f}% from the unquantized "
            f"model ({math.exp(ref_loss):.4f}); limit {100 * limit:g}% for {bits}-bit codes"
        )
    case = task_case(setup, not failures, failures, metrics)
    case.case = QUANTIZED_CASE
    return case
