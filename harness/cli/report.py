"""`harness report` and what `harness run` publishes: the leaderboard built from the store, as a static site or
as Markdown, CSV or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.store import DocumentRejected, StoreError, default_store, ingest

# harness.reports (pandas, scipy) and its site (matplotlib, jinja2) are imported when a board is built, not for
# every `harness` command.

FORMATS = ("site", "markdown", "csv", "json")
SUFFIX = {"markdown": "md", "csv": "csv", "json": "json"}


class ReportError(Exception):
    """The report cannot be made as asked; the message says why and what to do."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], store_option: str) -> None:
    report = sub.add_parser("report", help="render the leaderboard from the store: a static site, or an export")
    report.add_argument("--store", type=Path, default=None, help=store_option)
    report.add_argument(
        "--format",
        choices=FORMATS,
        default="site",
        help="site (needs --out DIR), or markdown / csv / json (to --out DIR, else to stdout)",
    )
    report.add_argument("--out", type=Path, default=None, help="where to write the site or the export")


def cmd_report(args: argparse.Namespace) -> int:
    from harness.reports import build_leaderboard, to_csv, to_json, to_markdown
    from harness.reports.site import render_site

    store = args.store or default_store()
    if args.format == "site" and args.out is None:
        raise ReportError("--format site needs --out DIR (the folder the site is written to).")
    try:
        board = build_leaderboard(store)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    if args.format == "site":
        pages = render_site(board, args.out)
        print(f"site: {args.out / 'index.html'} ({len(pages)} files, {len(board.boards)} boards)")
        return 0
    text = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[args.format](board)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"leaderboard.{SUFFIX[args.format]}"
    path.write_text(text)
    print(f"{args.format}: {path}")
    return 0


def publish(results_json: Path, store: Path, out: Path) -> None:
    """After `harness run --out OUT`: the run into the store, then OUT/site/ and OUT/leaderboard.md from it."""
    from harness.reports import build_leaderboard, to_markdown
    from harness.reports.site import render_site

    try:
        (done,) = ingest([results_json], store)
        board = build_leaderboard(store)
    except (DocumentRejected, StoreError) as exc:
        print(f"harness: the run's results were not published: {exc}", file=sys.stderr)
        return
    pages = render_site(board, out / "site")
    (out / "leaderboard.md").write_text(to_markdown(board))
    print(f"store: {store} (run {done.run_id})")
    print(f"leaderboard: {out / 'site' / 'index.html'} ({len(pages)} files), {out / 'leaderboard.md'}")
