"""RMSNorm that, while imported, plants a .pth startup hook in site-packages, to run in every later interpreter."""

import site
from pathlib import Path

import torch

from harness import register

HOOK = Path(site.getsitepackages()[0]) / "zz_contestant_hook.pth"
HOOK.write_text("import os; os.environ['CONTESTANT_HOOK'] = '1'\n")  # refused under isolation


@register(kind="norm", variant="rms_norm", exact=True)
class EditsStartupHook:
    def forward(self, x, weight, bias, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
