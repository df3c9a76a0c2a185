"""The tolerance policy passes honest low-precision results and fails silent downcasts."""

from __future__ import annotations

import math

import torch

from harness.core.compare import compare_approximate, compare_exact
from harness.core.contract import ErrorBound
from harness.core.numerics import error_stats
from harness.core.tolerance import TolerancePolicy


def softmax_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 257, generator=gen, dtype=torch.float64).to(dtype)
    oracle = torch.softmax(x.double(), dim=-1)
    reference = torch.softmax(x, dim=-1)
    return x, reference, oracle


def test_honest_float32_passes_and_bf16_inside_fails() -> None:
    x, reference, oracle = softmax_case(torch.float32)
    honest = torch.softmax(x.double(), dim=-1).float()  # even more accurate than the reference
    downcast = torch.softmax(x.bfloat16(), dim=-1).float()
    policy = TolerancePolicy()
    assert compare_exact("out", honest, reference, oracle, torch.float32, policy).passed
    verdict = compare_exact("out", downcast, reference, oracle, torch.float32, policy)
    assert not verdict.passed
    assert "exceeds tolerance" in verdict.message and "worst element" in verdict.message


def test_bf16_result_is_judged_against_bf16_reference_error() -> None:
    x, reference, oracle = softmax_case(torch.bfloat16)
    via_fp32 = torch.softmax(x.float(), dim=-1).bfloat16()
    assert compare_exact("out", via_fp32, reference, oracle, torch.bfloat16, TolerancePolicy()).passed


def test_worst_element_is_reported() -> None:
    oracle = torch.zeros(3, 4, dtype=torch.float64)
    got = oracle.clone()
    got[2, 1] = 0.5
    stats = error_stats(got, oracle)
    assert stats.worst_index == (2, 1) and stats.got == 0.5 and stats.expected == 0.0
    assert stats.max_abs == 0.5


def test_nan_is_infinite_error() -> None:
    oracle = torch.ones(5, dtype=torch.float64)
    got = oracle.clone()
    got[3] = float("nan")
    verdict = compare_exact("out", got.float(), oracle.float(), oracle, torch.float32, TolerancePolicy())
    assert not verdict.passed and "non-finite" in verdict.message
    assert error_stats(got, oracle).max_abs == math.inf


def test_approximate_bound_cannot_be_met_by_garbage() -> None:
    _, reference, oracle = softmax_case(torch.float32)
    uniform = torch.full_like(reference, 1.0 / reference.shape[-1])
    exact = (torch.float32, TolerancePolicy(), None)
    verdict = compare_approximate("out", uniform, reference, oracle, ErrorBound(min_cosine=0.99, min_sqnr_db=20), exact)
    assert not verdict.passed and "cosine" in verdict.message and "SQNR" in verdict.message


def test_approximate_result_as_good_as_the_reference_passes_where_the_dtype_cannot_resolve() -> None:
    oracle = torch.full((64,), 1e-9, dtype=torch.float64)
    oracle[::2] = -1e-9
    reference = torch.zeros(64, dtype=torch.float16)  # underflows: cosine 0, SQNR 0 dB
    candidate = torch.zeros(64, dtype=torch.float16)
    exact = (torch.float16, TolerancePolicy(), None)
    bound = ErrorBound(min_cosine=0.975, min_sqnr_db=13)
    assert compare_approximate("grad", candidate, reference, oracle, bound, exact).passed
    worse = torch.full((64,), 1e-3, dtype=torch.float16)
    assert not compare_approximate("grad", worse, reference, oracle, ErrorBound(min_cosine=0.975), exact).passed


def test_approximate_is_never_stricter_than_exact() -> None:
    """A zero gradient a few ulps of its condition scale from a tiny oracle: exact passes it, so approximate must."""
    oracle = torch.linspace(-1e-12, 1e-12, 64, dtype=torch.float64)
    reference = oracle.float()
    candidate = torch.zeros(64)  # cosine 0, SQNR 0 dB, yet 1e-12 off where the condition scale is 1
    policy = TolerancePolicy()
    assert compare_exact("grad", candidate, reference, oracle, torch.float32, policy, floor_scale=1.0).passed
    bound = ErrorBound(min_cosine=0.95, min_sqnr_db=10)
    assert compare_approximate("grad", candidate, reference, oracle, bound, (torch.float32, policy, 1.0)).passed
    assert not compare_approximate("grad", candidate, reference, oracle, bound, (torch.float32, policy, None)).passed
