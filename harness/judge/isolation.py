"""How contestants are isolated on this machine, decided once per run from what the kernel and the user allow.

The contestant runs untrusted code, so it must not change the judge's files (the harness, the Python
environment, the checkout, the results, the store), read or trace the judge's memory, or signal other
processes of the run. Mechanisms, each used when available (no daemon, nothing to install):

- Landlock (Linux 5.13+): an allow-list of what the contestant may read (the interpreter, its imports, the
  harness and the modules being judged) and write (its private directory); no TCP; on ABI 6+, no signals and no
  abstract sockets beyond its own processes. The results directory and the store are not even readable.
- A different user (65534, "nobody") when the judge runs as root and the interpreter is readable by others.
- No capabilities and no_new_privs for a contestant of a root judge; the judge itself is made non-dumpable, so
  reading /proc/<judge>/mem or tracing it needs CAP_SYS_PTRACE, which no contestant holds.
- RLIMIT_FSIZE on everything the contestant writes.

Whatever is in use, harness/judge/integrity.py re-hashes the harness and the startup hooks after every contestant.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core import linux
from harness.core.isolation import Confinement

PACKAGE = Path(__file__).resolve().parents[1]  # the harness package this judge runs from

NOBODY = (65534, 65534)
FILE_SIZE_MB = 64  # largest file a contestant may write: its captured output, or anything in its directory
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys", "/dev", "/opt")
# Of /proc, a contestant reads its own entries (added by the contestant, which knows its pid) and these: other
# processes of the run stay out of its sight (no listing, no command lines, no status).
PROC_READ = ("/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/sys", "/proc/filesystems", "/proc/mounts")
WRITE_FILES = ("/dev/null",)
MODES = ("auto", "off")


@dataclass(frozen=True)
class Isolation:
    """The run's isolation: what every contestant gets, and how the results describe it."""

    mode: str = "auto"  # "auto": everything this machine allows; "off": nothing (tests of the integrity check)
    landlock_abi: int = 0
    user: tuple[int, int] | None = None
    drop_capabilities: bool = False
    read: tuple[str, ...] = ()  # besides the contestant's own directory
    notes: tuple[str, ...] = field(default_factory=tuple)

    def confinement(self, home: str) -> Confinement:
        """The Confinement of one contestant whose private directory is `home`."""
        if self.mode == "off":
            return Confinement()
        return Confinement(
            landlock_abi=self.landlock_abi,
            read=(*self.read, *PROC_READ, home) if self.landlock_abi else (),
            own_proc=bool(self.landlock_abi),
            write=(home,) if self.landlock_abi else (),
            write_files=WRITE_FILES if self.landlock_abi else (),
            user=self.user,
            drop_capabilities=self.drop_capabilities,
            file_size_mb=FILE_SIZE_MB,
        )

    def mechanisms(self) -> list[str]:
        if self.mode == "off":
            return []
        found = [f"landlock-abi-{self.landlock_abi}"] if self.landlock_abi else []
        found += [f"user-{self.user[0]}"] if self.user else []
        found += ["no-capabilities"] if self.drop_capabilities else []
        return [*found, "no-new-privs", f"fsize-{FILE_SIZE_MB}MiB", "judge-not-dumpable", "integrity-hashes"]

    def as_dict(self) -> dict[str, Any]:
        """The results' environment record of the isolation in use."""
        return {"mode": self.mode, "mechanisms": self.mechanisms(), "notes": list(self.notes)}


def decide(mode: str = "auto", module_roots: tuple[Path, ...] = ()) -> Isolation:
    """The strongest isolation available here; `module_roots` are the directories the judged modules live in."""
    if mode == "off":
        return Isolation(mode="off", notes=("isolation switched off: contestants run as the judge's user",))
    notes: list[str] = []
    read = read_roots(module_roots)
    abi = linux.landlock_abi()
    if not abi:
        notes.append("Landlock unavailable (kernel without it): file access relies on the user and the hashes")
    root = os.geteuid() == 0
    user = None
    if root:
        blocked = [p for p in _needed(module_roots) if not readable_by_others(p)]
        if blocked:
            notes.append(f"contestants keep uid 0 without capabilities: {blocked[0]} is not readable by other users")
        else:
            user = NOBODY
    return Isolation("auto", abi, user, root, read, tuple(notes))


def read_roots(module_roots: tuple[Path, ...]) -> tuple[str, ...]:
    """What a contestant may read: the system, the interpreter and its imports, the harness, the modules."""
    found = [*SYSTEM_READ, *(str(p) for p in _needed(module_roots))]
    found += [p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)]
    return tuple(dict.fromkeys(str(Path(p).resolve()) for p in found if os.path.exists(p)))


def _needed(module_roots: tuple[Path, ...]) -> list[Path]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    package = PACKAGE
    return [*(Path(p) for p in sorted(prefixes)), package, *(Path(r).resolve() for r in module_roots)]


def readable_by_others(path: Path) -> bool:
    """Every directory from / down to `path` is searchable, and `path` readable, by a user of no group."""
    path = path.resolve()
    for parent in [*reversed(path.parents), path]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


def module_roots(paths: Iterable[Path | None]) -> tuple[Path, ...]:
    """The modules directories (the parents of the kind directories) the given module files live in."""
    return tuple(sorted({p.resolve().parent.parent for p in paths if p is not None}))


def protect_judge() -> None:
    """Make the judge non-dumpable: its memory and tracing then need CAP_SYS_PTRACE, which contestants lack."""
    if sys.platform.startswith("linux"):
        linux.set_dumpable(False)
