"""Performance gate: ratios with intervals, roofline, memory; tampering caught as a fact; regression vs base.

Nothing here asserts how fast this machine runs anything: the verdicts that follow from given times are decided on
times injected by a fake contestant (test_decision_on_injected_times), and the same verdicts on real timings are
benchmarks (benchmarks/test_regression.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.core.contract import ModuleSource, ModuleSpec
from harness.gates.base import GateJob, RunConfig
from harness.gates.performance import PerformanceGate
from harness.gates.performance.inputs import TimingPlan
from harness.gates.performance.measure import measure
from harness.gates.performance.tamper import Tampered, Watch
from harness.judge.base_branch import base_sources
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.kinds import KINDS
from harness.kinds.attention import AttentionKind
from harness.kinds.base import CallArgs
from harness.kinds.norm import NormKind
from harness.perf.config import PerfSettings
from harness.perf.pools import salted_entry
from harness.perf.roofline import Roofline
from harness.perf.timer import now_ns
from harness.protocol.messages import (
    BaselineReady,
    BlockTimes,
    Done,
    FreshOutputs,
    IntegrityFacts,
    Outputs,
    PeakMemory,
    PerfBaseline,
    PerfBlock,
    PerfCase,
    PerfFresh,
    PerfIntegrity,
    PerfMemory,
    PerfOutputs,
    PerfWarmup,
    WarmedUp,
)
from harness.registry.sources import module_sources
from harness.results.document import ResultsDocument, validate
from harness.results.records import GateName, GateResult, ModuleResult, Verdict
from tests.conftest import REPO

# Short measurements: the tests check behaviour, not figures (benchmarks/fidelity.py measures those).
FAST = PerfSettings(
    warmup_s=0.05, block_s=0.03, min_blocks=4, max_blocks=12, budget_s=0.4, samples=2, pool_bytes=4 * 2**20
)


@pytest.fixture
def small_cases_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Norm perf cases reduced to the small one, so a measurement takes about a second."""
    original = NormKind.perf_cases
    monkeypatch.setattr(NormKind, "perf_cases", lambda self, variant: original(self, variant)[:1])
    yield


def _judge(
    sources: list[ModuleSource], settings: PerfSettings = FAST, base: dict[str, ModuleSource] | None = None
) -> dict[str, ModuleResult]:
    options = RunOptions(gates=("perf",), limits=Limits(timeout_s=120), seed=5, perf=settings, base=base or {})
    document = ResultsDocument({}, {}, None)
    results = judge_all(sources, options, document.add)
    assert [m.name for m in document.modules] == [r.name for r in results]  # reported twice, listed once
    return {r.name: r for r in results}


def test_shipped_module_gets_ratios_roofline_and_memory() -> None:
    source = {s.name: s for s in module_sources(REPO / "modules", entry_points=False)}["rms_norm_fused"]
    result = _judge([source])["rms_norm_fused"]
    (gate,) = result.gates
    assert gate.verdict == "pass", gate.reason
    assert len(gate.cases) == 4  # small and large, forward and forward+backward
    for case in gate.cases:
        m = case.metrics
        assert m["ratio_low"] <= m["ratio"] <= m["ratio_high"]
        # rms_norm_fused allocates its output only; the reference also holds a float32 temporary
        assert m["candidate_peak_bytes"] > 0 and m["memory_ratio"] == pytest.approx(0.5, abs=0.01)
        assert "forward+backward" in case.case or m["clean_baseline_ns"] > 0
    forward = [c.metrics for c in gate.cases if c.case.startswith("perf/forward/")]
    assert all(0 < m["roofline_pct"] <= 100 * 2 and m["gbps"] > 0 and m["gflops"] > 0 for m in forward)
    assert {"forward.ratio", "forward_backward.ratio", "all.ratio", "all.low", "all.high"} <= set(gate.summary)
    assert gate.reason.startswith("vs reference")
    document = ResultsDocument({}, {}, None)
    document.add(result)
    validate(
        {
            **document.as_dict(),
            "environment": _environment(),
            "config": {"gates": ["perf"], "timeout_s": 1, "memory_mb": 1, "device": "cpu"},
        }
    )


