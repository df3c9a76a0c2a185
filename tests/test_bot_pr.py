"""`harness pr` end to end on the recorded webhook payloads: the pull request found from the head SHA when the event
names none usable (a fork's workflow_run), a clear failure when there is none, usage errors, and `--dry-run` files
that equal what the API path sends to the local GitHub (tests/github_server.py) for every payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.bot_cli import (
    MERGE_GROUP,
    OPENED,
    PR_HEAD,
    PR_REPO,
    QUEUE_HEAD,
    RUN_HEAD,
    RUN_REPO,
    WORKFLOW_RUN,
    BotRun,
    derived_event,
    github,
    make_bot,
)
from tests.github_recordings import EVENTS_DIR, FIXTURES, SKIP_REASON
from tests.github_server import GitHubServer

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=SKIP_REASON)

WITH_PULL_REQUEST = [
    "pull_request.opened.json",
    "pull_request.synchronize.json",
    "pull_request.labeled.json",
    "workflow_run.completed.with-pull-requests.json",
]


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> BotRun:
    return make_bot(tmp_path, monkeypatch, capsys)


def fork_run(payload: dict[str, Any]) -> None:
    """A workflow_run for a pull request from a fork: GitHub sends an empty pull_requests list."""
    payload["workflow_run"]["pull_requests"] = []
    payload["workflow_run"]["head_repository"]["full_name"] = "someone/octo-repo"


def test_fork_workflow_run_finds_the_pull_request_from_the_head_sha(bot: BotRun, tmp_path: Path) -> None:
    event = derived_event(tmp_path, WORKFLOW_RUN, fork_run)
    with github(RUN_REPO) as server:
        server.add_pull(7, RUN_HEAD, head_repo="someone/octo-repo")
        server.add_pull(8, RUN_HEAD, state="closed")
        server.add_pull(9, "0" * 40)
        outcome = bot(server, event)
    assert outcome.code == 0, outcome.err
    assert len(server.bot_comments(7)) == 1 and server.bot_comments(8) == server.bot_comments(9) == []
    assert server.seen("GET", f"/repos/{RUN_REPO}/commits/{RUN_HEAD}/pulls")
    assert not [r for r in server.requests if "/pulls/8" in r.path or "/issues/8" in r.path or "/9" in r.path]


def test_workflow_run_number_for_another_commit_is_not_trusted(bot: BotRun) -> None:
    """The recorded workflow_run lists #2, whose head is another commit: the bot asks GitHub instead."""
    with github(RUN_REPO) as server:
        server.add_pull(2, PR_HEAD)
        server.add_pull(11, RUN_HEAD)
        outcome = bot(server, WORKFLOW_RUN)
    assert outcome.code == 0, outcome.err
    assert len(server.bot_comments(11)) == 1
    assert server.bot_comments(2) == []
    assert not [r for r in server.requests if r.path.endswith(("/pulls/2", "/issues/2/comments"))]


def test_no_open_pull_request_for_the_head_sha(bot: BotRun, tmp_path: Path) -> None:
    event = derived_event(tmp_path, WORKFLOW_RUN, fork_run)
    with github(RUN_REPO) as server:
        server.add_pull(8, RUN_HEAD, state="closed")
        outcome = bot(server, event)
    assert outcome.code == 1
    assert f"the workflow_run event in {event} names no usable pull request" in outcome.err
    assert f"the open pull requests of {RUN_REPO} whose head is {RUN_HEAD} are: none (expected exactly one)" in (
        outcome.err
    )
    assert server.seen("POST", "/comments") == [] and server.seen("POST", "/labels") == []


def sent_to_github(server: GitHubServer, number: int) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """The comment body, the bot's labels (with color and description) and the status GitHub received."""
    (comment,) = server.bot_comments(number)
    labels = [server.labels[name.casefold()] for name in server.pulls[number].labels if name != "bug"]
    label_docs = [{"name": x.name, "color": x.color, "description": x.description} for x in labels]
    (status,) = server.statuses
    fields = {key: status.get(key) for key in ("state", "description", "context", "target_url")}
    return comment.body, sorted(label_docs, key=lambda label: label["name"]), fields


