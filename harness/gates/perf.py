"""Performance gate: candidate against baseline, interleaved call by call in one contestant, with intervals.

Why in one process: on a shared machine every process carries its own speed offset (up to 2x between
processes here, ../shared/MEASUREMENT.md); interleaving candidate and baseline in one process cancels it,
and identical code then measures within about 1%. Why it can be trusted anyway: the baseline (the kind's
reference, or the base branch's version of the module) is imported and fingerprinted before the candidate
(harness/perf/integrity.py); every block is bounded by the judge's clock; threads and child processes are
read from /proc by the judge; outputs of sampled timed calls and of fresh inputs after timing are checked
against the reference here; and the baseline is timed again in a clean worker that never imports the
candidate. A failed check is the verdict `tampered`, never a speed figure.
"""

from __future__ import annotations

import math
import os
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.contract import ModuleSpec
from harness.gates.compare import compare_approximate, compare_exact
from harness.gates.unit import CaseResult
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import Session, source_message
from harness.kinds import KINDS
from harness.kinds.base import CallArgs, Case, Kind, case_seed, generator
from harness.perf import stats
from harness.perf.pools import Salt, salt_for, salt_values, salted_entry
from harness.perf.roofline import MARGIN, Roofline
from harness.perf.timer import now_ns, seconds
from harness.registry import ModuleSource
from harness.results.records import GateResult

SIDES = ("candidate", "baseline")
POOLS = ("A", "B")  # two input pools; the sides swap them every block
DTYPE = torch.float32  # CPU speed is judged in float32; low-precision kernels are a GPU matter


@dataclass(frozen=True)
class PerfSettings:
    """How long and how precisely each (case, mode) is measured, and what counts as a change."""

    threshold: float = 0.10  # the slowdown the regression gate exists to catch (see stats.decide)
    warmup_s: float = 0.2  # per (case, mode), both sides, before any timed block
    block_s: float = 0.1  # target duration of one block (both sides); sets the rounds per block
    min_blocks: int = 10  # blocks before the interval may stop the measurement
    max_blocks: int = 80
    budget_s: float = 4.0  # per (case, mode): stop when the interval is narrow enough or this time is spent
    target_half_width: float = 0.008  # stop once the 99% interval is within about +-0.8%
    pool_bytes: int = 48 * 2**20  # input pool per side (at least 2 entries, at most 16)
    retain_bytes: int = 384 * 2**20  # outputs of one block held for the judge's checks (caps rounds per block)
    samples: int = 3  # timed calls per side per (case, mode) whose outputs the judge checks
    cross_check_factor: float = 3.0  # baseline beside the candidate at most this much slower than alone
    busy_thread_ms: float = 20.0  # CPU another thread of the contestant may use during one block


@dataclass
class Measurement:
    """One (case, mode): the ratio, the raw times, memory, and whatever went wrong."""

    case: Case
    backward: bool
    ratio: stats.Ratio | None = None
    times: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in SIDES})
    rounds: int = 0
    blocks: int = 0
    peak: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # wrong outputs, impossible times
    tampered: list[str] = field(default_factory=list)  # failed integrity facts
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"perf/{'forward+backward' if self.backward else 'forward'}/{self.case.id}"


class Tampered(Exception):
    """An integrity fact failed: the measurement cannot be trusted and stops."""


def _pool(kind: Kind, case: Case, seed: int, side: str, size: int) -> list[CallArgs]:
    return [kind.make_inputs(case, DTYPE, generator(case_seed(seed, case.id, DTYPE, f"perf/{side}/{i}")))
            for i in range(size)]


def _entry_bytes(args: CallArgs) -> int:
    return sum(v.numel() * v.element_size() for v in args.values() if isinstance(v, torch.Tensor))


def _thread_ticks(pid: int) -> dict[int, int]:
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