def test_a_module_that_makes_torch_load_dynamo_is_not_tampering(monkeypatch: pytest.MonkeyPatch) -> None:
    """topk_sparse_attention calls torch.utils.checkpoint, whose first call imports torch._dynamo, which replaces
    torch.manual_seed: torch's own lazy set-up, done in the timing contestant before the snapshot, not the module's."""
    original = AttentionKind.perf_cases
    monkeypatch.setattr(AttentionKind, "perf_cases", lambda self, variant: original(self, variant)[:1])
    source = {s.name: s for s in module_sources(REPO / "modules", entry_points=False)}["topk_sparse_attention"]
    assert "checkpoint(" in source.path.read_text()
    (gate,) = _judge([source])["topk_sparse_attention"].gates
    assert gate.verdict == "pass", gate.reason


def _environment() -> dict[str, object]:
    return {
        "harness_version": "0",
        "git_commit": "0",
        "git_dirty": False,
        "torch_version": "0",
        "python_version": "3",
        "device": "cpu",
        "cpu_model": "x",
        "cpu_count": 2,
        "threads": 1,
        "dtypes": ["float32"],
        "seed": 1,
        "seed_policy": "fixed",
        "date": "2026-11-23T00:00:00+00:00",
    }


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
    """The base version is found at the merge-base and timed beside the head version. Only what does not depend on
    this machine's speed is asserted here; the verdicts on real timings are benchmarks/test_regression.py, and the
    decision on given times is test_decision_on_injected_times."""
    _head_version(repo, 0.30)
    commit, base = base_sources("main", repo / "modules")
    assert set(base) == {"rms_norm_same"} and re.fullmatch(r"[0-9a-f]{40}", commit), commit
    assert base["rms_norm_same"].path != repo / "modules" / "norm" / "rms_norm_same.py"  # the merge-base's copy
    head = module_sources(repo / "modules", entry_points=False)
    result = _judge(head, PerfSettings(min_blocks=6, budget_s=1.0, samples=2, pool_bytes=4 * 2**20), base)[
        "rms_norm_same"
    ]
    (gate,) = result.gates
    assert gate.verdict in {"pass", "suspect", "fail"} and gate.reason.startswith("vs base: "), gate.reason
    assert {"all.ratio", "all.low", "all.high"} <= set(gate.summary)
    assert all(c.metrics["baseline_ns"] > 0 and c.metrics["candidate_ns"] > 0 for c in gate.cases)


# --- the decision on injected times ----------------------------------------------------------------------------
#
# A fake contestant stands behind the real gate (PerformanceGate.run: clean worker, measure(), Watch, record(),
# summarize(), verdict()). It answers every perf request with the kind's reference on the judge's own inputs, and
# reports times chosen by the test, so the verdicts below do not depend on this machine's speed.

SPEC = ModuleSpec(
    name="rms_norm_same",
    kind="norm",
    variants=("rms_norm",),
    exact=True,
    bound=None,
    class_name="RmsNormSame",
    source="/fake/modules/norm/rms_norm_same.py",
)
SOURCE = ModuleSource(name=SPEC.name, kind=SPEC.kind, path=Path(SPEC.source))
# block_s sizes blocks to about 4 rounds of the injected times (3 rounds for the first-round drop, plus that one).
INJECTED = PerfSettings(warmup_s=0.0, block_s=0.0002, pool_bytes=2**20)
ROOFLINE = Roofline({2**20: 1e6}, matmul_gflops=1e6, threads=1, machine="fake")  # no injected time beats it
BASELINE_NS = 20_000  # one baseline call; rounds vary it by 0, 2.5 and 5%, the same for both sides
JITTER = (-0.006, -0.003, 0.0, 0.003, 0.006)  # block-to-block noise of the ratio: zero mean over every 5 blocks


