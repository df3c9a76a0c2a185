"""Int8 weight-only quantization: symmetric, one float32 scale (amax / 127) per output channel."""

import torch
import torch.nn.functional as F

from harness import register


@register(kind="quantization", variant="int8_channel", exact=True)
class Int8Channel:
    """Codes round(w / scale) in [-127, 127] (ties to even); all-zero rows get scale 1."""

    def quantize(self, weight: torch.Tensor, group_size: int | None = None) -> dict[str, torch.Tensor]:
        w = weight.detach().to(torch.float32)
        scale = w.abs().amax(dim=1, keepdim=True) / 127.0  # (out, 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        qweight = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
        return {"qweight": qweight, "scale": scale}

    def dequantize(self, packed: dict[str, torch.Tensor]) -> torch.Tensor:
        return packed["qweight"].to(torch.float32) * packed["scale"]

    def linear(self, x: torch.Tensor, packed: dict[str, torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, self.dequantize(packed).to(x.dtype), bias)
