"""The one timer and the machine's roofline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from harness.perf import roofline
from harness.perf.memory import peak_bytes
from harness.perf.timer import L2_FLUSH_BYTES, CpuTimer, CudaTimer, make_timer, quiet_gc, warm_up


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


def test_cuda_timer_without_a_gpu_names_device_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, also where a GPU exists
    with pytest.raises(RuntimeError, match=r"^CudaTimer needs a CUDA device; use --device cpu on this machine$"):
        make_timer("cuda")
    with pytest.raises(RuntimeError, match="use --device cpu"):
        CudaTimer(graphs=True)


SPIN_CYCLES = 100_000_000  # torch.cuda._sleep: one kernel spinning this many GPU clocks, about 50-100 ms


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_cuda_timer_flushes_l2_and_synchronizes() -> None:
    timer = make_timer("cuda")
    assert isinstance(timer, CudaTimer)
    flush = timer._flush
    assert flush.is_cuda and flush.numel() * flush.element_size() == L2_FLUSH_BYTES

    # every time() overwrites the whole flush buffer, not only the first
    for _ in range(2):
        flush.fill_(0xA5)
        timer.time(lambda: None)
        assert int(torch.count_nonzero(flush)) == 0, "time() left the L2 flush buffer unwritten"

    # a call that only enqueues a long kernel is billed the kernel, and nothing is left running afterwards
    torch.cuda.synchronize()
    start = time.perf_counter_ns()
    torch.cuda._sleep(SPIN_CYCLES)
    torch.cuda.synchronize()
    synced = time.perf_counter_ns() - start
    assert synced > 5_000_000, f"the spin kernel took only {synced} ns; raise SPIN_CYCLES"
    measured = timer.time(lambda: torch.cuda._sleep(SPIN_CYCLES))
    assert torch.cuda.current_stream().query(), "time() returned with work still queued"
    assert measured >= synced / 2, (measured, synced)  # generous: clocks differ; an unsynced timer sees ~10 us

    # graphs=True: fn is called for the warm-up and the capture only; later times replay the captured graph
    graphed = CudaTimer(graphs=True)
    x = torch.zeros(1, device="cuda")
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        x.add_(1)

    times = [graphed.time(step) for _ in range(3)]
    assert all(t > 0 for t in times)
    assert len(calls) == 2  # warm-up and capture; each time() replayed without calling Python
    assert x.item() == 1 + 3  # the warm-up ran once (capture does not run kernels), then one replay per time()

    y = torch.randn(1024, 1024, device="cuda")
    assert peak_bytes(lambda: y * 2, device="cuda") >= y.numel() * 4  # the allocator's peak holds the output


def test_a_roofline_measured_again_keeps_the_best_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = roofline.Roofline({2**20: 5.0, 2**26: 1.0}, matmul_gflops=10.0, threads=1, machine="m")
    idle = roofline.Roofline({2**20: 50.0, 2**26: 0.5}, matmul_gflops=5.0, threads=1, machine="m")
    best = roofline.best_of(busy, idle)
    assert best.bandwidth == {2**20: 50.0, 2**26: 1.0} and best.matmul_gflops == 10.0
    measured = iter([busy, idle])
    monkeypatch.setattr(roofline, "measure", lambda threads, device="cpu": next(measured))
    assert roofline.load_or_measure(tmp_path) == busy  # first use: measured (busy) and cached
    assert roofline.load_or_measure(tmp_path) == busy  # then read from the cache
    assert roofline.remeasure(tmp_path) == best  # measured again: the best of both, cached for next time
    assert roofline.load_or_measure(tmp_path) == best
