"""Numerical comparison of a candidate's tensor against the float64 oracle; messages name the worst element."""

from __future__ import annotations

import math
import weakref
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
    floor_scale: float | None = None,
) -> Verdict:
    """Candidate error <= policy multiple of the same-dtype reference error, plus the policy floor.

    The floor is `policy.floor_eps` eps of max|oracle|, or of `floor_scale` when the kind supplies a larger
    one (the sum of |terms| where the value cancels).
    """
    cand = error_stats(candidate, oracle)
    ref = reference_stats(reference, oracle)
    scale = max(cand.scale, floor_scale or 0.0)
    tol = policy.bound(ref.max_abs, scale, dtype)
    metrics = {**cand.metrics(name), f"{name}.ref_max_abs_err": ref.max_abs, f"{name}.tolerance": tol,
               f"{name}.floor_scale": scale}
    if not bool(torch.isfinite(candidate).all()) and bool(torch.isfinite(oracle).all()):
        count = int((~torch.isfinite(candidate)).sum())
        return Verdict(False, f"{name}: {count} non-finite values where the oracle is finite; {cand.worst()}", metrics)
    if cand.max_abs > tol:
        return Verdict(
            False,
            f"{name}: max abs error {cand.max_abs:.3g} exceeds tolerance {tol:.3g} "
            f"({policy.multiplier:g} x reference error {ref.max_abs:.3g} in {_short(dtype)} "
            f"+ {policy.floor_eps:g} eps x scale {scale:.3g}); {cand.worst()}",
            metrics,
        )
    return Verdict(True, "", metrics)


def combined_sqnr_db(a_db: float, b_db: float) -> float:
    """SQNR of a signal carrying two independent noises with SQNRs a and b."""
    noise = sum(10.0 ** (-x / 10.0) for x in (a_db, b_db) if math.isfinite(x))
    return math.inf if noise == 0.0 else -10.0 * math.log10(noise)


def compare_approximate(
    name: str,
    candidate: torch.Tensor,
    reference: torch.Tensor,
    oracle: torch.Tensor,
    bound: ErrorBound,
    exact: tuple[torch.dtype, TolerancePolicy, float | None],
) -> Verdict:
    """Each field of the declared bound, widened only by the reference's own error in the same dtype.

    A result that meets the exact tolerance (`exact` = dtype, policy, floor scale, as `compare_exact` takes
    them) always passes: declaring "approximate" never makes a check stricter. That matters where relative
    measures are noise: gradients that underflow in float16, or a saturated softmax whose gradient is a few
    ulps of its condition scale, where a cosine of 0 says nothing about the module.
    """
    cand = error_stats(candidate, oracle)
    ref = reference_stats(reference, oracle)
    metrics = cand.metrics(name)
    dtype, policy, floor_scale = exact
    if bool(torch.isfinite(candidate).all()) and cand.max_abs <= policy.bound(
        ref.max_abs, max(cand.scale, floor_scale or 0.0), dtype
    ):
        return Verdict(True, "", metrics)
    problems = []
    if not bool(torch.isfinite(candidate).all()) and bool(torch.isfinite(oracle).all()):
        problems.append("non-finite values where the oracle is finite")
    if bound.max_abs is not None and cand.max_abs > bound.max_abs + ref.max_abs:
        problems.append(f"max abs error {cand.max_abs:.3g} > bound {bound.max_abs:g} (+ reference {ref.max_abs:.3g})")
    if bound.mean_abs is not None and cand.mean_abs > bound.mean_abs + ref.mean_abs:
        problems.append(
            f"mean abs error {cand.mean_abs:.3g} > bound {bound.mean_abs:g} (+ reference {ref.mean_abs:.3g})"
        )
    if bound.min_cosine is not None and (ref.cosine < bound.min_cosine or
                                         cand.cosine < bound.min_cosine - (1.0 - ref.cosine)):
        # a reference below the bound cannot widen it: the result had to be as good as the reference (above)
        problems.append(f"cosine {cand.cosine:.5f} < bound {bound.min_cosine:g} (reference {ref.cosine:.5f})")
    if bound.min_sqnr_db is not None:
        allowed = combined_sqnr_db(bound.min_sqnr_db, ref.sqnr_db)
        metrics[f"{name}.sqnr_floor_db"] = allowed
        if cand.sqnr_db < allowed or ref.sqnr_db < bound.min_sqnr_db:
            problems.append(f"SQNR {cand.sqnr_db:.2f} dB < {allowed:.2f} dB (bound {bound.min_sqnr_db:g} dB)")
    if problems:
        return Verdict(False, f"{name}: " + "; ".join(problems) + f"; {cand.worst()}", metrics)
    return Verdict(True, "", metrics)


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
