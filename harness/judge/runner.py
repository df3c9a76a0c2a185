"""The judge: runs each module through the requested gates in contestant processes and keeps the verdicts.

Nothing a module does can stop the run: a crash, hang, memory blow-up or protocol violation becomes that
module's verdict, its finished cases are kept, and the judge moves on to the next module.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import torch

from harness.contract import ErrorBound, ModuleSpec
from harness.gates import integration, perf, unit
from harness.gates.perf import PerfSettings
from harness.integration.policy import MixedPrecisionPolicy
from harness.integration.runs import TaskSetup
from harness.integration.setups import DEFAULT_SETUPS
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import LoadFailed, Session
from harness.kinds import KINDS
from harness.perf.roofline import Roofline, load_or_measure
from harness.perf.timer import seconds
from harness.protocol import CandidateRaised, ContestantDied
from harness.registry import ModuleSource, duplicate_names
from harness.results.records import GateResult, ModuleResult, overall

GATES = ("unit", "integration", "perf")


@dataclass(frozen=True)
class RunOptions:
    """What the judge runs and under which limits."""

    gates: tuple[str, ...] = GATES  # gates in the order they run
    limits: Limits = field(default_factory=Limits)  # per-module process limits
    seed: int = 0  # the run's secret seed (drawn by the CLI, disclosed in the results afterwards)
    jobs: int = 1  # modules judged at once, each in its own contestant process
    integration_setups: tuple[TaskSetup, ...] = DEFAULT_SETUPS  # tasks, models and training of the integration gate
    policies: tuple[MixedPrecisionPolicy, ...] = ()  # mixed-precision policies, judged after the modules
    perf: PerfSettings = field(default_factory=PerfSettings)  # measurement settings of the performance gate
    perf_thresholds: dict[str, float] = field(default_factory=dict)  # per-kind slowdown threshold (pyproject)
    base: dict[str, ModuleSource] = field(default_factory=dict)  # base-branch versions of modules, by name


class RunContext:
    """Judge-side state shared by every module of one run: references computed once, the machine's roofline."""

    def __init__(self, options: RunOptions) -> None:
        self.unit = unit.ReferenceCache(options.seed)
        self.integration = integration.References(options.seed, options.integration_setups)
        self._roofline: Roofline | None = None

    def roofline(self, device: str = "cpu") -> Roofline:
        if self._roofline is None:
            self._roofline = load_or_measure(integration.CACHE_DIR, threads=1, device=device)
        return self._roofline


GateFn = Callable[[ModuleSpec, Session, RunContext, GateResult], None]


def unit_gate(spec: ModuleSpec, session: Session, run: RunContext, gate: GateResult) -> None:
    """Run every unit case, appending each result to `gate` as soon as it is known."""
    cache = run.unit
    kind = KINDS[spec.kind]
    for variant in spec.variants:
        for case in kind.battery(variant):
            for dtype in kind.dtypes(variant):
                gate.reason = f"while running case {case.id} in {str(dtype).removeprefix('torch.')}"
                ctx = unit.CaseContext(kind, spec, case, dtype, session.ask, cache)
                gate.cases.append(unit.check_case(ctx).as_dict())
    _conclude(gate)


def integration_gate(spec: ModuleSpec, session: Session, run: RunContext, gate: GateResult) -> None:
    """Train the model with the module in its slot on each task, beside the judge's reference run."""
    if spec.kind == "quantization":
        quantization_case(session, run, integration.module_plan(spec, run.integration), gate)
        return
    variants = integration.slot_variants(spec)
    if variants is None:
        gate.verdict = "skipped"
        gate.reason = f"no declared variant ({', '.join(spec.variants)}) fits a causal decoder"
        return
    for setup in run.integration.setups:
        gate.reason = f"while training on {setup.task}"
        start = seconds()
        try:
            reply = session.send(integration.request(spec, setup, run.integration, variants))
            case = integration.score_task(spec, setup, run.integration, variants, reply)
        except CandidateRaised as exc:
            case = integration.raised_case(setup, str(exc))
        case["seconds"] = seconds() - start  # judge's clock: includes references it may train first
        gate.cases.append(case)
    _conclude(gate)


def quantization_case(session: Session, run: RunContext, plan: integration.LayerPlan, gate: GateResult) -> None:
    """Quantize the judge's trained reference model by `plan` in the contestant and score the result."""
    gate.reason = "while quantizing the trained reference model"
    start = seconds()
    setup, message = integration.quantization_request(plan, run.integration)
    try:
        case = integration.score_quantization(setup, run.integration, plan, session.send(message))
    except CandidateRaised as exc:
        case = integration.raised_case(setup, str(exc))
    case["seconds"] = seconds() - start  # judge's clock: includes the reference it may train first
    case["case"] = "integration/quantized-text"
    gate.cases.append(case)
    _conclude(gate)