@pytest.fixture(scope="module")
def idle_pid() -> Iterator[int]:
    """A process that only sleeps, standing for the contestant's process as the judge sees it in /proc (the test
    process itself would not do: its own threads compute the judge's reference outputs between blocks)."""
    process = subprocess.Popen(["sleep", "600"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


class FakeContestant:
    """An honest contestant with injected times: the candidate's call takes `slowdown` x the baseline's.

    A block sleeps until the judge's clock has seen at least the time it reports, as real calls would. `overreport`
    multiplies the reported times after that sleep; `hooks` are reported active during every block.
    """

    def __init__(self, pid: int, slowdown: float, overreport: int = 1, hooks: tuple[str, ...] = ()) -> None:
        self.pid = pid  # the process Watch reads threads and children of (/proc): an idle one
        self.kind = KINDS[SPEC.kind]
        self.slowdown, self.overreport, self.hooks = slowdown, overreport, list(hooks)
        self.case: PerfCase | None = None
        self.calls: dict[str, int] = {}  # calls so far per pool of the current case
        self.last: dict[tuple[int, str], CallArgs] = {}  # (round, side) -> that call's salted input, last block
        self.blocks = 0
        self.sent: list[bool] = []  # per perf_case: whether it carried the pools

    def members(self) -> set[int]:
        return {self.pid}

    def load(self, source: ModuleSource) -> ModuleSpec:
        assert source == SOURCE
        return SPEC

    def send(self, request: Any) -> Any:
        reply = self._answer(request)
        assert type(reply) is request.reply, (request.op, reply)  # the reply the protocol names, as Session checks
        return reply

    def _ns(self, side: str, r: int) -> int:
        ns = BASELINE_NS * (1 + 0.025 * (r % 3))
        if side == "candidate":
            ns *= self.slowdown * (1 + JITTER[self.blocks % len(JITTER)])
        return round(ns)

    def _output(self, args: CallArgs) -> torch.Tensor:
        return self.kind.reference(SPEC.variants[0], args)

    def _answer(self, request: Any) -> Any:
        if isinstance(request, PerfBaseline):
            return BaselineReady(ops=[], threads=1)
        if isinstance(request, PerfIntegrity):
            return IntegrityFacts(changed=[], hooks=[])
        if isinstance(request, PerfCase):
            if request.same_pools:  # the pools of the case's other mode, kept
                assert self.case is not None, "same_pools before any pools were sent"
                request = replace(request, pools=self.case.pools)
            self.case, self.calls = request, dict.fromkeys(request.pools, 0)
            self.sent.append(bool(not request.same_pools))
            return Done()
        case = self.case
        assert case is not None, f"{request.op} before perf_case"
        if isinstance(request, PerfWarmup):
            return WarmedUp(rounds=3, ns={side: [self._ns(side, 0)] for side in case.sides})
        if isinstance(request, PerfBlock):
            self.last.clear()
            stamps = [now_ns()]  # clock readings before and after each call, which fills the time between exactly
            times: dict[str, list[int]] = {side: [] for side in case.sides}
            for r, side in request.calls():
                pool = request.pools[side]
                index = self.calls[pool] % len(case.pools[pool])
                self.last[(r, side)] = salted_entry(
                    case.pools[pool][index], case.salts[pool], index, request.salt_values[pool][r]
                )
                self.calls[pool] += 1
                times[side].append(self._ns(side, r))
                stamps += (stamps[-1], stamps[-1] + times[side][-1])
            deadline = now_ns() + sum(map(sum, times.values()))
            while (left := deadline - now_ns()) > 0:
                time.sleep(left / 1e9)
            self.blocks += 1
            ns = {s: torch.tensor([t * self.overreport for t in v], dtype=torch.int64) for s, v in times.items()}
            return BlockTimes(ns=ns, hooks=self.hooks, stamps=torch.tensor(stamps[1:], dtype=torch.int64))
        if isinstance(request, PerfOutputs):
            outputs = [self._output(self.last[pick]) for pick in request.picks]
            self.last.clear()
            return Outputs(outputs=outputs)
        if isinstance(request, PerfMemory):
            out = self._output(next(iter(case.pools.values()))[0])
            return PeakMemory(peak_bytes=dict.fromkeys(case.sides, out.numel() * out.element_size()))
        if isinstance(request, PerfFresh):
            return FreshOutputs(outputs={side: self._output(args) for side, args in request.inputs.items()})
        raise AssertionError(f"unexpected request {request.op}")


def _gate_run(fake: FakeContestant, against_base: bool, monkeypatch: pytest.MonkeyPatch) -> GateResult:
    """The real performance gate on `fake`; against the base version (the fake's baseline side) or the reference."""
    gate = PerformanceGate(RunConfig(seed=5, perf=INJECTED, base={SPEC.name: SOURCE} if against_base else {}))
    monkeypatch.setattr(gate, "roofline", lambda: ROOFLINE)  # the machine's real roofline is not at issue here
    record = GateResult(gate=GateName.PERF, verdict=Verdict.ERROR)
    record.verdict, record.reason = gate.run(GateJob(SPEC, SOURCE, None, lambda label: nullcontext(fake)), record)
    return record


@pytest.mark.parametrize(
    ("slowdown", "against_base", "verdict", "reason"),
    [
        # the whole interval (about +-0.3%) lies beyond 1 + T/2 = 1.05 (T = 0.10, stats.decide)
        (1.30, True, Verdict.FAIL, "vs base: slower by +30.0% ["),
        # beyond 1 + T/4 = 1.025 with the interval excluding 1, but the interval's low end is below 1.05: suspect
        (1.05, True, Verdict.SUSPECT, "vs base: slower by +5.0% ["),
        (1.00, True, Verdict.PASS, "vs base: time "),
        (0.70, True, Verdict.PASS, "vs base: faster: time -30.0% ["),
        # against the kind's reference the ratio is information, never a verdict
        (1.30, False, Verdict.PASS, "vs reference: slower by +30.0% ["),
    ],
    ids=["30pct-slower-fails", "5pct-slower-is-suspect", "identical-passes", "faster-passes", "vs-reference"],
)
def test_decision_on_injected_times(
    small_cases_only: None,
    monkeypatch: pytest.MonkeyPatch,
    idle_pid: int,
    slowdown: float,
    against_base: bool,
    verdict: Verdict,
    reason: str,
) -> None:
    fake = FakeContestant(idle_pid, slowdown)
    record = _gate_run(fake, against_base, monkeypatch)
    assert (record.verdict, record.reason[: len(reason)]) == (verdict, reason), record.reason
    # the pools go to the timing contestant once for both modes of the case, then to the clean worker
    assert fake.sent == [True, False, True]
    assert [c.case for c in record.cases] == [
        "perf/forward/rms_norm/r64-h1024/normal",
        "perf/forward+backward/rms_norm/r64-h1024/normal",
    ]
    assert all(c.passed for c in record.cases), [c.failures for c in record.cases]
    for c in record.cases:  # every case reached the narrow interval at min_blocks: the jitter is that small
        assert c.metrics["blocks"] == INJECTED.min_blocks and c.metrics["rounds_per_block"] >= 4
        assert c.metrics["ratio"] == pytest.approx(slowdown, rel=1e-3)
    assert record.summary["all.ratio"] == pytest.approx(slowdown, rel=1e-3)
    assert record.summary["all.low"] < slowdown < record.summary["all.high"]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        # the fake cannot slow the judge's clock, but it can report more than the block took on it
        # caught by the block's total against the judge's clock, or (when the machine is so busy that the block
        # itself took longer than the total reported) by the first call against the clock readings around it
        (
            {"overreport": 1000},
            r"reported [\d.]+ ms of calls in a block that took [\d.]+ ms on the judge's clock"
            r"|reported a candidate call of [\d.]+ us between clock readings [\d.]+ us apart",
        ),
        ({"hooks": ("torch function mode is active",)}, "while timing: torch function mode is active"),
    ],
    ids=["more-time-than-the-judges-clock", "hook-during-a-block"],
)
def test_injected_tampering_is_caught(
    small_cases_only: None, monkeypatch: pytest.MonkeyPatch, idle_pid: int, tamper: dict[str, Any], expected: str
) -> None:
    plan = TimingPlan(SPEC, 5, INJECTED)
    fake = FakeContestant(idle_pid, 1.0, **tamper)
    with pytest.raises(Tampered, match=expected):
        measure(plan, Watch(plan), fake, plan.modes[0])
    assert fake.blocks == 1  # caught at the first block
    record = _gate_run(FakeContestant(idle_pid, 1.0, **tamper), True, monkeypatch)
    assert record.verdict == Verdict.TAMPERED and re.search(expected, record.reason), record.reason
    assert not record.summary


