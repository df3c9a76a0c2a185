"""`harness pr`: the pull-request bot. Reads the GitHub event and a results directory, then sets the commit status,
writes the bot's one comment and its labels through GitHub's API, or with --dry-run writes the same into files (and,
inside Actions, the job summary and `::error` annotations)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from harness.bot.dry_run import STATUS, write_actions_outputs, write_dry_run
from harness.bot.event import BotEvent, EventError, load_event
from harness.bot.plan import DEFAULT_API_URL, DEFAULT_BOT_LOGIN, HARNESS_CHANGE_APPROVED, BotPlan, RenderContext

if TYPE_CHECKING:  # the GitHub client and the renderer are imported when the command runs, not for every `harness`
    from harness.bot.github import Applied

AUTO_MERGE_ENV = "HARNESS_AUTO_MERGE"
BOT_LOGIN_ENV = "HARNESS_BOT_LOGIN"


class PrUsageError(Exception):
    """`harness pr` was asked for something it cannot do as given; exit code 2."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pr = sub.add_parser(
        "pr", help="report results on a pull request: one comment, labels, a commit status (or --dry-run files)"
    )
    pr.add_argument(
        "--results",
        type=Path,
        required=True,
        metavar="DIR",
        help="results directory: results.json, optional changes.json and gpu/results.json",
    )
    pr.add_argument(
        "--dry-run", action="store_true", help="write comment.md, labels.json, status.json instead of calling GitHub"
    )
    pr.add_argument("--out", type=Path, default=None, metavar="DIR", help="where --dry-run writes (default: DIR/bot)")
    pr.add_argument(
        "--event", type=Path, default=None, metavar="PATH", help="event payload (default: $GITHUB_EVENT_PATH)"
    )
    pr.add_argument(
        "--bot-login",
        default=None,
        help=f"login the bot posts as; only its comment is edited (default: ${BOT_LOGIN_ENV} or {DEFAULT_BOT_LOGIN})",
    )
    pr.add_argument("--store", type=Path, default=None, help="results store, for 'would rank N of M' (optional)")
    pr.add_argument(
        "--auto-merge",
        action="store_true",
        help=f"enable auto-merge when every gate passed and a maintainer approved (default off; or {AUTO_MERGE_ENV}=1)",
    )


def cmd_pr(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """0 when the plan was sent or written (whatever the verdict: the status carries it), 1 when GitHub refused,
    2 when the command line, the event or the results cannot be used."""
    from harness.bot.github import BotError
    from harness.bot.render import ResultsUnusable

    try:
        return _run(args, os.environ if env is None else env)
    except (PrUsageError, EventError, ResultsUnusable) as exc:
        print(f"harness pr: error: {exc}", file=sys.stderr)
        return 2
    except BotError as exc:
        print(f"harness pr: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from harness.bot.github import Settings, apply_plan, pull_labels
    from harness.bot.render import plan_from_results

    if not args.results.is_dir():
        raise PrUsageError(
            f"--results {args.results} is not a directory. Fix: pass the directory `harness run --out DIR` wrote."
        )
    token = env.get("GITHUB_TOKEN", "")
    if not args.dry_run and not token:
        raise PrUsageError(
            "GITHUB_TOKEN is not set, so GitHub cannot be called. Fix: set it (in Actions: "
            "`env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`), or pass --dry-run to write the files instead."
        )
    event = load_event(_event_path(args, env), env)
    auto_merge = args.auto_merge or env.get(AUTO_MERGE_ENV) == "1"
    settings = Settings(
        token=token,
        api_url=_api_url(env),
        bot_login=args.bot_login or env.get(BOT_LOGIN_ENV) or DEFAULT_BOT_LOGIN,
        auto_merge=auto_merge,
    )
    # A maintainer's approval of a change to the harness is the pull request's label as it is now: read live
    # through the API, or from the payload in a dry run (a workflow_run payload carries none: not approved).
    labels = (event.labels or frozenset()) if args.dry_run else pull_labels(event, settings)
    context = RenderContext(
        head_sha=event.head_sha,
        run_url=event.run_url,
        repository=event.repository,
        store=str(args.store) if args.store else None,
        harness_change_approved=HARNESS_CHANGE_APPROVED in labels,
        auto_merge_setting=auto_merge,
    )
    plan = plan_from_results(args.results, context)
    for note in plan.notes:
        print(f"harness pr: note: {note}")
    if args.dry_run:
        _dry_run(plan, event, args.out or args.results / "bot", env)
        return 0
    print(_summary(apply_plan(plan, event, settings), plan, event))
    return 0


def _event_path(args: argparse.Namespace, env: Mapping[str, str]) -> Path:
    if args.event is not None:
        return Path(args.event)
    if not env.get("GITHUB_EVENT_PATH"):
        raise PrUsageError("no event to report on. Fix: pass --event PATH, or run inside Actions (GITHUB_EVENT_PATH).")
    return Path(env["GITHUB_EVENT_PATH"])


def _api_url(env: Mapping[str, str]) -> str:
    url = env.get("GITHUB_API_URL") or DEFAULT_API_URL
    if not url.startswith(("https://", "http://")):
        raise PrUsageError(f"GITHUB_API_URL should be an http(s) URL such as {DEFAULT_API_URL}, found {url!r}.")
    return url


def _dry_run(plan: BotPlan, event: BotEvent, out: Path, env: Mapping[str, str]) -> None:
    """The files the API path would send; a merge_group event keeps status.json only, as the API sends no more."""
    written = write_dry_run(plan, out)
    if event.is_merge_group:
        for path in [p for p in written if p.name != STATUS]:
            path.unlink()
        written = [p for p in written if p.name == STATUS]
    write_actions_outputs(plan, env)
    print(f"harness pr: dry run for {event.repository}@{event.head_sha[:12]}: {', '.join(str(p) for p in written)}")


def _summary(applied: Applied, plan: BotPlan, event: BotEvent) -> str:
    where = applied.pull or f"{event.repository}@{event.head_sha[:12]}"
    if applied.pull is None:
        return f"harness pr: {where}: status {plan.status.state}"
    comment = f"{'created' if applied.comment_created else 'edited'} comment {applied.comment_id}"
    added, removed = ", ".join(applied.labels_added) or "none", ", ".join(applied.labels_removed) or "none"
    labels = f"labels added: {added}, removed: {removed}"
    return f"harness pr: {where}: status {plan.status.state}; {comment}; {labels}; auto-merge {applied.auto_merge}"
