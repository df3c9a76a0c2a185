"""The bot's reading of a GitHub event: the real webhook payloads of the shared GitHub fixtures (EVENTS_DIR in
tests/github_recordings.py; skipped without them) as GitHub sends them, and payloads derived from them (in tmp_path)
for a fork's workflow_run, a null body and broken fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.bot.event import BotEvent, EventError, load_event
from tests.github_recordings import EVENTS_DIR, FIXTURES, SKIP_REASON

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=SKIP_REASON)

PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
RUN_HEAD = "3484a3fb816e0859fd6e1cea078d76385ff50625"
QUEUE_HEAD = "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"
ACTIONS = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "77"}
ACTIONS_RUN = "https://github.com/o/r/actions/runs/77"


def derived(tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """The recorded payload `name`, changed by `change`, written into tmp_path."""
    payload = json.loads((EVENTS_DIR / name).read_text())
    change(payload)
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "pull_request.opened.json",
            ("pull_request", "Codertocat/Hello-World", PR_HEAD, 2, "master", False, ACTIONS_RUN),
        ),
        (
            "pull_request.synchronize.json",
            ("pull_request", "Codertocat/Hello-World", PR_HEAD, 2, "master", False, ACTIONS_RUN),
        ),
        (
            "pull_request.labeled.json",
            ("pull_request", "Codertocat/Hello-World", PR_HEAD, 2, "master", False, ACTIONS_RUN),
        ),
        # The recorded workflow_run lists pull request #2, but for another head commit: the number is not used.
        (
            "workflow_run.completed.with-pull-requests.json",
            (
                "workflow_run",
                "octo-org/octo-repo",
                RUN_HEAD,
                None,
                None,
                False,
                "https://github.com/octo-org/octo-repo/actions/runs/289782451",
            ),
        ),
        (
            "merge_group.checks_requested.json",
            ("merge_group", "octo-org/octo-repo", QUEUE_HEAD, None, "refs/heads/main", False, ACTIONS_RUN),
        ),
    ],
)
def test_recorded_payloads(name: str, expected: tuple[Any, ...]) -> None:
    event = load_event(EVENTS_DIR / name, ACTIONS)
    found = (
        event.name,
        event.repository,
        event.head_sha,
        event.pr_number,
        event.base_ref,
        event.head_is_fork,
        event.run_url,
    )
    assert found == expected
    assert event.is_merge_group == (name.startswith("merge_group"))


def test_workflow_run_number_used_only_for_its_own_head(tmp_path: Path) -> None:
    def same_head(payload: dict[str, Any]) -> None:
        payload["workflow_run"]["pull_requests"][0]["head"]["sha"] = RUN_HEAD

    event = load_event(derived(tmp_path, "workflow_run.completed.with-pull-requests.json", same_head), {})
    assert (event.pr_number, event.base_ref, event.head_sha) == (2, "master", RUN_HEAD)


def test_fork_workflow_run_has_no_number(tmp_path: Path) -> None:
    def fork(payload: dict[str, Any]) -> None:
        payload["workflow_run"]["pull_requests"] = []
        payload["workflow_run"]["head_repository"]["full_name"] = "someone/octo-repo"

    event = load_event(derived(tmp_path, "workflow_run.completed.with-pull-requests.json", fork), {})
    assert (event.pr_number, event.head_is_fork, event.head_sha) == (None, True, RUN_HEAD)


def test_null_body_and_deleted_fork(tmp_path: Path) -> None:
    def null_body(payload: dict[str, Any]) -> None:
        payload["pull_request"]["body"] = None
        payload["pull_request"]["head"]["repo"] = None

    event = load_event(derived(tmp_path, "pull_request.opened.json", null_body), {})
    expected = BotEvent("pull_request", event.path, "Codertocat/Hello-World", PR_HEAD, 2, "master", True, None)
    assert event == replace(expected, labels=frozenset({"bug"}))  # the payload's own labels


def test_event_name_from_environment(tmp_path: Path) -> None:
    event = load_event(EVENTS_DIR / "pull_request.opened.json", {"GITHUB_EVENT_NAME": "pull_request_target"})
    assert (event.name, event.pr_number) == ("pull_request_target", 2)
    with pytest.raises(EventError, match=r"expected one of pull_request, .*found event 'push'"):
        load_event(EVENTS_DIR / "pull_request.opened.json", {"GITHUB_EVENT_NAME": "push"})
    with pytest.raises(EventError, match=r"a merge_group event needs an object `merge_group`, found none"):
        load_event(EVENTS_DIR / "pull_request.opened.json", {"GITHUB_EVENT_NAME": "merge_group"})


def _set(keys: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        target = payload
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    ("keys", "value", "message"),
    [
        (("pull_request", "head", "sha"), "abc123", r"field `pull_request.head.sha` should be a commit SHA of 40 hex"),
        (("pull_request", "head", "sha"), None, r"`pull_request.head.sha` should be .*, found None"),
        (("pull_request", "number"), "2", r"field `pull_request.number` should be a positive integer, found '2'"),
        (("pull_request", "number"), 0, r"field `pull_request.number` should be a positive integer, found 0"),
        (("pull_request", "number"), True, r"field `pull_request.number` should be a positive integer, found True"),
        (("repository", "full_name"), "../etc", r"field `repository.full_name` should be owner/name, found '../etc'"),
        (("pull_request", "base", "ref"), 7, r"field `pull_request.base.ref` should be a string or null, found 7"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path: Path, keys: tuple[str, ...], value: Any, message: str) -> None:
    path = derived(tmp_path, "pull_request.opened.json", _set(keys, value))
    with pytest.raises(EventError, match=message) as caught:
        load_event(path, {})
    assert str(path) in str(caught.value)
    assert "Fix: " in str(caught.value)


def test_bad_workflow_run_number(tmp_path: Path) -> None:
    def bad(payload: dict[str, Any]) -> None:
        payload["workflow_run"]["pull_requests"][0].update(number=-3, head={"sha": RUN_HEAD})

    with pytest.raises(EventError, match=r"`workflow_run.pull_requests\[0\].number` should be a positive integer"):
        load_event(derived(tmp_path, "workflow_run.completed.with-pull-requests.json", bad), {})


def test_unreadable_event_files(tmp_path: Path) -> None:
    with pytest.raises(EventError, match=r"event file .*missing.json does not exist"):
        load_event(tmp_path / "missing.json", {})
    (tmp_path / "broken.json").write_text('{"pull_request": ')
    with pytest.raises(EventError, match=r"broken.json is not readable JSON"):
        load_event(tmp_path / "broken.json", {})
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(EventError, match=r"list.json: expected a JSON object, found list"):
        load_event(tmp_path / "list.json", {})
    (tmp_path / "push.json").write_text('{"ref": "refs/heads/main"}')
    with pytest.raises(EventError, match=r"push.json: expected one of .*found keys \['ref'\]"):
        load_event(tmp_path / "push.json", {})
