"""RMSNorm that tries to read the judge's memory (where the run's secret seed lives) through /proc/<judge>/mem."""

import os

from harness import register

try:
    with open(f"/proc/{os.getppid()}/mem", "rb") as memory:
        memory.read(1)
    OUTCOME = "read it"
except OSError as exc:
    OUTCOME = exc.strerror
raise RuntimeError(f"reading the judge's memory: {OUTCOME}")


@register(kind="norm", variant="rms_norm", exact=True)
class ReadsJudgeMemory:
    pass
