"""RMSNorm that tries to attach a tracer to the judge (PTRACE_SEIZE: does not stop it), to read or write its state."""

import ctypes
import os

from harness import register

PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17
libc = ctypes.CDLL(None, use_errno=True)
judge = os.getppid()
if libc.ptrace(PTRACE_SEIZE, judge, None, None) == 0:
    libc.ptrace(PTRACE_DETACH, judge, None, None)
    OUTCOME = "attached"
else:
    OUTCOME = os.strerror(ctypes.get_errno())
raise RuntimeError(f"tracing the judge: {OUTCOME}")


@register(kind="norm", variant="rms_norm", exact=True)
class TracesTheJudge:
    pass
