"""Contestant side of the integration gate: train with the module in its slot, or quantize the reference model.

Both return raw logits and weights, never scores: the judge scores them against targets it never sent.
"""

from __future__ import annotations

from harness.integration.model import Transformer
from harness.integration.quantize import quant_plan, quantize_linears
from harness.integration.runs import TaskSetup, run_setup
from harness.integration.slots import reference_slots, slots_from_modules
from harness.integration.train import logits_for
from harness.protocol.messages import Integrate, Quantized, QuantizeModel, Trained


def integrate(instance: object, request: Integrate) -> Trained:
    """Train the integration model with `instance` in its kind's slot; return logits and the training log."""
    attention, norm, activation = request.variants
    slots = slots_from_modules(
        **{request.kind: instance},
        attention_variant=attention,
        norm_variant=norm,
        activation_variant=activation,
    )
    setup = TaskSetup.from_dict(request.setup)
    init_batch = (request.init_inputs, request.init_targets)
    out = run_setup(setup, slots, request.seed, init_batch, list(request.eval_inputs))
    return Trained(
        init_logits=out.init_logits,
        init_grads=out.init_grads,
        losses=out.losses,
        eval_logits=list(out.eval_logits),
        seconds=out.seconds,
    )


class ModuleNotLoaded(RuntimeError):
    """A quantization plan names a module the judge did not load into this contestant."""


def quantize_model(instances: dict[str, object], request: QuantizeModel) -> Quantized:
    """Quantize the trained reference model's layers by the plan; return packed weights and raw logits."""
    setup = TaskSetup.from_dict(request.setup)
    model = Transformer(setup.model, reference_slots(), 0)
    model.load_state_dict(request.state)
    plan = {}
    for layer, (name, variant) in request.plan.items():
        if name not in instances:
            raise ModuleNotLoaded(f"module {name!r} is not loaded")
        plan.update(quant_plan(model, instances[name], variant, names=[layer]))
    layers = quantize_linears(model, plan)
    logits = logits_for(model, [(x, x) for x in request.eval_inputs])
    return Quantized(
        eval_logits=list(logits),
        packed={name: model.get_submodule(name).packed for name in layers},
        dequantized={name: layer.dequantized for name, layer in layers.items()},
    )
