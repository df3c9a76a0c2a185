"""Performance gate: ratios with intervals, roofline, memory; tampering caught as a fact; regression vs base."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.gates import perf
from harness.judge.base_branch import base_sources
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.kinds.norm import NormKind
from harness.registry import ModuleSource, module_sources
from harness.results.document import ResultsDocument, validate
from harness.results.records import ModuleResult
from tests.conftest import FIXTURES, REPO

# Short measurements: the tests check behaviour, not figures (benchmarks/fidelity.py measures those).
FAST = perf.PerfSettings(warmup_s=0.05, block_s=0.03, min_blocks=4, max_blocks=12, budget_s=0.4, samples=2,
                         pool_bytes=4 * 2**20)


@pytest.fixture
def small_cases_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Norm perf cases reduced to the small one, so a measurement takes about a second."""
    original = NormKind.perf_cases
    monkeypatch.setattr(NormKind, "perf_cases", lambda self, variant: original(self, variant)[:1])
    yield


def _judge(sources: list[ModuleSource], settings: perf.PerfSettings = FAST,
           base: dict[str, ModuleSource] | None = None) -> dict[str, ModuleResult]:
    options = RunOptions(gates=("perf",), limits=Limits(timeout_s=120), seed=5, perf=settings, base=base or {})
    document = ResultsDocument({}, {}, None)
    results = judge_all(sources, options, document.add)
    assert [m.name for m in document.modules] == [r.name for r in results]  # reported twice, listed once
    return {r.name: r for r in results}


def _fixture(name: str) -> ModuleSource:
    return {s.name: s for s in module_sources(FIXTURES / "perf_modules", entry_points=False)}[name]


def test_shipped_module_gets_ratios_roofline_and_memory() -> None:
    source = {s.name: s for s in module_sources(REPO / "modules", entry_points=False)}["rms_norm_fused"]
    result = _judge([source])["rms_norm_fused"]
    (gate,) = result.gates
    assert gate.verdict == "pass", gate.reason
    assert len(gate.cases) == 4  # small and large, forward and forward+backward
    for case in gate.cases:
        m = case["metrics"]
        assert m["ratio_low"] <= m["ratio"] <= m["ratio_high"]
        # rms_norm_fused allocates its output only; the reference also holds a float32 temporary
        assert m["candidate_peak_bytes"] > 0 and m["memory_ratio"] == pytest.approx(0.5, abs=0.01)
        assert "forward+backward" in case["case"] or m["clean_baseline_ns"] > 0
    forward = [c["metrics"] for c in gate.cases if c["case"].startswith("perf/forward/")]
    assert all(0 < m["roofline_pct"] <= 100 * 2 and m["gbps"] > 0 and m["gflops"] > 0 for m in forward)
    assert {"forward.ratio", "forward_backward.ratio", "all.ratio", "all.low", "all.high"} <= set(gate.summary)
    assert gate.reason.startswith("vs reference")
    document = ResultsDocument({}, {}, None)
    document.add(result)
    validate({**document.as_dict(), "environment": _environment(), "config": {"gates": ["perf"], "timeout_s": 1,
                                                                              "memory_mb": 1, "device": "cpu"}})


def _environment() -> dict[str, object]:
    return {"harness_version": "0", "git_commit": "0", "git_dirty": False, "torch_version": "0", "python_version": "3",
            "device": "cpu", "cpu_model": "x", "cpu_count": 2, "threads": 1, "dtypes": ["float32"], "seed": 1,
            "seed_policy": "fixed", "date": "2026-11-23T00:00:00+00:00"}


@pytest.mark.parametrize(("fixture", "expected"), [
    ("rms_norm_patches_torch", "objects the baseline depends on were replaced: torch.rsqrt"),
    ("rms_norm_kernel_override", "dispatch table of aten::rsqrt"),
    ("rms_norm_function_mode", "torch function mode is active"),
    ("rms_norm_halves_its_clock", "harness.perf.timer.CpuTimer.time"),
    ("rms_norm_interval_timer", "profiling interval timer is armed"),
    ("rms_norm_busy_thread", "of CPU during a timed block"),
    ("rms_norm_child_process", "started processes"),
])
def test_tampering_is_a_verdict_not_a_speed(small_cases_only: None, fixture: str, expected: str) -> None:
    result = _judge([_fixture(fixture)])[fixture]
    (gate,) = result.gates
    assert gate.verdict == "tampered" and result.verdict == "tampered", gate.reason
    assert expected in gate.reason, gate.reason
    assert not gate.summary  # no speed figure from a tampered measurement


def test_memoized_outputs_are_caught_by_the_salted_inputs(small_cases_only: None) -> None:
    result = _judge([_fixture("rms_norm_memoized")])["rms_norm_memoized"]
    (gate,) = result.gates
    assert gate.verdict == "fail", gate.reason
    assert "output during timing" in gate.reason or "module raised" in gate.reason, gate.reason


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)




@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose main branch holds rms_norm_same; the checked-out branch `pr` may change it."""
    root = tmp_path / "repo"
    (root / "modules" / "norm").mkdir(parents=True)
    shutil.copy(REPO / "benchmarks" / "fidelity_modules" / "norm" / "rms_norm_same.py", root / "modules" / "norm")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    _git(root, "checkout", "-qb", "pr")
    return root


def _head_version(root: Path, slowdown: float) -> None:
    text = (REPO / "benchmarks" / "fidelity_modules" / "norm" / "rms_norm_slow20.py").read_text()
    text = text.replace("SLOWDOWN = 0.20", f"SLOWDOWN = {slowdown}").replace("RmsNormSlow20", "RmsNormSame")
    (root / "modules" / "norm" / "rms_norm_same.py").write_text(text)
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "head")


def test_regression_against_the_merge_base(small_cases_only: None, repo: Path) -> None:
    _head_version(repo, 0.30)
    commit, base = base_sources("main", repo / "modules")
    assert set(base) == {"rms_norm_same"} and len(commit) == 40
    head = module_sources(repo / "modules", entry_points=False)
    result = _judge(head, perf.PerfSettings(min_blocks=6, budget_s=1.0, samples=2, pool_bytes=4 * 2**20),
                    base)["rms_norm_same"]
    (gate,) = result.gates
    assert gate.verdict == "fail" and gate.reason.startswith("vs base: slower"), gate.reason


def test_same_code_twice_never_flips(small_cases_only: None, repo: Path) -> None:
    _, base = base_sources("main", repo / "modules")
    head = module_sources(repo / "modules", entry_points=False)
    settings = perf.PerfSettings(min_blocks=6, budget_s=1.0, samples=2, pool_bytes=4 * 2**20)
    verdicts = [_judge(head, settings, base)["rms_norm_same"].gates[0].verdict for _ in range(2)]
    assert verdicts == ["pass", "pass"]
