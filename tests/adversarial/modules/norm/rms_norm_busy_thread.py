"""Starts a thread at import that spins forever, competing for the core the baseline is timed on.

It spins in hashing, which releases the GIL: the thread takes the core's time, not the interpreter's (a thread that
held the GIL would slow the worker's every request, not just the timed calls)."""

import hashlib
import threading

import torch

from harness import register

_BLOCK = bytes(1 << 20)


def _spin():
    while True:
        hashlib.sha256(_BLOCK).digest()


threading.Thread(target=_spin, daemon=True).start()


@register(kind="norm", variant="rms_norm", exact=True)
class RmsNormBusyThread:
    def forward(self, x, weight, bias, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
