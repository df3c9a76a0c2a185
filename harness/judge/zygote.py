"""The judge's side of the zygote (harness.worker.zygote): contestants forked from an interpreter that has torch
imported, instead of a fresh interpreter each.

One zygote serves the judge process (`shared()`), started on first use with a contestant's scrubbed environment
and killed with the judge. If it cannot be started, or dies, `shared()` says so (None) and the sandbox starts
contestants from scratch as before; set HARNESS_ZYGOTE=off to always do that.

A thread of its own starts the zygote and reads its messages for as long as it lives: the zygote's parent-death
signal follows the thread that started it, and only the zygote can collect its children's exit status, which it
reports here (`ForkedProcess.wait`).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

START_TIMEOUT_S = 120.0  # the zygote imports torch and torch._dynamo before it says it is ready
SPAWN_TIMEOUT_S = 30.0  # a fork and a reply
MAX_MESSAGE = 1 << 20


class ZygoteUnavailable(OSError):
    """The zygote could not fork a contestant; the caller starts one from scratch."""


class ForkedProcess:
    """A contestant forked by the zygote, with the part of subprocess.Popen's interface the sandbox uses."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._zygote = zygote

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.exit_code(self.pid, 0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._zygote.exit_code(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"contestant {self.pid}", timeout or 0.0)
        return self.returncode


class Zygote:
    """One zygote process: `spawn` forks a contestant; its exit status arrives through the reader thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._children: set[int] = set()
        self._next_id = 0
        self._ready = threading.Event()
        self._alive = False
        self._error = ""
        self._home = tempfile.mkdtemp(prefix="harness-zygote-")
        self._sock: socket.socket | None = None
        self._log = tempfile.TemporaryFile(prefix="harness-zygote-output-")
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="harness-zygote", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Whether the zygote has imported what it imports ahead and answers, waiting up to `timeout` seconds."""
        return self._ready.wait(timeout) and self._alive

    @property
    def alive(self) -> bool:
        """Started and not (known to be) dead; it may still be importing torch."""
        return (self._alive or not self._ready.is_set()) and (self.proc is None or self.proc.poll() is None)

    def _run(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        try:
            env = {**self._env, "HOME": self._home, "TMPDIR": self._home}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.worker.zygote", "--control-fd", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                close_fds=True,
                env=env,
                cwd="/",
            )
            SERVERS.add(self.proc.pid)
        except OSError as exc:
            self._error = str(exc)
            self._ready.set()
            return
        finally:
            theirs.close()
        try:
            while True:
                data = ours.recv(MAX_MESSAGE)
                if not data:
                    break
                self._receive(json.loads(data))
        except (OSError, ValueError) as exc:
            self._error = str(exc)
        finally:
            self._ended()

    def _receive(self, message: dict[str, Any]) -> None:
        with self._cond:
            if "ready" in message:
                self._alive = True
                self._ready.set()
            elif "exit" in message:
                self._exits[int(message["exit"])] = int(message["code"])
                self._children.discard(int(message["exit"]))
            elif message.get("id") is not None:
                self._replies[int(message["id"])] = message
            self._cond.notify_all()

    def _ended(self) -> None:
        """The zygote is gone: its children die with it (parent-death signal), so they count as killed."""
        if self.proc is not None and not self._error:
            try:
                self.proc.wait(timeout=5)
                self._log.seek(0)
                self._error = self._log.read().decode(errors="replace").strip()[-2000:]
            except (subprocess.TimeoutExpired, OSError, ValueError):
                pass
        if self.proc is not None and self.proc.poll() is not None:
            SERVERS.discard(self.proc.pid)  # reaped: its pid may be reused by anyone
        with self._cond:
            self._alive = False
            for pid in self._children:
                self._exits.setdefault(pid, -signal.SIGKILL)
            self._children.clear()
            self._cond.notify_all()
        self._ready.set()

    def spawn(
        self, argv: Sequence[str], env: dict[str, str], cwd: str, cores: set[int] | None, fds: Sequence[int]
    ) -> ForkedProcess:
        """Fork a contestant running `python -m harness.worker ARGV` (its pipe descriptors are added) with `env`,
        in `cwd`, on `cores`; `fds` are its request pipe's read end, its reply pipe's write end and its output."""
        if not self.wait_ready() or self._sock is None:
            raise ZygoteUnavailable(f"the zygote is not running: {self._error or 'it ended'}")
        with self._cond:
            ident = self._next_id
            self._next_id += 1
        request = {"id": ident, "argv": list(argv), "env": env, "cwd": cwd, "cores": sorted(cores) if cores else None}
        try:
            with self._send_lock:
                socket.send_fds(self._sock, [json.dumps(request).encode()], list(fds))
        except OSError as exc:
            raise ZygoteUnavailable(f"the zygote did not take the request: {exc}") from exc
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        with self._cond:
            while ident not in self._replies and self._alive:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            reply = self._replies.pop(ident, None)
            if reply is None or "pid" not in reply:
                why = reply.get("error") if reply else (self._error or "no answer")
                raise ZygoteUnavailable(f"the zygote did not fork a contestant: {why}")
            pid = int(reply["pid"])
            if pid not in self._exits:
                self._children.add(pid)
        return ForkedProcess(self, pid)

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        """The exit code of child `pid` once it has ended (negative: killed by that signal); None if it has not
        ended within `timeout` seconds (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while pid not in self._exits:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            return self._exits[pid]

    def close(self) -> None:
        """Stop the zygote; its children die with it."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        shutil.rmtree(self._home, ignore_errors=True)
        self._log.close()


_lock = threading.Lock()
_shared: Zygote | None = None
_starts = 0
MAX_STARTS = 3  # a zygote that keeps dying is not started a fourth time in one judge process
SERVERS: set[int] = set()  # live zygotes this judge started: never an orphan; their other children are


def start(env: dict[str, str]) -> Zygote | None:
    """This judge process's zygote, started now (without waiting for it) if there is none alive, with environment
    `env`; None when zygotes are off (HARNESS_ZYGOTE=off), cannot run here, or have died too often. A command
    calls it first thing, so the zygote imports torch while the command reads its modules."""
    global _shared, _starts
    if os.environ.get("HARNESS_ZYGOTE", "on") == "off" or not sys.platform.startswith("linux"):
        return None
    with _lock:
        if _shared is not None and _shared.alive:
            return _shared
        if _shared is not None:
            _shared.close()
            _shared = None
        if _starts >= MAX_STARTS:
            return None
        _starts += 1
        _shared = Zygote(env)
        return _shared


def shared(env: dict[str, str]) -> Zygote | None:
    """This judge process's zygote, ready to fork (started now if need be, see `start`); None when there is none."""
    server = start(env)
    if server is None or not server.wait_ready():
        return None
    return server


def shutdown() -> None:
    """Stop this process's zygote, if one runs (also done when the process exits)."""
    global _shared
    with _lock:
        if _shared is not None:
            _shared.close()
            _shared = None


atexit.register(shutdown)
