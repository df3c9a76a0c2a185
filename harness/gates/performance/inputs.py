"""What the judge sends the timing contestant: the plan of (case, mode), secret-seeded input pools, salts, requests.

Everything here is drawn from the run's secret seed on the judge's side; the contestant only receives it.
"""

from __future__ import annotations

import random
import statistics
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from harness.core.contract import ModuleSource, ModuleSpec
from harness.core.seeding import case_seed, generator
from harness.gates.performance.settings import (
    BLOCK_ROUNDS,
    DTYPE,
    MIN_RETAINED_ROUNDS,
    POOL_ENTRIES,
    POOLS,
    PerfSettings,
)
from harness.kinds import KINDS
from harness.kinds.base import CallArgs, Case
from harness.perf.pools import salt_for
from harness.protocol.messages import PerfBaseline, PerfCase, Salt

Pools = dict[str, list[CallArgs]]  # pool name -> input sets


def pool_entry(spec_kind: str, case: Case, seed: int, label: str, index: int) -> CallArgs:
    """Input set `index` of pool `label` for `case`, from its own seed derived from the run's seed."""
    return KINDS[spec_kind].make_inputs(
        case, DTYPE, generator(case_seed(seed, case.id, DTYPE, f"perf/{label}/{index}"))
    )


def entry_bytes(args: CallArgs) -> int:
    return sum(v.numel() * v.element_size() for v in args.values() if isinstance(v, torch.Tensor))


@dataclass(frozen=True)
class BlockInputs:
    """What one block's calls were given: the judge rebuilds any call's exact input from this and the pools."""

    assigned: dict[str, str]  # side -> the pool it was called on
    calls: dict[str, int]  # pool -> calls made on it before this block (entry of round r: (calls + r) % size)
    salt_values: dict[str, torch.Tensor]  # pool -> the value salted into each round's entry


@dataclass(frozen=True)
class Mode:
    """One timed (case, mode): forward only, or forward and backward."""

    case: Case
    backward: bool

    @property
    def label(self) -> str:
        return f"perf/{'forward+backward' if self.backward else 'forward'}/{self.case.id}"


class TimingPlan:
    """The judge's plan for timing one module: its (case, mode)s, inputs, salts and the requests carrying them."""

    def __init__(self, spec: ModuleSpec, seed: int, settings: PerfSettings) -> None:
        self.spec, self.seed, self.settings = spec, seed, settings
        self.kind = KINDS[spec.kind]
        self.variant = spec.variants[0]
        self.rng = random.Random(case_seed(seed, f"perf/{spec.name}", DTYPE))  # orders, samples and salts
        self.modes = [Mode(case, backward) for case in self.kind.perf_cases(self.variant) for backward in (False, True)]
        self.grad_names = tuple(self.kind.grad_inputs(self.variant))
        # Input sets by (case, label, index), each drawn once: a case's forward and forward+backward modes and the
        # clean worker time the same pools, and a large case's pools take seconds to draw.
        self._drawn: dict[tuple[str, str, int], Future[CallArgs]] = {}
        self._lock = threading.Lock()
        self._ahead: ThreadPoolExecutor | None = None

    def pool(self, case: Case, label: str, size: int) -> list[CallArgs]:
        """`size` input sets for `case` under `label` (callers never change them: the contestant gets copies)."""
        return [self._entry(case, label, i) for i in range(size)]

    def _entry(self, case: Case, label: str, index: int) -> CallArgs:
        """Drawn by the first thread that asks; any other waits for that one."""
        key = (case.id, label, index)
        with self._lock:
            pending = self._drawn.get(key)
            mine = pending is None
            if pending is None:
                pending = self._drawn[key] = Future()
        if mine:
            try:
                pending.set_result(pool_entry(self.spec.kind, case, self.seed, label, index))
            except BaseException as exc:
                pending.set_exception(exc)
        return pending.result()

    def draw_ahead(self) -> None:
        """Draw every case's pools, the clean worker's and the fresh inputs in a background thread, in the order
        the gate needs them: the judge's core is otherwise idle while the contestant is timed on its own."""
        with self._lock:
            if self._ahead is not None:
                return
            self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perf-inputs")

        def draw() -> None:
            cases = list({mode.case.id: mode.case for mode in self.modes}.values())
            for case in cases:
                self.pools(case, POOLS)
            for side in ("candidate", "baseline"):
                self.pool(cases[0], f"fresh {side}", 1)

        self._ahead.submit(draw)

    def close(self) -> None:
        """Stop drawing ahead (what is drawn stays)."""
        with self._lock:
            ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.shutdown(wait=True, cancel_futures=True)

    def baseline_request(self, base: ModuleSource | None, core: int, watched: bool = True) -> PerfBaseline:
        """Import the baseline (the kind's reference, or `base`) before any candidate, on the timing core;
        `watched` for the contestant the candidate will join (not the clean worker)."""
        probe = self.pool(self.modes[0].case, "probe", 1)[0]
        return PerfBaseline(
            kind=self.spec.kind,
            variant=self.variant,
            core=core,
            baseline=base,
            probe=probe,
            grad_names=self.grad_names,
            watched=watched,
        )

    def pools(self, case: Case, names: tuple[str, ...], size: int | None = None) -> Pools:
        """Input pools by name; sized to about `pool_bytes` per pool unless `size` is given."""
        if size is None:
            one = entry_bytes(self.pool(case, f"pool {names[0]}", 1)[0])
            size = min(POOL_ENTRIES[1], max(POOL_ENTRIES[0], self.settings.pool_bytes // max(1, one)))
        return {name: self.pool(case, f"pool {name}", size) for name in names}

    def salts(self, case: Case, pools: Pools) -> dict[str, Salt]:
        salted = self.kind.salted_arg(self.variant)
        return {
            name: salt_for(pool, salted, case_seed(self.seed, case.id, DTYPE, f"salt/{name}"))
            for name, pool in pools.items()
        }

    def case_request(
        self, mode: Mode, sides: tuple[str, ...], pools: Pools, salts: dict[str, Salt], same_pools: bool = False
    ) -> PerfCase:
        """The perf_case request of `mode`; with `same_pools`, the contestant already holds `pools` (sent for the
        case's other mode) and they are not sent again."""
        grad_out = None
        if mode.backward:
            out = self.kind.reference(self.variant, next(iter(pools.values()))[0])
            gen = generator(case_seed(self.seed, mode.case.id, DTYPE, "perf/grad_out"))
            grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
        return PerfCase(
            sides=sides,
            pools={} if same_pools else pools,
            backward=mode.backward,
            grad_out=grad_out,
            grad_names=self.grad_names,
            salts=salts,
            same_pools=same_pools,
        )

    def output_bytes(self, pools: Pools) -> int:
        out = self.kind.reference(self.variant, next(iter(pools.values()))[0])
        return out.numel() * out.element_size()

    def rounds(self, warm_ns: dict[str, list[int]], out_bytes: int = 0) -> int:
        """Rounds per block: about `block_s` of calls, and no more outputs than `retain_bytes` held at once.

        The contestant keeps every output of a block until the judge has picked the ones it checks, so no call
        of a block can tell whether it will be checked; the cap keeps that affordable for large outputs.
        """
        per_round = sum(max(1, statistics.median(v)) for v in warm_ns.values())
        rounds = min(BLOCK_ROUNDS[1], max(BLOCK_ROUNDS[0], self.settings.block_s * 1e9 / per_round))
        if out_bytes:
            held = self.settings.retain_bytes // (len(warm_ns) * out_bytes)
            rounds = min(rounds, max(MIN_RETAINED_ROUNDS, held))
        return int(rounds)
