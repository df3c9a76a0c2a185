"""RMSNorm that checks whether it could signal the judge (signal 0: the permission check only, nothing is sent)."""

import os

from harness import register

try:
    os.kill(os.getppid(), 0)
    OUTCOME = "allowed"
except OSError as exc:
    OUTCOME = exc.strerror
raise RuntimeError(f"signalling the judge: {OUTCOME}")


@register(kind="norm", variant="rms_norm", exact=True)
class SignalsTheJudge:
    pass
