"""The base branch's version of each module, from a temporary git worktree at the merge-base.

The regression gate times a module's head version against its base version in the same run. The base is the
merge-base of the base ref and HEAD (what the pull request started from), checked out read-only into a
temporary directory that is removed when the run ends.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.core.contract import ModuleSource
from harness.registry.sources import module_sources


class BaseBranchError(RuntimeError):
    """The base ref cannot be resolved or checked out; the message says what to do."""


def git(repo: Path, *args: str) -> str:
    """The stripped output of `git -C repo ARGS`; BaseBranchError naming the command when it fails."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BaseBranchError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def base_sources(ref: str, modules_dir: Path) -> tuple[str, dict[str, ModuleSource]]:
    """(merge-base commit, modules there by name) for `ref`, the modules read from a temporary worktree."""
    modules_dir = modules_dir.resolve()
    repo = Path(git(modules_dir, "rev-parse", "--show-toplevel"))
    try:
        commit = git(repo, "merge-base", ref, "HEAD")
    except BaseBranchError as exc:
        raise BaseBranchError(
            f"{exc}. Fix: fetch the base branch (git fetch origin main) or pass an existing ref to --base."
        ) from None
    where = Path(tempfile.mkdtemp(prefix="harness-base-"))
    git(repo, "worktree", "add", "--detach", str(where / "tree"), commit)
    atexit.register(_remove, repo, where)
    base_modules = where / "tree" / modules_dir.relative_to(repo)
    if not base_modules.is_dir():
        return commit, {}
    return commit, {s.name: s for s in module_sources(base_modules, entry_points=False)}


def _remove(repo: Path, where: Path) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "remove", "--force", str(where / "tree")], capture_output=True, check=False
    )
    shutil.rmtree(where, ignore_errors=True)
