"""docs/threat-model.md keeps one row per adversarial test: every test in tests/adversarial/ is listed with the
threat it proves a defence against, and every row names a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

DOC = REPO / "docs" / "threat-model.md"
HERE = Path(__file__).resolve().parent
ROW = re.compile(r"^\| *`(?P<test>test_\w+\.py::test_\w+)` *\|(?P<threat>[^|]+)\|(?P<defence>[^|]+)\|", re.M)


def adversarial_tests() -> set[str]:
    """`file::function` for every test function in tests/adversarial/, read from the source."""
    found = set()
    for path in sorted(HERE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        found |= {f"{path.name}::{node.name}" for node in tree.body if isinstance(node, ast.FunctionDef)}
    return {name for name in found if name.split("::")[1].startswith("test_")}


def table_rows() -> dict[str, tuple[str, str]]:
    text = DOC.read_text()
    section = text[text.index("<!-- threat-table -->") : text.index("<!-- /threat-table -->")]
    rows = {m["test"]: (m["threat"].strip(), m["defence"].strip()) for m in ROW.finditer(section)}
    assert len(rows) == len(ROW.findall(section)), "a test is listed twice in the threat table"
    return rows


def test_every_adversarial_test_has_one_row_and_every_row_a_test() -> None:
    tests, rows = adversarial_tests(), table_rows()
    assert sorted(tests - set(rows)) == [], "tests missing from docs/threat-model.md's table"
    assert sorted(set(rows) - tests) == [], "rows of docs/threat-model.md naming no test"


def test_every_row_says_the_threat_and_the_defence() -> None:
    for test, (threat, defence) in table_rows().items():
        assert len(threat) > 10 and len(defence) > 10, f"{test}: say what is attempted and what stops it"


def test_the_corpus_holds_at_least_35_contributions_across_every_kind() -> None:
    files = [p for p in (HERE / "modules").glob("*/*.py") if not p.name.startswith("_")]
    assert len(files) >= 35
    assert {p.parent.name for p in files} == {"attention", "norm", "quantization", "activation"}
