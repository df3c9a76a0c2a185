"""Shared test helpers: the repository layout and running the `harness` command as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


_SESSION_STORE: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Every `harness` the tests start writes to a store of the test session's own, never the user's history."""
    if "HARNESS_STORE" not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="harness-test-store-"))
        _SESSION_STORE.append(folder)
        os.environ["HARNESS_STORE"] = str(folder / "store.sqlite")
    # Every module is judged afresh: no test may depend on verdicts an earlier run stored (tests of reuse point
    # HARNESS_VERDICTS at a directory of their own).
    os.environ.setdefault("HARNESS_VERDICTS", "off")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Test workers (pytest-xdist, `--dist loadgroup`) take whole files, so a file's module-scoped fixtures run once;
    the adversarial corpus's files share one whole-corpus run and go to one worker together."""
    corpus = REPO / "tests" / "adversarial"
    for item in items:
        path = Path(str(item.path))
        group = "adversarial-corpus" if corpus in path.parents else path.relative_to(REPO).as_posix()
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _SESSION_STORE:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("HARNESS_STORE", None)


FIXTURES = REPO / "tests" / "fixtures"
CORPUS = REPO / "tests" / "adversarial" / "modules"  # the adversarial corpus: hostile and broken modules


def run_harness(
    *args: str, timeout: float = 900, tmpdir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`harness ARGS...` in a fresh process, output captured; contestants live under `tmpdir` if given; `env` is
    added to the environment."""
    environ = {**os.environ, **({"TMPDIR": str(tmpdir)} if tmpdir else {}), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=environ
    )


def worker_processes(under: Path) -> list[int]:
    """Pids of live contestant processes (and their forks) whose working directory lies under `under`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"harness.worker" in cmdline and state != "Z" and cwd.startswith(str(under)):
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
