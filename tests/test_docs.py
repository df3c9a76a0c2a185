"""The documents a reader has: the CLI reference matches the CLI, every relative link resolves, and nothing points
outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.cli.reference import DOCS_FILE, REGENERATE, render
from tests.conftest import REPO

DOCUMENTS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])
# [text](target) and [text]: target, outside code spans and fenced blocks
INLINE_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s+(\S+)", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
OUTSIDE = "../" + "shared/"  # spelled in two parts so this file does not mention it


def test_cli_reference_is_up_to_date() -> None:
    expected = render()
    found = DOCS_FILE.read_text() if DOCS_FILE.exists() else ""
    assert found == expected, (
        f"{DOCS_FILE.relative_to(REPO)} differs from the parser in harness/cli/ (an option was added or changed). "
        f"Fix: regenerate it with `{REGENERATE}` and commit the result."
    )


def test_cli_reference_covers_every_subcommand_and_option() -> None:
    text = render()
    for command in ("list", "check", "run", "new", "changed", "plan", "merge", "ingest", "report", "pr", "unpack"):
        assert f"\n## harness {command}\n" in text, command
    assert "| `--gates GATES` | comma-separated gates among unit, integration, perf | `unit,integration,perf` |" in text
    assert "| `--device {cpu,cuda}` | one of `cpu`, `cuda` | `cpu` |" in text
    home = str(Path.home())
    assert len(home) <= 1 or home not in text  # the same file on every machine


def links(document: Path) -> list[str]:
    """Relative link targets of a Markdown file (no scheme, no pure anchor), without their #fragment."""
    text = CODE_SPAN.sub("", FENCE.sub("", document.read_text()))
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    relative = [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    return [t.split("#", 1)[0] for t in relative]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_files_that_exist(document: Path) -> None:
    assert document.exists(), f"{document.relative_to(REPO)} is missing"
    broken = [t for t in links(document) if not (document.parent / t).exists()]
    assert not broken, f"{document.relative_to(REPO)} links to files that do not exist: {broken}"


def test_link_check_sees_links() -> None:
    readme = links(REPO / "README.md")
    assert "CONTRIBUTING.md" in readme and "docs/cli.md" in readme and "docs/measurement.md" in readme, readme


def repository_files() -> list[Path]:
    """Every file of the repository: tracked, or new and not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]


def test_no_file_points_outside_the_repository() -> None:
    files = repository_files()
    assert any(f.name == "README.md" for f in files)
    mentions = [str(f.relative_to(REPO)) for f in files if OUTSIDE.encode() in f.read_bytes()]
    assert not mentions, (
        f"these files cite {OUTSIDE}, which is not part of the repository: {mentions}. Fix: cite the document in "
        "docs/ that says it in this project's words (docs/measurement.md for the measured machine facts)."
    )
