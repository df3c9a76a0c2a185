"""`harness changed`: modules added, modified, renamed and removed against the merge-base; harness changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.judge.base_branch import BaseBranchError
from harness.judge.changes import changes
from tests.conftest import REPO

MODULE = (
    "import torch\nfrom harness import register\n\n\n"
    "@register(kind='norm', variant='rms_norm', exact=True)\nclass {cls}:\n    pass\n"
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True
    )


def _write(repo: Path, path: str, text: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: three norm modules and a harness file; branch pr starts from main."""
    root = tmp_path / "repo"
    for name, cls in (("keep", "Keep"), ("edit", "Edit"), ("gone", "Gone"), ("moved", "Moved")):
        _write(root, f"modules/norm/{name}.py", MODULE.format(cls=cls))
    _write(root, "modules/activation/silu_x.py", MODULE.format(cls="SiluX"))
    _write(root, "harness/kinds/norm.py", "# the norm contract\n")
    _write(root, "README.md", "docs\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "base")
    _git(root, "checkout", "-qb", "pr")
    return root


def test_added_modified_removed_and_renamed_modules(repo: Path) -> None:
    _write(repo, "modules/norm/fresh.py", MODULE.format(cls="Fresh"))
    _write(repo, "modules/norm/edit.py", MODULE.format(cls="Edit") + "# faster\n")
    (repo / "modules/norm/gone.py").unlink()
    _git(repo, "mv", "modules/norm/moved.py", "modules/norm/renamed.py")
    _write(repo, "README.md", "more docs\n")  # not a module, not the harness: changes nothing
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pr")
    _git(repo, "checkout", "-q", "main")
    _write(repo, "modules/norm/keep.py", MODULE.format(cls="Keep") + "# changed on main after the branch\n")
    _git(repo, "commit", "-qam", "main moves on")  # not part of the pull request: the merge-base excludes it
    result = changes(repo, "main", "pr")
    assert [m.name for m in result.added] == ["fresh", "renamed"]
    assert [m.name for m in result.modified] == ["edit"]
    assert sorted(m.name for m in result.removed) == ["gone", "moved"]
    assert not result.harness_changed and result.support == []
    assert result.judge == ["edit", "fresh", "renamed"]
    assert result.added[0].kind == "norm" and result.added[0].path == "modules/norm/fresh.py"


def test_a_harness_change_rejudges_every_module(repo: Path) -> None:
    _write(repo, "harness/kinds/norm.py", "# a looser norm contract\n")
    _write(repo, "modules/norm/edit.py", MODULE.format(cls="Edit") + "# faster\n")
    _git(repo, "commit", "-qam", "touch the contract")
    result = changes(repo, "main", "pr")
    assert result.harness == ["harness/kinds/norm.py"] and result.harness_changed
    assert result.judge == ["edit", "gone", "keep", "moved", "silu_x"]


def test_a_shared_helper_rejudges_its_kind(repo: Path) -> None:
    _write(repo, "modules/norm/_common.py", "EPS = 1e-6\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "helper")
    result = changes(repo, "main", "pr")
    assert result.support == ["modules/norm/_common.py"] and not result.added
    assert result.judge == ["edit", "gone", "keep", "moved"]  # every norm module, no activation


def test_cli_json_and_unknown_ref(repo: Path) -> None:
    _write(repo, "modules/norm/fresh.py", MODULE.format(cls="Fresh"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pr")
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "changed",
        "--base",
        "main",
        "--head",
        "pr",
        "--json",
        "--modules-dir",
        str(repo / "modules"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["added"] == [{"name": "fresh", "kind": "norm", "path": "modules/norm/fresh.py"}]
    assert data["harness_changed"] is False and data["judge"] == ["fresh"] and len(data["merge_base"]) == 40
    bad = subprocess.run([*cmd[:5], "no-such-ref", *cmd[6:]], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "no-such-ref" in bad.stderr and "Fix: fetch both refs" in bad.stderr, bad.stderr
    with pytest.raises(BaseBranchError):
        changes(repo, "main", "no-such-ref")
