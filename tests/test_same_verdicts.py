"""The verdict comparison used to show that a harness change changes no verdict: it sees what it must."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.same_verdicts import differences


def _document() -> dict[str, dict[str, Any]]:
    unit = {
        "gate": "unit",
        "verdict": "pass",
        "reason": "1 cases passed",
        "cases": [
            {
                "case": "rms_norm/r1/normal",
                "dtype": "float32",
                "passed": True,
                "failures": [],
                "metrics": {"output.max_abs_err": 1e-7, "seconds": 0.1},
            }
        ],
    }
    perf = {
        "gate": "perf",
        "verdict": "pass",
        "reason": "vs reference: time -3.1% [-4.0%, -2.2%]",
        "cases": [
            {"case": "perf/forward/x", "dtype": "float32", "passed": True, "failures": [], "metrics": {"ratio": 0.97}}
        ],
    }
    module = {
        "name": "m",
        "source": "m.py",
        "verdict": "pass",
        "kind": "norm",
        "variants": ["rms_norm"],
        "exact": True,
        "bound": None,
        "gates": [unit, perf],
    }
    return {"m (m.py)": module}


def test_same_document_and_timing_changes_agree() -> None:
    before, after = _document(), _document()
    gates = after["m (m.py)"]["gates"]
    gates[0]["cases"][0]["metrics"]["seconds"] = 9.0  # a duration
    gates[1]["reason"] = "vs reference: time -2.0% [-3.0%, -1.0%]"  # a measurement
    gates[1]["cases"][0]["metrics"]["ratio"] = 0.98
    assert differences(before, after) == []


def test_verdicts_cases_failures_and_numbers_are_compared() -> None:
    before = _document()
    edits = [
        lambda m: m.update(verdict="fail"),
        lambda m: m["gates"][1].update(verdict="tampered"),
        lambda m: m["gates"][0]["cases"][0].update(passed=False),
        lambda m: m["gates"][0]["cases"][0].update(failures=["output: wrong"]),
        lambda m: m["gates"][0]["cases"][0]["metrics"].update({"output.max_abs_err": 2e-7}),
        lambda m: m["gates"][0].update(reason="0 cases passed"),
        lambda m: m["gates"].pop(),
    ]
    for edit in edits:
        after = copy.deepcopy(before)
        edit(after["m (m.py)"])
        assert differences(before, after), edit
    assert differences(before, {}) == ["m (m.py): only in the first document"]