def test_a_low_cached_roofline_is_measured_again_before_a_time_is_called_impossible(
    small_cases_only: None, monkeypatch: pytest.MonkeyPatch, idle_pid: int
) -> None:
    """A roofline cached while the machine was busy is too low: an honest module beats it. The gate measures the
    roofline again (keeping the best rates) before it fails anyone, and judges with the confirmed one."""
    low = Roofline({2**20: 1e-6}, matmul_gflops=1e-6, threads=1, machine="measured on a busy machine")
    confirmed: list[int] = []

    def remeasured() -> Roofline:
        confirmed.append(1)
        return ROOFLINE

    gate = PerformanceGate(RunConfig(seed=5, perf=INJECTED))
    monkeypatch.setattr(gate, "roofline", lambda: low)
    monkeypatch.setattr(gate, "confirmed_roofline", remeasured)
    record = GateResult(gate=GateName.PERF, verdict=Verdict.ERROR)
    fake = FakeContestant(idle_pid, 1.0)
    record.verdict, record.reason = gate.run(GateJob(SPEC, SOURCE, None, lambda label: nullcontext(fake)), record)
    assert confirmed == [1]
    assert record.verdict is Verdict.PASS, record.reason
    assert all(c.passed for c in record.cases)

    # a roofline the re-measurement confirms still fails the impossible time
    monkeypatch.setattr(gate, "confirmed_roofline", lambda: low)
    again = GateResult(gate=GateName.PERF, verdict=Verdict.ERROR)
    again.verdict, again.reason = gate.run(GateJob(SPEC, SOURCE, None, lambda label: nullcontext(fake)), again)
    assert again.verdict is Verdict.FAIL and "faster than this machine can move" in again.reason


