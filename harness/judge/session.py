"""A contestant as the judge talks to it: load a module, send requests, turn failures into exceptions."""

from __future__ import annotations

from typing import Any

from harness.contract import ModuleSpec
from harness.judge.sandbox import Contestant
from harness.protocol import Call, CandidateRaised, ContestantDied, Reply
from harness.registry import ModuleSource


class LoadFailed(Exception):
    """The module could not be imported or does not meet its kind's contract."""


class Session:
    """A loaded module inside a contestant: sends calls and turns replies into Reply or exceptions."""

    def __init__(self, contestant: Contestant) -> None:
        self.contestant = contestant

    def load(self, source: ModuleSource) -> ModuleSpec:
        """Import, validate and instantiate the module in the contestant."""
        return self._load(source, instantiate=True)

    def load_only(self, source: ModuleSource) -> ModuleSpec:
        """Import and validate the module without building an instance (for listing)."""
        return self._load(source, instantiate=False)

    def _load(self, source: ModuleSource, instantiate: bool) -> ModuleSpec:
        message = {"op": "load", "source": source_message(source), "instantiate": instantiate}
        reply = self.contestant.request(message)
        if reply.get("status") == "ok" and isinstance(reply.get("spec"), dict):
            return ModuleSpec.from_dict(reply["spec"])
        self._raise_for(reply, LoadFailed)
        raise LoadFailed(f"{source.where}: unexpected reply to load: {str(reply)[:200]}")

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """Any request; a module exception becomes CandidateRaised."""
        reply = self.contestant.request(message)
        if reply.get("status") == "ok":
            return reply
        self._raise_for(reply, CandidateRaised)
        raise CandidateRaised(f"unexpected reply status {reply.get('status')!r}")

    def ask(self, call: Call) -> Reply:
        reply = self.contestant.request(call.message())
        if reply.get("status") == "ok":
            return Reply.from_message(reply)
        self._raise_for(reply, CandidateRaised)
        raise CandidateRaised(f"unexpected reply status {reply.get('status')!r}")

    def _raise_for(self, reply: dict[str, Any], error: type[Exception]) -> None:
        message = f"{reply.get('message', 'no message')}{_origin(str(reply.get('traceback', '')))}"
        if reply.get("status") == "oom":
            self.contestant.kill()
            cap = self.contestant.limits.memory_mb
            raise ContestantDied("oom", f"an allocation failed at the {cap} MiB memory cap: {message}")
        raise error(message)


def _origin(traceback_text: str) -> str:
    """' (at file:line)' for the innermost frame of a contestant traceback, or ''."""
    frames = [line.strip() for line in traceback_text.splitlines() if line.strip().startswith('File "')]
    if not frames:
        return ""
    parts = frames[-1].split('"')
    line = frames[-1].split(", line ")[1].split(",")[0] if ", line " in frames[-1] else "?"
    return f" (at {parts[1]}:{line})" if len(parts) > 1 else ""


def source_message(source: ModuleSource) -> dict[str, Any]:
    return {
        "name": source.name,
        "kind": source.kind,
        "path": str(source.path) if source.path else None,
        "entry_point": source.entry_point,
        "distribution": source.distribution,
    }


