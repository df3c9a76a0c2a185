"""The tolerance policy for exact modules: a multiple of the same-dtype reference's error plus an eps floor."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TolerancePolicy:
    """When an exact module's result is close enough to the float64 oracle.

    Following the FlashAttention tests: the candidate's error against the oracle may be at most
    `multiplier` times the error of the kind's reference run in the same dtype, plus `floor_eps` machine
    epsilons of that dtype times the oracle's largest magnitude. The reference's own error sets the scale,
    so honest low-precision results pass while a silent downcast or a sloppy reduction does not.
    """

    multiplier: float = 3.0  # allowed ratio of candidate error to same-dtype reference error
    floor_eps: float = 4.0  # absolute floor, in machine epsilons of the dtype, relative to max|oracle|

    def __post_init__(self) -> None:
        if self.multiplier < 1.0 or self.floor_eps < 0.0:
            raise ValueError(f"TolerancePolicy needs multiplier >= 1 and floor_eps >= 0, got {self}")

    def bound(self, reference_error: float, oracle_scale: float, dtype: torch.dtype) -> float:
        """Largest candidate error (max abs against the oracle) that still passes."""
        ref = reference_error if reference_error == reference_error and reference_error != float("inf") else 0.0
        floor = self.floor_eps * torch.finfo(dtype).eps * max(oracle_scale, torch.finfo(dtype).tiny)
        return self.multiplier * ref + floor
