"""FP8 (e4m3fn) weight-only quantization with one float32 scale (amax / 448) per output channel."""

import torch
import torch.nn.functional as F

from harness import register

_E4M3_MAX = 448.0  # largest finite float8_e4m3fn value


@register(kind="quantization", variant="fp8_e4m3", exact=True)
class Fp8E4m3:
    """Codes are w / scale saturated to +-448 and cast (nearest, ties to even); all-zero rows get scale 1."""

    def quantize(self, weight: torch.Tensor, group_size: int | None = None) -> dict[str, torch.Tensor]:
        w = weight.detach().to(torch.float32)
        scale = w.abs().amax(dim=1, keepdim=True) / _E4M3_MAX  # (out, 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        qweight = (w / scale).clamp(-_E4M3_MAX, _E4M3_MAX).to(torch.float8_e4m3fn)
        return {"qweight": qweight, "scale": scale}

    def dequantize(self, packed: dict[str, torch.Tensor]) -> torch.Tensor:
        return packed["qweight"].to(torch.float32) * packed["scale"]

    def linear(self, x: torch.Tensor, packed: dict[str, torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, self.dequantize(packed).to(x.dtype), bias)
