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
    """One input pool: raw arguments, the same prepared by each side's module, its salt, calls so far.

    `targets[i]` is entry i's salted tensor seen flat (through numpy where the dtype allows: writing one element
    costs 0.2 us there against about 7 us through torch's indexing, on every timed call) and its salted position.
    """

    raw: list[CallArgs]
    prepared: dict[str, list[CallArgs]]
    salt: Salt
    targets: list[tuple[Any, int]]
    calls: int = 0


@dataclass
class _Call:
    """A timed call of one side on one pool entry, built once per case: the closure and the gradient leaves it
    reads, whose gradients are cleared before every call so each call's backward starts as the first did."""

    run: Callable[[], object]
    leaves: tuple[torch.Tensor, ...]


@dataclass
class _Case:
    method: str
    backward: bool
    grad_out: torch.Tensor | None
    grad_names: tuple[str, ...]
    modules: dict[str, Any]  # side -> module
    pools: dict[str, _Pool]
    calls: dict[tuple[str, str], list[_Call]] = field(default_factory=dict)  # (side, pool) -> one per entry
    kept: list[object] = field(default_factory=list)  # outputs of the last block, in call order
    last: PerfBlock | None = None  # the last block, to find a pick's place in `kept`


def _salt_target(entry: CallArgs, salt: Salt, index: int) -> tuple[Any, int]:
    """Entry `index`'s salted tensor as a flat array one element can be written to cheaply, and the position."""
    flat = entry[salt.name].view(-1)
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64, torch.float16):
        try:
            return flat.numpy(), salt.positions[index]  # shares the tensor's memory
        except (RuntimeError, TypeError):
            pass  # numpy unavailable: write through torch
    return flat, salt.positions[index]


def _drop(out: object) -> None:
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
        self.raw: dict[str, list[CallArgs]] = {}  # the last pools sent, kept for the case's other mode

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
        """The judge's pools, each prepared by every side's module (e.g. its own weight packing), and every timed
        call's closure, all untimed."""
        assert self.kind is not None and self.baseline is not None, "perf_baseline first"
        everyone = {"candidate": candidate, "baseline": self.baseline}
        modules = {side: everyone[side] for side in request.sides}
        pools = {}
        if not request.same_pools:
            self.raw = {name: [_to(entry, self.device) for entry in entries] for name, entries in request.pools.items()}
        for name, raw in self.raw.items():
            prepared = {side: [self.kind.timed_args(module, e) for e in raw] for side, module in modules.items()}
            salt = request.salts[name]
            pools[name] = _Pool(raw, prepared, salt, [_salt_target(e, salt, i) for i, e in enumerate(raw)])
        grad_out = request.grad_out
        case = _Case(
            self.kind.perf_method,
            request.backward,
            None if grad_out is None else _to(grad_out, self.device),
            request.grad_names,
            modules,
            pools,
        )
        keep = case.kept.append
        for name, pool in pools.items():
            for side in modules:
                case.calls[(side, name)] = [self._call(case, side, args, keep) for args in pool.prepared[side]]
        self.case = case
        return Done()

    @staticmethod
    def _call(case: _Case, side: str, args: CallArgs, keep: Callable[[object], None]) -> _Call:
        """The timed closure for `side` on prepared `args`: forward without autograd, or with backward."""
        method = getattr(case.modules[side], case.method)
        if not case.backward:

            def forward() -> None:
                with torch.no_grad():
                    keep(method(**args))

            return _Call(forward, ())
        leaves = {n: args[n].detach().requires_grad_(True) for n in case.grad_names}
        full = {**args, **leaves}
        grad_out = case.grad_out

        def forward_backward() -> None:
            with torch.enable_grad():
                out = method(**full)
                out.backward(grad_out)
            keep(out.detach())

        return _Call(forward_backward, tuple(leaves.values()))

    def _untimed(self, side: str, pool: str, index: int) -> Callable[[], object]:
        """Entry `index`'s call for `side`, its output dropped (warm-up, memory)."""
        case = self.case
        assert case is not None
        call = self._call(case, side, case.pools[pool].prepared[side][index], _drop)
        return call.run

    def warmup(self, request: PerfWarmup) -> WarmedUp:
        case = self.case
        assert case is not None
        pool = next(iter(case.pools))
        calls = [self._untimed(side, pool, 0) for side in case.modules]
        rounds = warm_up(self.timer, calls, request.seconds)
        # a few more timed calls each: the judge sizes blocks from these
        times = {
            side: [self.timer.time(self._untimed(side, pool, 0)) for _ in range(request.calls)] for side in case.modules
        }
        return WarmedUp(rounds=rounds, ns=times)

    def block(self, request: PerfBlock) -> BlockTimes:
        """Timed rounds in the judge's order, each side on the pool the judge assigned it for this block; every
        call's input salted first; outputs kept until the judge has picked the ones it checks. The clock is read
        just before and just after each timed call, for the judge to fit into its own. Everything a call needs is
        looked up before the loop: what runs between two timed calls is only the salt, the clock and the timer."""
        case = self.case
        assert case is not None
        case.kept.clear()
        case.last = request
        order: list[list[int]] = request.order.tolist()
        rounds = len(order)
        lanes = []  # per side index: its pool, its calls on that pool, its salt values
        for side in request.sides:
            name = request.pools[side]
            lanes.append((case.pools[name], case.calls[(side, name)], request.salt_values[name].tolist()))
        times = [[0] * rounds for _ in request.sides]
        stamps = [0] * (2 * sum(len(row) for row in order))
        clock, timed = now_ns, self.timer.time
        at = 0
        hooks_before = active_hooks(self.threads)
        with quiet_gc():
            for r, row in enumerate(order):
                for j in row:
                    pool, calls, values = lanes[j]
                    index = pool.calls % len(calls)
                    target, position = pool.targets[index]
                    target[position] = values[r]
                    pool.calls += 1
                    call = calls[index]
                    for leaf in call.leaves:
                        leaf.grad = None
                    stamps[at] = clock()
                    times[j][r] = timed(call.run)
                    stamps[at + 1] = clock()
                    at += 2
            collecting = gc.isenabled()  # quiet_gc paused it; only something inside the block switched it back on
        hooks = hooks_before + active_hooks(self.threads)
        if collecting:
            hooks.append("the garbage collector was switched back on inside a timed block")
        return BlockTimes(
            ns={side: torch.tensor(times[j], dtype=torch.int64) for j, side in enumerate(request.sides)},
            hooks=sorted(set(hooks)),
            stamps=torch.tensor(stamps, dtype=torch.int64),
        )

    def outputs(self, request: PerfOutputs) -> Outputs:
        """Outputs of the calls the judge picked from the last block, then the block's outputs are dropped."""
        case = self.case
        assert case is not None
        place = {} if case.last is None or not request.picks else {c: i for i, c in enumerate(case.last.calls())}
        picked = [case.kept[place[(r, name)]] if (r, name) in place else None for r, name in request.picks]
        case.kept.clear()
        return Outputs(outputs=[t.detach().to("cpu") if isinstance(t, torch.Tensor) else None for t in picked])

    def memory(self) -> PeakMemory:
        """Peak tensor bytes of one call per side (outside any timed region)."""
        case = self.case
        assert case is not None
        pool = next(iter(case.pools))
        return PeakMemory(
            peak_bytes={side: peak_bytes(self._untimed(side, pool, 0), self.device) for side in case.modules}
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
