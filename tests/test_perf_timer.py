"""The one timer and the machine's roofline."""

from __future__ import annotations

import time

import pytest
import torch

from harness.perf import roofline
from harness.perf.memory import peak_bytes
from harness.perf.timer import CpuTimer, make_timer, quiet_gc, warm_up


def test_cpu_timer_measures_a_known_wait() -> None:
    timer = CpuTimer()
    ns = min(timer.time(lambda: time.sleep(0.002)) for _ in range(3))
    assert 2_000_000 <= ns < 200_000_000  # at least the sleep; the upper bound only rules out unit mistakes


def test_warm_up_runs_by_time_and_at_least_min_calls() -> None:
    calls: list[int] = []
    rounds = warm_up(CpuTimer(), [lambda: calls.append(1)], seconds=0.0, min_calls=3)
    assert rounds == 3 and len(calls) == 3


def test_gc_is_paused_while_timing() -> None:
    import gc

    with quiet_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_roofline_bound_and_bandwidth_lookup() -> None:
    r = roofline.Roofline({2**20: 50.0, 2**26: 10.0}, matmul_gflops=100.0, threads=1, machine="test")
    assert r.bandwidth_at(2**20) == 50.0  # fits the cache-sized buffer
    assert r.bandwidth_at(2**25) == 10.0  # only the memory-sized buffer holds it
    assert r.bound_ns(flops=10**6, moved=2**20) == pytest.approx(max(2**20 / 50.0, 10**6 / 100.0))


def test_peak_memory_counts_intermediates() -> None:
    x = torch.randn(256, 1024)
    one = x.numel() * 4
    assert peak_bytes(lambda: x * 2) == one
    assert peak_bytes(lambda: (x * 2 + 1) * 3) == 2 * one  # two temporaries alive at once, at most


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_cuda_timer_flushes_l2_and_synchronizes() -> None:
    timer = make_timer("cuda")
    x = torch.randn(4096, 4096, device="cuda")
    ns = timer.time(lambda: x @ x)
    assert ns > 0
    graphed = make_timer("cuda", graphs=True)
    assert graphed.time(lambda: x.mul_(1.0)) > 0
    assert peak_bytes(lambda: x * 2, device="cuda") >= x.numel() * 4
