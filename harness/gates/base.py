"""The one interface every gate implements, and what the runner hands a gate for one module.

A gate says what it is called (`name`), what it needs before it starts (`needs`: a contestant with the
candidate already loaded, or the machine to itself), when earlier gates make it pointless (`blocked_by`), how it
exercises the module and decides (`run`, which appends cases as they are known and returns the verdict). The runner
(harness/judge/runner.py) drives every gate the same way; a new gate is one file plus one line in
`harness/gates/__init__.py`, and its name in `GateName` (results/records.py), which the results schema's gate
enum mirrors (a test checks the three agree).

Gates sit below the judge: they never start a process themselves. They talk to a contestant through the
`Channel` the runner gives them, and a gate that needs more contestants (the performance gate's clean
worker) asks the runner's `open_contestant`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar

from harness.core.contract import ModuleSource, ModuleSpec
from harness.integration.runs import TaskSetup
from harness.integration.setups import DEFAULT_SETUPS
from harness.perf.config import PerfSettings
from harness.protocol.codec import Message
from harness.protocol.messages import Request
from harness.results.records import GateName, GateResult, Verdict

R = TypeVar("R", bound=Message)


class Channel(Protocol):
    """A running contestant as a gate sees it (implemented by harness.judge.session.Session)."""

    def send(self, request: Request[R]) -> R:
        """The typed, validated reply; CandidateRaised when the module raised, ContestantDied when it is gone."""
        ...

    def load(self, source: ModuleSource) -> ModuleSpec:
        """Import, validate and instantiate a module in the contestant; LoadFailed when it cannot be."""
        ...

    @property
    def pid(self) -> int:
        """The contestant's process id (the judge reads its threads from /proc)."""
        ...

    def members(self) -> set[int]:
        """Pids of the contestant's live process tree, itself included."""
        ...


OpenContestant = Callable[[str], AbstractContextManager[Channel]]  # label -> a fresh contestant, killed on exit


@dataclass(frozen=True)
class CaseSelection:
    """The cases a run is limited to (`harness check --case ID --dtype D`, to reproduce a failure); empty: all."""

    cases: frozenset[str] = frozenset()  # case ids as results.json records them; empty: every case
    dtypes: frozenset[str] = frozenset()  # dtype names ("float16") the unit gate checks; empty: every one

    @property
    def limited(self) -> bool:
        return bool(self.cases or self.dtypes)

    def wants(self, case_id: str) -> bool:
        return not self.cases or case_id in self.cases

    def wants_unit(self, case_id: str, dtype: str) -> bool:
        return self.wants(case_id) and (not self.dtypes or dtype in self.dtypes)

    def none_of(self, gate: GateName, variants: tuple[str, ...]) -> tuple[Verdict, str]:
        """The verdict of a gate whose cases the selection left out entirely (wrong variant or gate)."""
        chosen = ", ".join(sorted(self.cases)) + (f" in {', '.join(sorted(self.dtypes))}" if self.dtypes else "")
        return (
            Verdict.ERROR,
            f"--case {chosen} selects no {gate} case of this module (variants {', '.join(variants)}). "
            "Fix: pick a case id of this module's variant (`harness explain` lists the failing ones).",
        )


@dataclass(frozen=True)
class RunConfig:
    """The settings of one run that gates read; the same for every module."""

    seed: int = 0  # the run's secret seed: every input and evaluation batch is drawn from it
    device: str = "cpu"  # where contestants run modules: cpu or cuda
    integration_setups: tuple[TaskSetup, ...] = DEFAULT_SETUPS  # tasks, models and training of the integration gate
    perf: PerfSettings = field(default_factory=PerfSettings)  # measurement settings of the performance gate
    perf_thresholds: dict[str, float] = field(default_factory=dict)  # per-kind slowdown threshold (pyproject)
    base: dict[str, ModuleSource] = field(default_factory=dict)  # base-branch versions of modules, by name
    cases: CaseSelection = field(default_factory=CaseSelection)  # only these cases run (reproducing a failure)


@dataclass(frozen=True)
class Needs:
    """What a gate needs from the judge before it starts."""

    loaded_candidate: bool  # a fresh contestant with the candidate imported and instantiated (else: none)
    exclusive: bool  # the machine to itself: runs after every other gate, one module at a time, pinned


@dataclass
class GateJob:
    """One module's turn at one gate."""

    spec: ModuleSpec  # what the module registered (learned in a contestant)
    source: ModuleSource  # where it comes from
    channel: Channel | None  # the contestant holding the loaded candidate, when the gate needs one
    open_contestant: OpenContestant  # more contestants, for gates that manage their own


class Gate(ABC):
    """A gate: one kind of evidence about a module, turned into a verdict."""

    name: ClassVar[GateName]
    needs: ClassVar[Needs]

    def __init__(self, config: RunConfig) -> None:
        self.config = config  # one gate object serves a whole run; it may cache what every module shares

    def blocked_by(self, earlier: list[GateResult]) -> str | None:
        """Why this gate is skipped given the module's earlier gates, or None to run it."""
        if any(g.gate is GateName.UNIT and g.verdict is Verdict.FAIL for g in earlier):
            return "the unit gate failed; correctness comes first"
        return None

    def skip_reason(self, spec: ModuleSpec) -> str | None:
        """Why this gate does not apply to `spec`, or None when it does."""
        return None

    @abstractmethod
    def run(self, job: GateJob, gate: GateResult) -> tuple[Verdict, str]:
        """Exercise the module, appending each case to `gate.cases` as soon as it is known; return the verdict.

        `gate.reason` may be set to what is under way ("while ..."): if the contestant dies, the runner keeps
        it in the verdict's reason. Most gates decide by `conclude` (fail when any case failed); a gate that
        decides on more than its cases (the performance gate's interval and tamper facts) says so in its file.
        """


def conclude(gate: GateResult) -> tuple[Verdict, str]:
    """fail (naming the first failed case and its first reason) when any case failed, else pass."""
    failed = gate.failed_cases
    if failed:
        first = failed[0]
        return (
            Verdict.FAIL,
            f"{len(failed)} of {len(gate.cases)} cases failed; first: {first.case} [{first.dtype}]: "
            f"{first.failures[0]}",
        )
    return Verdict.PASS, f"{len(gate.cases)} cases passed"