def _untimed_block(watch: Watch, rounds: int, call_ns: int, extra_ns: list[int]) -> None:
    """One block as the contestant reports it: every call `call_ns` long, the timer's own 300 ns around each, plus
    `extra_ns[r]` more left outside the timer around round r's candidate call."""
    order = [["candidate", "baseline"]] * rounds
    start = now_ns()
    stamps, t = [], start + 1000
    for r in range(rounds):
        for side in ("candidate", "baseline"):
            left_out = 300 + (extra_ns[r] if side == "candidate" else 0)
            stamps += [t, t + call_ns + left_out]
            t += call_ns + left_out + 100
    ns = {side: torch.full((rounds,), call_ns, dtype=torch.int64) for side in ("candidate", "baseline")}
    reply = BlockTimes(ns=ns, hooks=[], stamps=torch.tensor(stamps, dtype=torch.int64))
    watch._clock(PerfBlock.of(order, pools={}, salt_values={}), reply, start, t + 1000)


def test_a_few_preempted_calls_are_not_work_outside_the_timer() -> None:
    """On a busy machine a 4 ms time slice can land between the timer and the clock reading of a few calls; of three
    rounds in a block of 8 ms calls, two such calls once made an honest module `tampered`. The check takes the
    median over the whole measurement."""
    plan = TimingPlan(SPEC, 5, INJECTED)
    watch = Watch(plan)
    for block in range(10):
        _untimed_block(watch, 3, 8_000_000, [4_000_000, 4_000_000, 0] if block == 4 else [0, 0, 0])
    watch.untimed_check("perf/forward/large")


def test_work_outside_the_timer_on_most_calls_is_tampering() -> None:
    plan = TimingPlan(SPEC, 5, INJECTED)
    watch = Watch(plan)
    for _ in range(10):  # a third of each 8 ms call done after the timer stopped, on two calls in three
        _untimed_block(watch, 3, 8_000_000, [2_700_000, 2_700_000, 0])
    with pytest.raises(Tampered, match="part of its work ran outside the timed region"):
        watch.untimed_check("perf/forward/large")
    watch.untimed_check("perf/forward+backward/large")  # the next (case, mode) starts afresh
