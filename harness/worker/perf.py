"""Contestant side of the performance gate: candidate and baseline timed alternately in this one process.

The judge drives every step: it sends the baseline to import (before the candidate), the input pools, the
order of every round and the salt of every call, and it decides which outputs to see after each block. This
side only runs the calls, times them with the one timer, and reports facts (integrity.py). A judge that
trusts none of it checks the outputs, bounds the times by its own clock, watches threads and processes
from /proc, and cross-checks the baseline in a worker that never imports the candidate.
"""

from __future__ import annotations

import gc
import importlib
import os
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.core.contract import ModuleSource
from harness.kinds import KINDS
from harness.kinds.base import CallArgs, Kind
from harness.perf.integrity import Snapshot, active_hooks, code_objects, ops_reached
from harness.perf.memory import peak_bytes
from harness.perf.pools import apply_salt
from harness.perf.timer import make_timer, now_ns, quiet_gc, warm_up
from harness.protocol.codec import Message
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
    Salt,
    WarmedUp,
)


@dataclass
class _Pool:
    """One input pool: raw arguments, the same prepared by each side's module, its salt, calls so far."""

    raw: list[CallArgs]
    prepared: dict[str, list[CallArgs]]
    salt: Salt
    calls: int = 0


@dataclass
class _Case:
    method: str
    backward: bool
    grad_out: torch.Tensor | None
    grad_names: tuple[str, ...]
    modules: dict[str, Any]  # side -> module
    pools: dict[str, _Pool]
    outputs: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)


def _drop(out: torch.Tensor) -> None:
    return None


