"""Gaming correctness: each trick gets its exact verdict and a reason that names the trick.

Most show in the unit gate of the corpus run. Outputs cached by address or object id survive the unit gate (every
case has new shapes, and its repeat call new tensors): they are named in the integration gate, where the model calls
the slot again and again. A module right only for its first calls survives the unit gate's ~50 calls and fails the
performance gate, which checks outputs during and after timing.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.results.records import ModuleResult
from tests.adversarial.conftest import corpus_module, judge, reasons

NOT_FROM_INPUTS = "output does not depend on input 'x'"  # unit gate (gates/unit/case.py)
REPLAYED = "a cached or replayed output"  # unit and integration gates (core/lineage.py)


def cases(result: dict[str, Any]) -> list[dict[str, Any]]:
    (gate,) = result["gates"]
    assert gate["gate"] == "unit"
    return list(gate["cases"])


def all_failures(result: dict[str, Any]) -> list[str]:
    return [f for c in cases(result) for f in c["failures"]]


def test_a_view_of_the_input_is_aliasing(corpus_run: dict[str, Any]) -> None:
    result = corpus_module(corpus_run, "returns_view")
    assert result["verdict"] == "fail", result["reason"]
    assert all(any("output shares memory with input 'x'" in f for f in c["failures"]) for c in cases(result))


def test_output_replayed_by_shape_is_named(corpus_run: dict[str, Any]) -> None:
    """The battery's two 4097-element cases share shape and dtype: the second gets the first one's output."""
    result = corpus_module(corpus_run, "caches_by_shape")
    assert result["verdict"] == "fail", result["reason"]
    failed = {(c["case"], c["dtype"]) for c in cases(result) if not c["passed"]}
    assert failed == {("gelu/n4097/large", dtype) for dtype in ("float32", "bfloat16", "float16")}
    for case in cases(result):
        if not case["passed"]:
            assert any(NOT_FROM_INPUTS in f and REPLAYED in f for f in case["failures"]), case["failures"]
            # named, not an autograd error: another call's graph is never backpropagated
            assert not any("backward through the graph" in f for f in case["failures"]), case["failures"]


def test_tensor_found_on_the_heap_is_named(corpus_run: dict[str, Any]) -> None:
    """Whatever tensor of the right shape it finds, the judge's answer is never in the contestant's memory."""
    result = corpus_module(corpus_run, "scans_the_heap")
    assert result["verdict"] == "fail", result["reason"]
    assert all(any(NOT_FROM_INPUTS in f for f in c["failures"]) for c in cases(result)), all_failures(result)[:3]


def test_lazy_tensor_subclass_is_named(corpus_run: dict[str, Any]) -> None:
    result = corpus_module(corpus_run, "lazy_tensor")
    assert result["verdict"] == "fail", result["reason"]
    needle = "output: expected type torch.Tensor, found <unsendable torch.Tensor subclass "
    assert all(any(needle in f and "_Deferred" in f for f in c["failures"]) for c in cases(result))


def test_right_only_for_power_of_two_head_dims(corpus_run: dict[str, Any]) -> None:
    """Every case with a power-of-two head dim passes; every other one fails in float32 (in bfloat16 a saturated
    softmax can hide the wrong scale), each failure naming the worst element."""
    result = corpus_module(corpus_run, "pads_head_dim")
    assert result["verdict"] == "fail", result["reason"]
    odd = [c for c in cases(result) if c["sizes"]["D"] & (c["sizes"]["D"] - 1)]
    assert {c["sizes"]["D"] for c in odd} == {24, 80, 96}
    assert all(c["passed"] for c in cases(result) if c not in odd)
    assert all(not c["passed"] for c in odd if c["dtype"] == "float32")
    for case in odd:
        if not case["passed"]:
            assert any("exceeds tolerance" in f and "worst element" in f for f in case["failures"]), case


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("adds_random_noise", "output: two calls with the same inputs gave different results"),
        ("dithers_sometimes", "linear: two calls with the same inputs gave different outputs"),
    ],
)
def test_nondeterministic_output_is_named(corpus_run: dict[str, Any], name: str, needle: str) -> None:
    result = corpus_module(corpus_run, name)
    assert result["verdict"] == "fail", result["reason"]
    assert needle in result["reason"] or any(needle in f for f in all_failures(result)), all_failures(result)[:3]


@pytest.mark.parametrize("name", ["caches_by_id", "caches_by_data_ptr", "correct_for_first_calls"])
def test_unit_gate_alone_does_not_see_it(corpus_run: dict[str, Any], name: str) -> None:
    """Every unit case is right: these need the later gates (the tests below)."""
    result = corpus_module(corpus_run, name)
    assert result["verdict"] == "pass", result["reason"]


@pytest.fixture(scope="module")
def integrated() -> dict[str, ModuleResult]:
    return judge(["caches_by_id", "caches_by_data_ptr"], ("unit", "integration"))


@pytest.mark.parametrize(("name", "slot"), [("caches_by_id", "norm"), ("caches_by_data_ptr", "attention")])
def test_replayed_output_is_named_in_training(integrated: dict[str, ModuleResult], name: str, slot: str) -> None:
    result = integrated[name]
    unit, integration = result.gates
    assert unit.verdict == "pass" and integration.verdict == "fail", reasons(result)
    assert result.verdict == "fail"
    assert [c.case for c in integration.cases] == ["integration/text", "integration/mqar"]
    for case in integration.cases:
        (failure,) = case.failures
        # The same tensor object again ("is the very tensor it returned on call N"), or one whose graph misses
        # this call's inputs ("does not depend on its input"): either way named, never an autograd error.
        assert failure.startswith(f"training stopped: the {slot} module's output on call "), failure
        assert "is the very tensor it returned on call" in failure or "does not depend on its input" in failure
        assert REPLAYED in failure, failure


def test_right_only_for_the_first_calls_fails_the_performance_gate(small_cases_only: None) -> None:
    result = judge(["correct_for_first_calls"], ("unit", "perf"))["correct_for_first_calls"]
    unit, perf = result.gates
    assert unit.verdict == "pass", unit.reason
    assert perf.verdict == "fail" and result.verdict == "fail", perf.reason
    assert "candidate output" in perf.reason and "exceeds tolerance" in perf.reason, perf.reason
