"""RMSNorm that checks whether it could signal the judge (signal 0: the permission check only, nothing is sent): its
parent (the zygote that forked it, or the judge itself) and every other process it can name, each pid tried in turn
(the judge is among them)."""

import os

from harness import register


def outcome(pid: int) -> str:
    try:
        os.kill(pid, 0)
        return "allowed"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


others = [outcome(pid) for pid in range(1, os.getpid() + 2000) if pid not in (os.getpid(), os.getppid())]
raise RuntimeError(
    f"signalling the judge: {outcome(os.getppid())}; {others.count('allowed')} other processes allowed, "
    f"{others.count('Operation not permitted')} refused"
)


@register(kind="norm", variant="rms_norm", exact=True)
class SignalsTheJudge:
    pass
