"""A training load beside the performance gate: what a concurrent integration gate would do to the other cores.

`harness run` judges `--jobs` modules at once; were a performance gate to measure while another module's
integration gate ran, that module would be training the integration model on a core beside the timing core.
This is that load, with the integration gate's own code: the small transformer (harness/integration/model.py)
with the kinds' reference slots, trained on the gate's setups (harness/integration/setups.py, text then MQAR)
by `run_setup` (harness/integration/runs.py: init pass, 250 AdamW steps on one torch thread, evaluation
logits), again and again with a new seed each run, until told to stop.

    python -m benchmarks.training_load --cores 0

The child pins itself to the given cores, prints one JSON line once its first optimizer step is done (ready), and
on SIGTERM prints one JSON line with what it did (optimizer steps, runs, seconds, its cores) and exits 0.
`TrainingLoad` is the parent's side, a context manager (benchmarks/fidelity.py).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 300.0  # reading the text corpus and the first step take seconds; far more means it is stuck
STOP_TIMEOUT_S = 60.0  # SIGTERM is handled between two torch ops (milliseconds each); then it is killed
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal this process gets when its parent dies


class _Stop(BaseException):
    """Raised by the SIGTERM handler inside the training loop (BaseException: no `except Exception` swallows it)."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def serve(cores: set[int]) -> dict[str, Any]:
    """Train the integration model until SIGTERM; what was done, as the JSON the parent reads."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from harness.core.linux import prctl
    from harness.gates.integration.references import eval_data
    from harness.integration.runs import run_setup
    from harness.integration.setups import DEFAULT_SETUPS
    from harness.integration.slots import reference_slots

    if sys.platform.startswith("linux"):
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # never outlive the benchmark, even when it is killed
        os.sched_setaffinity(0, cores)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, whose exit stops this with SIGTERM
    steps, runs, start = 0, 0, time.time()

    def count(optimizer: object, args: object, kwargs: object) -> None:
        nonlocal steps
        steps += 1
        if steps == 1:
            _emit({"ready": True, "pid": os.getpid(), "at": time.time()})

    register_optimizer_step_post_hook(count)
    try:
        while True:
            for setup in DEFAULT_SETUPS:
                evaluation = eval_data(setup, run_seed=runs)
                run_setup(setup, reference_slots(), runs, evaluation.init_batch, evaluation.inputs)
                runs += 1
    except _Stop:
        pass
    stopped = time.time()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {"steps": steps, "runs": runs, "seconds": stopped - start, "stopped_at": stopped, "cores": affinity}


class TrainingLoad:
    """The load process, started (and training) on entry, stopped on exit; `report` holds what it did."""

    def __init__(self, cores: set[int]) -> None:
        if not cores:
            raise ValueError("a training load needs at least one core besides the timing core; this machine has one")
        self.cores = cores
        self.report: dict[str, Any] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: nobody reads it while the arm runs

    def __enter__(self) -> TrainingLoad:
        cmd = [sys.executable, "-m", "benchmarks.training_load", "--cores", ",".join(map(str, sorted(self.cores)))]
        # In this process's session: the judge's side (harness/judge/sandbox.py) kills a child of its own that sits in
        # another session as an orphan a contestant left behind.
        self._proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        try:
            self.report["ready_at"] = self._ready()["at"]
        except BaseException:
            self._proc.kill()
            self._proc.wait()
            raise
        self.report["pid"] = self._proc.pid
        return self

    def _ready(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        readable, _, _ = select.select([self._proc.stdout], [], [], READY_TIMEOUT_S)
        line = self._proc.stdout.readline() if readable else ""
        if not line:
            self._proc.kill()
            code = self._proc.wait()
            raise RuntimeError(
                f"the training load did not start (exit code {code}, {READY_TIMEOUT_S:g} s allowed):\n{self._errors()}"
            )
        ready: dict[str, Any] = json.loads(line)
        return ready

    def _errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-3000:]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        proc = self._proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        self.report["returncode"] = proc.returncode
        lines = out.strip().splitlines()
        errors = self._errors()
        self._stderr.close()
        if proc.returncode != 0 or not lines:
            if kind is None:
                raise RuntimeError(f"the training load ended with code {proc.returncode}:\n{errors}")
            return
        self.report.update(json.loads(lines[-1]))
        # steps after the first, over the time since it: the rate the arm saw beside it
        self.report["steps_per_s"] = (self.report["steps"] - 1) / (self.report["stopped_at"] - self.report["ready_at"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_load", description=__doc__)
    parser.add_argument("--cores", required=True, help="comma-separated cores to train on")
    args = parser.parse_args(argv)
    _emit(serve({int(c) for c in args.cores.split(",")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
