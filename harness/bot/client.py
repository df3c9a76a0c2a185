"""The bot's PyGithub client: retries with backoff where GitHub asks for them (secondary rate limits, 5xx), pacing
between requests, and GitHub's errors turned into messages that say what was being done and what to do."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import requests
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException
from urllib3 import BaseHTTPResponse
from urllib3.util.retry import Retry

USER_AGENT = "module-harness-bot"
PERMISSIONS = "`permissions: {pull-requests: write, issues: write, statuses: write}`"

T = TypeVar("T")


class BotError(Exception):
    """A GitHub request failed for good; the message names the action, GitHub's answer and what to do."""


@dataclass(frozen=True)
class Pacing:
    """How hard the bot presses GitHub. The defaults follow GitHub's REST guidance: writes a second apart, at least a
    minute's wait after a secondary rate limit without Retry-After, and Retry-After honoured when given."""

    retries: int = 4  # attempts after the first, for secondary rate limits, 429, 5xx and lost connections
    backoff_factor: float = 2.0  # seconds; the n-th consecutive retry waits factor * 2**(n-1) (the first: none)
    secondary_rate_wait: float = 60.0  # a secondary rate limit that gives no Retry-After
    max_rate_limit_wait: float = 900.0  # a primary rate limit resetting later than this fails instead of waiting
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)  # tests record the waits instead


PACING = Pacing()
"""The pacing `harness pr` uses; tests replace it with one that does not sleep."""


class PacedRetry(GithubRetry):
    """PyGithub's retry (which tells a retry-able 403 from a permission error), sleeping through `sleeper` and
    logging each wait as one line."""

    def __init__(
        self, sleeper: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print, **kwargs: Any
    ) -> None:
        self.sleeper = sleeper
        self.log = log
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> Self:
        kw.update(sleeper=self.sleeper, log=self.log)
        return super().new(**kw)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        after = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        wait = after if after is not None else self.get_backoff_time()
        answer = f"GitHub answered {response.status}" if response is not None else "the connection failed"
        self.log(f"harness pr: {answer}; retrying in {wait:g} s ({self.total} retries left)")
        self.sleeper(wait)


def connect(token: str, api_url: str, pacing: Pacing, log: Callable[[str], None] = print) -> Github:
    """A PyGithub client for `api_url` (GITHUB_API_URL; a local server in tests) with bounded retries."""
    retry = PacedRetry(
        sleeper=pacing.sleep,
        log=log,
        total=pacing.retries,
        backoff_factor=pacing.backoff_factor,
        secondary_rate_wait=pacing.secondary_rate_wait,
        max_rate_limit_wait=pacing.max_rate_limit_wait,
        status_forcelist=[429, *range(500, 600)],  # GithubRetry adds 403 and retries it only for rate limits
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"GET", "POST", "PATCH"},
        raise_on_status=False,  # the last answer reaches PyGithub, which raises a GithubException with its body
    )
    return Github(
        auth=Auth.Token(token),
        base_url=api_url.rstrip("/"),
        retry=retry,
        per_page=100,
        user_agent=USER_AGENT,
        seconds_between_requests=pacing.seconds_between_requests or None,
        seconds_between_writes=pacing.seconds_between_writes or None,
    )


@dataclass(frozen=True)
class Caller:
    """Runs one API action, logs it as one line, and turns a failure into a BotError naming the action."""

    log: Callable[[str], None]
    retries: int

    def __call__(self, action: str, request: Callable[[], T]) -> T:
        self.log(f"harness pr: {action}")
        try:
            return request()
        except GithubException as exc:
            raise BotError(explain(action, exc, self.retries)) from exc
        except requests.RequestException as exc:
            raise BotError(
                f"{action} failed: GitHub could not be reached ({type(exc).__name__}: {exc}). Fix: check "
                "GITHUB_API_URL and the network, then re-run the job."
            ) from exc


def explain(action: str, exc: GithubException, retries: int) -> str:
    """`<action> failed: GitHub answered <status> (<its message>). <what to do>`."""
    return f"{action} failed: GitHub answered {exc.status} ({github_message(exc)}). {_advice(exc, retries)}"


def github_message(exc: GithubException) -> str:
    """GitHub's own message with its validation details, cut to one readable line."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "no message")
    details = [
        str(e.get("message") or e.get("code")) if isinstance(e, dict) else str(e) for e in data.get("errors") or ()
    ]
    text = f"{message}: {'; '.join(details)}" if details else message
    return " ".join(text.split())[:300]


def _advice(exc: GithubException, retries: int) -> str:
    status = exc.status
    if status == 401:
        return "The token was rejected. Fix: pass a valid token in GITHUB_TOKEN (in Actions: secrets.GITHUB_TOKEN)."
    if isinstance(exc, RateLimitExceededException) or status == 429:
        return f"GitHub's rate limit held through {retries} retries with backoff. Fix: re-run the job later."
    if status == 403:
        return (
            f"The token may not do this. Fix: give the job {PERMISSIONS}; a pull_request workflow from a fork gets "
            "a read-only token, so run the bot from a workflow_run workflow."
        )
    if status == 404:
        return (
            "GitHub shows no such thing to this token (wrong repository, pull request or commit, or a private "
            "repository the token cannot read). Fix: check the event's repository and that the token can read it."
        )
    if status == 422:
        return (
            "GitHub refused the request's content. Fix: this is a bug in the bot's request (or a label or comment "
            "GitHub will not take); report it with this message."
        )
    if status >= 500:
        return f"GitHub failed through {retries} retries with backoff. Fix: re-run the job later."
    return "Fix: see GitHub's message."
