"""GELU that remembers its output per input shape and dtype and replays it for any later input of that shape.

A benchmark that feeds the same tensor again and again would never notice; the unit battery holds two cases of
one shape (4097 elements, normal and large values), and the integration model calls the slot with one shape on
every layer and step.
"""

import torch

from harness import register


@register(kind="activation", variant="gelu", exact=True)
class CachesByShape:
    def __init__(self):
        self.outputs = {}

    def forward(self, x, gate, up):
        key = (tuple(x.shape), x.dtype)
        if key not in self.outputs:
            self.outputs[key] = torch.nn.functional.gelu(x)
        return self.outputs[key]
