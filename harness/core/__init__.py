"""The bottom layer: what a module declares (contract), tolerances, error statistics and comparisons, seeding.

Nothing here imports another part of the harness; everything else may import this.
"""

from harness.core.compare import Comparison, compare_approximate, compare_exact, compare_tensor, structure
from harness.core.contract import ErrorBound, ModuleSource, ModuleSpec
from harness.core.numerics import ErrorStats, combined_sqnr_db, error_stats, sqnr_db
from harness.core.seeding import case_seed, dtype_name, generator, randn, uniform
from harness.core.tolerance import TolerancePolicy

__all__ = [
    "Comparison",
    "ErrorBound",
    "ErrorStats",
    "ModuleSource",
    "ModuleSpec",
    "TolerancePolicy",
    "case_seed",
    "combined_sqnr_db",
    "compare_approximate",
    "compare_exact",
    "compare_tensor",
    "dtype_name",
    "error_stats",
    "generator",
    "randn",
    "sqnr_db",
    "structure",
    "uniform",
]
