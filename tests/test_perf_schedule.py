"""The performance gate measures alone: after every unit and integration gate, one module at a time.

benchmarks/fidelity.py shows what a training load on the other core does to the gate's decisions; this is the
scheduling that keeps such a load away (harness/judge/runner.py, `Needs(exclusive=True)`): a `harness run` judging
modules two at a time never times one module while another is tested or trained.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import pytest

from harness.core import paths
from harness.gates.performance import PerformanceGate
from harness.integration.model import ModelConfig
from harness.integration.runs import TaskSetup
from harness.integration.tasks import MQAR
from harness.integration.train import TrainConfig
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.kinds.norm import NormKind
from harness.perf.config import PerfSettings
from harness.perf.roofline import Roofline
from harness.perf.timer import timing_core
from harness.registry.sources import module_sources
from harness.results.records import GateName, GateResult, ModuleResult, Verdict
from tests.conftest import REPO

FAST = PerfSettings(
    warmup_s=0.05, block_s=0.03, min_blocks=4, max_blocks=12, budget_s=0.4, samples=2, pool_bytes=4 * 2**20
)
TINY = tuple(
    TaskSetup(task, ModelConfig(vocab_size=vocab, d_model=32, d_ff=64), TrainConfig(steps=40, eval_batches=2))
    for task, vocab in (("text", 256), ("mqar", MQAR().vocab_size))
)
# The machine's roofline is not at issue here (and measuring it into the temporary cache would take a while).
ROOFLINE = Roofline({2**20: 1e6}, matmul_gflops=1e6, threads=1, machine="fake")


@dataclass
class Interval:
    module: str
    gate: GateName
    start: float
    end: float = float("inf")
    judge_cores: frozenset[int] = frozenset()  # the judge thread's cores when the gate started

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@pytest.fixture(scope="module")
def schedule(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Interval], dict[str, ModuleResult]]:
    """Three rms_norm modules through unit, integration and perf, two at a time; every gate's start and end."""
    patch = pytest.MonkeyPatch()
    patch.setattr(paths, "CACHE_DIR", tmp_path_factory.mktemp("cache"))  # the tiny setups' spreads stay here
    patch.setattr(PerformanceGate, "roofline", lambda self: ROOFLINE)
    original = NormKind.perf_cases
    patch.setattr(NormKind, "perf_cases", lambda self, variant: original(self, variant)[:1])  # the small case only
    intervals: dict[tuple[str, GateName], Interval] = {}
    lock = threading.Lock()

    def on_gate(name: str, record: GateResult, finished: bool) -> None:
        now = time.monotonic()
        with lock:
            key = (name, record.gate)
            if not finished:
                intervals[key] = Interval(name, record.gate, now, judge_cores=frozenset(os.sched_getaffinity(0)))
            else:
                intervals.setdefault(key, Interval(name, record.gate, now)).end = now  # a blocked gate: no start

    shipped = {s.name: s for s in module_sources(REPO / "modules", entry_points=False)}
    same = {s.name: s for s in module_sources(REPO / "benchmarks" / "fidelity_modules", entry_points=False)}
    sources = [shipped["rms_norm_torch"], shipped["rms_norm_fused"], same["rms_norm_same"]]
    options = RunOptions(
        gates=(GateName.UNIT, GateName.INTEGRATION, GateName.PERF),
        limits=Limits(timeout_s=300),
        seed=3,
        jobs=2,
        integration_setups=TINY,
        perf=FAST,
        on_gate=on_gate,
    )
    try:
        results = judge_all(sources, options, lambda result: None)
    finally:
        patch.undo()
    return list(intervals.values()), {r.name: r for r in results}


def test_every_gate_of_every_module_ran(schedule: tuple[list[Interval], dict[str, ModuleResult]]) -> None:
    intervals, results = schedule
    for result in results.values():
        assert [g.gate for g in result.gates] == [GateName.UNIT, GateName.INTEGRATION, GateName.PERF]
        for gate in result.gates:
            assert gate.verdict is Verdict.PASS, f"{result.name} {gate.gate}: {gate.reason}"
    assert len(intervals) == 9 and all(i.end < float("inf") for i in intervals)


def test_modules_were_judged_two_at_a_time(schedule: tuple[list[Interval], dict[str, ModuleResult]]) -> None:
    """Without this the next test could not fail: the shared gates of different modules did run at once."""
    shared = [i for i in schedule[0] if i.gate is not GateName.PERF]
    assert any(a.overlaps(b) for a in shared for b in shared if a.module != b.module)


def test_no_performance_gate_overlaps_any_other_gate(
    schedule: tuple[list[Interval], dict[str, ModuleResult]],
) -> None:
    intervals, _ = schedule
    perf = [i for i in intervals if i.gate is GateName.PERF]
    for timed in perf:
        clashes = [f"{o.module} {o.gate}" for o in intervals if o is not timed and o.overlaps(timed)]
        assert not clashes, f"{timed.module}'s performance gate ran while {clashes} ran"
    last_shared = max(i.end for i in intervals if i.gate is not GateName.PERF)
    assert all(i.start >= last_shared for i in perf)  # after every unit and integration gate, not merely between


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: there is no other core to keep the judge on")
def test_the_judge_keeps_off_the_timing_core(schedule: tuple[list[Interval], dict[str, ModuleResult]]) -> None:
    for timed in (i for i in schedule[0] if i.gate is GateName.PERF):
        assert timing_core() not in timed.judge_cores and timed.judge_cores
