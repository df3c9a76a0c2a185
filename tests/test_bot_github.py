"""`harness pr` against GitHub over real HTTP: PyGithub talks to the local server of tests/github_server.py, which
keeps the repository's state and answers with the recorded exchanges of the shared GitHub fixtures (API_DIR in
tests/github_recordings.py). One comment (created, then edited, never two; a human's never touched), labels (created
once, human ones kept, stale bot ones removed), errors with a message naming the action, retries where GitHub asks
for them, and opt-in auto-merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bot.event import BotEvent
from harness.bot.github import CUT_NOTICE, Settings, apply_plan, fit_body
from harness.bot.plan import COMMENT_LIMIT, MARKER, BotPlan, Status, StatusState, bot_owned
from tests.bot_cli import (
    BACKOFF,
    OPENED,
    PR_HEAD,
    PR_REPO,
    RETRIES,
    SECONDARY_WAIT,
    BotRun,
    github,
    make_bot,
)
from tests.github_recordings import FIXTURES, SKIP_REASON
from tests.github_server import BOT_LOGIN, BOT_TOKEN, GitHubServer

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=SKIP_REASON)

ISSUE = f"/repos/{PR_REPO}/issues/2"
HUMAN_BODY = f"{MARKER}\nI copied the bot's marker into my own comment."


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> BotRun:
    return make_bot(tmp_path, monkeypatch, capsys)


def open_pull(server: GitHubServer, labels: list[str] | None = None) -> None:
    """Pull request #2 of the recorded payloads, open at its head, with a human's label and marker-bearing comment."""
    server.add_pull(2, PR_HEAD, labels=labels or ["bug"])
    server.add_comment(2, HUMAN_BODY, "octocat")


def test_first_run_creates_the_comment_and_the_second_edits_it(bot: BotRun) -> None:
    with github(PR_REPO) as server:
        open_pull(server)
        for i in range(105):  # the bot's comment lands on the second page of 100
            server.add_comment(2, f"comment {i}", "someone")
        first = bot(server, OPENED)
        assert first.code == 0, first.err
        (mine,) = server.bot_comments(2)
        second = bot(server, OPENED)
    assert second.code == 0, second.err
    assert server.bot_comments(2) == [mine]
    assert mine.body == bot.plan(OPENED).body
    assert len(server.seen("POST", f"{ISSUE}/comments")) == 1
    assert [r.path for r in server.seen("PATCH")] == [f"/repos/{PR_REPO}/issues/comments/{mine.id}"]
    assert any(r.query.get("page") == "2" for r in server.seen("GET", f"{ISSUE}/comments"))
    human = server.comments[2][0]
    assert (human.login, human.body) == ("octocat", HUMAN_BODY)
    assert f"created comment {mine.id}" in first.out and f"edited comment {mine.id}" in second.out


def test_labels_created_once_human_label_kept_stale_removed(bot: BotRun) -> None:
    plan = bot.plan(OPENED)
    wanted = {spec.name: spec for spec in plan.labels}
    assert "kind/norm" in wanted and "gates/failed" not in wanted
    with github(PR_REPO) as server:
        open_pull(server, labels=["bug", "gates/failed", "needs-gpu-run"])
        server.add_label("kind/norm", "000000", "made by a maintainer")
        assert bot(server, OPENED).code == 0
        first_run = len(server.requests)
        assert bot(server, OPENED).code == 0
    created = [r.body["name"] for r in server.seen("POST", f"/repos/{PR_REPO}/labels")]
    assert sorted(created) == sorted(set(wanted) - {"kind/norm"})
    for name in created:
        label = server.labels[name.casefold()]
        assert (label.color, label.description, label.implicit) == (wanted[name].color, wanted[name].description, False)
    assert (server.labels["kind/norm"].color, server.labels["kind/norm"].description) == (
        "000000",
        "made by a maintainer",
    )
    removed = sorted(r.path.rsplit("/labels/", 1)[1] for r in server.seen("DELETE"))
    assert removed == ["gates/failed", "needs-gpu-run"]
    assert set(server.pulls[2].labels) == {"bug", *wanted}
    second_run = server.requests[first_run:]
    assert [r.method for r in second_run if r.method != "GET" and "/statuses/" not in r.path] == ["PATCH"]
    assert not [r for r in second_run if r.path == f"/repos/{PR_REPO}/labels"]


