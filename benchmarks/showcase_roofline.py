"""Showcase, roofline: how close the shipped norm and activation modules come to what this machine can do.

For every shipped norm and activation module and each of its kind's performance-gate cases (forward, float32, one
torch thread, the kind's own inputs), the module and the kind's reference are called alternately in shuffled order
and timed by the harness's one timer; the roofline (`harness.perf.roofline.load_or_measure`, the performance gate's
cached measurement of copy bandwidth by working-set size and matmul rate) gives the shortest possible time from the
kind's FLOP and byte formulas, and roofline % = 100 x that bound / median time, as the performance gate records it.
The latest performance-gate figures in the results store are shown beside them when the store has them.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sqlite3
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.core import paths
from harness.core.seeding import generator
from harness.kinds import KINDS
from harness.perf.roofline import Roofline, load_or_measure
from harness.perf.timer import make_timer, quiet_gc, seconds
from harness.registry.loader import Registry, load
from harness.registry.sources import module_sources

REPO = Path(__file__).resolve().parents[1]
KIND_NAMES = ("norm", "activation")
DTYPE = torch.float32
STORE = Path(os.environ.get("HARNESS_STORE", Path.home() / ".local" / "share" / "module-harness" / "store.sqlite"))


@dataclass(frozen=True)
class RooflineConfig:
    """What the roofline part measures."""

    calls: int = 400  # timed calls per side on the small case ...
    large_calls: int = 40  # ... and on the large one
    seed: int = 0
    modules: tuple[str, ...] = ()  # only these modules (default: every shipped norm and activation module)


def _timed(calls: Mapping[str, Callable[[], Any]], count: int, seed: int) -> dict[str, list[int]]:
    """`count` rounds; each calls every side once in shuffled order; the outputs are freed after the round."""
    timer, order = make_timer("cpu"), random.Random(seed)
    times: dict[str, list[int]] = {side: [] for side in calls}
    names = list(calls)
    for _ in range(3):  # warm-up
        for fn in calls.values():
            fn()
    kept: list[torch.Tensor] = []
    with quiet_gc(), torch.no_grad():
        for _ in range(count):
            for side in order.sample(names, len(names)):
                times[side].append(timer.time(_keeping(kept, calls[side])))
            kept.clear()  # freed outside the timed calls, as the performance gate keeps each output
    return times


def _keeping(kept: list[Any], call: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        kept.append(call())

    return run


def stored_figures() -> dict[tuple[str, str], float]:
    """(module, case label) -> roofline % of the latest performance-gate run in the results store, if any."""
    if not STORE.exists():
        return {}
    found: dict[tuple[str, str], float] = {}
    try:
        with sqlite3.connect(f"file:{STORE}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT module, \"case\", metrics FROM cases WHERE gate = 'perf' ORDER BY run_id DESC"
            ).fetchall()
    except sqlite3.Error:
        return {}
    for module, case, metrics in rows:
        value = json.loads(metrics).get("roofline_pct")
        label = str(case).split("/")[-2] if str(case).startswith("perf/forward/") else None
        if value is not None and label is not None:
            found.setdefault((module, label), float(value))  # newest run first
    return found


def run(cfg: RooflineConfig, log: Callable[[str], None], roofline: Roofline | None = None) -> dict[str, Any]:
    """Roofline % of every module on every forward performance case, and the best of each kind."""
    started = seconds()
    roof = roofline or load_or_measure(paths.CACHE_DIR, threads=1, device="cpu")
    stored = stored_figures()
    sources = [s for s in module_sources(REPO / "modules", entry_points=False) if s.kind in KIND_NAMES]
    rows: list[dict[str, Any]] = []
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for source in sources:
            if cfg.modules and source.name not in cfg.modules:
                continue
            spec, cls = load(source, Registry())
            kind, module = KINDS[spec.kind], cls()
            for variant in spec.variants:
                for index, case in enumerate(kind.perf_cases(variant)):
                    args = kind.make_inputs(case, DTYPE, generator(cfg.seed))
                    method, reference = getattr(module, kind.perf_method), kind.reference_module(variant)
                    calls = {
                        "module": functools.partial(method, **args),
                        "reference": functools.partial(reference.forward, **args),
                    }
                    times = _timed(calls, cfg.calls if index == 0 else cfg.large_calls, cfg.seed)
                    flops, moved = kind.flops(case), kind.bytes_moved(case, DTYPE)
                    bound = roof.bound_ns(flops, moved)
                    median = statistics.median(times["module"])
                    ratios = [t / r for t, r in zip(times["module"], times["reference"], strict=True)]
                    rows.append(
                        {
                            "module": source.name,
                            "kind": spec.kind,
                            "variant": variant,
                            "case": case.label,
                            "bytes": moved,
                            "flops": flops,
                            "median_us": median / 1e3,
                            "gbps": moved / median,
                            "bound_us": bound / 1e3,
                            "roofline_pct": 100.0 * bound / median,
                            "vs_reference": statistics.median(ratios),
                            "stored_roofline_pct": stored.get((source.name, case.label)),
                        }
                    )
                    log(
                        f"roofline: {source.name} {case.label}: {rows[-1]['roofline_pct']:.1f}% "
                        f"({rows[-1]['gbps']:.1f} GB/s, {median / 1e3:.1f} us)"
                    )
    finally:
        torch.set_num_threads(before)
    best = {}
    for kind_name in KIND_NAMES:
        mine = [r for r in rows if r["kind"] == kind_name]
        if mine:
            top = max(mine, key=lambda r: float(r["roofline_pct"]))
            best[kind_name] = {k: top[k] for k in ("module", "case", "roofline_pct", "gbps")}
    return {
        "config": {**cfg.__dict__, "modules": list(cfg.modules), "threads": 1, "dtype": "float32"},
        "roofline": roof.as_dict(),
        "rows": rows,
        "best": best,
        "seconds": seconds() - started,
    }
