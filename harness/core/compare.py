"""Numerical comparison of a candidate's tensor against the float64 oracle; messages name the worst element.

Exact modules are held to a `TolerancePolicy` (a multiple of the same-dtype reference's error); approximate
ones to their declared `ErrorBound`. `compare_tensor` is the one place that chooses between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.core.contract import ErrorBound
from harness.core.numerics import combined_sqnr_db, error_stats, reference_stats
from harness.core.seeding import dtype_name
from harness.core.tolerance import TolerancePolicy


@dataclass(frozen=True)
class Comparison:
    """One comparison: passed or not, why, and the numbers behind it."""

    passed: bool
    message: str
    metrics: dict[str, float]


def structure(name: str, got: object, shape: torch.Size, dtype: torch.dtype) -> str | None:
    """Type, shape and dtype of a returned tensor; None when all match, else the reason."""
    if type(got) is not torch.Tensor:
        # The contestant sends what it cannot send (e.g. a torch.Tensor subclass) as "<unsendable ...>".
        found = got if isinstance(got, str) and got.startswith("<unsendable ") else type(got).__name__
        return f"{name}: expected type torch.Tensor, found {found}"
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
) -> Comparison:
    """Candidate error <= policy multiple of the same-dtype reference error, plus the policy floor.

    The floor is `policy.floor_eps` eps of max|oracle|, or of `floor_scale` when the kind supplies a larger
    one (the sum of |terms| where the value cancels).
    """
    cand = error_stats(candidate, oracle)
    ref = reference_stats(reference, oracle)
    scale = max(cand.scale, floor_scale or 0.0)
    tol = policy.bound(ref.max_abs, scale, dtype)
    metrics = {
        **cand.metrics(name),
        f"{name}.ref_max_abs_err": ref.max_abs,
        f"{name}.tolerance": tol,
        f"{name}.floor_scale": scale,
    }
    if not bool(torch.isfinite(candidate).all()) and bool(torch.isfinite(oracle).all()):
        count = int((~torch.isfinite(candidate)).sum())
        message = f"{name}: {count} non-finite values where the oracle is finite; {cand.worst()}"
        return Comparison(False, message, metrics)
    if cand.max_abs > tol:
        return Comparison(
            False,
            f"{name}: max abs error {cand.max_abs:.3g} exceeds tolerance {tol:.3g} "
            f"({policy.multiplier:g} x reference error {ref.max_abs:.3g} in {dtype_name(dtype)} "
            f"+ {policy.floor_eps:g} eps x scale {scale:.3g}); {cand.worst()}",
            metrics,
        )
    return Comparison(True, "", metrics)


def compare_approximate(
    name: str,
    candidate: torch.Tensor,
    reference: torch.Tensor,
    oracle: torch.Tensor,
    bound: ErrorBound,
    exact: tuple[torch.dtype, TolerancePolicy, float | None],
) -> Comparison:
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
        return Comparison(True, "", metrics)
    problems = []
    if not bool(torch.isfinite(candidate).all()) and bool(torch.isfinite(oracle).all()):
        problems.append("non-finite values where the oracle is finite")
    if bound.max_abs is not None and cand.max_abs > bound.max_abs + ref.max_abs:
        problems.append(f"max abs error {cand.max_abs:.3g} > bound {bound.max_abs:g} (+ reference {ref.max_abs:.3g})")
    if bound.mean_abs is not None and cand.mean_abs > bound.mean_abs + ref.mean_abs:
        problems.append(
            f"mean abs error {cand.mean_abs:.3g} > bound {bound.mean_abs:g} (+ reference {ref.mean_abs:.3g})"
        )
    if bound.min_cosine is not None and (
        ref.cosine < bound.min_cosine or cand.cosine < bound.min_cosine - (1.0 - ref.cosine)
    ):
        # a reference below the bound cannot widen it: the result had to be as good as the reference (above)
        problems.append(f"cosine {cand.cosine:.5f} < bound {bound.min_cosine:g} (reference {ref.cosine:.5f})")
    if bound.min_sqnr_db is not None:
        allowed = combined_sqnr_db(bound.min_sqnr_db, ref.sqnr_db)
        metrics[f"{name}.sqnr_floor_db"] = allowed
        if cand.sqnr_db < allowed or ref.sqnr_db < bound.min_sqnr_db:
            problems.append(f"SQNR {cand.sqnr_db:.2f} dB < {allowed:.2f} dB (bound {bound.min_sqnr_db:g} dB)")
    if problems:
        return Comparison(False, f"{name}: " + "; ".join(problems) + f"; {cand.worst()}", metrics)
    return Comparison(True, "", metrics)


def compare_tensor(
    name: str,
    candidate: torch.Tensor,
    reference: torch.Tensor,
    oracle: torch.Tensor,
    dtype: torch.dtype,
    policy: TolerancePolicy,
    bound: ErrorBound | None,
    floor_scale: float | None = None,
) -> Comparison:
    """Exact comparison when `bound` is None (exact modules, and baselines), else the approximate one."""
    if bound is None:
        return compare_exact(name, candidate, reference, oracle, dtype, policy, floor_scale)
    return compare_approximate(name, candidate, reference, oracle, bound, (dtype, policy, floor_scale))
