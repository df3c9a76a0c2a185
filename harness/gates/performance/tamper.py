"""Facts that show a measurement can be trusted; any that fails makes the verdict `tampered`, never a speed.

Measuring inside the contestant gives the candidate a chance to slow the baseline or to fake its own clock.
The judge checks, with what the contestant cannot forge: its own clock around every block (the contestant's clock
readings must fit inside it, and the time its timer leaves out must be the same for both sides), the contestant's
threads and processes read from /proc, the outputs of sampled timed calls and of fresh inputs recomputed
here, the identity of everything the baseline depends on (reported by the contestant, snapshotted before the
candidate was imported), and the baseline's speed in a clean worker that never imported the candidate.
"""

from __future__ import annotations

import os
import statistics
from concurrent.futures import Executor, Future

import torch

from harness.core.compare import compare_tensor
from harness.core.tolerance import TolerancePolicy
from harness.gates.base import Channel
from harness.gates.performance.inputs import BlockInputs, Mode, Pools, TimingPlan
from harness.gates.performance.settings import (
    BUSY_BLOCK_SHARE,
    CALIBRATION_FACTOR,
    CHANGES_SHOWN,
    DTYPE,
    EARLIER_INPUTS_CHECKED,
    SIDES,
    UNTIMED_FLOOR_NS,
    WINDOW_SHARE,
    WINDOW_TICKS,
)
from harness.kinds.base import CallArgs, Case
from harness.perf.pools import salted_entry
from harness.perf.timer import now_ns
from harness.protocol.messages import BlockTimes, PerfBlock, PerfFresh, PerfIntegrity, PerfOutputs, Salt


def plainly_right(out: torch.Tensor, reference: torch.Tensor, policy: TolerancePolicy) -> bool:
    """`out` is within half the policy's eps floor of the same-dtype reference: then it passes the exact tolerance
    whatever the float64 oracle says, so the oracle (a float64 pass over the whole case, most of a check's time on
    the large cases) is not computed. Anything else goes through the full comparison.

    Why it passes: error(out) <= |out - reference| + error(reference). With max|oracle| >= max|reference| / 2, the
    first term is within the floor (floor_eps eps max|oracle|); otherwise error(reference) > max|reference| / 2,
    and (multiplier - 1) times it covers the first term, for any multiplier of at least 2.
    """
    if out.dtype != reference.dtype or policy.multiplier < 2 or not bool(torch.isfinite(reference).all()):
        return False
    if torch.equal(out, reference):
        return True
    if out.numel() == 0:
        return False
    half_floor = policy.floor_eps * torch.finfo(reference.dtype).eps * float(reference.abs().max()) / 2
    return float((out - reference).abs().max()) <= half_floor  # NaN or inf in `out`: False


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