@pytest.mark.parametrize("name", WITH_PULL_REQUEST)
def test_dry_run_files_equal_what_the_api_sends(bot: BotRun, tmp_path: Path, name: str) -> None:
    event = EVENTS_DIR / name
    out = tmp_path / "dry"
    dry = bot(None, event, "--dry-run", "--out", str(out), token=None)
    assert dry.code == 0, dry.err
    assert sorted(p.name for p in out.iterdir()) == ["comment.md", "labels.json", "status.json"]
    repository, number, head = (RUN_REPO, 11, RUN_HEAD) if name.startswith("workflow_run") else (PR_REPO, 2, PR_HEAD)
    with github(repository) as server:
        server.add_pull(number, head, labels=["bug"])
        api = bot(server, event)
    assert api.code == 0, api.err
    body, labels, status = sent_to_github(server, number)
    assert (out / "comment.md").read_text(encoding="utf-8") == body
    assert json.loads((out / "labels.json").read_text()) == {"labels": labels}
    assert json.loads((out / "status.json").read_text()) == status
    assert status["target_url"] == (
        "https://github.com/octo-org/octo-repo/actions/runs/289782451"
        if name.startswith("workflow_run")
        else f"https://github.com/{PR_REPO}/actions/runs/4242"
    )


def test_merge_group_gets_the_status_only(bot: BotRun, tmp_path: Path) -> None:
    out = tmp_path / "dry"
    dry = bot(None, MERGE_GROUP, "--dry-run", "--out", str(out), token=None)
    assert dry.code == 0, dry.err
    assert [p.name for p in out.iterdir()] == ["status.json"]
    with github(RUN_REPO) as server:
        server.commits.add(QUEUE_HEAD)
        api = bot(server, MERGE_GROUP)
    assert api.code == 0, api.err
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", f"/repos/{RUN_REPO}"),
        ("GET", f"/repos/{RUN_REPO}/commits/{QUEUE_HEAD}"),
        ("POST", f"/repos/{RUN_REPO}/statuses/{QUEUE_HEAD}"),
    ]
    (status,) = server.statuses
    assert json.loads((out / "status.json").read_text()) == {
        k: status.get(k) for k in ("state", "description", "context", "target_url")
    }


def test_dry_run_in_actions_writes_the_job_summary(bot: BotRun, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    outcome = bot(None, OPENED, "--dry-run", token=None, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert outcome.code == 0, outcome.err
    assert summary.read_text(encoding="utf-8") == bot.plan(OPENED).summary_markdown.rstrip("\n") + "\n"
    assert (bot.results / "bot" / "comment.md").read_text(encoding="utf-8") == bot.plan(OPENED).body
    assert "::error" not in outcome.out  # every shipped module passed: nothing to point at


def test_usage_errors_exit_2(bot: BotRun, tmp_path: Path) -> None:
    with github(PR_REPO) as server:
        server.add_pull(2, PR_HEAD)
        no_token = bot(server, OPENED, token=None)
        broken = derived_event(tmp_path, OPENED, lambda p: p["pull_request"]["head"].update(sha="HEAD"))
        bad_event = bot(server, broken)
        no_results = bot(server, OPENED, "--results", str(tmp_path / "nowhere"))
        bad_url = bot(server, OPENED, GITHUB_API_URL="ftp://example")
    assert (no_token.code, bad_event.code, no_results.code, bad_url.code) == (2, 2, 2, 2)
    assert "GITHUB_TOKEN is not set" in no_token.err and "--dry-run" in no_token.err
    assert f"event file {broken}: field `pull_request.head.sha` should be a commit SHA" in bad_event.err
    assert "nowhere is not a directory" in no_results.err
    assert "GITHUB_API_URL should be an http(s) URL" in bad_url.err
    assert server.requests == []


HARNESS_CHANGE = {
    "base": "main",
    "head": PR_HEAD,
    "merge_base": "0" * 40,
    "added": [],
    "modified": [{"name": "gelu_exact", "kind": "activation", "path": "modules/activation/gelu_exact.py"}],
    "removed": [],
    "support": [],
    "harness_changed": True,
    "harness": ["harness/gates/base.py"],
    "judge": ["gelu_exact"],
}


@pytest.mark.parametrize("approved", [False, True])
def test_a_maintainers_approval_of_a_harness_change_is_read_live_from_the_pull_request(
    bot: BotRun, approved: bool
) -> None:
    """The `harness-change-approved` label counts as it is on GitHub now, not as the event or an artifact says."""
    (bot.results / "changes.json").write_text(json.dumps(HARNESS_CHANGE))
    with github(PR_REPO) as server:
        server.add_pull(2, PR_HEAD, labels=["harness-change-approved"] if approved else [])
        outcome = bot(server, OPENED)  # the recorded payload's labels do not include the approval
    assert outcome.code == 0, outcome.err
    (comment,) = server.bot_comments(2)
    (status,) = [r.body for r in server.seen("POST", "/statuses/")]
    assert ("not authoritative" in comment.body.lower()) is not approved
    assert "harness-change" in server.pulls[2].labels
    assert "harness-change-approved" in server.pulls[2].labels or not approved  # a maintainer's label stays
    assert (status["state"] == "pending") is not approved
