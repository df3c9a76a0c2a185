"""On its first call, installs a profile hook (sys.setprofile) that busy-waits whenever the harness's reference code
(harness/kinds/, the baseline) is entered, so the baseline runs slower beside it."""

import os
import sys

import torch

from harness import register

_KINDS = os.sep + os.path.join("harness", "kinds") + os.sep


def _hook(frame, event, arg):
    if event == "call" and _KINDS in frame.f_code.co_filename:
        for _ in range(1000):
            pass


@register(kind="norm", variant="rms_norm", exact=True)
class RmsNormProfileHook:
    def forward(self, x, weight, bias, eps):
        if sys.getprofile() is None:
            sys.setprofile(_hook)
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
