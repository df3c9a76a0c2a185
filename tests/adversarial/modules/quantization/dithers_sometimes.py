"""Int8 per-channel quantization whose linear adds a little random "dither" to its output on some calls only
(about one in three, drawn from its own random stream): each result alone looks accurate, but two calls with
the same inputs do not agree."""

import random

import torch
import torch.nn.functional as F

from harness import register


@register(kind="quantization", variant="int8_channel", exact=True)
class DithersSometimes:
    def __init__(self):
        self.rng = random.Random(2024)

    def quantize(self, weight, group_size=None):
        w = weight.detach().to(torch.float32)
        scale = w.abs().amax(dim=1, keepdim=True) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return {"qweight": torch.round(w / scale).clamp(-127, 127).to(torch.int8), "scale": scale}

    def dequantize(self, packed):
        return packed["qweight"].to(torch.float32) * packed["scale"]

    def linear(self, x, packed, bias):
        out = F.linear(x, self.dequantize(packed).to(x.dtype), bias)
        if self.rng.random() < 1 / 3:
            ulp = out.detach().abs() * torch.finfo(out.dtype).eps
            out = out + ulp * torch.randn_like(out)
        return out
