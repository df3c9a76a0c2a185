"""Showcase, mixed precision: model bytes against perplexity retained on the integration gate's trained model.

Every point goes through the integration gate's own code, in this process instead of a contestant (the shipped
quantization modules only): the judge's trained reference text model and its evaluation batches
(`harness.gates.integration.references.References`), the request the gate sends (`quantization_request`), the
contestant's quantization of every planned linear layer (`harness.worker.integrate.quantize_model`) and the judge's
scoring (`score_quantization`: perplexity on the evaluation batches, model bytes). Points: the float32 model, each
quantization module on every linear layer, the policies configured in pyproject.toml, and one contrast policy with
the precisions swapped (int4 body, fp8 head).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.contract import ModuleSource
from harness.gates.integration.quantized import quantization_request, reference_layers, score_quantization
from harness.gates.integration.references import References
from harness.integration.policy import MixedPrecisionPolicy, load_policies
from harness.integration.runs import TaskSetup
from harness.integration.setups import DEFAULT_SETUPS
from harness.perf.timer import seconds
from harness.registry.loader import Registry, load
from harness.worker.integrate import quantize_model

REPO = Path(__file__).resolve().parents[1]
QUANTIZERS = ("int8_channel", "fp8_e4m3", "int4_group")  # each also judged alone: every linear layer in one format
TEXT_SETUP = next(s for s in DEFAULT_SETUPS if s.task == "text")
CONTRAST = MixedPrecisionPolicy(
    "int4_body_fp8_head",
    (("lm_head", "fp8_e4m3"), ("layers.*", "int4_group")),
    "benchmarks/showcase_policy.py (contrast: the shipped policy's precisions swapped)",
)


@dataclass(frozen=True)
class PolicyConfig:
    """What the policy part measures."""

    seed: int = 0  # seeds the evaluation batches, as the run's secret seed does in the gate
    setup: TaskSetup = TEXT_SETUP  # the gate's text model and training
    pyproject: Path = REPO / "pyproject.toml"  # where the mixed-precision policies are configured


def _load(name: str) -> tuple[str, Any]:
    """(variant, instance) of a shipped quantization module, imported as the contestant imports it."""
    path = REPO / "modules" / "quantization" / f"{name}.py"
    spec, cls = load(ModuleSource(name=name, kind="quantization", path=path), Registry())
    return spec.variants[0], cls()


def _point(
    label: str,
    rules: list[tuple[str, str]],
    plan: dict[str, tuple[str, str]],
    refs: References,
    instances: dict[str, Any],
) -> dict[str, Any]:
    """One quantized model: the gate's request, the contestant's quantization, the judge's scores."""
    setup, message = quantization_request(plan, refs)
    case = score_quantization(setup, refs, plan, quantize_model(instances, message))
    m = case.metrics
    bits = sorted({int(v) for key, v in m.items() if key.startswith("bits[")})
    return {
        "label": label,
        "bits": bits,
        "rules": [list(rule) for rule in rules],  # (layer pattern, quantization module), first match wins
        "model_bytes": int(m["quantized_model_bytes"]),
        "linear_bytes": int(m["quantized_linear_bytes"]),
        "bytes_vs_float": m["quantized_model_bytes"] / m["model_bytes"],
        "perplexity": m["perplexity"],
        "perplexity_retained": m["ref_perplexity"] / m["perplexity"],
        "perplexity_increase": m["perplexity_increase"],
        "perplexity_limit": m["perplexity_increase_limit"],
        "gate_passed": case.passed,
        "float_model_bytes": int(m["model_bytes"]),
        "float_linear_bytes": int(m["linear_bytes"]),
        "float_perplexity": m["ref_perplexity"],
    }


def run(cfg: PolicyConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """The float model, each quantizer alone, and each policy."""
    started = seconds()
    refs = References(cfg.seed, setups=(cfg.setup,))
    layers = reference_layers(refs)
    log(f"policy: reference text model ({len(layers)} linear layers), trained or read from the cache")
    loaded = {name: _load(name) for name in QUANTIZERS}
    instances = {name: inst for name, (_, inst) in loaded.items()}
    points = []
    for name in QUANTIZERS:
        plan = {layer: (name, loaded[name][0]) for layer in layers}
        points.append(_point(f"all {name}", [("*", name)], plan, refs, instances))
        log(f"policy: all {name}: perplexity {points[-1]['perplexity']:.4f}, {points[-1]['model_bytes']:,} bytes")
    for policy in [*load_policies(cfg.pyproject), CONTRAST]:
        plan = {layer: (name, loaded[name][0]) for layer, name in policy.assign(layers).items()}
        points.append({**_point(policy.name, list(policy.rules), plan, refs, instances), "source": policy.source})
        log(f"policy: {policy.name}: perplexity {points[-1]['perplexity']:.4f}, {points[-1]['model_bytes']:,} bytes")
    whole = points[0]  # every layer quantized: its float figures are the whole float model's
    float_point = {
        "label": "float32",
        "bits": [32],
        "model_bytes": whole["float_model_bytes"],
        "linear_bytes": whole["float_linear_bytes"],
        "bytes_vs_float": 1.0,
        "perplexity": whole["float_perplexity"],
        "perplexity_retained": 1.0,
        "perplexity_increase": 0.0,
    }
    return {
        "config": {"seed": cfg.seed, "setup": cfg.setup.as_dict(), "layers": layers},
        "points": [float_point, *points],
        "seconds": seconds() - started,
    }
