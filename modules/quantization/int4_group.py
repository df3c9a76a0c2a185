"""Int4 weight-only quantization: symmetric per group of 32/64/128 inputs, two codes packed per byte."""

import torch
import torch.nn.functional as F

from harness import register

_NIBBLE_TO_CODE = torch.arange(16, dtype=torch.float32) - 8.0  # offset-binary nibble -> code


@register(kind="quantization", variant="int4_group", exact=True)
class Int4Group:
    """Codes round(w / scale) in [-7, 7], scale = group amax / 7; byte = (code[2j] + 8) | (code[2j+1] + 8) << 4."""

    def quantize(self, weight: torch.Tensor, group_size: int) -> dict[str, torch.Tensor]:
        rows, cols = weight.shape
        if group_size not in (32, 64, 128) or cols % group_size:
            raise ValueError(f"group_size must be 32, 64 or 128 and divide in_features={cols}, got {group_size}")
        w = weight.detach().to(torch.float32).reshape(rows, cols // group_size, group_size)
        scale = w.abs().amax(dim=2) / 7.0  # (out, groups)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = torch.round(w / scale.unsqueeze(2)).clamp(-7, 7).reshape(rows, cols)
        nibbles = (codes + 8).to(torch.uint8)
        qweight = nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)  # even column in the low nibble
        return {"qweight": qweight, "scale": scale}

    def dequantize(self, packed: dict[str, torch.Tensor]) -> torch.Tensor:
        qweight, scale = packed["qweight"], packed["scale"]
        rows, cols = qweight.shape[0], qweight.shape[1] * 2
        low = _NIBBLE_TO_CODE[(qweight & 0x0F).long()]
        high = _NIBBLE_TO_CODE[(qweight >> 4).long()]
        codes = torch.stack((low, high), dim=2).reshape(rows, scale.shape[1], -1)
        return (codes * scale.unsqueeze(2)).reshape(rows, cols)

    def linear(self, x: torch.Tensor, packed: dict[str, torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, self.dequantize(packed).to(x.dtype), bias)