@pytest.mark.parametrize(
    ("kind", "method", "path", "times", "sent", "message", "advice"),
    [
        (
            "forbidden",
            "POST",
            f"{ISSUE}/comments",
            1,
            1,
            f"creating the bot's comment on {PR_REPO}#2 failed: GitHub answered 403 "
            "(Resource not accessible by integration)",
            "pull-requests: write",
        ),
        (
            "not_found",
            "GET",
            f"/repos/{PR_REPO}/pulls/2",
            1,
            1,
            f"reading pull request {PR_REPO}#2 failed: GitHub answered 404 (Not Found)",
            "wrong repository, pull request or commit",
        ),
        (
            "invalid",
            "POST",
            f"/repos/{PR_REPO}/labels",
            1,
            1,
            f"in {PR_REPO} failed: GitHub answered 422 (Validation Failed: key is invalid.",
            "a bug in the bot's request",
        ),
        (
            "server_error",
            "POST",
            f"/repos/{PR_REPO}/statuses/{PR_HEAD}",
            99,
            1 + RETRIES,
            f"setting commit status module-harness/gates=success on {PR_REPO}@{PR_HEAD[:12]} failed: GitHub "
            "answered 500 (Server Error)",
            f"GitHub failed through {RETRIES} retries with backoff",
        ),
        (
            "secondary_rate_limit",
            "POST",
            f"{ISSUE}/comments",
            99,
            1 + RETRIES,
            f"creating the bot's comment on {PR_REPO}#2 failed: GitHub answered 403 (You have triggered an abuse "
            "detection mechanism.",
            f"GitHub's rate limit held through {RETRIES} retries",
        ),
    ],
)
def test_github_errors_exit_non_zero_naming_the_action(
    bot: BotRun, kind: str, method: str, path: str, times: int, sent: int, message: str, advice: str
) -> None:
    with github(PR_REPO) as server:
        open_pull(server)
        server.fail(method, path, kind, times)
        outcome = bot(server, OPENED)
    assert outcome.code == 1
    assert message in outcome.err and advice in outcome.err
    assert len(server.seen(method, path)) == sent
    # Status, comment, labels, in this order: a failure stops the bot where it happened.
    assert len(server.bot_comments(2)) == (1 if path.endswith("/labels") else 0)


def test_rejected_token(bot: BotRun) -> None:
    with github(PR_REPO) as server:
        open_pull(server)
        outcome = bot(server, OPENED, token="expired")
    assert outcome.code == 1
    assert f"reading repository {PR_REPO} failed: GitHub answered 401 (Bad credentials)" in outcome.err
    assert "The token was rejected" in outcome.err
    assert [r.method for r in server.requests] == ["GET"]


@pytest.mark.parametrize(
    ("kind", "status", "method", "path", "times", "waits"),
    [
        ("secondary_rate_limit", 403, "POST", f"{ISSUE}/comments", 1, [60.0]),  # the recorded Retry-After
        ("secondary_rate_limit_no_retry_after", 403, "POST", f"{ISSUE}/comments", 1, [SECONDARY_WAIT]),
        ("bad_gateway", 502, "GET", f"/repos/{PR_REPO}/pulls/2", 2, [0.0, BACKOFF * 2]),
        ("server_error", 500, "GET", f"{ISSUE}/labels", 1, [0.0]),
    ],
)
def test_retried_with_backoff_then_done(
    bot: BotRun, kind: str, status: int, method: str, path: str, times: int, waits: list[float]
) -> None:
    with github(PR_REPO) as server:
        open_pull(server)
        server.fail(method, path, kind, times)
        outcome = bot(server, OPENED)
    assert outcome.code == 0, outcome.err
    # A GET here is also made once before rendering, when the bot reads the pull request's labels (approval).
    assert len(server.seen(method, path)) == times + 1 + (method == "GET")
    assert bot.waits == waits
    assert f"harness pr: GitHub answered {status}; retrying in {waits[0]:g} s ({RETRIES - 1} retries left)" in (
        outcome.out
    )
    assert len(server.bot_comments(2)) == 1


