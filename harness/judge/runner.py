"""The judge: runs each module through the requested gates in contestant processes and keeps the verdicts.

Every gate is driven the same way (`_run_gate`): a gate that needs the candidate gets a fresh contestant with
it loaded; a gate that needs the machine to itself (timing) runs after all others, one module at a time, with
the judge kept off the timed core. Nothing a module does can stop the run: a crash, hang, memory blow-up or
protocol violation becomes that module's verdict, its finished cases are kept, and the judge moves on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from harness.core.contract import ErrorBound, ModuleSource, ModuleSpec
from harness.gates import GATES
from harness.gates.base import CaseSelection, Channel, Gate, GateJob, OpenContestant, RunConfig
from harness.gates.integration import IntegrationGate, PolicyUnusable
from harness.integration.policy import MixedPrecisionPolicy
from harness.integration.runs import TaskSetup
from harness.integration.setups import DEFAULT_SETUPS
from harness.judge.integrity import Guard
from harness.judge.isolation import module_roots, protect_judge
from harness.judge.reuse import Reuse, Settings, VerdictCache, harness_digest
from harness.judge.sandbox import Limits, Spares, start_zygote
from harness.judge.session import LoadFailed, open_session
from harness.perf.config import PerfSettings
from harness.perf.timer import kept_off, seconds, timing_core
from harness.protocol.errors import CandidateRaised, ContestantDied
from harness.registry.sources import duplicate_message, duplicate_names
from harness.results.records import PROCESS_VERDICTS, GateName, GateResult, ModuleResult, Verdict, overall

GateEvent = Callable[[str, GateResult, bool], None]
"""(module name, its gate record, finished): the record is live while the gate runs (its reason says the case)."""


@dataclass(frozen=True)
class RunOptions:
    """What the judge runs and under which limits."""

    gates: tuple[GateName, ...] = tuple(GATES)  # gates in the order they run
    limits: Limits = field(default_factory=Limits)  # per-module process limits
    seed: int = 0  # the run's secret seed (drawn by the CLI, disclosed in the results afterwards)
    jobs: int = 1  # modules judged at once, each in its own contestant process
    integration_setups: tuple[TaskSetup, ...] = DEFAULT_SETUPS  # tasks, models and training of the integration gate
    policies: tuple[MixedPrecisionPolicy, ...] = ()  # mixed-precision policies, judged after the modules
    perf: PerfSettings = field(default_factory=PerfSettings)  # measurement settings of the performance gate
    perf_thresholds: dict[str, float] = field(default_factory=dict)  # per-kind slowdown threshold (pyproject)
    base: dict[str, ModuleSource] = field(default_factory=dict)  # base-branch versions of modules, by name
    cases: CaseSelection = field(default_factory=CaseSelection)  # only these cases (--case): never reused nor stored
    on_gate: GateEvent | None = None  # told when each gate of each module starts and finishes (progress display)
    reuse: Reuse | None = None  # stored verdicts: reuse unchanged modules' (and store new ones); None: neither
    on_reused: Callable[[ModuleResult], None] | None = None  # told of each verdict reused instead of judged

    def config(self) -> RunConfig:
        return RunConfig(
            seed=self.seed,
            device=self.limits.device,
            integration_setups=self.integration_setups,
            perf=self.perf,
            perf_thresholds=self.perf_thresholds,
            base=self.base,
            cases=self.cases,
        )


class Run:
    """One run's gates (each holding what its modules share) and the way to start contestants."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        config = options.config()
        self.gates: list[Gate] = [GATES[GateName(name)](config) for name in options.gates]
        self.guard = Guard()
        self.spares = Spares(options.limits)  # contestants started ahead; closed when the run ends

    @contextlib.contextmanager
    def open_contestant(self, label: str) -> Iterator[Channel]:
        """A fresh contestant; when it is gone, the judge's files are checked (HarnessTampered on a change)."""
        try:
            with open_session(self.options.limits, label, self.spares) as channel:
                yield channel
        finally:
            self.guard.verify(label)

    @property
    def stopped(self) -> str | None:
        """Why the run stopped (a contestant changed the judge's files), or None."""
        return self.guard.stopped

    @property
    def shared(self) -> list[Gate]:
        """Gates that run while other modules are judged."""
        return [g for g in self.gates if not g.needs.exclusive]

    @property
    def exclusive(self) -> list[Gate]:
        """Gates that need the machine to themselves, run afterwards one module at a time."""
        return [g for g in self.gates if g.needs.exclusive]


def _guarded(gate: GateResult, body: Callable[[], tuple[Verdict, str]]) -> None:
    """Run one gate's body and record its verdict; every way a module can fail ends here, once."""
    start = seconds()
    try:
        gate.verdict, gate.reason = body()
    except (LoadFailed, PolicyUnusable) as exc:
        gate.verdict, gate.reason = Verdict.ERROR, str(exc)
    except ContestantDied as died:
        gate.verdict = died.verdict
        gate.reason = f"{died.reason} ({gate.reason})" if gate.reason else died.reason
    except CandidateRaised as exc:
        gate.verdict, gate.reason = Verdict.FAIL, f"module raised {gate.reason}: {exc}"
    gate.seconds = seconds() - start


