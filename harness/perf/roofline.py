"""What this machine can physically do, measured once and cached: copy bandwidth by working-set size, matmul rate.

A case's time can be no shorter than max(bytes it must move / bandwidth at its working-set size, flops /
matmul rate), from the kind's formulas. Bandwidth is measured at each size because cache-resident data moves
several times faster than memory-resident data. Measured in the judge with the thread count the contestants
use, with the one timer; cached in ~/.cache/module-harness keyed by CPU model, core count, torch version and
threads, so a different machine or build measures again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.core import paths
from harness.perf.timer import make_timer

SIZES = tuple(2**k for k in range(15, 29))  # 32 KB .. 256 MB per buffer
MATMUL_N = 512  # fp32 square matmul; large enough to reach the BLAS kernel's steady rate on one core
# A case is invalid only when it beats the bound by this factor: the copy kernel is not the absolute peak
# (a read-mostly stream moves faster than a copy) and the formulas count the minimum bytes.
MARGIN = 2.0


@dataclass(frozen=True)
class Roofline:
    """Copy bandwidth (GB/s counting bytes read plus written) per buffer size, and matmul GFLOP/s."""

    bandwidth: dict[int, float]
    matmul_gflops: float
    threads: int
    machine: str

    def bandwidth_at(self, working_set: int) -> float:
        """The highest bandwidth measured at any size holding `working_set` bytes or more.

        Small copies are dominated by per-call overhead, so the best rate over the sizes at least as large is
        the honest upper bound: data that fits a larger cache level fits this one too.
        """
        fitting = [bw for size, bw in self.bandwidth.items() if 2 * size >= working_set]  # a copy touches 2 x size
        return max(fitting) if fitting else self.bandwidth[max(self.bandwidth)]

    def bound_ns(self, flops: int, moved: int) -> float:
        """Shortest possible time for `flops` operations moving `moved` bytes."""
        return max(moved / self.bandwidth_at(moved), flops / self.matmul_gflops)  # GB/s = bytes/ns

    def as_dict(self) -> dict[str, object]:
        return {
            "bandwidth": {str(k): v for k, v in self.bandwidth.items()},
            "matmul_gflops": self.matmul_gflops,
            "threads": self.threads,
            "machine": self.machine,
        }


def machine_key(threads: int, device: str = "cpu") -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} | torch {torch.__version__} | cuda {torch.version.cuda}"
    cpu = ""
    try:
        cpu = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return f"{cpu.split(':')[-1].strip()} | {os.cpu_count()} cpus | torch {torch.__version__} | {threads} threads"


def measure(threads: int = 1, repeats: int = 5, device: str = "cpu") -> Roofline:
    """Best-of-`repeats` copy bandwidth at every size and matmul rate on `device`, with `threads` CPU threads.

    On CUDA the one timer flushes L2 before each timing, so every size measures the memory-resident rate,
    and the matmul is 4096 wide to reach the GPU's rate; both are bounds a kernel cannot beat by much.
    """
    timer = make_timer(device)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    n = MATMUL_N if device == "cpu" else 4096
    try:
        bandwidth = {}
        for size in SIZES:
            src = torch.ones(size // 4, dtype=torch.float32, device=device)
            dst = torch.empty_like(src)
            calls = max(1, (64 * 2**20) // size)  # ~64 MB per timing so small copies are not all overhead
            best = min(timer.time(_copies(dst, src, calls)) for _ in range(repeats))
            bandwidth[size] = 2 * size * calls / best
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        a @ b
        best = min(timer.time(lambda: a @ b) for _ in range(repeats * 2))
        gflops = 2 * n**3 / best
    finally:
        torch.set_num_threads(previous)
    return Roofline(bandwidth, gflops, threads, machine_key(threads, device))


def _copies(dst: torch.Tensor, src: torch.Tensor, calls: int) -> Callable[[], object]:
    def run() -> None:
        for _ in range(calls):
            dst.copy_(src)

    return run


def _cache_path(cache_dir: Path, threads: int, device: str) -> Path:
    key = f"{machine_key(threads, device)} | {paths.sources_digest('perf/roofline.py', 'perf/timer.py')[:16]}"
    return cache_dir / f"roofline-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read(path: Path) -> Roofline | None:
    try:
        data = json.loads(path.read_text())
        return Roofline(
            {int(k): float(v) for k, v in data["bandwidth"].items()},
            float(data["matmul_gflops"]),
            int(data["threads"]),
            str(data["machine"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write(path: Path, roofline: Roofline) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(roofline.as_dict(), indent=1))
    os.replace(tmp, path)


def best_of(a: Roofline, b: Roofline) -> Roofline:
    """The higher rate of the two at every size and for matmul: a busy machine measures rates too low, never too
    high, so the best seen is the closest to what the machine can do."""
    sizes = set(a.bandwidth) | set(b.bandwidth)
    bandwidth = {s: max(a.bandwidth.get(s, 0.0), b.bandwidth.get(s, 0.0)) for s in sorted(sizes)}
    return Roofline(bandwidth, max(a.matmul_gflops, b.matmul_gflops), a.threads, a.machine)


def load_or_measure(cache_dir: Path, threads: int = 1, device: str = "cpu") -> Roofline:
    """The cached roofline for this machine and device, or a fresh measurement stored for next time."""
    path = _cache_path(cache_dir, threads, device)
    cached = _read(path)
    if cached is not None:
        return cached
    roofline = measure(threads, device=device)
    _write(path, roofline)
    return roofline


def remeasure(cache_dir: Path, threads: int = 1, device: str = "cpu") -> Roofline:
    """Measure again now and keep the best of this and the cached measurement (also stored for next time).

    The performance gate calls this before it calls any time impossible: a roofline first measured while the
    machine was busy is too low, and an honest module could beat it."""
    path = _cache_path(cache_dir, threads, device)
    fresh = measure(threads, device=device)
    cached = _read(path)
    roofline = fresh if cached is None else best_of(cached, fresh)
    _write(path, roofline)
    return roofline
