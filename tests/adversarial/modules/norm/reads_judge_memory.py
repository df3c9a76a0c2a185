"""RMSNorm that tries to read the judge's memory (where the run's secret seed lives) through /proc/<pid>/mem: its
parent's (the zygote that forked it, or the judge itself) and every other process's it can name, each pid tried in
turn (the judge is among them)."""

import os

from harness import register


def outcome(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/mem", "rb") as memory:
            memory.read(1)
        return "read it"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


others = [outcome(pid) for pid in range(1, os.getpid() + 2000) if pid not in (os.getpid(), os.getppid())]
raise RuntimeError(
    f"reading the judge's memory: {outcome(os.getppid())}; {others.count('read it')} other processes read, "
    f"{others.count('Permission denied')} refused"
)


@register(kind="norm", variant="rms_norm", exact=True)
class ReadsJudgeMemory:
    pass
