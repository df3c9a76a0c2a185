"""Running `harness pr` as Actions would, against the local GitHub of tests/github_server.py: the environment
(GITHUB_EVENT_PATH, GITHUB_TOKEN, GITHUB_API_URL), a results directory made from the real shipped-modules results
document, and a pacing that records the waits instead of sleeping."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.bot import client
from harness.bot.client import Pacing
from harness.bot.event import load_event
from harness.bot.plan import BotPlan, RenderContext
from harness.bot.render import plan_from_results
from harness.cli.main import main
from tests.conftest import FIXTURES
from tests.github_recordings import EVENTS_DIR
from tests.github_server import BOT_TOKEN, GitHubServer

SHIPPED = FIXTURES / "results" / "shipped-modules.json"
PR_REPO = "Codertocat/Hello-World"  # the recorded pull_request payloads' repository
RUN_REPO = "octo-org/octo-repo"  # the recorded workflow_run and merge_group payloads' repository
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
RUN_HEAD = "3484a3fb816e0859fd6e1cea078d76385ff50625"
QUEUE_HEAD = "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"
OPENED = EVENTS_DIR / "pull_request.opened.json"
WORKFLOW_RUN = EVENTS_DIR / "workflow_run.completed.with-pull-requests.json"
MERGE_GROUP = EVENTS_DIR / "merge_group.checks_requested.json"
ACTIONS = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": PR_REPO, "GITHUB_RUN_ID": "4242"}
CLEARED = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_API_URL", "HARNESS_AUTO_MERGE", "HARNESS_BOT_LOGIN")
RETRIES = 3
SECONDARY_WAIT = 7.0  # the pacing's wait after a secondary rate limit without Retry-After
BACKOFF = 0.5


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class BotRun:
    """`harness pr` through the real CLI entry, with the environment Actions would give it."""

    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    results: Path
    waits: list[float]  # every wait the retries asked for, in seconds (nothing sleeps)

    def __call__(
        self, server: GitHubServer | None, event: Path, *args: str, token: str | None = BOT_TOKEN, **env: str
    ) -> Outcome:
        for name in CLEARED:
            self.monkeypatch.delenv(name, raising=False)
        settings = {**ACTIONS, "GITHUB_EVENT_PATH": str(event), "GITHUB_EVENT_NAME": event.name.split(".")[0]}
        settings.update({"GITHUB_API_URL": server.url} if server is not None else {}, **env)
        for name, value in settings.items():
            self.monkeypatch.setenv(name, value)
        if token is None:
            self.monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        else:
            self.monkeypatch.setenv("GITHUB_TOKEN", token)
        self.capsys.readouterr()
        code = main(["pr", "--results", str(self.results), *args])
        captured = self.capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    def plan(self, event: Path, auto_merge: bool = False) -> BotPlan:
        """The plan `harness pr` makes for `event` (same context as the CLI builds), for expected values."""
        found = load_event(event, {**ACTIONS, "GITHUB_EVENT_NAME": event.name.split(".")[0]})
        context = RenderContext(found.head_sha, found.run_url, found.repository, auto_merge_setting=auto_merge)
        return plan_from_results(self.results, context)


def make_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> BotRun:
    """A results directory in tmp_path and a pacing that records waits; the pieces of the `bot` fixture."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copyfile(SHIPPED, results / "results.json")
    waits: list[float] = []
    pacing = Pacing(
        retries=RETRIES,
        backoff_factor=BACKOFF,
        secondary_rate_wait=SECONDARY_WAIT,
        seconds_between_requests=0,
        seconds_between_writes=0,
        sleep=waits.append,
    )
    monkeypatch.setattr(client, "PACING", pacing)
    return BotRun(monkeypatch, capsys, results, waits)


@contextmanager
def github(repository: str) -> Iterator[GitHubServer]:
    """A running local GitHub for `repository`; on exit, the server must have answered every request it got."""
    server = GitHubServer(repository)
    with server.running():
        yield server
    assert server.errors == []


def derived_event(tmp_path: Path, source: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The recorded payload `source`, changed by `change`, written into tmp_path under the same name."""
    payload = json.loads(source.read_text())
    change(payload)
    path = tmp_path / "events" / source.name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(payload))
    return path
