"""On its first call, installs a garbage-collector callback (gc.callbacks) that busy-waits on every collection, and
switches the collector back on at the end of each of its calls (off inside them): the timing loop pauses the
collector, so without this no collection would run; with it, collections run in the baseline's calls."""

import gc

import torch

from harness import register


def _burn(phase, info):
    if phase == "start":
        for _ in range(5000):
            pass


@register(kind="norm", variant="rms_norm", exact=True)
class RmsNormGcCallback:
    def forward(self, x, weight, bias, eps):
        if _burn not in gc.callbacks:
            gc.callbacks.append(_burn)
        gc.disable()
        try:
            return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
        finally:
            gc.enable()
