"""An int8 quantizer written against an older contract: quantize(weight) without the group_size parameter."""

import torch
import torch.nn.functional as F

from harness import register


@register(kind="quantization", variant="int8_channel", exact=True)
class WrongSignature:
    def quantize(self, weight):
        w = weight.detach().to(torch.float32)
        scale = (w.abs().amax(dim=1, keepdim=True) / 127.0).clamp_min(1e-12)
        return {"qweight": torch.round(w / scale).clamp(-127, 127).to(torch.int8), "scale": scale}

    def dequantize(self, packed):
        return packed["qweight"].to(torch.float32) * packed["scale"]

    def linear(self, x, packed, bias):
        return F.linear(x, self.dequantize(packed).to(x.dtype), bias)
