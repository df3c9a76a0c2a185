"""The zygote: an interpreter that has imported torch and the worker, and forks contestants on the judge's request.

`python -m harness.worker.zygote --control-fd N`, started by the judge (harness.judge.zygote) with a contestant's
scrubbed environment. A contestant started from scratch spends about 2.5 s of CPU on a fresh interpreter and
`import torch` (4 s with torch._dynamo, which timing contestants load); forked from here it answers in milliseconds.

Nothing untrusted ever runs in this process, and it holds nothing a contestant may not see: no seed, no token, no
judge state. Each child gives up the control socket, takes its own session, output file, directory, environment
and cores, and then runs `harness.worker.__main__.main`, which caps its memory and confines it before any candidate
is imported, exactly as in a contestant started from scratch.

Control protocol (one JSON object per SOCK_SEQPACKET message):
- judge -> zygote: {"id", "argv", "env", "cwd", "cores"} with three descriptors attached: the contestant's request
  pipe (read end), reply pipe (write end) and output file;
- zygote -> judge: {"ready": pid} once; {"id", "pid"} or {"id", "error"} per request; {"exit": pid, "code": code}
  when a child ends (code as subprocess gives it: negative for a signal). Only this process can collect its
  children's exit status, so it reports every one. It is a subreaper: a contestant's orphans become its children
  (reaped and reported too), which is where the judge's sweep finds them (harness/judge/sandbox.py `_orphans`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import traceback
from typing import Any

from harness.worker.__main__ import die_with_parent

MAX_MESSAGE = 1 << 20
# Imported once here, so no child imports them again: torch and what every contestant imports before it answers.
# torch._dynamo (harness.worker.__main__.PRELOADS) is imported the first time a request asks for it (a timing
# contestant), before that child is forked: every later child has it, and a unit-gate-only run never waits for it.
AHEAD = (
    "torch",
    "harness.worker.handlers",
    "harness.worker.perf",
    "harness.worker.execute",
    "harness.worker.integrate",
    "harness.registry.loader",
    "harness.protocol.messages",
)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def _reap(sock: socket.socket) -> None:
    """Report every child that has ended since the last look."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _exit_code(exc: SystemExit) -> int:
    """The status the interpreter would exit with for `exc` (a non-integer code is printed, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _child(request: dict[str, Any], fds: list[int], closing: list[int], zygote: int) -> None:
    """In the forked child: become a contestant and run the worker; ends the process as an interpreter would."""
    code = 1
    try:
        die_with_parent(zygote)  # from the first instant: a contestant never outlives the zygote
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
        for fd in closing:  # the control socket and the wake-up pipe: nothing of the zygote stays reachable
            os.close(fd)
        os.setsid()
        in_fd, out_fd, log_fd = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # TMPDIR is the contestant's own directory now
        if request.get("cores") and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, request["cores"])
        from harness.core import linux

        linux.set_dumpable(True)  # as after a fresh exec; a change of user in the confinement clears it again
        from harness.worker.__main__ import main

        argv = [*request["argv"], "--in-fd", str(in_fd), "--out-fd", str(out_fd)]
        sys.argv = ["python -m harness.worker", *argv]
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except KeyboardInterrupt:
            # as the interpreter does for an uncaught KeyboardInterrupt: the traceback, then death by SIGINT
            traceback.print_exc()
            _flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        _flush()
        os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _preload(request: dict[str, Any]) -> None:
    """Import here what the request's contestant is to import before it answers (only what the worker allows)."""
    from harness.worker.__main__ import PRELOADS

    for arg in request.get("argv", []):
        name = arg.removeprefix("--preload=") if isinstance(arg, str) else None
        if name in PRELOADS and name not in sys.modules:
            importlib.import_module(name)


def _threads() -> int:
    """Threads of this process, the ones Python does not know of (torch's own pools) included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _spawn(sock: socket.socket, wake: tuple[int, int], data: bytes, fds: list[int]) -> None:
    """Fork one contestant for the request in `data`; answer with its pid or why there is none."""
    try:
        request = json.loads(data)
        ident = request["id"]
    except (ValueError, KeyError, TypeError) as exc:
        for fd in fds:
            os.close(fd)
        _send(sock, {"id": None, "error": f"unreadable request: {exc}"})
        return
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        _send(sock, {"id": ident, "error": f"expected 3 descriptors, got {len(fds)}"})
        return
    _preload(request)
    threads = _threads()
    if threads != 1:  # a fork copies only this thread: locks held by the others would stay held in the child
        for fd in fds:
            os.close(fd)
        _send(sock, {"id": ident, "error": f"the zygote runs {threads} threads; it must run one"})
        return
    _flush()
    zygote = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(request, fds, [sock.fileno(), *wake], zygote)
    for fd in fds:
        os.close(fd)
    _send(sock, {"id": ident, "pid": pid})


def serve(sock: socket.socket) -> None:
    """Fork contestants until the judge closes the control socket; report every child's end."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wake-up descriptor hears of every child
    _send(sock, {"ready": os.getpid()})
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            _reap(sock)
        if sock.fileno() in ready:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
            if not data:
                return  # the judge is done (or gone): children die with this process (their parent-death signal)
            _spawn(sock, (wake_r, wake_w), data, fds)
        _reap(sock)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.worker.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args()
    from harness.core import linux

    parent = os.getppid()
    linux.set_dumpable(False)  # no contestant reads this process's memory or traces it, even as the same user
    # What a contestant leaves behind (a daemon, a double-forked orphan) re-parents here, where the judge looks for
    # it among this process's children, not to the judge, whose own children it then never mistakes for one.
    linux.become_subreaper()
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the judge's to handle; it closes the socket
    sock = socket.socket(fileno=args.control_fd)
    import torch

    torch.set_num_threads(1)
    for name in AHEAD:
        importlib.import_module(name)
    serve(sock)


if __name__ == "__main__":
    main()
