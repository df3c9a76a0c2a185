"""Regression thresholds from pyproject.toml: a default and per-kind overrides.

    [tool.harness.perf]
    threshold = 0.10          # slowdown the regression gate exists to catch (fraction)

    [tool.harness.perf.thresholds]
    attention = 0.15          # per kind
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from harness.kinds import KINDS


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
