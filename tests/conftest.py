"""Shared test helpers: the repository layout and running the `harness` command as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def work_unit(nodeid: str) -> str:
    """The share of the tests one pytest-xdist worker takes at once: a whole file, so a file's module-scoped fixtures
    (whole `harness run`s) run once; the adversarial corpus's files together, as they share one corpus run."""
    path = nodeid.split("::", 1)[0]
    return "tests/adversarial" if path.startswith("tests/adversarial/") else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` (pyproject's addopts) hands out `work_unit`s. Built here rather than from xdist_group marks:
    xdist 3.8 writes a mark's group into `item._nodeid`, which pytest 9.2 no longer reads, so every test became a
    unit of its own and both workers ran each file's fixtures."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WholeFiles(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WholeFiles(config, log)


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


CONTESTANT_COMMANDS = (b"harness.worker", b"harness.worker.zygote")  # started from scratch, or forked by the zygote


def worker_processes(under: Path) -> list[int]:
    """Pids of live contestant processes (and their forks) whose working directory lies under `under` (a zygote's
    is `/`: only its children, the contestants, count)."""
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
        if any(c in cmdline for c in CONTESTANT_COMMANDS) and state != "Z" and cwd.startswith(str(under)):
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