def _conclude(gate: GateResult) -> None:
    failed = [c for c in gate.cases if not c["passed"]]
    gate.verdict = "fail" if failed else "pass"
    gate.reason = (
        f"{len(failed)} of {len(gate.cases)} cases failed; first: {failed[0]['case']} [{failed[0]['dtype']}]: "
        f"{failed[0]['failures'][0]}" if failed else f"{len(gate.cases)} cases passed"
    )


GATE_FUNCTIONS: dict[str, GateFn] = {"unit": unit_gate, "integration": integration_gate}


def judge_module(source: ModuleSource, options: RunOptions, run: RunContext) -> ModuleResult:
    """One module through every requested gate, each gate in a fresh contestant process."""
    start = seconds()
    result = ModuleResult(name=source.name, source=source.where, kind=source.kind)
    for gate_name in options.gates:
        if gate_name == "perf":
            continue  # timed later, one module at a time, with nothing else running (judge_perf)
        gate = GateResult(gate=gate_name, verdict="error")
        result.gates.append(gate)
        if gate_name != "unit" and any(g.gate == "unit" and g.verdict == "fail" for g in result.gates):
            gate.verdict, gate.reason = "skipped", "the unit gate failed; correctness comes first"
            continue
        gate_start = seconds()
        try:
            with Contestant(options.limits, source.name) as contestant:
                session = Session(contestant)
                spec = session.load(source)
                _describe(result, spec)
                GATE_FUNCTIONS[gate_name](spec, session, run, gate)
        except LoadFailed as exc:
            gate.verdict, gate.reason = "error", f"could not load {source.where}: {exc}"
        except ContestantDied as died:
            gate.verdict, gate.reason = died.verdict, f"{died.reason} ({gate.reason})" if gate.reason else died.reason
        gate.seconds = seconds() - gate_start
        if gate.verdict in ("error", "timeout", "crash", "oom") and not gate.cases:
            break  # the module cannot even start; later gates would only repeat the same failure
    result.verdict, result.reason = overall(result.gates)
    result.seconds = seconds() - start
    return result


def judge_perf(source: ModuleSource, result: ModuleResult, options: RunOptions, run: RunContext) -> ModuleResult:
    """The performance gate of one module, appended to its result from the other gates."""
    start = seconds()
    gate = GateResult(gate="perf", verdict="error")
    result.gates.append(gate)
    earlier = [g for g in result.gates if g.gate != "perf"]
    if any(g.verdict not in ("pass", "skipped") for g in earlier):
        gate.verdict = "skipped"
        gate.reason = "an earlier gate did not pass; speed is measured only for correct modules"
    else:
        try:
            spec = _spec_for(source, result, options)
            base = options.base.get(source.name)
            threshold = options.perf_thresholds.get(spec.kind, options.perf.threshold)
            settings = replace(options.perf, threshold=threshold)
            roofline = run.roofline(options.limits.device)
            judge = perf.PerfJudge(spec, source, base, options.limits, options.seed, roofline, settings)
            perf.perf_gate(judge, gate, "base" if base else "reference")
        except LoadFailed as exc:
            gate.verdict, gate.reason = "error", f"could not load {source.where}: {exc}"
        except ContestantDied as died:
            gate.verdict, gate.reason = died.verdict, f"{died.reason} ({gate.reason})" if gate.reason else died.reason
        except CandidateRaised as exc:
            gate.verdict, gate.reason = "fail", f"module raised {gate.reason}: {exc}"
    gate.seconds = seconds() - start
    result.verdict, result.reason = overall(result.gates)
    result.seconds += gate.seconds
    return result


def _spec_for(source: ModuleSource, result: ModuleResult, options: RunOptions) -> ModuleSpec:
    """The module's spec: from an earlier gate of this run, or from importing it in a short-lived contestant."""
    if result.kind and result.variants and result.exact is not None:
        bound = ErrorBound(**result.bound) if result.bound else None
        return ModuleSpec(source.name, result.kind, tuple(result.variants), result.exact, bound, "", result.source)
    with Contestant(options.limits, source.name) as contestant:
        spec = Session(contestant).load_only(source)
    _describe(result, spec)
    return spec


