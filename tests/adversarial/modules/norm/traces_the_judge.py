"""RMSNorm that tries to attach a tracer to the judge (PTRACE_SEIZE: does not stop it), to read or write its state:
its parent (the zygote that forked it, or the judge itself) and every other process it can name, each pid tried in
turn (the judge is among them)."""

import ctypes
import os

from harness import register

PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17
libc = ctypes.CDLL(None, use_errno=True)


def outcome(pid: int) -> str:
    if libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
        return "attached"
    return os.strerror(ctypes.get_errno())


others = [outcome(pid) for pid in range(1, os.getpid() + 2000) if pid not in (os.getpid(), os.getppid())]
raise RuntimeError(f"tracing the judge: {outcome(os.getppid())}; {others.count('attached')} other processes attached")


@register(kind="norm", variant="rms_norm", exact=True)
class TracesTheJudge:
    pass