def _to(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


class PerfBench:
    """Holds the baseline, the candidate and the current case; answers the judge's perf_* requests."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.timer = make_timer(device)
        self.kind: Kind | None = None
        self.baseline: Any = None
        self.snapshot: Snapshot | None = None
        self.code: list[types.CodeType] = []  # the baseline's code objects, kept so later snapshots cover them
        self.threads = torch.get_num_threads()
        self.case: _Case | None = None

    # --- before the candidate is imported ------------------------------------------------------------

    def handle(self, request: Message, candidate: Any) -> Message:
        """One perf_* request after PerfBaseline."""
        if isinstance(request, PerfCase):
            return self.setup_case(request, candidate)
        if isinstance(request, PerfIntegrity):
            return self.integrity()
        if isinstance(request, PerfWarmup):
            return self.warmup(request)
        if isinstance(request, PerfBlock):
            return self.block(request)
        if isinstance(request, PerfOutputs):
            return self.outputs(request)
        if isinstance(request, PerfMemory):
            return self.memory()
        if isinstance(request, PerfFresh):
            return self.fresh(request)
        raise TypeError(f"not a performance request: {request.op!r}")

    def prepare_baseline(self, request: PerfBaseline, load_isolated: Callable[[ModuleSource], Any]) -> BaselineReady:
        """Import the baseline, pin this process, run the baseline once to learn what it reaches, snapshot."""
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {request.core})
        if request.watched:
            # Loaded before the snapshot: importing torch._dynamo replaces torch functions (torch.manual_seed), and
            # an honest candidate triggers that import by calling torch.utils.checkpoint or anything else torch
            # wraps in dynamo's disable(). Loaded after, it would read as the candidate replacing them. (About
            # 1.4 s, so only where the snapshot is checked: not in the clean worker.)
            importlib.import_module("torch._dynamo")
        kind = KINDS[request.kind]
        variant = request.variant
        self.kind = kind
        self.baseline = kind.reference_module(variant) if request.baseline is None else load_isolated(request.baseline)
        probe = _to(request.probe, self.device)
        args = kind.timed_args(self.baseline, probe)
        grad_names = request.grad_names
        method = getattr(self.baseline, kind.perf_method)

        def once() -> None:
            leaves = {n: args[n].detach().requires_grad_(True) for n in grad_names}
            with torch.enable_grad():
                out = method(**{**args, **leaves})
            if grad_names:
                out.backward(torch.ones_like(out))

        ops = ops_reached(once)
        self.code = code_objects(method) + code_objects(kind.reference) + code_objects(type(kind).reference)
        self.snapshot = Snapshot.take(ops, self.code)
        return BaselineReady(ops=sorted(ops), threads=self.threads)

    # --- after -------------------------------------------------------------------------------------------

    def integrity(self) -> IntegrityFacts:
        """What changed since the snapshot, and which hooks are active now."""
        assert self.snapshot is not None, "perf_baseline first"
        later = Snapshot.take(set(self.snapshot.dispatch), self.code)
        return IntegrityFacts(changed=self.snapshot.changes(later), hooks=active_hooks(self.threads))

    def setup_case(self, request: PerfCase, candidate: Any) -> Done:
        """The judge's pools, each prepared by every side's module (e.g. its own weight packing), untimed."""
        assert self.kind is not None and self.baseline is not None, "perf_baseline first"
        everyone = {"candidate": candidate, "baseline": self.baseline}
        modules = {side: everyone[side] for side in request.sides}
        pools = {}
        for name, entries in request.pools.items():
            raw = [_to(entry, self.device) for entry in entries]
            prepared = {side: [self.kind.timed_args(module, e) for e in raw] for side, module in modules.items()}
            pools[name] = _Pool(raw, prepared, request.salts[name])
        grad_out = request.grad_out
        self.case = _Case(
            self.kind.perf_method,
            request.backward,
            None if grad_out is None else _to(grad_out, self.device),
            request.grad_names,
            modules,
            pools,
        )
        return Done()

    def _call(self, side: str, pool: str, index: int, keep: Callable[[torch.Tensor], None]) -> Callable[[], object]:
        """The timed closure for `side` on entry `index` of `pool`: forward without autograd, or with backward."""
        case = self.case
        assert case is not None
        args = case.pools[pool].prepared[side][index]
        method = getattr(case.modules[side], case.method)
        if not case.backward:

            def forward() -> None:
                with torch.no_grad():
                    keep(method(**args))

            return forward
        leaves = {n: args[n].detach().requires_grad_(True) for n in case.grad_names}
        full = {**args, **leaves}
        grad_out = case.grad_out

        def forward_backward() -> None:
            with torch.enable_grad():
                out = method(**full)
                out.backward(grad_out)
            keep(out.detach())

        return forward_backward

    def warmup(self, request: PerfWarmup) -> WarmedUp:
        case = self.case
        assert case is not None
        pool = next(iter(case.pools))
        calls = [self._call(side, pool, 0, _drop) for side in case.modules]
        rounds = warm_up(self.timer, calls, request.seconds)
        # a few more timed calls each: the judge sizes blocks from these
        times = {
            side: [self.timer.time(self._call(side, pool, 0, _drop)) for _ in range(request.calls)]
            for side in case.modules
        }
        return WarmedUp(rounds=rounds, ns=times)

    def block(self, request: PerfBlock) -> BlockTimes:
        """Timed rounds in the judge's order, each side on the pool the judge assigned it for this block; every
        call's input salted first; outputs kept until the judge has picked the ones it checks. The clock is read
        just before and just after each timed call, for the judge to fit into its own."""
        case = self.case
        assert case is not None
        case.outputs.clear()
        order = request.order
        assigned = request.pools  # side -> pool for this block
        salts = request.salt_values  # pool -> one value per round
        times: dict[str, list[int]] = {side: [] for side in case.modules}
        stamps: list[int] = []
        hooks_before = active_hooks(self.threads)
        with quiet_gc():
            for r, sides in enumerate(order):
                for side in sides:
                    pool = case.pools[assigned[side]]
                    index = pool.calls % len(pool.raw)
                    apply_salt(pool.raw[index], pool.salt, index, salts[assigned[side]][r])
                    pool.calls += 1
                    call = self._call(side, assigned[side], index, self._keeper(case, (r, side)))
                    before = now_ns()
                    times[side].append(self.timer.time(call))
                    stamps += (before, now_ns())
            collecting = gc.isenabled()  # quiet_gc paused it; only something inside the block switched it back on
        hooks = hooks_before + active_hooks(self.threads)
        if collecting:
            hooks.append("the garbage collector was switched back on inside a timed block")
        return BlockTimes(ns=times, hooks=sorted(set(hooks)), stamps=stamps)

    @staticmethod
    def _keeper(case: _Case, key: tuple[int, str]) -> Callable[[torch.Tensor], None]:
        def keep(out: torch.Tensor) -> None:
            case.outputs[key] = out

        return keep

    def outputs(self, request: PerfOutputs) -> Outputs:
        """Outputs of the calls the judge picked from the last block, then the block's outputs are dropped."""
        case = self.case
        assert case is not None
        picked = [case.outputs.get((r, name)) for r, name in request.picks]
        case.outputs.clear()
        return Outputs(outputs=[None if t is None else t.detach().to("cpu") for t in picked])

    def memory(self) -> PeakMemory:
        """Peak tensor bytes of one call per side (outside any timed region)."""
        case = self.case
        assert case is not None
        pool = next(iter(case.pools))
        return PeakMemory(
            peak_bytes={side: peak_bytes(self._call(side, pool, 0, _drop), self.device) for side in case.modules}
        )

    def fresh(self, request: PerfFresh) -> FreshOutputs:
        """Outputs on inputs never seen in timing, for the judge to check after timing."""
        case = self.case
        assert case is not None and self.kind is not None
        out: dict[str, Any] = {}
        for side, module in case.modules.items():
            args = self.kind.timed_args(module, _to(request.inputs[side], self.device))
            with torch.no_grad():
                result = getattr(module, case.method)(**args)
            out[side] = result.detach().to("cpu") if isinstance(result, torch.Tensor) else None
        return FreshOutputs(outputs=out)
