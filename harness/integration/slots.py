"""The three pluggable slots of the integration model: attention, norm and activation callables."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from harness.core.lineage import NOT_COMPUTED, unreached
from harness.kinds import KINDS
from harness.kinds.attention import reference_attention

# Attention variants a causal decoder can use: the model always calls causal=True without a padding mask,
# so a module declaring only non_causal or key_padding has nothing to say about this model.
MODEL_ATTENTION_VARIANTS = ("causal", "gqa", "sliding_window")
NORM_VARIANTS = ("rms_norm", "layer_norm")
ACTIVATION_VARIANTS = ("gelu", "gelu_tanh", "silu", "swiglu")


class AttentionFn(Protocol):
    """attention.forward of the kind contract, (B, H, S, D) layout; k and v may have fewer heads (GQA)."""

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        window: int | None,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor: ...


class NormFn(Protocol):
    """norm.forward of the kind contract, over the last dimension; bias is None for rms_norm."""

    def __call__(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float
    ) -> torch.Tensor: ...


class ActivationFn(Protocol):
    """activation.forward of the kind contract: x alone, or gate and up for swiglu."""

    def __call__(self, x: torch.Tensor | None, gate: torch.Tensor | None, up: torch.Tensor | None) -> torch.Tensor: ...


@dataclass(frozen=True)
class Slots:
    """What fills the model's attention, norm and activation slots, and the variant each is used as."""

    attention: AttentionFn  # called as attention(q=, k=, v=, causal=True, window=, key_padding_mask=None)
    norm: NormFn  # called as norm(x=, weight=, bias=, eps=) before attention, before the MLP and at the end
    activation: ActivationFn  # called inside the gated MLP, see `activation_variant`
    norm_variant: str = "rms_norm"  # "rms_norm": norm layers own a weight; "layer_norm": a weight and a bias
    # "swiglu": activation(x=None, gate=g, up=u); gelu, gelu_tanh, silu: activation(x=g, gate=None, up=None) * u
    activation_variant: str = "swiglu"
    # "sliding_window" passes window=config.window, every other variant window=None; "gqa" allows
    # n_kv_heads < n_heads (the other variants' contracts give k and v as many heads as q)
    attention_variant: str = "causal"

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("attention_variant", self.attention_variant, MODEL_ATTENTION_VARIANTS),
            ("norm_variant", self.norm_variant, NORM_VARIANTS),
            ("activation_variant", self.activation_variant, ACTIVATION_VARIANTS),
        ):
            if value not in allowed:
                raise ValueError(
                    f"Slots.{field} must be one of {allowed} for the causal integration model, got {value!r}. "
                    "Fix: pass the variant the module is used as."
                )


def _reference_attention(variant: str) -> AttentionFn:
    """The attention kind's reference: one function for every variant (the masks arrive as arguments)."""
    return reference_attention


def _reference_norm(variant: str) -> NormFn:
    kind = KINDS["norm"]

    def norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
        return kind.reference(variant, {"x": x, "weight": weight, "bias": bias, "eps": eps})

    return norm


def _reference_activation(variant: str) -> ActivationFn:
    kind = KINDS["activation"]

    def activation(x: torch.Tensor | None, gate: torch.Tensor | None, up: torch.Tensor | None) -> torch.Tensor:
        return kind.reference(variant, {"x": x, "gate": gate, "up": up})

    return activation


def reference_slots(
    norm_variant: str = "rms_norm", activation_variant: str = "swiglu", attention_variant: str = "causal"
) -> Slots:
    """Slots filled by each kind's eager reference, the baseline every module is compared against."""
    return Slots(
        attention=_reference_attention(attention_variant),
        norm=_reference_norm(norm_variant),
        activation=_reference_activation(activation_variant),
        norm_variant=norm_variant,
        activation_variant=activation_variant,
        attention_variant=attention_variant,
    )


class OutputNotFromInputs(RuntimeError):
    """A module in a slot returned a tensor not computed from that call's inputs: cached, replayed or found.

    Raised in the contestant, which stops training; the judge reports the message (gates/integration/scoring.py).
    """


class _Computed:
    """A module's forward in a slot, checked on every call: its output is computed from the inputs of that call.

    With grad enabled, the output's autograd graph must reach every input that requires grad (a replayed output's
    graph leads to an earlier call's inputs, or nowhere); always, the output may not be the very tensor an earlier
    call returned. Without this a replay fails only later, as an autograd error or a quality figure, neither of
    which says why.
    """

    def __init__(self, forward: Any, slot: str) -> None:
        self.forward, self.slot = forward, slot
        self.calls = 0
        self.returned: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}  # id -> (earlier output, its call)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        out = self.forward(*args, **kwargs)
        if type(out) is not torch.Tensor:
            return out  # the model's own arithmetic reports a wrong type where it is used
        earlier = self.returned.get(id(out))
        if earlier is not None and earlier[0]() is out:
            raise OutputNotFromInputs(
                f"the {self.slot} module's output on call {self.calls} is the very tensor it returned on call "
                f"{earlier[1]}, for other inputs ({NOT_COMPUTED})"
            )
        self.returned[id(out)] = (weakref.ref(out, self._forget(id(out))), self.calls)
        inputs = {**{f"argument {i}": a for i, a in enumerate(args)}, **kwargs}
        missing = unreached(out, inputs) if torch.is_grad_enabled() else []
        if missing:
            quoted = [repr(n) for n in missing]
            names = f" {quoted[0]}" if len(quoted) == 1 else f"s {', '.join(quoted[:-1])} and {quoted[-1]}"
            raise OutputNotFromInputs(
                f"the {self.slot} module's output on call {self.calls} does not depend on its input{names}: its "
                f"autograd graph never reaches this call's tensors ({NOT_COMPUTED})"
            )
        return out

    def _forget(self, key: int) -> Callable[[weakref.ref[torch.Tensor]], None]:
        """A weakref callback dropping the entry of an output once it is freed (its id may then be reused)."""

        def forget(_: weakref.ref[torch.Tensor]) -> None:
            self.returned.pop(key, None)

        return forget


def _forward_of(instance: Any, slot: str) -> Any:
    forward = getattr(instance, "forward", None)
    if not callable(forward):
        raise TypeError(
            f"the {slot} slot takes a module instance with a forward method, got {type(instance).__name__}. "
            "Fix: pass an instance of the registered class, e.g. EagerAttention()."
        )
    return _Computed(forward, slot)


def slots_from_modules(
    attention: Any = None,
    norm: Any = None,
    activation: Any = None,
    *,
    norm_variant: str = "rms_norm",
    activation_variant: str = "swiglu",
    attention_variant: str = "causal",
) -> Slots:
    """Reference slots with each given module instance's `forward` in its place, used as the given variant."""
    ref = reference_slots(norm_variant, activation_variant, attention_variant)
    return Slots(
        attention=ref.attention if attention is None else _forward_of(attention, "attention"),
        norm=ref.norm if norm is None else _forward_of(norm, "norm"),
        activation=ref.activation if activation is None else _forward_of(activation, "activation"),
        norm_variant=norm_variant,
        activation_variant=activation_variant,
        attention_variant=attention_variant,
    )
