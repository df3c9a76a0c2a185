"""RMSNorm that remembers each output by the Python object id (and shape and dtype) of x and replays it.

Python reuses the id of a freed object for the next one, so a later input can get an earlier call's answer.
"""

import torch

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class CachesById:
    def __init__(self):
        self.outputs = {}

    def forward(self, x, weight, bias, eps):
        key = (id(x), tuple(x.shape), x.dtype)
        if key not in self.outputs:
            self.outputs[key] = torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
        return self.outputs[key]
