"""pytest-benchmark plumbing: the benchmark fixture reads a clock that advances by the contestant's measured times.

Module code is untrusted, so it never runs in the pytest process. Each round of a pytest-benchmark benchmark
is one call timed inside a contestant by the harness's one timer (harness.perf.timer; CUDA events with an L2
flush and device synchronization on a GPU), and pytest-benchmark's timer is a clock that advances by exactly
those times. Its statistics, JSON and `pytest-benchmark compare` then describe the calls themselves.
"""

from __future__ import annotations

import pytest


class ContestantClock:
    """A monotonic clock in seconds that moves only when a measured duration is added."""

    def __init__(self) -> None:
        self.ns = 0

    def read(self) -> float:
        self.ns += 1  # strictly increasing, so pytest-benchmark's timer-precision probe finds a resolution
        return self.ns / 1e9

    def advance(self, ns: int) -> None:
        self.ns += int(ns)


CLOCK = ContestantClock()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--harness-device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="device the benchmarked modules run on (cuda: CUDA-event timing)",
    )