def _run_gate(gate: Gate, source: ModuleSource, result: ModuleResult, run: Run) -> GateResult:
    """One gate on one module, appended to its result."""
    record = GateResult(gate=gate.name, verdict=Verdict.ERROR)
    blocked = f"not judged: {run.stopped}" if run.stopped else gate.blocked_by(list(result.gates))
    result.gates.append(record)
    if blocked:
        record.verdict, record.reason = Verdict.SKIPPED, blocked
        _tell(run, source.name, record, finished=True)
        return record

    def body() -> tuple[Verdict, str]:
        if not gate.needs.loaded_candidate:
            return _decide(gate, GateJob(_spec_for(source, result, run), source, None, run.open_contestant), record)
        with run.open_contestant(source.name) as channel:
            spec = _load(channel, source, result)
            return _decide(gate, GateJob(spec, source, channel, run.open_contestant), record)

    _tell(run, source.name, record, finished=False)
    _guarded(record, body)
    _tell(run, source.name, record, finished=True)
    return record


def _tell(run: Run, name: str, record: GateResult, finished: bool) -> None:
    if run.options.on_gate is not None:
        run.options.on_gate(name, record, finished)


def _decide(gate: Gate, job: GateJob, record: GateResult) -> tuple[Verdict, str]:
    skip = gate.skip_reason(job.spec)
    if skip:
        return Verdict.SKIPPED, skip
    return gate.run(job, record)


def _spec_for(source: ModuleSource, result: ModuleResult, run: Run) -> ModuleSpec:
    """The module's spec: from an earlier gate of this run, or from importing it in a short-lived contestant."""
    if result.kind and result.variants and result.exact is not None:
        bound = ErrorBound(**result.bound) if result.bound else None
        return ModuleSpec(source.name, result.kind, tuple(result.variants), result.exact, bound, "", result.source)
    with run.open_contestant(source.name) as channel:
        return _load(channel, source, result)


def _load(channel: Channel, source: ModuleSource, result: ModuleResult) -> ModuleSpec:
    """Load the candidate into `channel` and record what it registered in its result."""
    try:
        spec = channel.load(source)
    except LoadFailed as exc:
        raise LoadFailed(f"could not load {source.where}: {exc}") from None
    _describe(result, spec)
    return spec


def judge_module(source: ModuleSource, run: Run) -> ModuleResult:
    """One module through every gate that shares the machine, each in a fresh contestant process."""
    start = seconds()
    result = ModuleResult(name=source.name, source=source.where, kind=source.kind)
    for gate in run.shared:
        record = _run_gate(gate, source, result, run)
        if record.verdict in (*PROCESS_VERDICTS, Verdict.TAMPERED) and not record.cases:
            break  # the module cannot even start; later gates would only repeat the same failure
    result.verdict, result.reason = _conclude(result, run)
    result.seconds = seconds() - start
    return result


def _conclude(result: ModuleResult, run: Run) -> tuple[Verdict, str]:
    """The module's verdict from its gates; a module the stopped run never judged is an error that says so."""
    if run.stopped and all(g.verdict is Verdict.SKIPPED for g in result.gates):
        return Verdict.ERROR, f"not judged: {run.stopped}"
    return overall(result.gates)


def judge_exclusive(source: ModuleSource, result: ModuleResult, run: Run) -> ModuleResult:
    """The gates that need the machine to themselves, appended to the module's result from the others."""
    for gate in run.exclusive:
        record = _run_gate(gate, source, result, run)
        result.seconds += record.seconds
    result.verdict, result.reason = _conclude(result, run)
    return result


def judge_policy(policy: MixedPrecisionPolicy, sources: dict[str, ModuleSource], run: Run) -> ModuleResult:
    """A mixed-precision policy, reported like a module: its modules quantize the reference model layer by layer.

    Only the integration gate applies; the unit (and any later) gate judges each module on its own.
    """
    start = seconds()
    result = ModuleResult(name=policy.name, source=policy.source, kind="quantization", exact=False)
    for gate in run.gates:
        record = GateResult(
            gate=gate.name,
            verdict=Verdict.SKIPPED,
            reason=f"a policy is judged in the integration gate; {gate.name} judges its modules",
        )
        result.gates.append(record)
        if run.stopped:
            record.reason = f"not judged: {run.stopped}"
        elif isinstance(gate, IntegrationGate):
            _tell(run, policy.name, record, finished=False)
            _guarded(record, functools.partial(gate.run_policy, policy, sources, run.open_contestant, record))
        _tell(run, policy.name, record, finished=True)
    result.verdict, result.reason = _conclude(result, run)
    result.seconds = seconds() - start
    return result


def _describe(result: ModuleResult, spec: ModuleSpec) -> None:
    result.kind, result.variants, result.exact = spec.kind, list(spec.variants), spec.exact
    result.bound = spec.bound.as_dict() if spec.bound else None
    result.source = spec.source


