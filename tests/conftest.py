"""Shared test helpers: the repository layout and running the `harness` command as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
BROKEN = FIXTURES / "broken_modules"


def run_harness(*args: str, timeout: float = 900, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`harness ARGS...` in a fresh process, output captured; contestants live under `tmpdir` if given."""
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir else None
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
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
