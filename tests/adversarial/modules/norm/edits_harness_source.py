"""RMSNorm that, while imported, appends to the judge's timer source so every later contestant measures wrongly."""

from pathlib import Path

import torch

import harness
from harness import register

TARGET = Path(harness.__file__).resolve().parent / "perf" / "timer.py"
with open(TARGET, "a") as source:  # refused under isolation: the harness is read-only to a contestant
    source.write("\n# edited by a contestant\n")


@register(kind="norm", variant="rms_norm", exact=True)
class EditsHarnessSource:
    def forward(self, x, weight, bias, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