def judge_policy(
    policy: MixedPrecisionPolicy, sources: dict[str, ModuleSource], options: RunOptions, run: RunContext
) -> ModuleResult:
    """A mixed-precision policy, reported like a module: its modules quantize the reference model layer by layer.

    Only the integration gate applies; the unit (and any later) gate judges each module on its own.
    """
    start = seconds()
    result = ModuleResult(name=policy.name, source=policy.source, kind="quantization")
    result.exact = False
    for gate_name in options.gates:
        gate = GateResult(gate=gate_name, verdict="skipped",
                          reason=f"a policy is judged in the integration gate; {gate_name} judges its modules")
        result.gates.append(gate)
        if gate_name != "integration":
            continue
        gate_start = seconds()
        try:
            _policy_gate(policy, sources, options, run, gate)
        except LoadFailed as exc:
            gate.verdict, gate.reason = "error", str(exc)
        except ContestantDied as died:
            gate.verdict, gate.reason = died.verdict, f"{died.reason} ({gate.reason})" if gate.reason else died.reason
        gate.seconds = seconds() - gate_start
    result.verdict, result.reason = overall(result.gates)
    result.seconds = seconds() - start
    return result


def _policy_gate(policy: MixedPrecisionPolicy, sources: dict[str, ModuleSource], options: RunOptions,
                 run: RunContext, gate: GateResult) -> None:
    missing = [m for m in policy.modules if m not in sources]
    if missing:
        raise LoadFailed(f"{policy.source}: names {', '.join(map(repr, missing))}, expected registered quantization "
                         "modules. Fix: use names `harness list` shows.")
    plan_names = policy.assign(integration.reference_layers(run.integration))
    if not plan_names:
        layers = ", ".join(integration.reference_layers(run.integration))
        raise LoadFailed(f"{policy.source}: no rule matches a layer of the model ({layers}). Fix the patterns.")
    with Contestant(options.limits, policy.name) as contestant:
        session = Session(contestant)
        specs = {name: session.load(sources[name]) for name in policy.modules}
        wrong = [f"{n} ({s.kind})" for n, s in specs.items() if s.kind != "quantization"]
        if wrong:
            raise LoadFailed(f"{policy.source}: {', '.join(wrong)} not quantization modules. Fix the rule values.")
        plan = {layer: (name, specs[name].variants[0]) for layer, name in plan_names.items()}
        quantization_case(session, run, plan, gate)


def _describe(result: ModuleResult, spec: ModuleSpec) -> None:
    result.kind, result.variants, result.exact = spec.kind, list(spec.variants), spec.exact
    result.bound = spec.bound.as_dict() if spec.bound else None
    result.source = spec.source


def perf_core() -> int:
    return max(0, (os.cpu_count() or 1) - 1)


@contextlib.contextmanager
def _pinned_away(core: int) -> Iterator[None]:
    """This thread kept off `core` (where contestants are timed) while inside; restored afterwards."""
    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, (before - {core}) or before)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def duplicate_results(sources: list[ModuleSource]) -> tuple[list[ModuleSource], list[ModuleResult]]:
    """Split off sources whose names collide: each gets an error verdict naming all claimants."""
    duplicates = duplicate_names(sources)
    results = []
    for name, group in duplicates.items():
        where = " and ".join(s.where for s in group)
        for source in group:
            results.append(ModuleResult(
                name=name, source=source.where, kind=source.kind, verdict="error",
                reason=f"module name {name!r} is registered more than once ({where}). Expected each name once. "
                "Fix: rename one of the files (and its class) to a unique name.",
            ))
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
    run = RunContext(options)
    runnable, early = duplicate_results(sources)
    lock = threading.Lock()

    def report(result: ModuleResult) -> ModuleResult:
        with lock:
            on_result(result)
        return result

    for result in early:
        report(result)
    # One intra-op thread for the judge's own tensor work: its threads and the contestants share the cores,
    # and OpenMP workers spinning against a busy core make small ops 10-80x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        by_name = {s.name: s for s in (available if available is not None else runnable)}
        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            judged = list(pool.map(lambda source: report(judge_module(source, options, run)), runnable))
            judged += list(pool.map(lambda p: report(judge_policy(p, by_name, options, run)), options.policies))
        if "perf" in options.gates:
            # One module at a time with nothing else running: the contestant pinned to the last core, the
            # judge (this thread) to the others.
            with _pinned_away(perf_core()):
                for source, result in zip(runnable, judged, strict=False):
                    report(judge_perf(source, result, options, run))
    finally:
        torch.set_num_threads(threads)
    order = {name: i for i, name in enumerate([s.name for s in sources] + [p.name for p in options.policies])}
    return sorted(early + judged, key=lambda r: order.get(r.name, 0))
