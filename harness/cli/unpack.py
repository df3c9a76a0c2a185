"""`harness unpack`: a results artifact downloaded from a pull request's run, checked and extracted for the bot
(harness/bot/artifact.py says what is allowed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.bot.artifact import ArtifactRejected, unpack

DEFAULT_MAX_MB = 64
DEFAULT_MAX_FILES = 2000


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "unpack", help="check and extract a downloaded results artifact (ZIP) into a new directory, for `harness pr`"
    )
    parser.add_argument("archive", type=Path, metavar="ARCHIVE", help="the artifact's ZIP file")
    parser.add_argument("--into", type=Path, required=True, metavar="DIR", help="new (or empty) directory to fill")
    parser.add_argument(
        "--max-mb",
        type=int,
        default=DEFAULT_MAX_MB,
        help=f"limit on the uncompressed size of the members, in all and each (default: {DEFAULT_MAX_MB})",
    )
    parser.add_argument(
        "--max-files", type=int, default=DEFAULT_MAX_FILES, help=f"limit on members (default: {DEFAULT_MAX_FILES})"
    )


def cmd_unpack(args: argparse.Namespace) -> int:
    """Exit 0 with the files listed, 1 when the archive is rejected (nothing written), 2 on bad limits."""
    if args.max_mb <= 0 or args.max_files <= 0:
        print("harness unpack: error: --max-mb and --max-files must be positive", file=sys.stderr)
        return 2
    try:
        files = unpack(args.archive, args.into, max_bytes=args.max_mb * 1024 * 1024, max_files=args.max_files)
    except ArtifactRejected as exc:
        print(f"harness unpack: rejected: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(path)
    print(f"unpacked {len(files)} files into {args.into}")
    return 0
