"""Carries out a `BotPlan` on GitHub through PyGithub: the commit status, the bot's one comment (found by MARKER and
the bot's own login, edited in place), the bot's labels (created once, stale ones removed, every other label left
alone) and, when opted in, auto-merge. A merge_group event gets the status only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from github import GithubException
from github.Commit import Commit
from github.PullRequest import PullRequest
from github.Repository import Repository

from harness.bot import client
from harness.bot.client import BotError, Caller, Pacing, connect
from harness.bot.event import BotEvent
from harness.bot.plan import (
    COMMENT_LIMIT,
    DEFAULT_API_URL,
    DEFAULT_BOT_LOGIN,
    MARKER,
    STATUS_DESCRIPTION_LIMIT,
    BotPlan,
    LabelSpec,
    Status,
    bot_owned,
)

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_BOT_LOGIN",
    "Applied",
    "BotError",
    "Settings",
    "apply_plan",
    "fit_body",
    "pull_labels",
]

MAINTAINERS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
CUT_NOTICE = "\n\n*(The rest of this comment was cut: GitHub takes at most 65,536 characters.)*\n"


@dataclass(frozen=True)
class Settings:
    """Where and as whom the bot speaks; `pacing` None means the module's PACING (tests replace it)."""

    token: str
    api_url: str = DEFAULT_API_URL
    bot_login: str = DEFAULT_BOT_LOGIN  # only a comment by this login is ever edited
    auto_merge: bool = False  # the opt-in setting: enable auto-merge when eligible and a maintainer approved
    pacing: Pacing | None = None


@dataclass
class Applied:
    """What the bot did, for the closing line of `harness pr`."""

    pull: str | None = None  # owner/name#N
    comment_id: int | None = None
    comment_created: bool = False
    labels_created: list[str] = field(default_factory=list)
    labels_added: list[str] = field(default_factory=list)
    labels_removed: list[str] = field(default_factory=list)
    auto_merge: str = "off"


def fit_body(body: str) -> str:
    """The body cut at a line end to fit COMMENT_LIMIT, with a closing note, so GitHub never refuses it."""
    if len(body) <= COMMENT_LIMIT:
        return body
    keep = COMMENT_LIMIT - len(CUT_NOTICE)
    cut = body.rfind("\n", len(MARKER), keep)
    return body[: cut if cut > 0 else keep] + CUT_NOTICE


def apply_plan(plan: BotPlan, event: BotEvent, settings: Settings, log: Callable[[str], None] = print) -> Applied:
    """Send the plan for the event's commit and pull request; raises BotError when GitHub refuses for good."""
    call, repo, commit = _open(event, settings, log)
    name = event.repository
    _set_status(call, commit, plan.status, f"{name}@{event.head_sha[:12]}")
    applied = Applied()
    if event.is_merge_group:
        log("harness pr: merge_group event: the commit status only (no pull request to comment on)")
        return applied
    pull = _find_pull(call, repo, commit, event)
    where = f"{name}#{pull.number}"
    applied.pull = where
    if pull.head.sha != event.head_sha:
        log(f"harness pr: note: {where} has moved on to {pull.head.sha}; this report is for {event.head_sha}")
    _upsert_comment(call, pull, plan.body, settings.bot_login, where, applied)
    _sync_labels(call, repo, pull, plan.labels, where, applied, log)
    applied.auto_merge = _auto_merge(call, repo, pull, plan, settings, event)
    log(f"harness pr: auto-merge: {applied.auto_merge}")
    return applied


def pull_labels(event: BotEvent, settings: Settings, log: Callable[[str], None] = print) -> frozenset[str]:
    """The pull request's labels as they are now (for a maintainer's approval); none for a merge_group event."""
    if event.is_merge_group:
        return frozenset()
    call, repo, commit = _open(event, settings, log)
    pull = _find_pull(call, repo, commit, event)
    where = f"{event.repository}#{pull.number}"
    return call(f"reading the labels of {where}", lambda: frozenset(label.name for label in pull.get_labels()))


def _open(event: BotEvent, settings: Settings, log: Callable[[str], None]) -> tuple[Caller, Repository, Commit]:
    """A retrying caller, the event's repository and its head commit, read through the API."""
    pacing = settings.pacing or client.PACING
    call = Caller(log, pacing.retries)
    gh = connect(settings.token, settings.api_url, pacing, log)
    name = event.repository
    repo = call(f"reading repository {name}", lambda: gh.get_repo(name))
    commit = call(f"reading commit {name}@{event.head_sha}", lambda: repo.get_commit(event.head_sha))
    return call, repo, commit


def _set_status(call: Caller, commit: Commit, status: Status, where: str) -> None:
    """The plan's commit status on the head commit, its description one line within GitHub's limit."""
    description = " ".join(status.description.split())[:STATUS_DESCRIPTION_LIMIT]
    call(
        f"setting commit status {status.context}={status.state} on {where}",
        lambda: commit.create_status(
            state=str(status.state),
            description=description,
            context=status.context,
            **({"target_url": status.target_url} if status.target_url else {}),
        ),
    )


def _find_pull(call: Caller, repo: Repository, commit: Commit, event: BotEvent) -> PullRequest:
    """The event's pull request, or the one open pull request whose head is the event's commit (a fork's
    workflow_run names none); never a number from anywhere else."""
    if event.pr_number is not None:
        number = event.pr_number
        return call(f"reading pull request {event.repository}#{number}", lambda: repo.get_pull(number))
    sha = event.head_sha
    found = call(
        f"finding the open pull request of commit {event.repository}@{sha}",
        lambda: [p for p in commit.get_pulls() if _opened_from(p, sha, event.repository)],
    )
    if len(found) != 1:
        numbers = ", ".join(f"#{p.number}" for p in found) or "none"
        raise BotError(
            f"the {event.name} event in {event.path} names no usable pull request, and the open pull requests of "
            f"{event.repository} whose head is {sha} are: {numbers} (expected exactly one). The commit status is "
            "set; nothing was commented or labelled. "
            "Fix: run the bot for a commit that is the head of one open pull request (a re-run after a new push "
            "reports on the new head)."
        )
    return found[0]


