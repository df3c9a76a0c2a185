"""RMSNorm that forks a child which starts its own session, leaves the contestant's directory and becomes
`sleep 86402.25`, so it no longer looks like a contestant at all."""

import os

import torch

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class LeavesASession:
    def __init__(self):
        if os.fork() == 0:
            os.setsid()
            os.chdir("/")
            os.execv("/bin/sleep", ["sleep", "86402.25"])

    def forward(self, x, weight, bias, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
