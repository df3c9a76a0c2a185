"""How a request can fail, as the judge sees it: the module raised, or the contestant is gone."""

from __future__ import annotations

from harness.results.records import Verdict


class CandidateRaised(Exception):
    """The module raised an exception while handling one request; the case fails, the gate goes on."""


class ContestantDied(Exception):
    """The contestant process hung, crashed, ran out of memory or broke the protocol; the module stops."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(f"{verdict}: {reason}")
        self.verdict = verdict  # timeout | crash | oom | error
        self.reason = reason
