"""benchmarks/process_offsets.py: the summary of per-process figures (the measurement itself runs on the machine)."""

from __future__ import annotations

import math

import pytest

from benchmarks.process_offsets import spread, summarize


def figures(median_ns: float, aa: tuple[float, float, float], pool: tuple[float, float, float]) -> dict[str, float]:
    return {
        "median_ns": median_ns,
        "cold_factor": 10.0,
        "first_of_block_factor": 1.5,
        "aa_ratio": aa[0],
        "aa_low": aa[1],
        "aa_high": aa[2],
        "pool_ratio": pool[0],
        "pool_low": pool[1],
        "pool_high": pool[2],
    }


def test_spread_of_per_process_medians() -> None:
    s = spread([10.0, 20.0, 40.0])
    assert (s["median"], s["min"], s["max"], s["max_over_min"]) == (20.0, 10.0, 40.0, 4.0)
    assert s["log_sd_pct"] == pytest.approx(100 * math.log(2))  # logs 0, ln2, 2 ln2: sd ln2


def test_summary_counts_intervals_that_exclude_one_per_arm_and_case() -> None:
    processes = [
        {"arm": "gate", "cases": {"64x1024": figures(30e3, (1.0, 0.99, 1.01), (1.02, 1.01, 1.03))}},
        {"arm": "gate", "cases": {"64x1024": figures(33e3, (0.98, 0.97, 0.99), (1.0, 0.99, 1.01))}},
        {"arm": "unpinned", "cases": {"64x1024": figures(31e3, (1.0, 0.99, 1.01), (0.97, 0.96, 0.98))}},
    ]
    rows = {r["arm"]: r for r in summarize(processes)}
    gate = rows["gate"]
    assert gate["processes"] == 2 and gate["median_us"]["max_over_min"] == pytest.approx(1.1)
    assert (gate["aa_min"], gate["aa_max"], gate["aa_excluding_1"]) == (0.98, 1.0, 1)
    assert (gate["pool_excluding_1"], rows["unpinned"]["pool_excluding_1"]) == (1, 1)
