"""Contestants started ahead (harness.judge.sandbox.Spares): each is a fresh contestant, alive when handed out,
on the caller's cores, and none outlives the run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits, Spares
from harness.judge.session import Session
from harness.judge.zygote import ForkedProcess
from harness.protocol.messages import Load
from harness.registry.sources import module_sources
from harness.results.document import ResultsDocument
from harness.results.records import GateName
from tests.conftest import REPO, worker_processes

LIMITS = Limits(timeout_s=60).with_isolation((REPO / "modules",))
SILU = next(s for s in module_sources(REPO / "modules", entry_points=False) if s.name == "silu")


def loads(contestant: object) -> str:
    """The name the contestant reports after importing silu: it answers requests."""
    return Session(contestant).send(Load(source=SILU, instantiate=True)).spec.name  # type: ignore[arg-type]


def test_the_next_contestant_is_the_one_started_ahead_and_answers() -> None:
    spares = Spares(LIMITS)
    try:
        first = spares.take("a")
        assert first.proc is not None and loads(first) == "silu"
        ahead = spares._spares[0].result() if spares._spares else None  # started while `first` worked
        assert ahead is not None and ahead.proc is not None
        second = spares.take("b")
        assert second is ahead and second.label == "b" and loads(second) == "silu"
        first.close()
        second.close()
    finally:
        spares.close()
    assert ahead.proc is None  # closed


def test_two_deep_spares_serve_two_takes_in_a_row_with_started_contestants() -> None:
    """The performance gate takes the timing contestant and the clean worker a few seconds apart: with two spares
    kept, both are contestants started before they were asked for, and two more are started behind them."""
    spares = Spares(LIMITS)
    spares.depth = 2
    taken = []
    try:
        taken.append(spares.take("warm-up"))  # nothing ahead yet: started now, and two spares behind it
        ahead = [future.result() for future in list(spares._spares)]
        assert len(ahead) == 2 and all(c.alive for c in ahead)
        taken += [spares.take("timing"), spares.take("clean")]
        assert taken[1:] == ahead and [c.label for c in taken[1:]] == ["timing", "clean"]
        assert all(loads(c) == "silu" for c in taken[1:])
        assert len(spares._spares) == 2  # refilled
    finally:
        for contestant in taken:
            contestant.close()
        spares.close()
    assert all(c.proc is None for c in ahead) and not spares._spares


def test_a_spare_outlives_the_thread_that_asked_for_it() -> None:
    """A contestant dies with the thread that started it (its parent-death signal follows that thread): a spare
    started for a gate's short-lived thread must not."""
    spares = Spares(LIMITS)
    try:
        taken: list[object] = []
        worker = threading.Thread(target=lambda: taken.append(spares.take("short-lived")))
        worker.start()
        worker.join()
        taken[0].close()  # type: ignore[attr-defined]
        later = spares.take("later")
        assert later.alive and loads(later) == "silu", later.tail()
        later.close()
    finally:
        spares.close()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every contestant runs on it")
def test_a_spare_runs_on_the_cores_of_whoever_takes_it() -> None:
    spares = Spares(LIMITS)
    everything = os.sched_getaffinity(0)
    one = {min(everything)}
    try:
        os.sched_setaffinity(0, one)  # as the judge keeps off the timing core while a performance gate measures
        try:
            spares.take("timing").close()
        finally:
            os.sched_setaffinity(0, everything)
        ahead = spares.take("unit")  # started on `one`; a unit gate gets every core the judge has
        assert ahead.proc is not None and os.sched_getaffinity(ahead.proc.pid) == everything
        ahead.close()
    finally:
        spares.close()


def test_no_contestant_outlives_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # contestants' directories, found by worker_processes
    options = RunOptions(gates=(GateName.UNIT,), limits=Limits(timeout_s=120), seed=1)
    results = judge_all([SILU], options, ResultsDocument({}, {}, None).add)
    assert [r.verdict for r in results] == ["pass"]
    assert worker_processes(tmp_path) == []


NEEDS_DYNAMO = """
import sys

import torch

from harness import register

assert "torch._dynamo" in sys.modules, "torch._dynamo was not loaded before this module"


@register(kind="activation", variant="silu", exact=True)
class NeedsDynamo:
    def forward(self, x, gate, up):
        return torch.nn.functional.silu(x)
"""


@pytest.mark.parametrize("forked", [True, False], ids=["zygote", "fresh-interpreter"])
def test_timing_spares_have_torch_dynamo_before_the_candidate(
    forked: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked from the zygote (which imports it ahead) or started from scratch with --preload, a timing contestant
    has imported torch._dynamo before any candidate (harness/worker/perf.py takes its snapshot after)."""
    monkeypatch.setenv("HARNESS_ZYGOTE", "on" if forked else "off")
    (tmp_path / "activation").mkdir()
    (tmp_path / "activation" / "needs_dynamo.py").write_text(NEEDS_DYNAMO)
    (source,) = module_sources(tmp_path, entry_points=False)
    spares = Spares(Limits(timeout_s=60).with_isolation((tmp_path,)))
    try:
        spares.take("unit").close()
        spares.preload = ("torch._dynamo",)  # as the run does before the performance gates
        spares.take("timing").close()  # its spare was started before the preload was set
        timing = spares.take("timing")
        assert isinstance(timing.proc, ForkedProcess) == forked
        if not forked:
            assert timing.proc is not None
            assert "--preload=torch._dynamo" in Path(f"/proc/{timing.proc.pid}/cmdline").read_bytes().decode()
        assert Session(timing).send(Load(source=source, instantiate=True)).spec.name == "needs_dynamo"
        timing.close()
    finally:
        spares.close()


def test_a_contestant_imports_nothing_ahead_but_what_the_worker_allows() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.worker", "--in-fd", "0", "--out-fd", "1", "--memory-mb", "512", "--preload=os"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "invalid choice: 'os'" in proc.stderr
