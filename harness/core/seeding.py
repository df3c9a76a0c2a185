"""Deterministic inputs: per-case seeds derived from the run's secret seed, and the samplers every side uses."""

from __future__ import annotations

import hashlib

import torch


def case_seed(run_seed: int, case_id: str, dtype: torch.dtype, salt: str = "") -> int:
    """Deterministic per-case seed derived from the run's secret seed."""
    digest = hashlib.sha256(f"{run_seed}|{case_id}|{dtype}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return gen


def randn(shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Normal samples drawn in float64 and rounded once to `dtype`, so every dtype sees the same values."""
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def uniform(shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator, low: float, high: float) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low).to(dtype)


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32: how results and messages name a dtype."""
    return str(dtype).removeprefix("torch.")
