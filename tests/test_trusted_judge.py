"""Trusted judge: a pull request's module files judged by the base branch's harness, never by the pull request's
own copy of the harness, kinds or settings (`harness check --modules-from TREE`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import JUDGE_ROOT, _config_path, _parser, main
from tests.conftest import REPO

WRONG_MODULE = '''"""A GELU that is wrong everywhere: half its input."""

import torch

from harness import register


@register(kind="activation", variant="gelu", exact=True)
class GeluHalf:
    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, up: torch.Tensor | None) -> torch.Tensor:
        return x * 0.5
'''
# The pull request's harness edit: every gate concludes "pass" whatever its cases found.
RIGGED = ("    failed = gate.failed_cases\n", "    failed = []  # every gate passes\n")
RUN = ["check", "gelu_half", "--gates", "unit", "--seed", "5", "--jobs", "1", "--no-entry-points"]


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pull request's head: the project with a wrong module added and the harness rigged to pass everything."""
    root = tmp_path_factory.mktemp("pr-head")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("harness", "modules"):
        shutil.copytree(REPO / part, root / part, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    base_py = root / "harness" / "gates" / "base.py"
    text = base_py.read_text()
    assert text.count(RIGGED[0]) == 1, "the rig no longer matches harness/gates/base.py: update RIGGED"
    base_py.write_text(text.replace(*RIGGED))
    (root / "modules" / "activation" / "gelu_half.py").write_text(WRONG_MODULE)
    _git(root, "init", "-q", "-b", "pr")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "faster gelu")
    return root


def _verdicts(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "results.json").read_text())
    return document


def test_the_pull_requests_own_harness_would_pass_the_wrong_module(head: Path, tmp_path: Path) -> None:
    """The rig works: run by the head's own copy of the harness, the wrong module passes."""
    out = tmp_path / "self-judged"
    env = {**os.environ, "PYTHONPATH": str(head)}
    cmd = [sys.executable, "-m", "harness", *RUN, "--modules-dir", str(head / "modules"), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=head, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    document = _verdicts(out)
    assert [m["verdict"] for m in document["modules"]] == ["pass"]
    assert document["environment"]["git_commit"] == _git(head, "rev-parse", "HEAD")  # judged by the head's code


def test_the_trusted_judge_gives_the_base_harness_verdict(head: Path, tmp_path: Path) -> None:
    out = tmp_path / "trusted"
    code = main([*RUN, "--modules-from", str(head), "--out", str(out)])
    assert code == 1
    document = _verdicts(out)
    (module,) = document["modules"]
    assert (module["name"], module["verdict"]) == ("gelu_half", "fail")
    unit = module["gates"][0]
    assert unit["verdict"] == "fail" and unit["cases_failed"] > 0
    assert module["source"] == str((head / "modules" / "activation" / "gelu_half.py").resolve())
    config = document["config"]
    assert config["modules_from"] == str(head.resolve())
    assert config["modules_commit"] == _git(head, "rev-parse", "HEAD")
    assert config["authoritative"] is True
    assert document["environment"]["git_commit"] != config["modules_commit"]  # the judge is not the head


def test_a_change_to_the_harness_is_marked_not_authoritative(head: Path, tmp_path: Path) -> None:
    out = tmp_path / "marked"
    main([*RUN, "--modules-from", str(head), "--not-authoritative", "--out", str(out)])
    config = _verdicts(out)["config"]
    assert config["authoritative"] is False
    assert "not authoritative" in config["authority_note"]


def test_settings_come_from_the_judge_never_from_the_tree(head: Path) -> None:
    """The head's pyproject.toml (perf thresholds, policies) is not read in a trusted-judge run."""
    args = _parser().parse_args(["check", "x", "--modules-from", str(head)])
    assert _config_path(args) == JUDGE_ROOT / "pyproject.toml"
    own = _parser().parse_args(["check", "x", "--modules-dir", str(head / "modules")])
    assert _config_path(own) == head.resolve() / "pyproject.toml"


def test_modules_from_and_modules_dir_together_is_a_usage_error(head: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "gelu_half", "--modules-from", str(head), "--modules-dir", str(head / "modules")])
    assert code == 2
    assert "cannot be combined with --modules-dir" in capsys.readouterr().err


def test_a_tree_without_modules_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "anything", "--modules-from", str(tmp_path)])
    assert code == 2
    assert f"modules directory {tmp_path / 'modules'} does not exist" in capsys.readouterr().err
