"""A contestant as the judge talks to it: typed requests, replies validated on receipt, failures as exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

from harness.core.contract import ModuleSource, ModuleSpec
from harness.judge.sandbox import Contestant, Limits, Spares
from harness.protocol.codec import Message
from harness.protocol.errors import CandidateRaised, ContestantDied
from harness.protocol.frames import ProtocolError
from harness.protocol.messages import Failed, FailureStatus, Load, Request
from harness.results.records import Verdict

R = TypeVar("R", bound=Message)


class LoadFailed(Exception):
    """The module could not be imported or does not meet its kind's contract."""


class Session:
    """A contestant with modules loaded into it: sends requests and turns replies into typed messages or exceptions.

    Implements `harness.gates.base.Channel`.
    """

    def __init__(self, contestant: Contestant) -> None:
        self.contestant = contestant

    @property
    def pid(self) -> int:
        assert self.contestant.proc is not None
        return self.contestant.proc.pid

    def members(self) -> set[int]:
        return self.contestant.members()

    def load(self, source: ModuleSource) -> ModuleSpec:
        """Import, validate and instantiate the module in the contestant."""
        return self._load(source, instantiate=True)

    def load_only(self, source: ModuleSource) -> ModuleSpec:
        """Import and validate the module without building an instance (for listing)."""
        return self._load(source, instantiate=False)

    def _load(self, source: ModuleSource, instantiate: bool) -> ModuleSpec:
        try:
            return self.send(Load(source=source, instantiate=instantiate)).spec
        except CandidateRaised as exc:
            raise LoadFailed(str(exc)) from None

    def send(self, request: Request[R]) -> R:
        """The reply to `request`, checked against its type; CandidateRaised when the module raised."""
        frame = self.contestant.request(request.to_frame())
        try:
            if frame.get("op") == Failed.op:
                self._raise_for(Failed.from_frame(frame))
            return cast(R, type(request).reply.from_frame(frame))
        except ProtocolError as exc:
            self.contestant.kill()
            raise ContestantDied(Verdict.ERROR, f"the contestant broke the protocol: {exc}") from None

    def _raise_for(self, failed: Failed) -> None:
        message = f"{failed.message}{_origin(failed.traceback)}"
        if failed.status is FailureStatus.OOM:
            self.contestant.kill()
            cap = self.contestant.limits.memory_mb
            raise ContestantDied(Verdict.OOM, f"an allocation failed at the {cap} MiB memory cap: {message}")
        raise CandidateRaised(message)


def _origin(traceback_text: str) -> str:
    """' (at file:line)' for the innermost frame of a contestant traceback, or ''."""
    frames = [line.strip() for line in traceback_text.splitlines() if line.strip().startswith('File "')]
    if not frames:
        return ""
    parts = frames[-1].split('"')
    line = frames[-1].split(", line ")[1].split(",")[0] if ", line " in frames[-1] else "?"
    return f" (at {parts[1]}:{line})" if len(parts) > 1 else ""


@contextmanager
def open_session(limits: Limits, label: str, spares: Spares | None = None) -> Iterator[Session]:
    """A fresh contestant process as a Session (started ahead by `spares` when given); its whole process tree is
    killed on exit."""
    if spares is None or spares.limits != limits:
        with Contestant(limits, label) as contestant:
            yield Session(contestant)
        return
    contestant = spares.take(label)
    try:
        yield Session(contestant)
    finally:
        contestant.close()
