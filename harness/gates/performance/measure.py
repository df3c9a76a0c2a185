"""The measurement loop: candidate and baseline interleaved call by call in one contestant, block by block.

Why in one process: on a shared machine every process carries its own speed offset (up to 2x between
processes here, docs/measurement.md); interleaving candidate and baseline in one process cancels it,
and identical code then measures within about 1%. Each block gives the median log ratio of its rounds, and
blocks continue until the interval lies wholly in one decision band (stats.settled), is narrow enough, or the
budget is spent (perf/stats.py).
"""

from __future__ import annotations

import statistics
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from harness.gates.base import Channel
from harness.gates.performance.inputs import BlockInputs, Mode, TimingPlan
from harness.gates.performance.settings import (
    CALIBRATION_CALLS,
    CLEAN_BLOCKS,
    CLEAN_POOL_ENTRIES,
    CLEAN_WARMUP_S,
    DROP_FIRST_ROUND_ABOVE,
    DTYPE,
    POOLS,
    SIDES,
)
from harness.gates.performance.tamper import Watch, baseline_times
from harness.perf import stats
from harness.perf.pools import salt_values
from harness.perf.timer import seconds
from harness.protocol.messages import PerfBlock, PerfMemory, PerfOutputs, PerfWarmup


@dataclass
class Measurement:
    """One (case, mode): the ratio, the raw times, memory, and whatever went wrong."""

    mode: Mode
    ratio: stats.Ratio | None = None
    times: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in SIDES})
    rounds: int = 0
    blocks: int = 0
    peak: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # wrong outputs, impossible times
    settled: str | None = None  # the outcome the interval settled on when that stopped the measurement early
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return self.mode.label


def clean_baseline(plan: TimingPlan, channel: Channel) -> dict[str, float]:
    """Median baseline time per forward case in `channel`, a worker that never imported the candidate."""
    medians: dict[str, float] = {}
    for mode in plan.modes:
        if mode.backward:
            continue  # coarse by nature; the forward cases are enough to see a slowed baseline
        pools = plan.pools(mode.case, ("A",), size=CLEAN_POOL_ENTRIES)
        channel.send(plan.case_request(mode, ("baseline",), pools, plan.salts(mode.case, pools)))
        warm = channel.send(PerfWarmup(seconds=CLEAN_WARMUP_S, calls=CALIBRATION_CALLS))
        rounds = plan.rounds(warm.ns, plan.output_bytes(pools))
        times: list[int] = []
        for _ in range(CLEAN_BLOCKS):
            values = {"A": salt_values(plan.rng.getrandbits(62), rounds, DTYPE)}
            request = PerfBlock.of([["baseline"]] * rounds, pools={"baseline": "A"}, salt_values=values)
            times += baseline_times(channel.send(request), rounds)
            channel.send(PerfOutputs(picks=[]))
        medians[mode.label] = statistics.median(times)
    return medians


def measure(plan: TimingPlan, watch: Watch, channel: Channel, mode: Mode) -> Measurement:
    """Interleave candidate and baseline on `mode` until the ratio's interval is narrow or the budget is spent."""
    settings = plan.settings
    start = seconds()
    m = Measurement(mode)
    pools = plan.pools(mode.case, POOLS)
    salts = plan.salts(mode.case, pools)
    # the case's other mode was measured just before in this contestant: its pools are there already
    same_pools, watch.pools_sent = watch.pools_sent == mode.case.id, mode.case.id
    channel.send(plan.case_request(mode, SIDES, pools, salts, same_pools))
    warm = channel.send(PerfWarmup(seconds=settings.warmup_s, calls=CALIBRATION_CALLS))
    m.rounds = plan.rounds(warm.ns, plan.output_bytes(pools))
    sample_blocks = set(plan.rng.sample(range(settings.min_blocks), settings.samples))
    calls = dict.fromkeys(POOLS, 0)
    history: list[BlockInputs] = []
    values: list[float] = []
    checked: list[Future[list[str]]] = []  # sampled outputs, checked on the judge's core while timing goes on
    deadline = seconds() + settings.budget_s
    watch.open_window(channel)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="perf-checks") as checks:
        while True:
            # The sides swap pools every block: two sets of buffers can differ in speed by a steady percent
            # (where the allocator placed them), and swapping cancels that instead of billing it to one side.
            assigned = dict(zip(SIDES, POOLS if m.blocks % 2 == 0 else POOLS[::-1], strict=True))
            order = [plan.rng.sample(SIDES, 2) for _ in range(m.rounds)]
            salt_vals = {name: salt_values(plan.rng.getrandbits(62), m.rounds, DTYPE) for name in POOLS}
            times = watch.block(channel, PerfBlock.of(order, pools=assigned, salt_values=salt_vals))
            for side in SIDES:
                m.times[side] += times[side]
            drop = 1 if m.rounds > DROP_FIRST_ROUND_ABOVE else 0
            values.append(stats.block_value(times["candidate"][drop:], times["baseline"][drop:]))
            history.append(BlockInputs(assigned, dict(calls), salt_vals))
            if m.blocks in sample_blocks:
                checked.append(watch.sample(channel, checks, mode, m.rounds, pools, salts, history))
            else:
                channel.send(PerfOutputs(picks=[]))
            for name in POOLS:
                calls[name] += m.rounds
            m.blocks += 1
            if m.blocks >= settings.min_blocks:
                m.ratio = stats.ratio_interval(values)
                narrow = m.ratio.half_width <= settings.target_half_width
                m.settled = stats.settled(m.ratio, settings.threshold)
                if narrow or m.settled or m.blocks >= settings.max_blocks or seconds() > deadline:
                    break
        for check in checked:
            m.failures += check.result()  # raises Tampered for a wrong baseline output
    watch.close_window(channel, m.label)
    watch.calibration(m.label, warm.ns, m.times)
    watch.untimed_check(m.label)
    m.peak = dict(channel.send(PerfMemory()).peak_bytes)
    m.seconds = seconds() - start
    return m
