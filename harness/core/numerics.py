"""Error statistics of a tensor against the float64 oracle, all computed in float64: max/mean abs, cosine, SQNR."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ErrorStats:
    """How far one tensor is from the oracle, all computed in float64."""

    max_abs: float
    mean_abs: float
    cosine: float
    sqnr_db: float
    worst_index: tuple[int, ...]
    expected: float  # oracle value at the worst element
    got: float  # candidate value at the worst element
    scale: float  # max |oracle|

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}.max_abs_err": self.max_abs,
            f"{prefix}.mean_abs_err": self.mean_abs,
            f"{prefix}.cosine": self.cosine,
            f"{prefix}.sqnr_db": self.sqnr_db,
        }

    def worst(self) -> str:
        return f"worst element {list(self.worst_index)}: expected {self.expected:.6g}, got {self.got:.6g}"


def sqnr_db(signal: torch.Tensor, noisy: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB; +inf when identical."""
    if not bool(torch.isfinite(noisy).all()):
        return -math.inf
    s, n = signal.double(), noisy.double() - signal.double()
    noise = float((n * n).sum())
    power = float((s * s).sum())
    if noise == 0.0:
        return math.inf
    if power == 0.0:
        return -math.inf
    return 10.0 * math.log10(power / noise)


def error_stats(candidate: torch.Tensor, oracle: torch.Tensor) -> ErrorStats:
    """Error statistics of `candidate` against `oracle`; non-finite candidate values count as infinite error."""
    got, want = candidate.detach().double().flatten(), oracle.detach().double().flatten()
    if got.numel() == 0:
        return ErrorStats(0.0, 0.0, 1.0, math.inf, (), 0.0, 0.0, 0.0)
    delta = got - want
    diff = delta.abs()
    bad = ~torch.isfinite(got)
    finite = not bool(bad.any())
    if not finite:
        diff = torch.where(bad | torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    flat = int(torch.argmax(diff))
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), candidate.shape))
    cosine, sqnr = -1.0, -math.inf
    if finite:
        gg, ww = float(torch.dot(got, got)), float(torch.dot(want, want))
        noise = float(torch.dot(delta, delta))
        cosine = float(torch.dot(got, want)) / math.sqrt(gg * ww) if gg > 0 and ww > 0 else float(gg == ww)
        sqnr = math.inf if noise == 0 else (10.0 * math.log10(ww / noise) if ww > 0 else -math.inf)
    return ErrorStats(
        max_abs=float(diff[flat]),
        mean_abs=float(diff.mean()),
        cosine=cosine,
        sqnr_db=sqnr,
        worst_index=index,
        expected=float(want[flat]),
        got=float(got[flat]),
        scale=float(want.abs().max()),
    )


_reference_stats: dict[tuple[int, int], tuple[weakref.ref[torch.Tensor], ErrorStats]] = {}


def reference_stats(reference: torch.Tensor, oracle: torch.Tensor) -> ErrorStats:
    """error_stats of the same-dtype reference, remembered per (reference, oracle) pair while both live."""
    key = (id(reference), id(oracle))
    cached = _reference_stats.get(key)
    if cached is not None and cached[0]() is reference:
        return cached[1]
    stats = error_stats(reference, oracle)
    _reference_stats[key] = (weakref.ref(reference), stats)
    weakref.finalize(reference, _reference_stats.pop, key, None)
    return stats


def combined_sqnr_db(a_db: float, b_db: float) -> float:
    """SQNR of a signal carrying two independent noises with SQNRs a and b."""
    noise = sum(10.0 ** (-x / 10.0) for x in (a_db, b_db) if math.isfinite(x))
    return math.inf if noise == 0.0 else -10.0 * math.log10(noise)
