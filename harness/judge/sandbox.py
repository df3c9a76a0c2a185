"""The contestant process as the judge holds it: spawn, limits, request/reply with deadlines, kill.

The child runs `python -m harness.worker`, forked from the zygote (harness/judge/zygote.py: an interpreter that
has imported torch and nothing untrusted) or, where none runs, in a fresh interpreter; never a fork of the judge.
It runs in its own session, with a scrubbed environment and a private pair of pipes. The judge enforces a wall-clock
deadline and a resident-memory cap on the child's whole process tree, and kills the tree on exit.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.judge import zygote
from harness.judge.isolation import FILE_SIZE_MB, Isolation, decide
from harness.protocol.errors import ContestantDied
from harness.protocol.frames import HEADER, MAX_FRAME, ProtocolError, decode, encode
from harness.results.records import Verdict

SCAN_INTERVAL_S = 0.05  # the process-tree memory scan runs at most this often while a frame is in transit
POLL_S = 0.1
TAIL_BYTES = 8192  # of the contestant's output, the most the judge reads back for a message
TAIL_LINE = 300  # characters of one output line quoted in a message
PAGE = os.sysconf("SC_PAGE_SIZE")
# Environment the child inherits; everything else (tokens, credentials, CI secrets) is dropped.
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
# Pinned allocator behaviour: without it, large-tensor speed swings several-fold between processes
# (docs/measurement.md); one thread per library keeps workers comparable.
WORKER_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "1073741824",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
    "MALLOC_TOP_PAD_": "67108864",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Limits:
    """Per-module resource limits for one contestant process."""

    timeout_s: float = 180.0  # wall clock for everything one module does in one gate
    memory_mb: int = 4096  # address-space cap inside the child and resident-memory cap on its process tree
    threads: int = 1  # torch threads in the child
    device: str = "cpu"  # where the child runs the module: cpu or cuda
    isolation_mode: str = "auto"  # "auto": the strongest isolation this machine allows; "off": none (tests only)
    isolation: Isolation | None = None  # decided for the run (with_isolation); None: decided without module roots

    def with_isolation(self, module_roots: tuple[Path, ...]) -> Limits:
        """These limits with the run's isolation decided, contestants allowed to read `module_roots`."""
        return replace(self, isolation=decide(self.isolation_mode, module_roots))

    def confinement(self, home: str) -> str:
        isolation = self.isolation or decide(self.isolation_mode)
        return isolation.confinement(home).to_json()


def scrubbed_env(home: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in KEEP_ENV if key in os.environ}
    env.update(WORKER_ENV)
    env["HOME"] = home
    env["TMPDIR"] = home
    return env


def _zygote_env() -> dict[str, str]:
    return scrubbed_env(tempfile.gettempdir())  # the zygote's own HOME and TMPDIR replace these (judge/zygote.py)


def start_zygote() -> None:
    """Start this process's zygote now, without waiting: it imports torch while the command reads its modules."""
    zygote.start(_zygote_env())


_subreaper_lock = threading.Lock()
_subreaper_on = False


def _become_subreaper() -> None:
    """Orphaned grandchildren of a contestant re-parent to the judge, so none can outlive the run."""
    global _subreaper_on
    with _subreaper_lock:
        if _subreaper_on or not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_child_subreaper = 36
        libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)
        _subreaper_on = True


@dataclass(frozen=True)
class Proc:
    """What the judge needs to know about one process from /proc/<pid>/stat."""

    ppid: int
    sid: int
    rss_pages: int
    zombie: bool