def process_ticks(pid: int) -> tuple[int, int]:
    """CPU ticks (user + system) of `pid`: all its threads, those that have exited included, and its main thread."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            every = handle.read().rsplit(b")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as handle:
            main = handle.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return int(every[11]) + int(every[12]), int(main[11]) + int(main[12])


def baseline_times(reply: BlockTimes, rounds: int) -> list[int]:
    """The baseline's times from a block of `rounds` rounds run in a clean worker (no candidate there to check the
    clock against: only the count and the sign are facts to hold)."""
    times = reply.ns.get("baseline")
    if times is None or times.numel() != rounds or bool((times < 0).any()):
        raise Tampered(f"the clean worker reported {None if times is None else times.numel()} times for {rounds} calls")
    return list(times.tolist())


class Watch:
    """The judge's checks on one module's timing contestant."""

    def __init__(self, plan: TimingPlan, host_timer: bool = True) -> None:
        self.plan = plan
        # The timer measures time on the host's clock (CPU). A device timer (CUDA events) leaves out the host's own
        # work on each call, which differs between modules honestly, so what it leaves out is not compared.
        self.host_timer = host_timer
        # What the timer left out of each call of the (case, mode) being timed, per side, and the baseline's times:
        # judged over the whole measurement (`untimed_check`), so a few calls preempted on a busy machine cannot
        # outweigh the rest, while work moved outside the timer on most calls still shows.
        self.untimed: dict[str, list[int]] = {side: [] for side in SIDES}
        self.baseline_ns: list[int] = []
        # The contestant's CPU ticks (all threads, main thread) and the judge's clock when the window over a whole
        # (case, mode) opened (`open_window`).
        self._window: tuple[int, int, int] | None = None
        self.pools_sent: str | None = None  # the case whose timing pools the contestant holds

    def block(self, channel: Channel, request: PerfBlock) -> dict[str, list[int]]:
        """One timed block, bounded by the judge's clock, with threads and processes read from /proc: each side's
        time per round, once every fact about them holds."""
        pid = channel.pid
        ticks = thread_ticks(pid)
        start = now_ns()
        reply = channel.send(request)
        end = now_ns()
        wall = end - start
        after = thread_ticks(pid)
        if reply.hooks:
            raise Tampered(f"while timing: {'; '.join(reply.hooks)}")
        times = self._clock(request, reply, start, end)
        reported = sum(sum(v) for v in times.values())
        if reported > wall:
            raise Tampered(
                f"the contestant reported {reported / 1e6:.2f} ms of calls in a block that took "
                f"{wall / 1e6:.2f} ms on the judge's clock"
            )
        self._busy_threads(pid, ticks, after, wall)
        others = channel.members() - {pid}
        if others:
            raise Tampered(f"the contestant started processes {sorted(others)}; none may run while timing")
        return times

    def _clock(self, request: PerfBlock, reply: BlockTimes, start: int, end: int) -> dict[str, list[int]]:
        """The contestant's clock readings fit the judge's clock around the block (both read the system's monotonic
        clock), every reported call lies between the readings just before and after it, and what the timer left
        out between them (its own few hundred nanoseconds: the same code for both sides) is kept for
        `untimed_check`: not longer for the candidate's calls than for the baseline's. A clock replaced or skipped
        only around the candidate's calls, or work the candidate does just before or after the timer reads the
        clock, shows as that difference. Returns each side's times as the judge's lists."""
        order = request.order.long()
        rounds, width = order.shape
        stamps = reply.stamps
        if (
            sorted(request.sides) != sorted(SIDES)
            or sorted(reply.ns) != sorted(SIDES)
            or stamps.numel() != 2 * rounds * width
            or any(v.numel() != rounds for v in reply.ns.values())
        ):
            raise Tampered(
                f"the contestant reported {stamps.numel()} clock readings and "
                f"{ {side: v.numel() for side, v in reply.ns.items()} } times for a block of {rounds} rounds of {SIDES}"
            )
        # every reading inside the judge's window first, so no difference below can overflow
        inside = bool(((stamps >= start) & (stamps <= end)).all())
        if not inside or bool((stamps[1:] < stamps[:-1]).any()):
            raise Tampered(
                f"the contestant's clock read {(int(stamps[0]) - start) / 1e6:.3f} to "
                f"{(int(stamps[-1]) - start) / 1e6:.3f} ms into a block that took {(end - start) / 1e6:.3f} ms on "
                "the judge's clock: its clock was replaced"
            )
        by_side = torch.stack([reply.ns[side] for side in request.sides], dim=1)  # (rounds, side index)
        call_ns = by_side.gather(1, order).reshape(-1)  # in call order
        span = stamps[1::2] - stamps[0::2]
        outside = (call_ns < 0) | (call_ns > span)
        if bool(outside.any()):
            i = int(outside.nonzero()[0, 0])
            side = request.sides[int(order.reshape(-1)[i])]
            raise Tampered(
                f"the contestant reported a {side} call of {int(call_ns[i]) / 1e3:.1f} us between clock readings "
                f"{int(span[i]) / 1e3:.1f} us apart: its clock was replaced"
            )
        left_out, called = span - call_ns, order.reshape(-1)
        for j, side in enumerate(request.sides):
            self.untimed[side] += left_out[called == j].tolist()
        times = {side: reply.ns[side].tolist() for side in SIDES}
        self.baseline_ns += times["baseline"]
        return times

    def untimed_check(self, label: str) -> None:
        """Over every block of `label`: the median time the timer left out of a candidate call exceeds a baseline
        call's by at most a quarter of the threshold's share of a baseline call (or UNTIMED_FLOOR_NS). Then starts
        afresh for the next (case, mode)."""
        untimed, baseline_ns = self.untimed, self.baseline_ns
        self.untimed, self.baseline_ns = {side: [] for side in SIDES}, []
        if not self.host_timer or not baseline_ns or not all(untimed.values()):
            return
        extra = statistics.median(untimed["candidate"]) - statistics.median(untimed["baseline"])
        limit = max(UNTIMED_FLOOR_NS, self.plan.settings.threshold / 4 * statistics.median(baseline_ns))
        if extra > limit:
            raise Tampered(
                f"{label}: each candidate call left {extra / 1e3:.1f} us more outside the timer than a baseline call "
                f"(median of {len(untimed['candidate'])} calls; limit {limit / 1e3:.1f} us; the timer's own overhead "
                "is the same for both): part of its work ran outside the timed region, or its clock skipped"
            )

    def open_window(self, channel: Channel) -> None:
        """Start counting the CPU of the contestant's threads other than the timing thread (see `close_window`)."""
        self._window = (*process_ticks(channel.pid), now_ns())

    def close_window(self, channel: Channel, label: str) -> None:
        """Over the whole measurement since `open_window`, blocks and the gaps between them alike, the contestant's
        other threads (those that have exited included) used at most WINDOW_SHARE of the time on the judge's clock.
        Honest calls run on the timing thread alone (one torch thread), so this is near zero for them. A thread that
        finishes the candidate's outputs later uses about as much CPU as the candidate's calls would, whenever it
        gets a core: on a busy machine mostly between blocks, where the per-block check does not look, but never
        outside this window, since the sampled outputs must be complete when the judge fetches them."""
        if self._window is None:
            return
        every_before, main_before, start = self._window
        every_after, main_after = process_ticks(channel.pid)
        self._window = None
        tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
        others_ms = ((every_after - main_after) - (every_before - main_before)) * tick_ms
        limit = max(WINDOW_TICKS * tick_ms, WINDOW_SHARE * (now_ns() - start) / 1e6)
        if others_ms > limit:
            raise Tampered(
                f"{label}: threads other than the timing thread used {others_ms:.0f} ms of CPU over the measurement "
                f"(limit {limit:.0f} ms, {WINDOW_SHARE:.0%} of its time): work done beside the timed calls, such as "
                "outputs finished later by another thread"
            )

    def _busy_threads(self, pid: int, before: dict[int, int], after: dict[int, int], wall_ns: int) -> None:
        """No thread but the timing one ran for long during the block."""
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
        checks: Executor,
        mode: Mode,
        rounds: int,
        pools: Pools,
        salts: dict[str, Salt],
        history: list[BlockInputs],
    ) -> Future[list[str]]:
        """Outputs of one random round of the last block of `history`, both sides, fetched now and checked in
        `checks` (a thread on the judge's core, which is idle while the contestant is timed) against the reference
        on the exact inputs. A wrong baseline output is tampering (raised by the future's result); a wrong candidate
        output is a failure in the result, which says so when it is the right answer to an earlier input of the same
        pool entry (a cached answer).
        """
        r = self.plan.rng.randrange(rounds)
        got = channel.send(PerfOutputs(picks=[(r, side) for side in SIDES])).outputs
        return checks.submit(self._check_sample, mode, r, got, pools, salts, list(history))

    def _check_sample(
        self,
        mode: Mode,
        r: int,
        got: list[object],
        pools: Pools,
        salts: dict[str, Salt],
        history: list[BlockInputs],
    ) -> list[str]:
        block = history[-1]
        failures = []
        for side, out in zip(SIDES, got, strict=True):
            name = block.assigned[side]
            index = (block.calls[name] + r) % len(pools[name])
            args = salted_entry(pools[name][index], salts[name], index, block.salt_values[name][r])
            problem = self.wrong(side, mode.case, args, out)
            if problem and side == "baseline":
                raise Tampered(f"the baseline's output during timing is wrong ({problem})")
            if problem:
                cached = self._cached(mode.case, pools[name], salts[name], index, history, r, out)
                failures.append(f"{mode.label}: candidate output during timing: {cached}{problem}")
        return failures

    def _cached(
        self,
        case: Case,
        pool: list[CallArgs],
        salt: Salt,
        index: int,
        history: list[BlockInputs],
        now: int,
        out: object,
    ) -> str:
        """A sentence when `out` answers an earlier input the candidate was given in entry `index` of `pool` (as
        generated, or as salted for its earliest or latest earlier calls there) instead of this one; '' otherwise."""
        name, last = history[-1].assigned["candidate"], len(history) - 1
        earlier = [
            block.salt_values[name][r]
            for b, block in enumerate(history)
            if block.assigned["candidate"] == name
            for r in range((index - block.calls[name]) % len(pool), len(block.salt_values[name]), len(pool))
            if b < last or r < now
        ]
        k = EARLIER_INPUTS_CHECKED
        inputs = [pool[index], *(salted_entry(pool[index], salt, index, v) for v in earlier[:k] + earlier[k:][-k:])]
        if any(self.wrong("candidate", case, args, out) is None for args in inputs):
            return "a cached answer (right for an earlier input in the same buffer, not for this one): "
        return ""

    def calibration(self, label: str, sized: dict[str, list[int]], timed: dict[str, list[int]]) -> None:
        """The calls the blocks were sized from (right after the warm-up) were not much slower than the same side's
        calls while timed: a module that can tell when blocks are being sized could otherwise choose their length."""
        for side in SIDES:
            fastest, median = min(sized.get(side) or [0]), max(1.0, statistics.median(timed[side]))
            if fastest > CALIBRATION_FACTOR * median:
                raise Tampered(
                    f"{label}: the {side}'s calls took {fastest / median:.0f}x longer while the judge sized the "
                    f"blocks (right after the warm-up, one input again and again: {fastest / 1e3:.1f} us) than while "
                    f"timed ({median / 1e3:.1f} us; limit {CALIBRATION_FACTOR:g}x): a module slower when it is not "
                    "timed gets short blocks, whose noise can hide a regression"
                )

    def wrong(self, side: str, case: Case, args: CallArgs, out: object) -> str | None:
        """Why `out` is not the reference's answer on `args`, or None when it is."""
        plan = self.plan
        reference = plan.kind.reference(plan.variant, args)
        if type(out) is not torch.Tensor or out.shape != reference.shape:
            return f"expected a tensor of shape {tuple(reference.shape)}, found {type(out).__name__}"
        policy = plan.kind.tolerance_for(case, DTYPE)
        if plainly_right(out, reference, policy):
            return None
        wide = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in args.items()}
        oracle = plan.kind.reference(plan.variant, wide)
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
