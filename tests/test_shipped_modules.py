"""Contract tests generated from the registry: every shipped module passes the unit gate.

A new file under modules/ is picked up here without new test code.
"""

from __future__ import annotations

import json
import secrets

import pytest

from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.kinds import KINDS
from harness.registry.sources import module_sources
from harness.results.records import ModuleResult
from tests.conftest import REPO, run_harness

SOURCES = module_sources(REPO / "modules", entry_points=False)
SEED = secrets.randbits(63)  # a fresh secret seed per test run, as in production; printed on failure


@pytest.fixture(scope="session")
def shipped() -> dict[str, ModuleResult]:
    """The unit gate over every shipped module, judged from this test process."""
    results: list[ModuleResult] = []
    judge_all(SOURCES, RunOptions(gates=("unit",), limits=Limits(timeout_s=300), seed=SEED), results.append)
    return {r.name: r for r in results}


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_shipped_module_passes_unit_gate(shipped: dict[str, ModuleResult], source: object) -> None:
    result = shipped[source.name]  # type: ignore[attr-defined]
    assert result.verdict == "pass", f"seed {SEED}: {result.reason}"
    kind = KINDS[result.kind or ""]
    cases = result.gates[0].cases
    for variant in result.variants:
        expected = len(kind.battery(variant)) * len(kind.dtypes(variant))
        assert sum(1 for c in cases if c.case.startswith(f"{variant}/")) == expected
    assert {c.dtype for c in cases} >= {"float32", "bfloat16"}


def test_list_json_covers_every_kind() -> None:
    proc = run_harness("list", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert {e["kind"] for e in entries} == set(KINDS)
    assert len(entries) >= 14
    for entry in entries:
        assert entry["error"] is None
        assert set(entry) >= {"name", "kind", "variant", "exact", "approximate", "source"}
        assert entry["source"].endswith(f"modules/{entry['kind']}/{entry['name']}.py")


def test_every_battery_has_odd_and_edge_sizes() -> None:
    for kind in KINDS.values():
        for variant in kind.variants:
            cases = kind.battery(variant)
            sizes = [v for c in cases for v in c.sizes.values()]
            assert any(v % 2 == 1 and v > 1 for v in sizes), f"{kind.name}/{variant} has no odd size"
            assert len({c.regime for c in cases}) >= 2, f"{kind.name}/{variant} tests one value regime only"
            assert kind.flops(cases[0]) > 0 and kind.bytes_moved(cases[0], kind.dtypes(variant)[0]) > 0
