"""Sleeps whenever it is called on the same input buffer as its previous call, which happens only while the harness
warms up and sizes its blocks (one input, called repeatedly): blocks come out a few rounds long, and noisy."""

import time

import torch

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class RmsNormSlowWarmup:
    def __init__(self):
        self.previous = None

    def forward(self, x, weight, bias, eps):
        key = (x.data_ptr(), tuple(x.shape))
        if key == self.previous:
            time.sleep(0.002)
        self.previous = key
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
