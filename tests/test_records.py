"""Result records: the enums, the gate table and the results schema name the same gates and verdicts."""

from __future__ import annotations

import math

from harness.gates import GATES
from harness.results.document import load_schema
from harness.results.records import (
    MODULE_VERDICTS,
    CaseResult,
    GateName,
    GateResult,
    ModuleResult,
    Verdict,
    overall,
)


def test_gate_names_agree_across_enum_table_and_schema() -> None:
    schema = load_schema()
    schema_gates = schema["$defs"]["gate"]["properties"]["gate"]["enum"]
    assert [str(g) for g in GateName] == list(GATES) == schema_gates
    assert all(GATES[name].name is name for name in GateName)  # each gate class answers to its own name


def test_verdicts_agree_with_the_schema() -> None:
    schema = load_schema()
    assert [str(v) for v in MODULE_VERDICTS] == schema["$defs"]["verdict"]["enum"]
    assert Verdict.SKIPPED not in MODULE_VERDICTS  # a gate can be skipped, a module cannot


def test_overall_verdict_is_the_first_gate_that_neither_passed_nor_was_skipped() -> None:
    gates = [
        GateResult(GateName.UNIT, Verdict.PASS),
        GateResult(GateName.INTEGRATION, Verdict.SKIPPED, "n/a"),
        GateResult(GateName.PERF, Verdict.TAMPERED, "patched torch.rsqrt"),
    ]
    assert overall(gates) == (Verdict.TAMPERED, "perf: patched torch.rsqrt")
    assert overall(gates[:2]) == (Verdict.PASS, "")


def test_records_serialize_enums_as_strings_and_non_finite_numbers_as_text() -> None:
    case = CaseResult("norm/r1/normal", "float32", False, ["output: nan"], {"rows": 1}, {"x.max_abs_err": math.inf})
    gate = GateResult(GateName.UNIT, Verdict.FAIL, "1 of 1 cases failed", [case])
    result = ModuleResult("m", "m.py", "norm", ["rms_norm"], True, None, Verdict.FAIL, "unit: ...", [gate]).as_dict()
    assert result["verdict"] == "fail" and type(result["verdict"]) is str
    (g,) = result["gates"]
    assert g["gate"] == "unit" and type(g["gate"]) is str and g["cases_failed"] == 1
    assert g["cases"][0]["metrics"] == {"x.max_abs_err": "inf"}
