"""The GitHub Actions workflows of the pull-request loop keep their safety rules: pinned actions, no persisted
credentials, no expression inside a shell script, write permissions only where the report and the site need them,
the report never touching pull-request code; and zizmor and GitHub's workflow schema find nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
NAMES = ("pr-gates", "pr-report", "gpu-gates", "leaderboard")
BIN = Path(sys.executable).parent
PINNED = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
TAG_COMMENT = re.compile(r"\s+# v\d+\.\d+\.\d+\s*")
WRITE_JOBS = {("pr-report", "report"), ("leaderboard", "deploy")}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    assert isinstance(data, dict)
    if True in data:  # YAML 1.1 reads the key `on` as a boolean; GitHub reads it as the string
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def test_the_four_workflows_exist_and_nothing_else() -> None:
    assert sorted(p.stem for p in WORKFLOWS.glob("*.y*ml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_action_is_pinned_to_a_commit_with_its_release_tag(name: str) -> None:
    lines = [m for line in (WORKFLOWS / f"{name}.yml").read_text().splitlines() if (m := USES_LINE.match(line))]
    assert lines, f"{name}.yml uses no action"
    for m in lines:
        assert PINNED.fullmatch(m["ref"]), f"{name}.yml: {m['ref']} is not owner/repo@<40-hex commit>"
        assert TAG_COMMENT.fullmatch(m["rest"]), f"{name}.yml: {m['ref']} lacks its '# vX.Y.Z' tag comment"


def test_one_action_is_pinned_to_one_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for name in NAMES:
        for line in (WORKFLOWS / f"{name}.yml").read_text().splitlines():
            if m := USES_LINE.match(line):
                action, sha = m["ref"].split("@")
                pins.setdefault(action.split("/")[0] + "/" + action.split("/")[1], set()).add(sha)
    assert {action: len(shas) for action, shas in pins.items()} == dict.fromkeys(pins, 1)


@pytest.mark.parametrize("name", NAMES)
def test_checkouts_never_persist_credentials(name: str) -> None:
    checkouts = [s for _, s in steps(load(name)) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    assert all(s.get("with", {}).get("persist-credentials") is False for s in checkouts)


@pytest.mark.parametrize("name", NAMES)
def test_no_expression_inside_a_shell_script(name: str) -> None:
    """Event data, inputs and matrix values reach scripts through `env:` only (zizmor's template-injection)."""
    for job_id, step in steps(load(name)):
        assert "${{" not in step.get("run", ""), f"{name}.yml job {job_id}: step {step.get('name')!r}"


@pytest.mark.parametrize("name", NAMES)
def test_permissions_are_minimal_and_writes_only_where_needed(name: str) -> None:
    workflow = load(name)
    assert "permissions" in workflow, f"{name}.yml has no top-level permissions"
    top = workflow["permissions"] or {}
    assert "write" not in top.values() and top not in ("write-all", "read-all")
    for job_id, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{name}.yml job {job_id} names no permissions"
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert bool(writes) == ((name, job_id) in WRITE_JOBS), f"{name}.yml job {job_id} writes {writes}"
    if name == "leaderboard":
        assert workflow["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_the_report_never_checks_out_or_runs_pull_request_code() -> None:
    workflow = load("pr-report")
    assert list(workflow["on"]) == ["workflow_run"]
    assert workflow["on"]["workflow_run"]["workflows"] == ["pr-gates", "gpu-gates"]
    checkouts = [s for _, s in steps(workflow) if s.get("uses", "").startswith("actions/checkout@")]
    assert [s["with"].get("ref") for s in checkouts] == ["${{ github.event.repository.default_branch }}"]
    assert all("repository" not in s["with"] for s in checkouts)
    text = (WORKFLOWS / "pr-report.yml").read_text()
    assert "harness unpack" in text and "harness pr --results" in text
    for _, step in steps(workflow):
        assert "workflow_run.head" not in str(step.get("with", {}))


def test_no_workflow_runs_on_pull_request_target() -> None:
    assert all("pull_request_target" not in load(name)["on"] for name in NAMES)
    assert set(load("pr-gates")["on"]) == {"pull_request", "merge_group"}


def test_the_gpu_run_needs_a_maintainer_and_an_exact_commit() -> None:
    workflow = load("gpu-gates")
    assert workflow["on"]["pull_request"] == {"types": ["labeled"]}
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]) == {"pull_request", "sha"}
    job = workflow["jobs"]["gpu"]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert "github.event.label.name == 'gpu-run-approved'" in job["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    first = job["steps"][0]
    assert "^[0-9a-f]{40}$" in first["run"] and first["env"]["SHA"].startswith("${{ inputs.sha")
    candidate = next(s for s in job["steps"] if s.get("with", {}).get("path") == "candidate")
    assert candidate["with"]["ref"] == "${{ steps.approved.outputs.sha }}"
    assert any("--device cuda" in s.get("run", "") for s in job["steps"])


@pytest.mark.parametrize(
    ("name", "cancel"), [("pr-gates", True), ("gpu-gates", True), ("pr-report", False), ("leaderboard", False)]
)
def test_concurrency_groups(name: str, cancel: bool) -> None:
    """A new push cancels the old gates run; reports and deployments queue instead of being cut off midway."""
    concurrency = load(name)["concurrency"]
    assert concurrency["group"] and concurrency["cancel-in-progress"] is cancel


def test_the_only_suppressed_finding_is_the_reports_trigger() -> None:
    ignores = [
        (name, line.strip())
        for name in NAMES
        for line in (WORKFLOWS / f"{name}.yml").read_text().splitlines()
        if "zizmor: ignore" in line
    ]
    assert ignores == [("pr-report", "workflow_run: # zizmor: ignore[dangerous-triggers]")]


def test_zizmor_finds_nothing() -> None:
    done = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stdout + done.stderr


def test_the_workflows_match_githubs_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    done = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "ok -- validation done" in done.stdout, done.stdout + done.stderr