def test_over_long_body_is_cut_to_githubs_limit(bot: BotRun) -> None:
    body = MARKER + "\n" + "| a | row of a very long table |\n" * 3000
    plan = BotPlan(body=body, labels=(), status=Status(StatusState.FAILURE, "3 modules failed"))
    event = BotEvent("pull_request", OPENED, PR_REPO, PR_HEAD, 2, "master", False, None)
    with github(PR_REPO) as server:
        open_pull(server)
        apply_plan(plan, event, Settings(BOT_TOKEN, server.url), log=lambda line: None)
    (sent,) = [r.body["body"] for r in server.seen("POST", f"{ISSUE}/comments")]
    assert len(body) > COMMENT_LIMIT >= len(sent)
    assert sent.startswith(MARKER) and sent.endswith(CUT_NOTICE)
    assert body.startswith(sent.removesuffix(CUT_NOTICE)) and sent.removesuffix(CUT_NOTICE).endswith("long table |")
    assert server.bot_comments(2)[0].body == sent
    assert fit_body(MARKER + "x" * (COMMENT_LIMIT - len(MARKER))) == MARKER + "x" * (COMMENT_LIMIT - len(MARKER))


def test_comment_found_only_by_marker_and_own_login(bot: BotRun) -> None:
    """Another bot's comment with the marker, and the bot's own comment without it, are both left alone."""
    with github(PR_REPO) as server:
        open_pull(server)
        other = server.add_comment(2, f"{MARKER}\nanother bot", "other-bot[bot]")
        plain = server.add_comment(2, "a note from the bot without the marker", BOT_LOGIN)
        assert bot(server, OPENED, "--bot-login", BOT_LOGIN).code == 0
    assert [r.path for r in server.seen("PATCH")] == []
    assert (other.body, plain.body) == (f"{MARKER}\nanother bot", "a note from the bot without the marker")
    assert [c.body.startswith(MARKER) for c in server.bot_comments(2)] == [False, True]


@pytest.mark.parametrize(
    ("flag", "env", "reviews", "enabled", "said"),
    [
        (True, {}, [("maintainer", "APPROVED", "MEMBER")], True, "auto-merge enabled (SQUASH, approved by maintainer"),
        (False, {"HARNESS_AUTO_MERGE": "1"}, [("boss", "APPROVED", "OWNER")], True, "approved by boss"),
        (True, {}, [("drive-by", "APPROVED", "CONTRIBUTOR")], False, "waiting for a maintainer's approval"),
        (
            True,
            {},
            [("maintainer", "APPROVED", "MEMBER"), ("reviewer", "CHANGES_REQUESTED", "COLLABORATOR")],
            False,
            "waiting for a maintainer's approval",
        ),
        (False, {}, [("maintainer", "APPROVED", "MEMBER")], False, "auto-merge off (opt in with --auto-merge"),
    ],
)
def test_auto_merge_only_when_opted_in_and_approved(
    bot: BotRun, flag: bool, env: dict[str, str], reviews: list[tuple[str, str, str]], enabled: bool, said: str
) -> None:
    with github(PR_REPO) as server:
        open_pull(server)
        server.pulls[2].reviews.extend(reviews)
        outcome = bot(server, OPENED, *(["--auto-merge"] if flag else []), **env)
    assert outcome.code == 0, outcome.err
    assert said in outcome.out
    expected = [{"pullRequestId": "PR_node_2", "mergeMethod": "SQUASH", "expectedHeadOid": PR_HEAD}]
    assert [call["variables"]["input"] for call in server.graphql] == (expected if enabled else [])
    assert bool(server.seen("GET", "/reviews")) == (flag or bool(env))
    assert all(bot_owned(name) or name == "bug" for name in server.pulls[2].labels)
