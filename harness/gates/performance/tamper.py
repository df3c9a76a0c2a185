"""Facts that show a measurement can be trusted; any that fails makes the verdict `tampered`, never a speed.

Measuring inside the contestant gives the candidate a chance to slow the baseline or to fake its own clock.
The judge checks, with what the contestant cannot forge: its own clock around every block, the contestant's
threads and processes read from /proc, the outputs of sampled timed calls and of fresh inputs recomputed
here, the identity of everything the baseline depends on (reported by the contestant, snapshotted before the
candidate was imported), and the baseline's speed in a clean worker that never imported the candidate.
"""

from __future__ import annotations

import os
import statistics

import torch

from harness.core.compare import compare_tensor
from harness.gates.base import Channel
from harness.gates.performance.inputs import Mode, Pools, TimingPlan
from harness.gates.performance.settings import BUSY_BLOCK_SHARE, CHANGES_SHOWN, DTYPE, SIDES
from harness.kinds.base import CallArgs, Case
from harness.perf.pools import salted_entry
from harness.perf.timer import now_ns
from harness.protocol.messages import BlockTimes, PerfBlock, PerfFresh, PerfIntegrity, PerfOutputs, Salt


class Tampered(Exception):
    """An integrity fact failed: the measurement cannot be trusted and stops."""


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks (user + system) per thread of `pid`, read from /proc by the judge."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


class Watch:
    """The judge's checks on one module's timing contestant."""

    def __init__(self, plan: TimingPlan) -> None:
        self.plan = plan

    def block(self, channel: Channel, request: PerfBlock) -> BlockTimes:
        """One timed block, bounded by the judge's clock, with threads and processes read from /proc."""
        pid = channel.pid
        ticks = thread_ticks(pid)
        start = now_ns()
        reply = channel.send(request)
        wall = now_ns() - start
        after = thread_ticks(pid)
        reported = sum(sum(v) for v in reply.ns.values())
        if reported > wall:
            raise Tampered(
                f"the contestant reported {reported / 1e6:.2f} ms of calls in a block that took "
                f"{wall / 1e6:.2f} ms on the judge's clock"
            )
        if reply.hooks:
            raise Tampered(f"while timing: {'; '.join(reply.hooks)}")
        self._busy_threads(pid, ticks, after, wall)
        others = channel.members() - {pid}
        if others:
            raise Tampered(f"the contestant started processes {sorted(others)}; none may run while timing")
        return reply

    def _busy_threads(self, pid: int, before: dict[int, int], after: dict[int, int], wall_ns: int) -> None:
        tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
        busy = {tid: (after[tid] - before.get(tid, 0)) * tick_ms for tid in after if tid != pid}
        worst = max(busy.items(), key=lambda kv: kv[1], default=(0, 0.0))
        # A thread spinning on the timed core gets about half of a block; more than BUSY_BLOCK_SHARE of it, or the
        # absolute limit, is flagged (never less than one clock tick: the kernel counts CPU time in ticks).
        limit = max(tick_ms, min(self.plan.settings.busy_thread_ms, BUSY_BLOCK_SHARE * wall_ns / 1e6))
        if worst[1] > limit:
            raise Tampered(
                f"thread {worst[0]} of the contestant used {worst[1]:.0f} ms of CPU during a timed block "
                "(only the timing thread may run)"
            )

    def sample(
        self,
        channel: Channel,
        mode: Mode,
        rounds: int,
        pools: Pools,
        salts: dict[str, Salt],
        assigned: dict[str, str],
        salt_vals: dict[str, torch.Tensor],
        calls: dict[str, int],
    ) -> list[str]:
        """Outputs of one random round of the last block, both sides, against the reference on the exact inputs.

        A wrong baseline output is tampering; a wrong candidate output is returned as a failure.
        """
        r = self.plan.rng.randrange(rounds)
        got = channel.send(PerfOutputs(picks=[(r, side) for side in SIDES])).outputs
        failures = []
        for side, out in zip(SIDES, got, strict=True):
            name = assigned[side]
            index = (calls[name] + r) % len(pools[name])
            args = salted_entry(pools[name][index], salts[name], index, salt_vals[name][r])
            problem = self.wrong(side, mode.case, args, out)
            if problem and side == "baseline":
                raise Tampered(f"the baseline's output during timing is wrong ({problem})")
            if problem:
                failures.append(f"{mode.label}: candidate output during timing: {problem}")
        return failures

    def wrong(self, side: str, case: Case, args: CallArgs, out: object) -> str | None:
        """Why `out` is not the reference's answer on `args`, or None when it is."""
        plan = self.plan
        reference = plan.kind.reference(plan.variant, args)
        if type(out) is not torch.Tensor or out.shape != reference.shape:
            return f"expected a tensor of shape {tuple(reference.shape)}, found {type(out).__name__}"
        wide = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in args.items()}
        oracle = plan.kind.reference(plan.variant, wide)
        policy = plan.kind.tolerance_for(case, DTYPE)
        bound = None if side == "baseline" or plan.spec.exact else plan.spec.bound
        comparison = compare_tensor("output", out, reference, oracle, DTYPE, policy, bound)
        return None if comparison.passed else comparison.message

    def fresh(self, channel: Channel) -> list[str]:
        """Outputs on inputs never used in timing, after timing."""
        case = self.plan.modes[0].case
        inputs = {side: self.plan.pool(case, f"fresh {side}", 1)[0] for side in SIDES}
        got = channel.send(PerfFresh(inputs=inputs)).outputs
        problems = []
        for side in SIDES:
            problem = self.wrong(side, case, inputs[side], got.get(side))
            if problem and side == "baseline":
                raise Tampered(f"the baseline's output after timing is wrong ({problem})")
            if problem:
                problems.append(f"candidate output on fresh inputs after timing: {problem}")
        return problems

    def cross_check(self, label: str, baseline_ns: list[int], clean: dict[str, float]) -> None:
        """The baseline beside the candidate may not be much slower than the baseline alone (coarse: processes
        differ by up to 2x here, so only a large gap is a fact rather than noise)."""
        alone = clean.get(label)
        beside = statistics.median(baseline_ns)
        factor = self.plan.settings.cross_check_factor
        if alone and beside > factor * alone:
            raise Tampered(
                f"{label}: the baseline ran {beside / alone:.1f}x slower beside the candidate than in a "
                f"clean worker (limit {factor:g}x)"
            )

    def integrity(self, channel: Channel, when: str) -> None:
        """Nothing the baseline depends on was replaced, and no hook is active."""
        facts = channel.send(PerfIntegrity())
        if facts.changed:
            shown = ", ".join(facts.changed[:CHANGES_SHOWN]) + (" ..." if len(facts.changed) > CHANGES_SHOWN else "")
            raise Tampered(f"{when}, objects the baseline depends on were replaced: {shown}")
        if facts.hooks:
            raise Tampered(f"{when}: {'; '.join(facts.hooks)}")
