"""Performance gate: candidate against baseline, interleaved call by call in one contestant, with intervals.

The baseline is the kind's reference, or the base branch's version of the module. One module at a time, with
the machine to itself: first the interleaved measurement (measure.py) in a contestant that imported and
fingerprinted the baseline before the candidate, watched by the judge throughout (tamper.py); then, once that
contestant and everything it started are gone, the baseline alone in a clean worker that never imports the
candidate (only a measurement that stands needs this cross-check; the kind's reference is measured alone once per
run and kind variant); finally the decision (report.py). A failed
integrity fact is the verdict `tampered`, never a speed figure.

Inputs, orders and salts come from the run's secret seed (inputs.py); every fixed number is named in
settings.py.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import ClassVar

from harness.core import paths
from harness.core.contract import ModuleSource
from harness.gates.base import Gate, GateJob, Needs, RunConfig
from harness.gates.performance.inputs import TimingPlan
from harness.gates.performance.measure import Measurement, clean_baseline, measure
from harness.gates.performance.report import beyond_roofline, record, summarize, verdict
from harness.gates.performance.tamper import Tampered, Watch
from harness.perf.config import PerfSettings
from harness.perf.roofline import Roofline, load_or_measure, remeasure
from harness.perf.timer import timing_core
from harness.results.records import GateName, GateResult, Verdict


class PerformanceGate(Gate):
    """Speed and memory against the baseline, with 99% intervals, trusted only when every integrity fact holds."""

    name: ClassVar[GateName] = GateName.PERF
    needs: ClassVar[Needs] = Needs(loaded_candidate=False, exclusive=True)

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self._roofline: Roofline | None = None
        self._confirmed = False
        self._lock = threading.Lock()
        self._clean: dict[tuple[str, str], dict[str, float]] = {}  # (kind, variant) -> the reference alone

    def roofline(self) -> Roofline:
        """The machine's roofline, measured once per machine (cached on disk), loaded once per run."""
        with self._lock:
            if self._roofline is None:
                self._roofline = load_or_measure(paths.CACHE_DIR, threads=1, device=self.config.device)
            return self._roofline

    def confirmed_roofline(self) -> Roofline:
        """The roofline measured again (keeping the best rates seen), before a time is called impossible: the
        cached one may come from a busy machine. Once per run; the gate has the machine to itself."""
        with self._lock:
            if not self._confirmed:
                self._roofline = remeasure(paths.CACHE_DIR, threads=1, device=self.config.device)
                self._confirmed = True
            assert self._roofline is not None
            return self._roofline

    def blocked_by(self, earlier: list[GateResult]) -> str | None:
        if any(g.verdict not in (Verdict.PASS, Verdict.SKIPPED) for g in earlier):
            return "an earlier gate did not pass; speed is measured only for correct modules"
        return None

    def settings_for(self, kind: str) -> PerfSettings:
        """The run's settings with the kind's threshold from pyproject, when it sets one."""
        return replace(self.config.perf, threshold=self.config.perf_thresholds.get(kind, self.config.perf.threshold))

    def _clean_baseline(self, job: GateJob, plan: TimingPlan, base: ModuleSource | None, core: int) -> dict[str, float]:
        """The baseline's median times alone, in a worker that never imported a candidate. The kind's reference on
        the kind's cases is the same measurement for every module of that kind and variant, so it is made once per
        run and shared; a base branch's version of the module is measured for that module."""
        key = None if base is not None else (job.spec.kind, plan.variant)
        if key is not None and key in self._clean:
            return self._clean[key]
        with job.open_contestant(f"{job.spec.name}-clean") as channel:
            channel.send(plan.baseline_request(base, core, watched=False))
            clean = clean_baseline(plan, channel)
        if key is not None:
            self._clean[key] = clean
        return clean

    def run(self, job: GateJob, gate: GateResult) -> tuple[Verdict, str]:
        """Every (case, mode) interleaved, fresh outputs, then the clean worker; decided by report.verdict."""
        base = self.config.base.get(job.source.name)  # the base branch's version, or None: the kind's reference
        plan = TimingPlan(job.spec, self.config.seed, self.settings_for(job.spec.kind))
        plan.draw_ahead()
        try:
            return self._run(job, gate, plan, base)
        finally:
            plan.close()

    def _run(self, job: GateJob, gate: GateResult, plan: TimingPlan, base: ModuleSource | None) -> tuple[Verdict, str]:
        watch, roofline, core = Watch(plan, host_timer=self.config.device == "cpu"), self.roofline(), timing_core()
        measurements: list[Measurement] = []
        try:
            with job.open_contestant(job.spec.name) as channel:
                gate.reason = "while preparing the baseline"
                threads = channel.send(plan.baseline_request(base, core)).threads
                channel.load(job.source)
                watch.integrity(channel, "after importing the candidate")
                for mode in plan.modes:
                    gate.reason = f"while timing {mode.label}"
                    m = measure(plan, watch, channel, mode)
                    measurements.append(m)
                    gate.cases.append(record(plan, roofline, m))
                watch.integrity(channel, "after timing")
                fresh = watch.fresh(channel)
            if any(beyond_roofline(case) for case in gate.cases):
                gate.reason = "measuring the roofline again before calling a time impossible"
                roofline = self.confirmed_roofline()
                gate.cases[:] = [record(plan, roofline, m) for m in measurements]
            gate.reason = "while timing the baseline in a clean worker"
            clean = self._clean_baseline(job, plan, base, core)
            for m, case in zip(measurements, gate.cases, strict=True):
                if m.label in clean:
                    case.metrics["clean_baseline_ns"] = clean[m.label]
                watch.cross_check(m.label, m.times["baseline"], clean)
        except Tampered as exc:
            return Verdict.TAMPERED, str(exc)
        summary, decision = summarize(measurements, plan.settings.threshold)
        gate.summary = {**summary, "threads": float(threads), "threshold": plan.settings.threshold}
        return verdict(gate, decision, fresh, against_base=base is not None)


__all__ = ["PerfSettings", "PerformanceGate", "Tampered"]
