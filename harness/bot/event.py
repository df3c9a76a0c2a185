"""The GitHub event the bot runs for (`GITHUB_EVENT_PATH`), read as untrusted input: every field the bot uses is
checked for type and shape, and an error names the event file and the field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS = ("pull_request", "pull_request_target", "workflow_run", "merge_group")
SHA = re.compile(r"[0-9a-fA-F]{40}")
REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/(?!\.\.?$)[A-Za-z0-9_.-]+")  # GitHub's owner and name rules
FIX = "Fix: run `harness pr` in a pull_request, workflow_run or merge_group workflow, or pass --event PATH."


class EventError(ValueError):
    """The event file is missing, unreadable or not the shape GitHub sends; the message names the file and field."""


@dataclass(frozen=True)
class BotEvent:
    """What the bot takes from the event: where to report, for which commit, and for which pull request if known."""

    name: str  # one of EVENTS
    path: Path  # the event file, for messages
    repository: str  # owner/name of the repository the workflow runs in
    head_sha: str  # the commit the results are for
    pr_number: int | None  # None: find the pull request from head_sha through the API (or it has none)
    base_ref: str | None  # the branch the change goes into
    head_is_fork: bool  # the change comes from another repository (or one that no longer exists)
    run_url: str | None  # the workflow run's page
    labels: frozenset[str] | None = None  # the pull request's labels when the payload carries them (pull_request)

    @property
    def is_merge_group(self) -> bool:
        return self.name == "merge_group"


def load_event(path: Path, env: Mapping[str, str]) -> BotEvent:
    """Read and check the event file; `env` gives GITHUB_EVENT_NAME and the run URL parts."""
    payload = _read(path)
    name = _event_name(path, payload, env.get("GITHUB_EVENT_NAME"))
    fields = _Fields(path, payload)
    repository = fields.text(("repository", "full_name"), REPOSITORY, "owner/name")
    if name == "workflow_run":
        return _workflow_run(fields, path, repository)
    run_url = _run_url(env)
    if name == "merge_group":
        return BotEvent(
            name=name,
            path=path,
            repository=repository,
            head_sha=fields.sha(("merge_group", "head_sha")),
            pr_number=None,
            base_ref=fields.optional_text(("merge_group", "base_ref")),
            head_is_fork=False,
            run_url=run_url,
        )
    return BotEvent(
        name=name,
        path=path,
        repository=repository,
        head_sha=fields.sha(("pull_request", "head", "sha")),
        pr_number=fields.number(("pull_request", "number")),
        base_ref=fields.optional_text(("pull_request", "base", "ref")),
        head_is_fork=fields.optional_text(("pull_request", "head", "repo", "full_name")) != repository,
        run_url=run_url,
        labels=_labels(fields.get(("pull_request", "labels"))),
    )


def _labels(found: Any) -> frozenset[str] | None:
    """Label names from a payload's list of label objects; None when the payload carries no such list."""
    if not isinstance(found, list):
        return None
    return frozenset(item["name"] for item in found if isinstance(item, dict) and isinstance(item.get("name"), str))


def _workflow_run(fields: _Fields, path: Path, repository: str) -> BotEvent:
    """A workflow_run names a pull request only when its first entry is for the very commit that ran."""
    head_sha = fields.sha(("workflow_run", "head_sha"))
    pulls = fields.get(("workflow_run", "pull_requests"))
    if not isinstance(pulls, list):
        raise fields.error(("workflow_run", "pull_requests"), "a list", pulls)
    number: int | None = None
    base_ref: str | None = None
    if pulls and fields.optional_text(("workflow_run", "pull_requests", 0, "head", "sha")) == head_sha:
        number = fields.number(("workflow_run", "pull_requests", 0, "number"))
        base_ref = fields.optional_text(("workflow_run", "pull_requests", 0, "base", "ref"))
    head_repository = fields.optional_text(("workflow_run", "head_repository", "full_name"))
    return BotEvent(
        name="workflow_run",
        path=path,
        repository=repository,
        head_sha=head_sha,
        pr_number=number,
        base_ref=base_ref,
        head_is_fork=head_repository != repository,
        run_url=fields.optional_text(("workflow_run", "html_url")),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EventError(f"event file {path} does not exist. {FIX}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"event file {path} is not readable JSON ({exc}). {FIX}") from None
    if not isinstance(payload, dict):
        raise EventError(f"event file {path}: expected a JSON object, found {type(payload).__name__}. {FIX}")
    return payload


def _event_name(path: Path, payload: Mapping[str, Any], given: str | None) -> str:
    """GITHUB_EVENT_NAME when set, else the payload's shape; the payload must carry the event's own object."""
    name = given or next((n for n in EVENTS if n in payload and n != "pull_request_target"), None)
    if name not in EVENTS:
        found = f"event {given!r}" if given else f"keys {sorted(payload)[:8]}"
        raise EventError(f"event file {path}: expected one of {', '.join(EVENTS)}, found {found}. {FIX}")
    key = "pull_request" if name == "pull_request_target" else name
    if not isinstance(payload.get(key), dict):
        raise EventError(f"event file {path}: a {name} event needs an object `{key}`, found none. {FIX}")
    return name


def _run_url(env: Mapping[str, str]) -> str | None:
    server, repository, run = (env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repository}/actions/runs/{run}" if server and repository and run else None


@dataclass(frozen=True)
class _Fields:
    """Typed access to the payload's fields; a wrong type or shape raises an EventError naming the field."""

    path: Path
    payload: Mapping[str, Any]

    def get(self, keys: tuple[str | int, ...]) -> Any:
        value: Any = self.payload
        for key in keys:
            if isinstance(key, int):
                value = value[key] if isinstance(value, list) and len(value) > key else None
            else:
                value = value.get(key) if isinstance(value, dict) else None
        return value

    def error(self, keys: tuple[str | int, ...], expected: str, found: Any) -> EventError:
        field = ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in keys).replace(".[", "[")
        shown = repr(found) if len(repr(found)) <= 60 else repr(found)[:57] + "..."
        return EventError(f"event file {self.path}: field `{field}` should be {expected}, found {shown}. {FIX}")

    def text(self, keys: tuple[str | int, ...], pattern: re.Pattern[str], expected: str) -> str:
        value = self.get(keys)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.error(keys, expected, value)
        return value

    def optional_text(self, keys: tuple[str | int, ...]) -> str | None:
        value = self.get(keys)
        if value is not None and not isinstance(value, str):
            raise self.error(keys, "a string or null", value)
        return value

    def sha(self, keys: tuple[str | int, ...]) -> str:
        return self.text(keys, SHA, "a commit SHA of 40 hex characters").lower()

    def number(self, keys: tuple[str | int, ...]) -> int:
        value = self.get(keys)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.error(keys, "a positive integer", value)
        return value
