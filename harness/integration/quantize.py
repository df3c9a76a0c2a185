"""Weight-only quantization of the integration model's linear layers through a quantization module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.kinds.quantization_schemes import GROUP_SIZES, group_width, packed_bytes


@dataclass(frozen=True)
class QuantSpec:
    """How one linear layer is quantized: by which module instance, with which group size."""

    module: Any  # instance with quantize(weight, group_size), dequantize(packed), linear(x, packed, bias)
    group_size: int | None = None  # None for per-channel schemes (int8_channel, fp8_e4m3); 32/64/128 for int4_group


@dataclass(frozen=True, eq=False)
class QuantizedLayer:
    """What quantizing one linear layer produced, for bytes and SQNR reports."""

    name: str  # the layer's name in `linear_layers`, e.g. "layers.0.attn.wq"
    group_size: int | None  # the group size passed to quantize
    packed_bytes: int  # sum of numel * element_size over the packed dict
    fp32_bytes: int  # bytes of the original weight stored as float32
    weight: torch.Tensor  # the original weight, float32 (out_features, in_features)
    dequantized: torch.Tensor  # module.dequantize(packed), float32 (out_features, in_features)


class QuantizedLinear(nn.Module):
    """Stands in for an nn.Linear: forward is module.linear(x, packed, bias) on the packed weight."""

    def __init__(self, name: str, module: Any, packed: dict[str, torch.Tensor], linear: nn.Linear) -> None:
        super().__init__()
        self.name, self.module, self.packed = name, module, packed
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module.linear(x=x, packed=self.packed, bias=self.bias)
        expected = (*x.shape[:-1], self.out_features)
        if type(out) is not torch.Tensor or tuple(out.shape) != expected:
            found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(
                f"{type(self.module).__name__}.linear on layer {self.name!r} returned {found}, expected a "
                f"torch.Tensor of shape {expected}. Fix: return F.linear-shaped output (..., out_features)."
            )
        return out


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear of `model` by its module path ("layers.0.attn.wq", "layers.1.mlp.up", "lm_head")."""
    return {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def default_group_size(variant: str, in_features: int) -> int | None:
    """None for per-channel variants; for int4_group the smallest of 32/64/128 dividing in_features."""
    if variant != "int4_group":
        group_width(variant, in_features, None)  # rejects unknown variants
        return None
    for size in GROUP_SIZES:
        if in_features % size == 0:
            return size
    raise ValueError(f"int4_group needs in_features divisible by one of {GROUP_SIZES}, got {in_features}")


def quant_plan(
    model: nn.Module, module: Any, variant: str, group_size: int | None = None, names: list[str] | None = None
) -> dict[str, QuantSpec]:
    """A plan quantizing `names` (default: every linear layer) with `module` used as `variant`.

    group_size applies to int4_group only (default: `default_group_size` per layer) and is checked against each
    layer's in_features; per-channel variants always get None, as the judge sends it.
    """
    layers = linear_layers(model)
    plan = {}
    for name in layers if names is None else names:
        in_features = _layer(layers, name).in_features
        size = group_size if variant == "int4_group" and group_size is not None else None
        size = default_group_size(variant, in_features) if size is None else size
        group_width(variant, in_features, size)  # raises ValueError naming the shape problem
        plan[name] = QuantSpec(module=module, group_size=size)
    return plan


def _layer(layers: dict[str, nn.Linear], name: str) -> nn.Linear:
    if name not in layers:
        raise KeyError(f"no linear layer {name!r}; the model has {sorted(layers)}")
    return layers[name]


def _checked_packed(packed: Any, module: Any, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(packed, dict) or not all(
        isinstance(k, str) and type(v) is torch.Tensor for k, v in packed.items()
    ):
        raise TypeError(
            f"{type(module).__name__}.quantize on layer {name!r} returned {type(packed).__name__}, expected a dict "
            "of str -> torch.Tensor. Fix: return the packed layout, e.g. {'qweight': ..., 'scale': ...}."
        )
    return packed


def quantize_linears(model: nn.Module, plan: dict[str, QuantSpec]) -> dict[str, QuantizedLayer]:
    """Replace each planned nn.Linear of `model` (in place) by a QuantizedLinear; return what each stored.

    The embedding is not a linear layer and stays in float32 (`model_bytes` counts it).
    """
    layers = linear_layers(model)
    info = {}
    with torch.no_grad():
        for name, spec in plan.items():
            linear = _layer(layers, name)
            weight = linear.weight.detach().to(torch.float32).clone()
            packed = _checked_packed(spec.module.quantize(weight=weight, group_size=spec.group_size), spec.module, name)
            dequantized = spec.module.dequantize(packed=packed).detach().to(torch.float32)
            if dequantized.shape != weight.shape:
                raise ValueError(
                    f"{type(spec.module).__name__}.dequantize on layer {name!r} returned shape "
                    f"{tuple(dequantized.shape)}, expected the weight's {tuple(weight.shape)}."
                )
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, QuantizedLinear(name, spec.module, packed, linear))
            info[name] = QuantizedLayer(
                name=name,
                group_size=spec.group_size,
                packed_bytes=packed_bytes(packed),
                fp32_bytes=weight.numel() * 4,
                weight=weight,
                dequantized=dequantized,
            )
    return info


def model_bytes(model: nn.Module, packed_info: dict[str, QuantizedLayer]) -> int:
    """Bytes of the model's weights: packed bytes for quantized layers, element bytes for every other parameter.

    Works on the quantized model and on an unquantized copy alike: a quantized layer's own weight is never counted.
    """
    skipped = {f"{name}.weight" for name in packed_info}
    params = sum(p.numel() * p.element_size() for name, p in model.named_parameters() if name not in skipped)
    return params + sum(layer.packed_bytes for layer in packed_info.values())
