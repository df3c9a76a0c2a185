"""Contestants forked from the zygote (harness.judge.zygote, harness.worker.zygote): each is a contestant as one started
from scratch would be (own session, directory, environment, cores), the zygote holds none of the judge's secrets, and
a zygote that dies is replaced while the contestants it forked count as killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.judge import zygote
from harness.judge.sandbox import Contestant, Limits, scrubbed_env
from harness.judge.session import Session
from harness.judge.zygote import ForkedProcess, Zygote
from harness.protocol.messages import Load
from harness.registry.sources import module_sources
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="the zygote needs Linux's /proc")

LIMITS = Limits(timeout_s=60).with_isolation((REPO / "modules",))
SILU = next(s for s in module_sources(REPO / "modules", entry_points=False) if s.name == "silu")


def stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()


def gone(pid: int, within_s: float = 10.0) -> bool:
    """True once `pid` has ended (no entry, or a zombie) within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if stat_fields(pid)[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


CHECKS_ITS_PLACE = """
import os
import tempfile

import torch

from harness import register

home = os.getcwd()
assert os.environ["HOME"] == os.environ["TMPDIR"] == tempfile.gettempdir() == home, (os.environ, home)
assert "harness-contestant-" in home, home
assert "GITHUB_TOKEN" not in os.environ


@register(kind="activation", variant="silu", exact=True)
class ChecksItsPlace:
    def forward(self, x, gate, up):
        return torch.nn.functional.silu(x)
"""


def test_a_forked_contestant_has_its_own_session_directory_environment_and_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_zygoteTestFakeToken0123456789abcdefAB")
    (tmp_path / "activation").mkdir()
    (tmp_path / "activation" / "checks_its_place.py").write_text(CHECKS_ITS_PLACE)
    (source,) = module_sources(tmp_path, entry_points=False)
    core = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})  # the caller's cores: a contestant starts on them, as a spawned one would
    try:
        contestant = Contestant(Limits(timeout_s=60).with_isolation((tmp_path,)), "forked")
        contestant.start()
    finally:
        os.sched_setaffinity(0, before)
    try:
        assert isinstance(contestant.proc, ForkedProcess)
        pid = contestant.proc.pid
        # its module sees its own directory as HOME, TMPDIR and working directory, and no token (else Load fails)
        assert Session(contestant).send(Load(source=source, instantiate=True)).spec.name == "checks_its_place"
        assert int(stat_fields(pid)[3]) == pid  # session leader of a session of its own
        assert os.readlink(f"/proc/{pid}/cwd") == contestant._home.name
        assert os.sched_getaffinity(pid) == {core}
        # its pipes are its own: the zygote kept no copy of them
        server = zygote.shared(scrubbed_env(tempfile.gettempdir()))
        assert server is not None and server.proc is not None
        theirs = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        kept = {os.readlink(f"/proc/{server.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{server.proc.pid}/fd")}
        assert {t for t in theirs if t.startswith("pipe:")} and not {t for t in theirs if t.startswith("pipe:")} & kept
    finally:
        contestant.close()
    assert gone(pid)


def test_the_zygote_holds_none_of_the_judges_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_zygoteTestFakeToken0123456789abcdefAB")
    server = Zygote(scrubbed_env(tempfile.gettempdir()))
    try:
        assert server.wait_ready() and server.proc is not None
        environ = Path(f"/proc/{server.proc.pid}/environ").read_bytes()
        assert b"GITHUB_TOKEN" not in environ and b"ghp_" not in environ
        assert stat_fields(server.proc.pid)[3] == str(server.proc.pid)  # its own session, away from the judge's
    finally:
        server.close()
    assert gone(server.proc.pid)


def test_a_killed_zygote_is_replaced_and_its_children_count_as_killed() -> None:
    with Contestant(LIMITS, "first") as first:
        assert isinstance(first.proc, ForkedProcess)
        server = zygote.shared(scrubbed_env(tempfile.gettempdir()))
        assert server is not None and server.proc is not None
        old = server.proc.pid
        os.kill(old, signal.SIGKILL)
        assert first.proc.wait(timeout=10) == -signal.SIGKILL
        assert gone(first.proc.pid)  # its parent-death signal: it does not outlive the zygote
        with Contestant(LIMITS, "second") as second:
            assert isinstance(second.proc, ForkedProcess)
            assert Session(second).send(Load(source=SILU, instantiate=True)).spec.name == "silu"
            replacement = zygote.shared(scrubbed_env(tempfile.gettempdir()))
            assert replacement is not None and replacement.proc is not None and replacement.proc.pid != old


def test_with_zygotes_off_contestants_start_from_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_ZYGOTE", "off")
    with Contestant(LIMITS, "fresh") as contestant:
        assert contestant.proc is not None and not isinstance(contestant.proc, ForkedProcess)
        assert Session(contestant).send(Load(source=SILU, instantiate=True)).spec.name == "silu"
        assert b"harness.worker" in Path(f"/proc/{contestant.proc.pid}/cmdline").read_bytes().split(b"\0")


KEEPS_ITS_OWN_CHILD = """
import subprocess, sys
from pathlib import Path
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import Session
from harness.protocol.messages import Load
from harness.registry.sources import module_sources

silu = next(s for s in module_sources(Path(sys.argv[1]), entry_points=False) if s.name == "silu")
helper = subprocess.Popen(["sleep", "60"], start_new_session=True)
with Contestant(Limits(timeout_s=60).with_isolation((Path(sys.argv[1]),)), "c") as contestant:
    Session(contestant).send(Load(source=silu, instantiate=True))
print("helper alive" if helper.poll() is None else f"helper ended: {helper.returncode}")
helper.kill()
"""


def test_a_child_the_judge_starts_in_a_session_of_its_own_is_not_taken_for_an_orphan() -> None:
    """A contestant's orphans re-parent to the zygote (a subreaper), so the judge, which never becomes one, does not
    sweep its own children: here one started in a session of its own, as a contestant's orphan would be."""
    proc = subprocess.run(
        [sys.executable, "-c", KEEPS_ITS_OWN_CHILD, str(REPO / "modules")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.stdout.strip() == "helper alive", proc.stderr[-2000:]
