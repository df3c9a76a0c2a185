"""The performance gate's verdicts on real timings: this file measures on the real machine.

    pytest benchmarks/test_regression.py -n 0     # not part of the default `pytest` run (testpaths = ["tests"])

tests/test_perf_gate.py decides the same cases on injected times, which is what the gate's rule does with given
numbers; here the numbers come from timing real modules in real contestants on this machine, so the outcome depends
on the machine being quiet enough to measure on (a loaded 2-core machine can fail these; nothing in tests/ can).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.contract import ModuleSource
from harness.judge.base_branch import base_sources
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.kinds.norm import NormKind
from harness.perf.config import PerfSettings
from harness.registry.sources import module_sources
from harness.results.records import GateResult
from tests.conftest import REPO

SETTINGS = PerfSettings(min_blocks=6, budget_s=1.0, samples=2, pool_bytes=4 * 2**20)
FIDELITY = REPO / "benchmarks" / "fidelity_modules" / "norm"


@pytest.fixture
def small_cases_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Norm perf cases reduced to the small one, so a measurement takes about a second."""
    original = NormKind.perf_cases
    monkeypatch.setattr(NormKind, "perf_cases", lambda self, variant: original(self, variant)[:1])
    yield


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose main branch holds rms_norm_same; the checked-out branch `pr` may change it."""
    root = tmp_path / "repo"
    (root / "modules" / "norm").mkdir(parents=True)
    shutil.copy(FIDELITY / "rms_norm_same.py", root / "modules" / "norm")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "base")
    _git(root, "checkout", "-qb", "pr")
    return root


def _slow_head(root: Path, slowdown: float) -> None:
    """Commit on `pr` a version of rms_norm_same that busy-waits `slowdown` of its own duration after each call."""
    text = (FIDELITY / "rms_norm_slow20.py").read_text()
    text = text.replace("SLOWDOWN = 0.20", f"SLOWDOWN = {slowdown}").replace("RmsNormSlow20", "RmsNormSame")
    (root / "modules" / "norm" / "rms_norm_same.py").write_text(text)
    _git(root, "commit", "-qam", "head")


def _perf_gate(
    sources: list[ModuleSource],
    name: str,
    settings: PerfSettings = SETTINGS,
    base: dict[str, ModuleSource] | None = None,
) -> GateResult:
    options = RunOptions(gates=("perf",), limits=Limits(timeout_s=120), seed=5, perf=settings, base=base or {})
    (result,) = [r for r in judge_all(sources, options, lambda _: None) if r.name == name]
    (gate,) = result.gates
    return gate


def _head_against_base(root: Path) -> GateResult:
    _, base = base_sources("main", root / "modules")
    return _perf_gate(module_sources(root / "modules", entry_points=False), "rms_norm_same", base=base)


def test_30_percent_slower_than_the_merge_base_fails(small_cases_only: None, repo: Path) -> None:
    _slow_head(repo, 0.30)
    gate = _head_against_base(repo)
    assert gate.verdict == "fail" and gate.reason.startswith("vs base: slower"), gate.reason


def test_same_code_twice_never_flips(small_cases_only: None, repo: Path) -> None:
    verdicts = [_head_against_base(repo) for _ in range(2)]
    assert [g.verdict for g in verdicts] == ["pass", "pass"], [g.reason for g in verdicts]


def test_fused_norm_is_faster_than_the_reference() -> None:
    """rms_norm_fused (one pass, no float32 temporary) beats the kind's reference on every case together."""
    sources = [s for s in module_sources(REPO / "modules", entry_points=False) if s.name == "rms_norm_fused"]
    gate = _perf_gate(sources, "rms_norm_fused")
    assert gate.verdict == "pass" and gate.reason.startswith("vs reference"), gate.reason
    assert gate.summary["all.ratio"] < 1.0, gate.summary
