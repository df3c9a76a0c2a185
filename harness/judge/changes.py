"""`harness changed`: which modules a change adds, modifies or removes, and whether it touches the harness.

The change is what the head has that the merge-base of base and head does not (what a pull request
contributes), read from `git diff --name-status` between commits, never from the working tree. A change to
the harness itself (its code, a kind's contract, the benchmarks, pyproject.toml, the workflows) can move any
verdict, so then every module at the head is judged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness.judge.base_branch import BaseBranchError, git

# Paths (relative to the repository root) whose change can move any module's verdict.
HARNESS_PATHS = ("harness/", "benchmarks/", "pyproject.toml", ".github/")


@dataclass(frozen=True)
class ChangedModule:
    """One module file the change touches."""

    name: str
    kind: str
    path: str  # relative to the repository root, at the head (at the base for a removed module)

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "path": self.path}


@dataclass
class Changes:
    """What a change does to the modules, and whether it reaches the harness."""

    base: str
    head: str
    merge_base: str
    added: list[ChangedModule] = field(default_factory=list)
    modified: list[ChangedModule] = field(default_factory=list)
    removed: list[ChangedModule] = field(default_factory=list)
    support: list[str] = field(default_factory=list)  # other files under modules/ (e.g. a kind's shared helper)
    harness: list[str] = field(default_factory=list)  # changed paths under HARNESS_PATHS
    judge: list[str] = field(default_factory=list)  # module names to judge at the head

    @property
    def harness_changed(self) -> bool:
        return bool(self.harness)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "merge_base": self.merge_base,
            "added": [m.as_dict() for m in self.added],
            "modified": [m.as_dict() for m in self.modified],
            "removed": [m.as_dict() for m in self.removed],
            "support": self.support,
            "harness_changed": self.harness_changed,
            "harness": self.harness,
            "judge": self.judge,
        }


def _module(path: str, modules_dir: str) -> ChangedModule | None:
    """The module a path is, when it is `<modules_dir>/<kind>/<name>.py` and not a `_private.py` helper."""
    parts = PurePosixPath(path).parts
    prefix = PurePosixPath(modules_dir).parts
    if len(parts) != len(prefix) + 2 or parts[: len(prefix)] != prefix or not path.endswith(".py"):
        return None
    stem = PurePosixPath(path).stem
    return None if stem.startswith("_") else ChangedModule(stem, parts[-2], path)


def _entries(repo: Path, merge_base: str, head: str) -> list[tuple[str, list[str]]]:
    """(status letter, paths) per changed file; renames give (R, [old, new])."""
    out = git(repo, "diff", "--name-status", "-M", "--no-color", merge_base, head, "--")
    entries = []
    for line in out.splitlines():
        fields = line.split("\t")
        entries.append((fields[0][:1], fields[1:]))
    return entries


def _head_modules(repo: Path, head: str, modules_dir: str) -> list[ChangedModule]:
    listing = git(repo, "ls-tree", "-r", "--name-only", head, "--", modules_dir)
    return [m for m in (_module(p, modules_dir) for p in listing.splitlines()) if m is not None]


def changes(repo: Path, base: str, head: str = "HEAD", modules_dir: str = "modules") -> Changes:
    """The modules `head` adds, modifies and removes against its merge-base with `base`, and what to judge."""
    try:
        merge_base = git(repo, "merge-base", base, head)
    except BaseBranchError as exc:
        raise BaseBranchError(f"{exc}. Fix: fetch both refs (git fetch origin {base}) or pass existing refs.") from None
    result = Changes(base, head, merge_base)
    for status, paths in _entries(repo, merge_base, head):
        for path, what in _classified(status, paths):
            module = _module(path, modules_dir)
            if module is not None:
                {"added": result.added, "modified": result.modified, "removed": result.removed}[what].append(module)
            elif path.startswith(f"{modules_dir}/"):
                result.support.append(path)
            elif path.startswith(HARNESS_PATHS):
                result.harness.append(path)
    at_head = _head_modules(repo, head, modules_dir)
    if result.harness:
        result.judge = sorted(m.name for m in at_head)
    else:
        kinds = {
            PurePosixPath(p).parts[len(PurePosixPath(modules_dir).parts)]
            for p in result.support
            if len(PurePosixPath(p).parts) > len(PurePosixPath(modules_dir).parts) + 1
        }
        touched = {m.name for m in result.added + result.modified} | {m.name for m in at_head if m.kind in kinds}
        result.judge = sorted(touched)
    return result


def _classified(status: str, paths: list[str]) -> list[tuple[str, str]]:
    """(path, added | modified | removed) for one diff entry; a rename is the old path removed, the new added."""
    if status == "R":
        return [(paths[0], "removed"), (paths[1], "added")]
    if status in ("A", "C"):
        return [(paths[-1], "added")]
    if status == "D":
        return [(paths[0], "removed")]
    return [(paths[-1], "modified")]  # M (content), T (type change)


def describe(result: Changes) -> str:
    """The change as a person reads it."""
    lines = [f"changes of {result.head} against {result.base} (merge-base {result.merge_base[:12]}):"]
    for title, group in (("added", result.added), ("modified", result.modified), ("removed", result.removed)):
        for m in group:
            lines.append(f"  {title:9} {m.name} ({m.kind}, {m.path})")
    for path in result.support:
        lines.append(f"  support   {path} (modules of its kind are judged again)")
    if result.harness:
        shown = ", ".join(result.harness[:10]) + (
            f" and {len(result.harness) - 10} more" if len(result.harness) > 10 else ""
        )
        lines.append(f"  harness   {shown}: the harness itself changed, every module is judged again")
    if len(lines) == 1:
        lines.append("  no module or harness file changed")
    lines.append(f"to judge: {' '.join(result.judge) if result.judge else '(nothing)'}")
    return "\n".join(lines)
