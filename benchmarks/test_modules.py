"""pytest-benchmark suite: every registered module on its kind's performance cases (forward), in a contestant.

    pytest benchmarks/ -n 0 --benchmark-json=out.json      # then: pytest-benchmark compare out.json other.json

Each benchmark's statistics are the module's own call times (see conftest.py); `extra_info` carries what the
performance gate measures on the same case: the speed ratio to the kind's reference with its 99% interval
(interleaved in the same process), achieved GB/s and GFLOP/s, the percentage of this machine's roofline, and
peak memory with its ratio to the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.conftest import CLOCK
from harness.core import paths
from harness.core.contract import ModuleSource
from harness.gates.performance.inputs import Mode, TimingPlan
from harness.gates.performance.measure import measure
from harness.gates.performance.report import record
from harness.gates.performance.tamper import Watch
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import Session
from harness.perf.config import PerfSettings
from harness.perf.pools import salt_values
from harness.perf.roofline import load_or_measure
from harness.perf.timer import timing_core
from harness.protocol.messages import PerfBlock, PerfOutputs
from harness.registry.sources import module_sources

ROOT = Path(__file__).resolve().parents[1]
SOURCES = module_sources(ROOT / "modules", entry_points=True)
ROUNDS_S = 0.5  # pytest-benchmark rounds per benchmark: about this many seconds of calls, 5 to 200 rounds
EXTRA = (
    "ratio",
    "ratio_low",
    "ratio_high",
    "candidate_ns",
    "baseline_ns",
    "gbps",
    "gflops",
    "roofline_pct",
    "candidate_peak_bytes",
    "baseline_peak_bytes",
    "memory_ratio",
)


class ModuleBench:
    """One module loaded in a contestant, behind the performance gate's own measurement code."""

    def __init__(self, source: ModuleSource, device: str) -> None:
        limits = Limits(timeout_s=600, device=device)
        with Contestant(limits, source.name) as probe:
            spec = Session(probe).load_only(source)
        self.device = device
        self.plan = TimingPlan(spec, 0, PerfSettings())
        self.watch = Watch(self.plan)
        self.roofline = load_or_measure(paths.CACHE_DIR, device=device)
        self.contestant = Contestant(limits, source.name).__enter__()
        self.session = Session(self.contestant)
        self.session.send(self.plan.baseline_request(None, timing_core()))
        self.session.load(source)
        self.cases = self.plan.kind.perf_cases(self.plan.variant)

    def measure(self, index: int) -> tuple[list[int], dict[str, Any]]:
        """The gate's interleaved measurement of case `index`, then the candidate's own call times."""
        case = self.cases[index]
        m = measure(self.plan, self.watch, self.session, Mode(case, backward=False))
        metrics = record(self.plan, self.roofline, m, {}).metrics
        per_call = max(1.0, metrics["candidate_ns"])
        rounds = int(min(200, max(5, ROUNDS_S * 1e9 / per_call)))
        per_block = max(1, int(metrics["rounds_per_block"]))  # the gate's block size, so outputs held stay small
        times: list[int] = []
        while len(times) < rounds:
            count = min(per_block, rounds - len(times))
            values = {"A": salt_values(len(times), count, torch.float32)}
            reply = self.session.send(
                PerfBlock.of([["candidate"]] * count, pools={"candidate": "A"}, salt_values=values)
            )
            self.session.send(PerfOutputs(picks=[]))
            times += reply.ns["candidate"].tolist()
        extra = {k: metrics[k] for k in EXTRA if k in metrics}
        extra.update(
            {
                "case": case.id,
                "dtype": "float32",
                "device": self.device,
                "torch": torch.__version__,
                "interval": "99% t interval over blocks",
            }
        )
        return times, extra

    def close(self) -> None:
        self.contestant.__exit__(None, None, None)


@pytest.fixture(scope="session")
def benches(request: pytest.FixtureRequest) -> Iterator[dict[str, ModuleBench]]:
    opened: dict[str, ModuleBench] = {}
    device = str(request.config.getoption("--harness-device"))
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("--harness-device cuda needs a CUDA device; this machine has none")

    class Lazy(dict[str, ModuleBench]):
        def __missing__(self, name: str) -> ModuleBench:
            source = next(s for s in SOURCES if s.name == name)
            self[name] = ModuleBench(source, device)
            return self[name]

    lazy = Lazy()
    yield lazy
    for bench in list(lazy.values()) + list(opened.values()):
        bench.close()


PARAMS = [pytest.param(s.name, i, id=f"{s.name}-{'small' if i == 0 else 'large'}") for s in SOURCES for i in (0, 1)]


@pytest.mark.benchmark(timer=CLOCK.read, disable_gc=True, warmup=False)
@pytest.mark.parametrize(("name", "index"), PARAMS)
def test_module(benchmark: Any, benches: dict[str, ModuleBench], name: str, index: int) -> None:
    bench = benches[name]
    times, extra = bench.measure(index)
    benchmark.group = extra["case"]
    benchmark.extra_info.update(extra)
    pending = iter(times)
    benchmark.pedantic(lambda: CLOCK.advance(next(pending)), rounds=len(times), iterations=1)