def _opened_from(pull: PullRequest, sha: str, repository: str) -> bool:
    """An open pull request into `repository` whose head is `sha` (the endpoint also lists merged and foreign ones)."""
    return pull.state == "open" and pull.head.sha == sha and pull.base.repo.full_name.lower() == repository.lower()


def _upsert_comment(call: Caller, pull: PullRequest, body: str, login: str, where: str, applied: Applied) -> None:
    """Edit the bot's own comment (MARKER first, written by `login`), else create it; other comments are not touched."""
    text = fit_body(body)
    mine = call(
        f"looking for the bot's comment (by {login}) on {where}",
        lambda: next(
            (c for c in pull.get_issue_comments() if c.user.login == login and (c.body or "").startswith(MARKER)),
            None,
        ),
    )
    if mine is None:
        created = call(f"creating the bot's comment on {where}", lambda: pull.create_issue_comment(text))
        applied.comment_id, applied.comment_created = created.id, True
        return
    call(f"editing comment {mine.id} on {where}", lambda: mine.edit(text))
    applied.comment_id = mine.id


def _sync_labels(
    call: Caller,
    repo: Repository,
    pull: PullRequest,
    labels: tuple[LabelSpec, ...],
    where: str,
    applied: Applied,
    log: Callable[[str], None],
) -> None:
    """Add the plan's labels (creating missing ones in the repository once), remove the bot's stale ones."""
    for refused in (spec.name for spec in labels if not bot_owned(spec.name)):
        log(f"harness pr: not applying label {refused!r}: it is not one of the bot's own labels")
    wanted = {spec.name.casefold(): spec for spec in labels if bot_owned(spec.name)}
    present = call(
        f"reading the labels of {where}", lambda: {label.name.casefold(): label.name for label in pull.get_labels()}
    )
    to_add = [spec for key, spec in wanted.items() if key not in present]
    if to_add:
        _create_missing(call, repo, to_add, applied)
        names = [spec.name for spec in to_add]
        call(f"adding labels {', '.join(names)} to {where}", lambda: pull.add_to_labels(*names))
        applied.labels_added = names
    for stale in sorted(name for key, name in present.items() if bot_owned(name) and key not in wanted):
        call(f"removing stale label {stale} from {where}", partial(pull.remove_from_labels, stale))
        applied.labels_removed.append(stale)


def _create_missing(call: Caller, repo: Repository, specs: list[LabelSpec], applied: Applied) -> None:
    """Create, once, the labels the repository does not have yet, with the plan's color and description."""
    name = repo.full_name
    existing = call(f"listing the labels of {name}", lambda: {label.name.casefold() for label in repo.get_labels()})
    for spec in (s for s in specs if s.name.casefold() not in existing):
        call(f"creating label {spec.name} in {name}", partial(_create_label, repo, spec))
        applied.labels_created.append(spec.name)


def _create_label(repo: Repository, spec: LabelSpec) -> None:
    """Create a label; one created meanwhile by a concurrent run (422 already_exists) is as good."""
    try:
        repo.create_label(spec.name, spec.color, spec.description)
    except GithubException as exc:
        errors = exc.data.get("errors") if isinstance(exc.data, dict) else None
        if exc.status != 422 or not any(
            isinstance(e, dict) and e.get("code") == "already_exists" for e in errors or ()
        ):
            raise


def _auto_merge(
    call: Caller, repo: Repository, pull: PullRequest, plan: BotPlan, settings: Settings, event: BotEvent
) -> str:
    """Enable auto-merge (the merge queue takes it from there) only when opted in, eligible and approved."""
    if not settings.auto_merge:
        return "off (opt in with --auto-merge or HARNESS_AUTO_MERGE=1)"
    if not plan.auto_merge_eligible:
        return "not enabled: not every gate passed with authoritative results"
    where = f"{event.repository}#{pull.number}"
    approver = call(f"reading the reviews of {where}", lambda: _maintainer_approval(pull))
    if approver is None:
        return "not enabled: waiting for a maintainer's approval"
    method = _merge_method(repo)
    call(
        f"enabling auto-merge ({method}) on {where}",
        lambda: pull.enable_automerge(merge_method=method, expected_head_oid=event.head_sha),
    )
    return f"enabled ({method}, approved by {approver}, head {event.head_sha[:12]})"


def _maintainer_approval(pull: PullRequest) -> str | None:
    """The login of a maintainer whose latest verdict is APPROVED, when nobody's latest verdict requests changes."""
    latest: dict[str, tuple[str, str]] = {}
    for review in pull.get_reviews():
        if review.user is not None and review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[review.user.login] = (review.state, review.author_association)
    if any(state == "CHANGES_REQUESTED" for state, _ in latest.values()):
        return None
    return next((login for login, (s, assoc) in latest.items() if s == "APPROVED" and assoc in MAINTAINERS), None)


def _merge_method(repo: Repository) -> str:
    """The first merge method the repository allows, in GitHub's order."""
    allowed = {"MERGE": repo.allow_merge_commit, "SQUASH": repo.allow_squash_merge, "REBASE": repo.allow_rebase_merge}
    return next((method for method, ok in allowed.items() if ok), "MERGE")