class PerfJudge:
    """Runs the performance gate of one module: a clean-worker pass, then the interleaved measurement."""

    def __init__(self, spec: ModuleSpec, source: ModuleSource, base: ModuleSource | None, limits: Limits,
                 seed: int, roofline: Roofline, settings: PerfSettings) -> None:
        self.spec, self.source, self.base = spec, source, base
        self.kind = KINDS[spec.kind]
        self.variant = spec.variants[0]
        self.limits, self.seed, self.roofline, self.settings = limits, seed, roofline, settings
        self.core = max(0, (os.cpu_count() or 1) - 1)
        self.rng = random.Random(case_seed(seed, f"perf/{spec.name}", DTYPE))
        self.plan = [(case, backward) for case in self.kind.perf_cases(self.variant) for backward in (False, True)]
        self.grad_names = tuple(self.kind.grad_inputs(self.variant))

    # --- messages ------------------------------------------------------------------------------------------

    def baseline_message(self) -> dict[str, Any]:
        probe_case = self.plan[0][0]
        return {"op": "perf_baseline", "kind": self.spec.kind, "variant": self.variant, "core": self.core,
                "baseline": None if self.base is None else source_message(self.base),
                "probe": _pool(self.kind, probe_case, self.seed, "probe", 1)[0], "grad_names": list(self.grad_names)}

    def _case_message(self, case: Case, backward: bool, sides: tuple[str, ...],
                      pools: dict[str, list[CallArgs]], salts: dict[str, Salt]) -> dict[str, Any]:
        grad_out = None
        if backward:
            out = self.kind.reference(self.variant, next(iter(pools.values()))[0])
            gen = generator(case_seed(self.seed, case.id, DTYPE, "perf/grad_out"))
            grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
        return {"op": "perf_case", "sides": list(sides), "pools": pools, "backward": backward, "grad_out": grad_out,
                "grad_names": list(self.grad_names), "salts": {p: salt.as_message() for p, salt in salts.items()}}

    def _pools(self, case: Case, names: tuple[str, ...], size: int | None = None) -> dict[str, list[CallArgs]]:
        if size is None:
            one = _entry_bytes(_pool(self.kind, case, self.seed, "size", 1)[0])
            size = min(16, max(2, self.settings.pool_bytes // max(1, one)))
        return {name: _pool(self.kind, case, self.seed, f"pool {name}", size) for name in names}

    def _salts(self, case: Case, pools: dict[str, list[CallArgs]]) -> dict[str, Salt]:
        salted = self.kind.salted_arg(self.variant)
        return {name: salt_for(pool, salted, case_seed(self.seed, case.id, DTYPE, f"salt/{name}"))
                for name, pool in pools.items()}

    # --- the clean worker -----------------------------------------------------------------------------------

    def clean_baseline(self) -> dict[str, float]:
        """Median baseline time per (case, mode) in a worker that never imports the candidate."""
        medians: dict[str, float] = {}
        with Contestant(self.limits, f"{self.spec.name}-clean") as contestant:
            session = Session(contestant)
            session.send(self.baseline_message())
            for case, backward in self.plan:
                if backward:
                    continue  # coarse by nature; the forward cases are enough to see a slowed baseline
                pools = self._pools(case, ("A",), size=2)
                session.send(self._case_message(case, backward, ("baseline",), pools, self._salts(case, pools)))
                warm = session.send({"op": "perf_warmup", "seconds": 0.1})
                rounds = self._rounds(warm["ns"], self.output_bytes(pools))
                times: list[int] = []
                for _ in range(3):
                    values = {"A": salt_values(self.rng.getrandbits(62), rounds, DTYPE)}
                    reply = session.send({"op": "perf_block", "order": [["baseline"]] * rounds,
                                          "pools": {"baseline": "A"}, "salt_values": values})
                    times += reply["ns"]["baseline"]
                    session.send({"op": "perf_outputs", "picks": []})
                medians[Measurement(case, backward).label] = statistics.median(times)
        return medians

    def _rounds(self, warm_ns: dict[str, list[int]], out_bytes: int = 0) -> int:
        """Rounds per block: about `block_s` of calls, and no more outputs than `retain_bytes` held at once.

        The contestant keeps every output of a block until the judge has picked the ones it checks, so no call
        of a block can tell whether it will be checked; the cap keeps that affordable for large outputs.
        """
        per_round = sum(max(1, statistics.median(v)) for v in warm_ns.values())
        rounds = min(4000, max(3, self.settings.block_s * 1e9 / per_round))
        if out_bytes:
            rounds = min(rounds, max(2, self.settings.retain_bytes // (len(warm_ns) * out_bytes)))
        return int(rounds)

    def output_bytes(self, pools: dict[str, list[CallArgs]]) -> int:
        out = self.kind.reference(self.variant, next(iter(pools.values()))[0])
        return out.numel() * out.element_size()

    # --- the interleaved measurement -----------------------------------------------------------------------

    def measure(self, session: Session, contestant: Contestant, case: Case, backward: bool) -> Measurement:
        start = seconds()
        m = Measurement(case, backward)
        pools = self._pools(case, POOLS)
        salts = self._salts(case, pools)
        session.send(self._case_message(case, backward, SIDES, pools, salts))
        warm = session.send({"op": "perf_warmup", "seconds": self.settings.warmup_s})
        m.rounds = self._rounds(warm["ns"], self.output_bytes(pools))
        sample_blocks = set(self.rng.sample(range(self.settings.min_blocks), self.settings.samples))
        calls = dict.fromkeys(POOLS, 0)
        values: list[float] = []
        deadline = seconds() + self.settings.budget_s
        while True:
            # The sides swap pools every block: two sets of buffers can differ in speed by a steady percent
            # (where the allocator placed them), and swapping cancels that instead of billing it to one side.
            assigned = dict(zip(SIDES, POOLS if m.blocks % 2 == 0 else POOLS[::-1], strict=True))
            order = [self.rng.sample(SIDES, 2) for _ in range(m.rounds)]
            salt_vals = {name: salt_values(self.rng.getrandbits(62), m.rounds, DTYPE) for name in POOLS}
            reply = self._block(session, contestant, order, assigned, salt_vals)
            for side in SIDES:
                m.times[side] += reply["ns"][side]
            drop = 1 if m.rounds > 3 else 0  # the first round after the judge's message runs with colder caches
            values.append(stats.block_value(reply["ns"]["candidate"][drop:], reply["ns"]["baseline"][drop:]))
            if m.blocks in sample_blocks:
                self._check_sample(session, m, pools, salts, assigned, salt_vals, calls)
            else:
                session.send({"op": "perf_outputs", "picks": []})
            for name in POOLS:
                calls[name] += m.rounds
            m.blocks += 1
            if m.blocks >= self.settings.min_blocks:
                m.ratio = stats.ratio_interval(values)
                narrow = m.ratio.half_width <= self.settings.target_half_width
                if narrow or m.blocks >= self.settings.max_blocks or seconds() > deadline:
                    break
        m.peak = {k: int(v) for k, v in session.send({"op": "perf_memory"})["peak_bytes"].items()}
        m.seconds = seconds() - start
        return m

    def _block(self, session: Session, contestant: Contestant, order: list[list[str]], assigned: dict[str, str],
               salt_vals: dict[str, torch.Tensor]) -> dict[str, Any]:
        """One timed block, bounded by the judge's clock, with threads and processes read from /proc."""
        assert contestant.proc is not None
        pid = contestant.proc.pid
        ticks = _thread_ticks(pid)
        start = now_ns()
        reply = session.send({"op": "perf_block", "order": order, "pools": assigned, "salt_values": salt_vals})
        wall = now_ns() - start
        after = _thread_ticks(pid)
        reported = sum(sum(v) for v in reply["ns"].values())
        if reported > wall:
            raise Tampered(f"the contestant reported {reported / 1e6:.2f} ms of calls in a block that took "
                           f"{wall / 1e6:.2f} ms on the judge's clock")
        if reply["hooks"]:
            raise Tampered(f"while timing: {'; '.join(reply['hooks'])}")
        tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
        busy = {tid: (after[tid] - ticks.get(tid, 0)) * tick_ms for tid in after if tid != pid}
        worst = max(busy.items(), key=lambda kv: kv[1], default=(0, 0.0))
        # A thread spinning on the timed core gets about half of a block; more than a quarter of it, or the
        # absolute limit, is flagged (never less than one clock tick: the kernel counts CPU time in ticks).
        limit = max(tick_ms, min(self.settings.busy_thread_ms, 0.25 * wall / 1e6))
        if worst[1] > limit:
            raise Tampered(f"thread {worst[0]} of the contestant used {worst[1]:.0f} ms of CPU during a timed block "
                           "(only the timing thread may run)")
        others = contestant.members() - {pid}
        if others:
            raise Tampered(f"the contestant started processes {sorted(others)}; none may run while timing")
        return reply

    def _check_sample(self, session: Session, m: Measurement, pools: dict[str, list[CallArgs]],
                      salts: dict[str, Salt], assigned: dict[str, str], salt_vals: dict[str, torch.Tensor],
                      calls: dict[str, int]) -> None:
        """Outputs of one random round of the block, both sides, against the reference on the exact inputs."""
        r = self.rng.randrange(m.rounds)
        got = session.send({"op": "perf_outputs", "picks": [[r, side] for side in SIDES]})["outputs"]
        for side, out in zip(SIDES, got, strict=True):
            name = assigned[side]
            index = (calls[name] + r) % len(pools[name])
            args = salted_entry(pools[name][index], salts[name], index, salt_vals[name][r])
            problem = self._wrong(side, args, out)
            if problem and side == "baseline":
                raise Tampered(f"the baseline's output during timing is wrong ({problem})")
            if problem:
                m.failures.append(f"{m.label}: candidate output during timing: {problem}")

    def _wrong(self, side: str, args: CallArgs, out: object) -> str | None:
        """Why `out` is not the reference's answer on `args`, or None when it is."""
        reference = self.kind.reference(self.variant, args)
        if type(out) is not torch.Tensor or out.shape != reference.shape:
            return f"expected a tensor of shape {tuple(reference.shape)}, found {type(out).__name__}"
        wide = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in args.items()}
        oracle = self.kind.reference(self.variant, wide)
        policy = self.kind.tolerance
        if side == "baseline" or self.spec.exact or self.spec.bound is None:
            verdict = compare_exact("output", out, reference, oracle, DTYPE, policy)
        else:
            verdict = compare_approximate("output", out, reference, oracle, self.spec.bound, (DTYPE, policy, None))
        return None if verdict.passed else verdict.message

    def check_fresh(self, session: Session) -> list[str]:
        """Outputs on inputs never used in timing, after timing."""
        case = self.plan[0][0]
        inputs = {side: _pool(self.kind, case, self.seed, f"fresh {side}", 1)[0] for side in SIDES}
        got = session.send({"op": "perf_fresh", "inputs": inputs})["outputs"]
        problems = []
        for side in SIDES:
            problem = self._wrong(side, inputs[side], got[side])
            if problem and side == "baseline":
                raise Tampered(f"the baseline's output after timing is wrong ({problem})")
            if problem:
                problems.append(f"candidate output on fresh inputs after timing: {problem}")
        return problems

    def cross_check(self, m: Measurement, clean: dict[str, float]) -> None:
        """The baseline beside the candidate may not be much slower than the baseline alone (coarse: processes
        differ by up to 2x here, so only a large gap is a fact rather than noise)."""
        alone = clean.get(m.label)
        beside = statistics.median(m.times["baseline"])
        if alone and beside > self.settings.cross_check_factor * alone:
            raise Tampered(f"{m.label}: the baseline ran {beside / alone:.1f}x slower beside the candidate than in a "
                           f"clean worker (limit {self.settings.cross_check_factor:g}x)")

    def integrity(self, session: Session, when: str) -> None:
        facts = session.send({"op": "perf_integrity"})
        if facts["changed"]:
            shown = ", ".join(facts["changed"][:5]) + (" ..." if len(facts["changed"]) > 5 else "")
            raise Tampered(f"{when}, objects the baseline depends on were replaced: {shown}")
        if facts["hooks"]:
            raise Tampered(f"{when}: {'; '.join(facts['hooks'])}")

    # --- reporting -------------------------------------------------------------------------------------------

    def record(self, m: Measurement, clean: dict[str, float]) -> dict[str, Any]:
        cand = statistics.median(m.times["candidate"]) if m.times["candidate"] else math.nan
        base = statistics.median(m.times["baseline"]) if m.times["baseline"] else math.nan
        metrics: dict[str, float] = {"candidate_ns": cand, "baseline_ns": base, "blocks": float(m.blocks),
                                     "rounds_per_block": float(m.rounds)}
        if m.ratio is not None:
            metrics.update({"ratio": m.ratio.estimate, "ratio_low": m.ratio.low, "ratio_high": m.ratio.high})
        if m.label in clean:
            metrics["clean_baseline_ns"] = clean[m.label]
        if m.peak:
            metrics["candidate_peak_bytes"] = float(m.peak.get("candidate", 0))
            metrics["baseline_peak_bytes"] = float(m.peak.get("baseline", 0))
            if m.peak.get("baseline"):
                metrics["memory_ratio"] = m.peak.get("candidate", 0) / m.peak["baseline"]
        failures = list(m.failures)
        if not m.backward and cand == cand:
            flops, moved = self.kind.flops(m.case), self.kind.bytes_moved(m.case, DTYPE)
            bound = self.roofline.bound_ns(flops, moved)
            metrics.update({"flops": float(flops), "bytes": float(moved), "gflops": flops / cand,
                            "gbps": moved / cand, "bound_ns": bound, "roofline_pct": 100.0 * bound / cand})
            if cand * MARGIN < bound:
                failures.append(f"{m.label}: {cand / 1e3:.1f} us per call is faster than this machine can move "
                                f"{moved:,} bytes and compute {flops:,} flops ({bound / 1e3:.1f} us, measured "
                                f"roofline; {MARGIN:g}x margin): work is skipped or cached")
        result = CaseResult(m.label, "float32", not failures, failures, dict(m.case.sizes), metrics, m.seconds)
        return result.as_dict()


def summarize(measurements: list[Measurement], threshold: float) -> tuple[dict[str, float], stats.Decision | None]:
    """Geometric means (forward, forward+backward, all) with intervals, and the decision on the overall one."""
    summary: dict[str, float] = {}
    decision = None
    groups = {"forward": [m for m in measurements if not m.backward],
              "forward_backward": [m for m in measurements if m.backward], "all": measurements}
    for name, group in groups.items():
        ratios = [m.ratio for m in group if m.ratio is not None]
        if not ratios:
            continue
        g = stats.geometric_mean(ratios)
        summary.update({f"{name}.ratio": g.estimate, f"{name}.low": g.low, f"{name}.high": g.high})
        if name == "all":
            decision = stats.decide(g, threshold)
    return summary, decision


def perf_gate(judge: PerfJudge, gate: GateResult, base_label: str) -> None:
    """Measure every (case, mode) and conclude: tampered, fail (wrong or impossible), or the ratio's verdict."""
    measurements: list[Measurement] = []
    try:
        gate.reason = "while timing the baseline in a clean worker"
        clean = judge.clean_baseline()
        with Contestant(judge.limits, judge.spec.name) as contestant:
            session = Session(contestant)
            gate.reason = "while preparing the baseline"
            threads = int(session.send(judge.baseline_message())["threads"])
            session.load(judge.source)
            judge.integrity(session, "after importing the candidate")
            for case, backward in judge.plan:
                gate.reason = f"while timing {Measurement(case, backward).label}"
                m = judge.measure(session, contestant, case, backward)
                measurements.append(m)
                gate.cases.append(judge.record(m, clean))
                judge.cross_check(m, clean)
            judge.integrity(session, "after timing")
            fresh = judge.check_fresh(session)
    except Tampered as exc:
        gate.verdict, gate.reason = "tampered", str(exc)
        return
    summary, decision = summarize(measurements, judge.settings.threshold)
    gate.summary = {**summary, "threads": float(threads), "threshold": judge.settings.threshold}
    failures = [f for c in gate.cases for f in c["failures"]] + fresh
    if failures:
        gate.verdict, gate.reason = "fail", failures[0]
        return
    if decision is None:
        gate.verdict, gate.reason = "error", "no measurement finished"
        return
    gate.verdict = decision.outcome if base_label == "base" and decision.outcome in ("fail", "suspect") else "pass"
    gate.reason = f"vs {base_label}: {decision.reason}"

