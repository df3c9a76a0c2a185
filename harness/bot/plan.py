"""What the bot wants a pull request to show, independent of how it is shown: `BotPlan` is made from the results
by harness/bot/render.py and carried out by harness/bot/github.py (the API) or harness/bot/dry_run.py (files).
The dry run and the API send the same plan, so what `--dry-run` writes is what GitHub would receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MARKER = "<!-- module-harness-bot: verdict comment, updated in place -->"
"""Hidden first line of the bot's one comment; with the bot's own login it finds the comment to edit."""

COMMENT_LIMIT = 65_536
"""GitHub rejects an issue comment body longer than this many characters."""

STATUS_CONTEXT = "module-harness/gates"
STATUS_DESCRIPTION_LIMIT = 140
"""GitHub cuts a commit status description to 140 characters; the bot never sends a longer one."""


class StatusState(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"
    ERROR = "error"


@dataclass(frozen=True)
class LabelSpec:
    name: str
    color: str  # six hex digits, no '#'
    description: str  # at most 100 characters (GitHub's limit)


# Every label the bot may apply. A label outside these namespaces (or not listed) is never added or removed.
LABEL_NAMESPACES: tuple[str, ...] = ("kind/", "gates/", "perf/")
LABEL_NAMES_OUTSIDE_NAMESPACES: tuple[str, ...] = ("new-module", "module-update", "harness-change", "needs-gpu-run")
DEFAULT_API_URL = "https://api.github.com"  # GitHub's REST API; GITHUB_API_URL overrides it (Enterprise)
DEFAULT_BOT_LOGIN = "github-actions[bot]"  # the login the bot posts as unless told otherwise
HARNESS_CHANGE_APPROVED = "harness-change-approved"
"""A maintainer's label (never the bot's): the pull request changes the harness and its results count. Read live
from the pull request, never from an artifact."""


@dataclass(frozen=True)
class Status:
    state: StatusState
    description: str  # one line, at most STATUS_DESCRIPTION_LIMIT characters
    context: str = STATUS_CONTEXT
    target_url: str | None = None  # the run's page

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "description": self.description,
            "context": self.context,
            "target_url": self.target_url,
        }


@dataclass(frozen=True)
class Annotation:
    """An `::error file=...,title=...::message` line for the Actions log, pointing at a failing module file."""

    path: str  # repository-relative path of the module file
    title: str
    message: str


@dataclass(frozen=True)
class BotPlan:
    body: str  # the full comment body, starting with MARKER, at most COMMENT_LIMIT characters
    labels: tuple[LabelSpec, ...]  # bot-owned labels the pull request should carry; every other bot label goes
    status: Status
    annotations: tuple[Annotation, ...] = ()
    summary_markdown: str = ""  # the job summary (GITHUB_STEP_SUMMARY) in a dry run inside Actions
    auto_merge_eligible: bool = False  # every gate passed and authoritative; the bot still needs approval + setting
    truncated: bool = False  # the body was cut to fit COMMENT_LIMIT (and says so)
    notes: tuple[str, ...] = field(default_factory=tuple)  # lines for the log, e.g. "results not authoritative"

    def label_names(self) -> list[str]:
        return sorted(label.name for label in self.labels)


def bot_owned(label: str) -> bool:
    """Labels the bot manages: it may add or remove these; every other label is a human's and left alone."""
    return label.startswith(LABEL_NAMESPACES) or label in LABEL_NAMES_OUTSIDE_NAMESPACES


@dataclass(frozen=True)
class RenderContext:
    """What the renderer knows besides the results directory; filled in by `harness pr` from the event."""

    head_sha: str
    run_url: str | None = None  # link to the workflow run that produced the results
    repository: str | None = None  # owner/name, for links to module files at head_sha
    store: str | None = None  # path of the results store, for "would rank N of M"; None or missing: no ranks
    harness_change_approved: bool = False  # a maintainer approved a pull request that changes the harness
    auto_merge_setting: bool = False  # the opt-in setting (off by default)
