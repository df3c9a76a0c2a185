"""The contestant's answers: one handler per request type, each returning the reply its request names."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from harness.core.contract import ModuleSource
from harness.protocol.codec import Message
from harness.protocol.messages import (
    Call,
    Failed,
    FailureStatus,
    Integrate,
    Load,
    Loaded,
    PerfBaseline,
    PerfBlock,
    PerfCase,
    PerfFresh,
    PerfIntegrity,
    PerfMemory,
    PerfOutputs,
    PerfWarmup,
    QuantizeModel,
)

if TYPE_CHECKING:  # imported when the first PerfBaseline arrives: most contestants never time anything
    from harness.worker.perf import PerfBench

MEMORY_ERRORS = ("not enough memory", "can't allocate memory", "cannot allocate memory", "out of memory")


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in MEMORY_ERRORS)


def failure(exc: BaseException) -> Failed:
    """The reply for a request that raised: the exception's type and message, and the end of its traceback."""
    lines = traceback.format_exception(exc)
    notes = "".join(f" [{note}]" for note in getattr(exc, "__notes__", []))
    return Failed(
        status=FailureStatus.OOM if _is_oom(exc) else FailureStatus.RAISED,
        message=f"{type(exc).__name__}: {str(exc)[:2000]}{notes}",
        traceback="".join(lines[-6:])[-4000:],
    )


class NotReady(RuntimeError):
    """A request arrived before the one it depends on (a judge-side ordering bug, reported as a failure)."""


class Worker:
    """Holds the loaded modules and answers the judge's requests one at a time."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.instance: object | None = None  # the module calls go to: the last one loaded
        self.instances: dict[str, object] = {}  # every module loaded, by name (a mixed-precision plan uses several)
        self.bench: PerfBench | None = None  # the performance gate's bench, created by PerfBaseline

    def handle(self, request: Message) -> Message:
        if isinstance(request, Load):
            return self.load(request)
        if isinstance(request, PerfBaseline):
            return self.perf_baseline(request)
        if isinstance(request, (PerfCase, PerfWarmup, PerfBlock, PerfOutputs, PerfMemory, PerfFresh, PerfIntegrity)):
            if self.bench is None:
                raise NotReady(f"{request.op} before perf_baseline")
            return self.bench.handle(request, self.instance)
        instance = self._loaded()
        if isinstance(request, Call):
            from harness.worker.execute import execute

            return execute(instance, request, device=self.device)
        if isinstance(request, Integrate):
            from harness.worker.integrate import integrate

            return integrate(instance, request)
        if isinstance(request, QuantizeModel):
            from harness.worker.integrate import quantize_model

            return quantize_model(self.instances, request)
        raise NotReady(f"no handler for {request.op!r}")

    def _loaded(self) -> object:
        if self.instance is None:
            raise NotReady("no module loaded")
        return self.instance

    def load(self, request: Load) -> Loaded:
        from harness.registry.loader import load

        spec, cls = load(request.source)
        if request.instantiate:
            self.instance = self.instances[spec.name] = cls()
        return Loaded(spec=spec)

    def perf_baseline(self, request: PerfBaseline) -> Message:
        from harness.worker.perf import PerfBench

        if self.instance is not None:
            raise NotReady("the baseline must be prepared before any module is loaded")
        self.bench = PerfBench(self.device)
        return self.bench.prepare_baseline(request, _load_isolated)


def _load_isolated(source: ModuleSource) -> object:
    """A module (the base branch's version of the candidate) loaded into its own registry, instantiated."""
    from harness.registry.loader import Registry, load

    _, cls = load(source, Registry())
    return cls()
