"""RMSNorm that forks a plain child which sleeps forever, hoping it outlives the run."""

import os
import time

import torch

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class LeavesAChild:
    def __init__(self):
        if os.fork() == 0:
            while True:
                time.sleep(1)

    def forward(self, x, weight, bias, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
