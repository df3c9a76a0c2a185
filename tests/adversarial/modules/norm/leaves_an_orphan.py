"""RMSNorm that double-forks (without a new session): the grandchild is orphaned at once and sleeps forever."""

import os
import time

import torch

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class LeavesAnOrphan:
    def __init__(self):
        child = os.fork()
        if child == 0:
            if os.fork() == 0:
                while True:
                    time.sleep(1)
            os._exit(0)
        os.waitpid(child, 0)  # the middle process is gone before the first call: the grandchild has no parent here

    def forward(self, x, weight, bias, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