def _proc_table() -> dict[int, Proc]:
    """Every process we can see, by pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = Proc(int(fields[1]), int(fields[3]), int(fields[21]), fields[0] == "Z")
    return table


_live_contestants: set[int] = set()  # roots of running contestants; never treated as someone's orphan
# Held while a contestant is spawned and registered, and while a kill looks for orphans: a contestant another
# thread has just started (already in its own session, not yet in _live_contestants) must never look like one.
_spawn_lock = threading.Lock()


def _tree(root: int, table: dict[int, Proc], known: set[int]) -> set[int]:
    """The root, its descendants, its session members, and earlier members still alive."""
    members = {root} | {pid for pid, p in table.items() if p.sid == root} | (known & set(table))
    grew = True
    while grew:
        extra = {pid for pid, p in table.items() if p.ppid in members and pid not in members}
        members |= extra
        grew = bool(extra)
    return {pid for pid in members if pid in table and not table[pid].zombie} | {root}


def _orphans(table: dict[int, Proc]) -> set[int]:
    """Processes a contestant left behind, re-parented to a subreaper in a session of their own: to a zygote (every
    child of one is a contestant or what one left), or to the judge once it had to become a subreaper for a
    contestant started from scratch (a child the judge itself starts in a session of its own would then look the
    same; with zygotes, the default, the judge never becomes one)."""
    me, my_sid = os.getpid(), os.getsid(0)
    parents = set(zygote.SERVERS) | ({me} if _subreaper_on else set())
    spared = _live_contestants | zygote.SERVERS
    return {pid for pid, p in table.items() if p.ppid in parents and p.sid != my_sid and pid not in spared}


class Contestant:
    """One untrusted child process; use as a context manager so the tree is always killed."""

    def __init__(self, limits: Limits, label: str, preload: tuple[str, ...] = ()) -> None:
        self.limits = limits
        self.label = label
        self.preload = preload  # torch modules the child imports before it answers (see Spares.preload)
        self.deadline = time.monotonic() + limits.timeout_s
        self._home = tempfile.TemporaryDirectory(prefix="harness-contestant-")
        # The contestant's output goes to an unnamed file outside its directory, read back only through the judge's
        # own descriptor: a contestant cannot swap it for a link to a file it wants the judge to read for it.
        self._log = tempfile.TemporaryFile(prefix="harness-contestant-output-")
        self._members: set[int] = set()
        self.proc: subprocess.Popen[bytes] | zygote.ForkedProcess | None = None
        self._next_scan = 0.0

    def __enter__(self) -> Contestant:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        cmd = [
            sys.executable,
            "-m",
            "harness.worker",
            "--in-fd",
            str(to_child_r),
            "--out-fd",
            str(from_child_w),
            "--memory-mb",
            str(self.limits.memory_mb),
            "--threads",
            str(self.limits.threads),
            "--device",
            self.limits.device,
            "--confine",
            self.limits.confinement(self._home.name),
            *(f"--preload={name}" for name in self.preload),
        ]
        isolation = self.limits.isolation
        if isolation is not None and isolation.mode != "off" and isolation.user is not None:
            os.chown(self._home.name, *isolation.user)  # its private directory, the only place it may write
        log = self._log
        env = scrubbed_env(self._home.name)
        forks = zygote.shared(_zygote_env())
        with _spawn_lock:
            if forks is not None:
                try:  # forked from the zygote: the same worker, limits and confinement, without a fresh interpreter
                    fds = (to_child_r, from_child_w, log.fileno())
                    self.proc = forks.spawn(cmd[3:], env, self._home.name, _cores(), fds)
                except zygote.ZygoteUnavailable:
                    self.proc = None
            if self.proc is None:
                _become_subreaper()  # its orphans re-parent to the judge, so none can outlive the run
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(to_child_r, from_child_w),
                    start_new_session=True,
                    close_fds=True,
                    env=env,
                    cwd=self._home.name,
                )
            _live_contestants.add(self.proc.pid)
        os.close(to_child_r)
        os.close(from_child_w)
        self._send_fd, self._recv_fd = to_child_w, from_child_r
        os.set_blocking(self._send_fd, False)
        self._members = {self.proc.pid}

    def claim(self, label: str) -> None:
        """Hand a contestant started ahead (`Spares`) to a gate: its deadline starts now, and it runs on the cores
        the caller runs on now (a spare started while the judge was kept off the timing core inherited that)."""
        self.label = label
        self.deadline = time.monotonic() + self.limits.timeout_s
        if self.proc is None or not hasattr(os, "sched_setaffinity"):
            return
        cores = os.sched_getaffinity(0)
        try:
            tasks = [int(tid) for tid in os.listdir(f"/proc/{self.proc.pid}/task")]
        except OSError:
            tasks = [self.proc.pid]
        for tid in tasks:
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:
                pass  # the thread is gone, or it is another user's: it pins itself where it matters (timing)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests ---------------------------------------------------------------------------------

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one message and wait for the reply, within the module's deadline and memory cap."""
        try:
            self._write(encode(message))
            header = self._read(HEADER.size)
            (size,) = HEADER.unpack(header)
            if size > MAX_FRAME:
                raise ProtocolError(f"reply of {size} bytes is larger than the {MAX_FRAME}-byte limit")
            return decode(self._read(size))
        except ProtocolError as exc:
            self.kill()
            raise ContestantDied(Verdict.ERROR, f"the contestant broke the protocol: {exc}") from None

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._watch()
            _, ready, _ = select.select([], [self._send_fd], [], POLL_S)
            if ready:
                try:
                    view = view[os.write(self._send_fd, view[: 1 << 20]) :]
                except BrokenPipeError:
                    self._died()

    def _read(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            self._watch()
            ready, _, _ = select.select([self._recv_fd], [], [], POLL_S)
            if ready:
                chunk = os.read(self._recv_fd, min(remaining, 1 << 22))
                if not chunk:
                    self._died()
                chunks.append(chunk)
                remaining -= len(chunk)
        return b"".join(chunks)

    def _watch(self) -> None:
        """Enforce the deadline and the memory cap; raise ContestantDied when either is crossed."""
        assert self.proc is not None
        if time.monotonic() > self.deadline:
            self.kill()
            limit = self.limits.timeout_s
            raise ContestantDied(Verdict.TIMEOUT, f"no answer within the {limit:g} s limit; {self.tail()}")
        if time.monotonic() < self._next_scan:
            return  # a large frame arrives in many pipe-sized chunks; scanning /proc for each would dominate
        self._next_scan = time.monotonic() + SCAN_INTERVAL_S
        table = _proc_table()
        self._members = _tree(self.proc.pid, table, self._members)
        resident = sum(table[pid].rss_pages for pid in self._members if pid in table) * PAGE
        if resident > self.limits.memory_mb * 1024 * 1024:
            self.kill()
            cap = self.limits.memory_mb
            raise ContestantDied(
                Verdict.OOM, f"resident memory {resident >> 20} MiB passed the {cap} MiB cap; {self.tail()}"
            )

    def members(self) -> set[int]:
        """Pids of the contestant's process tree that are alive now (the contestant itself included)."""
        assert self.proc is not None
        table = _proc_table()
        self._members = _tree(self.proc.pid, table, self._members)
        return {pid for pid in self._members if pid in table and not table[pid].zombie}

    def _died(self) -> None:
        """The pipe closed: find out how the child ended and raise the matching verdict."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ContestantDied(Verdict.CRASH, f"the contestant closed its reply pipe; {self.tail()}") from None
        self.kill()
        if code < 0:
            sig = signal.Signals(-code)
            if sig is signal.SIGXFSZ:
                raise ContestantDied(
                    Verdict.CRASH,
                    f"killed by SIGXFSZ: it wrote past the {FILE_SIZE_MB} MiB file-size cap (its output or a file in "
                    f"its directory); {self.tail()}",
                )
            raise ContestantDied(Verdict.CRASH, f"killed by {sig.name} before answering; {self.tail()}")
        raise ContestantDied(Verdict.CRASH, f"exited with code {code} before answering; {self.tail()}")

    def tail(self, lines: int = 12) -> str:
        """The last lines the child printed (at most TAIL_BYTES of them, each cut to TAIL_LINE), for messages."""
        try:
            fd = self._log.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - TAIL_BYTES)
            data = os.pread(fd, TAIL_BYTES, start)
        except (OSError, ValueError):
            return "no output"
        if start > 0:
            data = data.partition(b"\n")[2]  # the read began inside a line: show whole lines only
        text = [line[:TAIL_LINE] for line in data.decode(errors="replace").strip().splitlines()]
        return "last output: " + (" | ".join(text[-lines:]) if text else "(none)")

    # -- shutdown ---------------------------------------------------------------------------------

    def kill(self) -> None:
        """Kill the child, its session, every descendant we have seen and any orphan it left; reap them."""
        if self.proc is None:
            return
        with _spawn_lock:
            _live_contestants.discard(self.proc.pid)
            self._kill_tree()

    def _kill_tree(self) -> None:
        """SIGKILL the tree and orphans, reap, and look again, until nothing of it is left (at most 5 passes)."""
        assert self.proc is not None
        for _ in range(5):
            table = _proc_table()
            targets = _tree(self.proc.pid, table, self._members) | _orphans(table)
            self._members |= targets
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in targets:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.proc.wait()
            time.sleep(0.01)
            self._reap()
            table = _proc_table()
            alive = {pid for pid in self._members | _orphans(table) if pid in table and not table[pid].zombie}
            if not alive - {self.proc.pid}:
                break

    def _reap(self) -> None:
        """Collect the exit status of every killed process that became the judge's child."""
        table = _proc_table()
        for pid in self._members | _orphans(table):
            if isinstance(self.proc, subprocess.Popen) and pid == self.proc.pid:
                continue  # Popen collects its own child (a forked contestant whose zygote died became the judge's)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def close(self) -> None:
        """Kill the child's tree and make sure nothing of it is left.

        No request to exit first: the judge needs nothing more from it, and an interpreter with torch loaded takes
        about half a second to shut down (a third of a contestant's start), once per gate and module.
        """
        if self.proc is None:
            return
        self.kill()
        for fd in (self._send_fd, self._recv_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._home.cleanup()
        self._log.close()
        self.proc = None


class Spares:
    """Contestants kept started ahead of need (one, or `depth`), for one run's limits.

    A contestant started from scratch spends about 1.5 s starting its interpreter and importing torch before it can
    answer; forked from the zygote (harness/judge/zygote.py), a few milliseconds. The run asks for a fresh one per
    gate and module; handing out one started earlier, and starting the next while the
    gate works, hides that wait wherever a core is idle (the performance gate runs alone, with the judge's cores
    mostly waiting). A spare is exactly a fresh contestant: same command, limits and confinement, nothing loaded
    and no request answered before it is claimed. `close` kills the one left over.

    Spares are started by one thread that lives as long as this object: a contestant's parent-death signal
    follows the thread that started it, so a spare started by a gate's short-lived thread would die with it.
    Each starts on the cores its requester ran on (off the timing core while a performance gate measures).
    """

    def __init__(self, limits: Limits, enabled: bool = True) -> None:
        self.limits = limits
        self.enabled = enabled
        self._lock = threading.Lock()
        self._spares: deque[Future[Contestant]] = deque()  # oldest first
        self._starter: ThreadPoolExecutor | None = None
        self._closed = False
        # Modules spares import while they wait, from the next spare on: the performance gate sets torch._dynamo,
        # which its timing contestant loads before the snapshot anyway (harness/worker/perf.py), about 1.4 s.
        self.preload: tuple[str, ...] = ()
        # Spares kept started. The performance gate takes two contestants per module (the timing one and the clean
        # worker) a few seconds apart, so it keeps two: with one, the next module's timing contestant would wait
        # for a spare started only when the clean worker took the last one.
        self.depth = 1

    def take(self, label: str) -> Contestant:
        """A started contestant for `label` (the oldest spare when there is a live one, else a new one), and the
        spares refilled."""
        with self._lock:
            pending = self._spares.popleft() if self._spares else None
        spare = _result(pending)
        if spare is not None and not spare.alive:
            spare.close()
            spare = None
        if spare is None:
            spare = Contestant(self.limits, label)
            spare.start()
        spare.claim(label)
        if self.enabled:
            self._refill(_cores())
        return spare

    def _refill(self, cores: set[int] | None) -> None:
        with self._lock:
            if self._closed:
                return
            if self._starter is None:
                self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-spares")
            while len(self._spares) < self.depth:
                self._spares.append(self._starter.submit(self._start, cores))

    def _start(self, cores: set[int] | None) -> Contestant:
        if cores is not None:
            os.sched_setaffinity(0, cores)  # this thread's cores, which the child inherits from its first instant
        ahead = Contestant(self.limits, "spare", self.preload)
        ahead.start()
        return ahead

    def close(self) -> None:
        """Kill the spares, if any; no more are started."""
        with self._lock:
            pending, self._closed = list(self._spares), True
            self._spares.clear()
            starter, self._starter = self._starter, None
        for future in pending:
            spare = _result(future)
            if spare is not None:
                spare.close()
        if starter is not None:
            starter.shutdown(wait=True)


def _result(pending: Future[Contestant] | None) -> Contestant | None:
    """The started spare, or None when there is none or it could not be started."""
    if pending is None:
        return None
    try:
        return pending.result()
    except OSError:
        return None


def _cores() -> set[int] | None:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
