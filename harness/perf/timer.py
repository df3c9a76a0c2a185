"""The one timer: every duration the harness reports or decides on is measured here.

CPU: the monotonic nanosecond clock around the call, with Python's garbage collector paused for the
measurement (as `timeit` does), so a collection triggered by one side is not billed to the other.

CUDA: CUDA events around the call on the current stream, after writing a 256 MB buffer so the call does not
find its inputs in L2 left warm by the previous repetition, and a device-wide synchronize before reading
the events. Very short kernels may be captured in a CUDA graph and replayed, which removes the launch
overhead from what is measured (`graphs=True`).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import torch

L2_FLUSH_BYTES = 256 * 1024 * 1024  # larger than the L2 of any current GPU (H100: 50 MB, B200: 126 MB)


class Timer(Protocol):
    """Times one call of `fn` in nanoseconds; `sync` waits for queued device work (a no-op on CPU)."""

    device: str

    def time(self, fn: Callable[[], object]) -> int: ...

    def sync(self) -> None: ...


class CpuTimer:
    """time.perf_counter_ns around the call: monotonic, nanosecond resolution, not affected by clock changes."""

    device = "cpu"

    def time(self, fn: Callable[[], object]) -> int:
        start = time.perf_counter_ns()
        fn()
        return time.perf_counter_ns() - start

    def sync(self) -> None:
        return None


class CudaTimer:
    """CUDA events on the current stream; L2 flushed before, device synchronized after each repetition."""

    device = "cuda"

    def __init__(self, graphs: bool = False) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CudaTimer needs a CUDA device; use --device cpu on this machine")
        self.graphs = graphs
        self._flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
        self._start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        self._end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        self._captured: dict[int, torch.cuda.CUDAGraph] = {}

    def time(self, fn: Callable[[], object]) -> int:
        run = self._graph_for(fn) if self.graphs else fn
        self._flush.zero_()  # evicts the previous repetition's data from L2
        torch.cuda.synchronize()
        self._start.record()
        run()
        self._end.record()
        torch.cuda.synchronize()
        return int(self._start.elapsed_time(self._end) * 1e6)  # elapsed_time is in milliseconds

    def sync(self) -> None:
        torch.cuda.synchronize()

    def _graph_for(self, fn: Callable[[], object]) -> Callable[[], object]:
        """fn captured once into a CUDA graph (after a warm-up call on a side stream, as capture requires)."""
        key = id(fn)
        if key not in self._captured:
            stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                fn()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn()
            self._captured[key] = graph
        return self._captured[key].replay


def make_timer(device: str, graphs: bool = False) -> Timer:
    """The timer for `device` ("cpu" or "cuda")."""
    return CudaTimer(graphs) if device == "cuda" else CpuTimer()


def seconds() -> float:
    """Monotonic seconds: the clock for how long a gate, case or training run took (bookkeeping, not speed)."""
    return time.perf_counter_ns() / 1e9


def now_ns() -> int:
    """The monotonic clock the CPU timer uses, for budgets and for cross-checking a contestant's reports."""
    return time.perf_counter_ns()


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Garbage collection paused for a measured stretch, and re-enabled afterwards if it was enabled before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def warm_up(timer: Timer, calls: list[Callable[[], object]], seconds: float, min_calls: int = 3) -> int:
    """Call every function in turn until `seconds` have passed and each ran `min_calls` times; returns rounds.

    The first call of a module may compile (torch.compile takes tens of seconds on CPU); warming up by time
    keeps that out of every measured repetition.
    """
    rounds = 0
    deadline = now_ns() + int(seconds * 1e9)
    while rounds < min_calls or now_ns() < deadline:
        for fn in calls:
            timer.time(fn)
        rounds += 1
    return rounds


def timing_core() -> int:
    """The CPU core timed contestants are pinned to (the last one); the judge keeps off it while timing."""
    return max(0, (os.cpu_count() or 1) - 1)


@contextmanager
def kept_off(core: int) -> Iterator[None]:
    """The calling thread kept off `core` (where contestants are timed) while inside; restored afterwards."""
    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, (before - {core}) or before)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
