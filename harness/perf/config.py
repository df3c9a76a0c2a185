"""The performance gate's adjustable settings, and its regression thresholds from pyproject.toml.

[tool.harness.perf]
threshold = 0.10          # slowdown the regression gate exists to catch (fraction)

[tool.harness.perf.thresholds]
attention = 0.15          # per kind
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.kinds import KINDS


@dataclass(frozen=True)
class PerfSettings:
    """How long and how precisely each (case, mode) is measured, and what counts as a change."""

    threshold: float = 0.10  # the slowdown the regression gate exists to catch (see stats.decide)
    warmup_s: float = 0.2  # per (case, mode), both sides, before any timed block
    block_s: float = 0.1  # target duration of one block (both sides); sets the rounds per block
    min_blocks: int = 10  # blocks before the interval may stop the measurement
    max_blocks: int = 80  # blocks after which the measurement stops whatever the interval
    budget_s: float = 4.0  # per (case, mode): stop when the interval is narrow enough or this time is spent
    target_half_width: float = 0.008  # stop once the 99% interval is within about +-0.8%
    pool_bytes: int = 48 * 2**20  # input pool per side (within POOL_ENTRIES)
    retain_bytes: int = 384 * 2**20  # outputs of one block held for the judge's checks (caps rounds per block)
    samples: int = 3  # timed calls per side per (case, mode) whose outputs the judge checks
    cross_check_factor: float = 3.0  # baseline beside the candidate at most this much slower than alone
    busy_thread_ms: float = 20.0  # CPU another thread of the contestant may use during one block

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"PerfSettings.threshold must be a fraction in (0, 1), got {self.threshold!r}")
        if self.samples > self.min_blocks or self.min_blocks < 2 or self.max_blocks < self.min_blocks:
            raise ValueError(f"PerfSettings needs 2 <= min_blocks <= max_blocks and samples <= min_blocks, got {self}")


class PerfConfigError(ValueError):
    """A [tool.harness.perf] table that cannot be used; the message names the file, the key and the fix."""


def load_thresholds(pyproject: Path) -> tuple[float | None, dict[str, float]]:
    """(default threshold or None, per-kind thresholds) from `pyproject`; nothing when the table is absent."""
    if not pyproject.is_file():
        return None, {}
    table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("harness", {}).get("perf", {})
    default = table.get("threshold")
    per_kind = table.get("thresholds", {})
    where = f"{pyproject} [tool.harness.perf]"
    for name, value in [("threshold", default), *((f"thresholds.{k}", v) for k, v in per_kind.items())]:
        if value is not None and (not isinstance(value, (int, float)) or not 0 < value < 1):
            raise PerfConfigError(f"{where}: {name} must be a fraction between 0 and 1 (0.10 = 10%), found {value!r}.")
    unknown = sorted(set(per_kind) - set(KINDS))
    if unknown:
        raise PerfConfigError(f"{where}: thresholds for unknown kinds {unknown}; expected some of {sorted(KINDS)}.")
    return (None if default is None else float(default)), {k: float(v) for k, v in per_kind.items()}