def duplicate_results(sources: list[ModuleSource]) -> tuple[list[ModuleSource], list[ModuleResult]]:
    """Split off sources whose names collide: each gets an error verdict naming all claimants."""
    duplicates = duplicate_names(sources)
    results = [
        ModuleResult(
            name=name,
            source=source.where,
            kind=source.kind,
            verdict=Verdict.ERROR,
            reason=duplicate_message(name, [s.where for s in group]),
        )
        for name, group in duplicates.items()
        for source in group
    ]
    return [s for s in sources if s.name not in duplicates], results


def judge_all(
    sources: list[ModuleSource],
    options: RunOptions,
    on_result: Callable[[ModuleResult], None],
    available: list[ModuleSource] | None = None,
) -> list[ModuleResult]:
    """Every source, then every policy in `options`, `options.jobs` at a time; `on_result` sees each result as soon
    as it is known. Policies find their modules among `available` (default: `sources`).

    Results come back in source order, then policy order, whatever order they finish in.
    """
    if options.limits.isolation is None:
        everything = [*sources, *(available or []), *options.base.values()]
        limits = options.limits.with_isolation(module_roots(s.path for s in everything))
        options = dataclasses.replace(options, limits=limits)
    protect_judge()
    run = Run(options)
    runnable, early = duplicate_results(sources)
    lock = threading.Lock()

    def report(result: ModuleResult) -> ModuleResult:
        with lock:
            on_result(result)
        return result

    for result in early:
        report(result)
    cache, keys, reused = _stored(runnable, _policy_modules(available, runnable), options, run)
    for result in reused.values():
        report(result)
        if options.on_reused is not None:
            options.on_reused(result)
    fresh = [s for s in runnable if s.name not in reused]
    policies = [p for p in options.policies if p.name not in reused]
    if fresh or policies:
        start_zygote()  # contestants are forked from it: it imports torch while the first gate gets ready
    # One intra-op thread for the judge's own tensor work: its threads and the contestants share the cores,
    # and OpenMP workers spinning against a busy core make small ops 10-80x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        by_name = _policy_modules(available, runnable)
        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            judged = list(pool.map(lambda source: report(judge_module(source, run)), fresh))
            judged += list(pool.map(lambda p: report(judge_policy(p, by_name, run)), policies))
        if run.exclusive:
            # One module at a time with nothing else running: the contestant pinned to the timing core, the
            # judge (this thread) to the others.
            run.spares.preload = ("torch._dynamo",)  # what every timing contestant loads (harness/worker/perf.py)
            # Contestants each module takes here: the timing one and the clean worker, and first a short-lived one to
            # read the module's spec when no earlier gate of this run did.
            run.spares.depth = 2 if run.shared else 3
            with kept_off(timing_core()):
                for source, result in zip(fresh, judged, strict=False):
                    report(judge_exclusive(source, result, run))
    finally:
        torch.set_num_threads(threads)
        run.spares.close()
    order = {name: i for i, name in enumerate([s.name for s in sources] + [p.name for p in options.policies])}
    results = sorted(early + list(reused.values()) + judged, key=lambda r: order.get(r.name, 0))
    if run.stopped:
        raise RunStopped(run.stopped, results)
    if cache is not None and options.reuse is not None:
        for result in judged:
            if result.name in keys:
                cache.save(keys[result.name], result, options.reuse.provenance)
    return results


def _policy_modules(available: list[ModuleSource] | None, runnable: list[ModuleSource]) -> dict[str, ModuleSource]:
    """Where policies find their modules: every available source (default: the ones judged)."""
    return {s.name: s for s in (available if available is not None else runnable)}


def _stored(
    runnable: list[ModuleSource], by_name: dict[str, ModuleSource], options: RunOptions, run: Run
) -> tuple[VerdictCache | None, dict[str, str], dict[str, ModuleResult]]:
    """(the verdict cache, each reusable module's or policy's key, the verdicts reused) before any contestant
    starts; with no reuse configured, nothing."""
    reuse = options.reuse
    if reuse is None or options.cases.limited:  # a verdict on some cases only is no module's verdict
        return None, {}, {}
    settings = Settings(
        gates=options.gates,
        limits=options.limits,
        perf=dataclasses.asdict(options.perf),
        thresholds=dict(options.perf_thresholds),
        integration=[setup.as_dict() for setup in options.integration_setups],
        fixed_seed=reuse.fixed_seed,
    )
    cache = VerdictCache(settings, harness_digest(run.guard.baseline), reuse.directory)
    keys: dict[str, str] = {}
    for source in runnable:
        key = cache.module_key(source, options.base.get(source.name))
        if key is not None:
            keys[source.name] = key
    for policy in options.policies:
        key = cache.policy_key(policy, by_name)
        if key is not None:
            keys[policy.name] = key
    if not reuse.lookup:
        return cache, keys, {}
    reused = {name: result for name, key in keys.items() if (result := cache.load(key)) is not None}
    return cache, keys, reused


class RunStopped(Exception):
    """A contestant changed the judge's files; the results so far are kept, and nothing more was judged."""

    def __init__(self, reason: str, results: list[ModuleResult]) -> None:
        super().__init__(reason)
        self.results = results


__all__ = ["GateEvent", "OpenContestant", "Run", "RunOptions", "RunStopped", "judge_all", "judge_module"]
