"""Numerical comparison of a candidate's tensor against the float64 oracle; messages name the worst element."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.contract import ErrorBound
from harness.kinds.base import TolerancePolicy


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
    got, want = candidate.double(), oracle.double()
    diff = (got - want).abs()
    diff = torch.where(torch.isnan(diff) | torch.isinf(got), torch.full_like(diff, math.inf), diff)
    if diff.numel() == 0:
        return ErrorStats(0.0, 0.0, 1.0, math.inf, (), 0.0, 0.0, 0.0)
    flat = int(torch.argmax(torch.nan_to_num(diff, posinf=1e308)))
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    finite = bool(torch.isfinite(got).all())
    cosine = float(torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)) if finite else -1.0
    if finite and float(got.norm()) == 0.0 and float(want.norm()) == 0.0:
        cosine = 1.0
    return ErrorStats(
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        cosine=cosine,
        sqnr_db=sqnr_db(want, got) if finite else -math.inf,
        worst_index=index,
        expected=float(want.flatten()[flat]),
        got=float(got.flatten()[flat]),
        scale=float(want.abs().max()) if want.numel() else 0.0,
    )


@dataclass(frozen=True)
class Verdict:
    """One comparison: passed or not, why, and the numbers behind it."""

    passed: bool
    message: str
    metrics: dict[str, float]


def structure(name: str, got: object, shape: torch.Size, dtype: torch.dtype) -> str | None:
    """Type, shape and dtype of a returned tensor; None when all match, else the reason."""
    if type(got) is not torch.Tensor:
        return f"{name}: expected type torch.Tensor, found {type(got).__name__}"
    if got.shape != shape:
        return f"{name}: expected shape {tuple(shape)}, found {tuple(got.shape)}"
    if got.dtype != dtype:
        return f"{name}: expected dtype {dtype}, found {got.dtype}"
    return None


def compare_exact(
    name: str,
    candidate: torch.Tensor,
    reference: torch.Tensor,
    oracle: torch.Tensor,
    dtype: torch.dtype,
    policy: TolerancePolicy,
) -> Verdict:
    """Candidate error <= policy multiple of the same-dtype reference error, plus the policy floor."""
    cand = error_stats(candidate, oracle)
    ref = error_stats(reference, oracle)
    tol = policy.bound(ref.max_abs, cand.scale, dtype)
    metrics = {**cand.metrics(name), f"{name}.ref_max_abs_err": ref.max_abs, f"{name}.tolerance": tol}
    if not bool(torch.isfinite(candidate).all()) and bool(torch.isfinite(oracle).all()):
        count = int((~torch.isfinite(candidate)).sum())
        return Verdict(False, f"{name}: {count} non-finite values where the oracle is finite; {cand.worst()}", metrics)
    if cand.max_abs > tol:
        return Verdict(
            False,
            f"{name}: max abs error {cand.max_abs:.3g} exceeds tolerance {tol:.3g} "
            f"({policy.multiplier:g} x reference error {ref.max_abs:.3g} in {_short(dtype)} "
            f"+ {policy.floor_eps:g} eps x {cand.scale:.3g}); {cand.worst()}",
            metrics,
        )
    return Verdict(True, "", metrics)


def combined_sqnr_db(a_db: float, b_db: float) -> float:
    """SQNR of a signal carrying two independent noises with SQNRs a and b."""
    noise = sum(10.0 ** (-x / 10.0) for x in (a_db, b_db) if math.isfinite(x))
    return math.inf if noise == 0.0 else -10.0 * math.log10(noise)


def compare_approximate(
    name: str, candidate: torch.Tensor, reference: torch.Tensor, oracle: torch.Tensor, bound: ErrorBound
) -> Verdict:
    """Each field of the declared bound, widened only by the reference's own error in the same dtype."""
    cand = error_stats(candidate, oracle)
    ref = error_stats(reference, oracle)
    metrics = cand.metrics(name)
    problems = []
    if not bool(torch.isfinite(candidate).all()) and bool(torch.isfinite(oracle).all()):
        problems.append("non-finite values where the oracle is finite")
    if bound.max_abs is not None and cand.max_abs > bound.max_abs + ref.max_abs:
        problems.append(f"max abs error {cand.max_abs:.3g} > bound {bound.max_abs:g} (+ reference {ref.max_abs:.3g})")
    if bound.mean_abs is not None and cand.mean_abs > bound.mean_abs + ref.mean_abs:
        problems.append(
            f"mean abs error {cand.mean_abs:.3g} > bound {bound.mean_abs:g} (+ reference {ref.mean_abs:.3g})"
        )
    if bound.min_cosine is not None and cand.cosine < bound.min_cosine - (1.0 - ref.cosine):
        problems.append(f"cosine {cand.cosine:.5f} < bound {bound.min_cosine:g} (reference {ref.cosine:.5f})")
    if bound.min_sqnr_db is not None:
        allowed = combined_sqnr_db(bound.min_sqnr_db, ref.sqnr_db)
        metrics[f"{name}.sqnr_floor_db"] = allowed
        if cand.sqnr_db < allowed:
            problems.append(f"SQNR {cand.sqnr_db:.2f} dB < {allowed:.2f} dB (bound {bound.min_sqnr_db:g} dB)")
    if problems:
        return Verdict(False, f"{name}: " + "; ".join(problems) + f"; {cand.worst()}", metrics)
    return Verdict(True, "", metrics)


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
