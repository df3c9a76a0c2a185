"""What confines one contestant process: decided by the judge (harness/judge/isolation.py), carried on the
contestant's command line, applied by the contestant to itself before it imports anything untrusted
(harness/worker/confine.py). A contestant that cannot apply what it was given exits instead of running."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Confinement:
    """The restrictions one contestant applies to itself at start."""

    landlock_abi: int = 0  # Landlock ABI to use; 0: none (the kernel has none, or isolation is off)
    read: tuple[str, ...] = ()  # with Landlock: the only paths it may read and execute beneath
    write: tuple[str, ...] = ()  # with Landlock: the only paths it may write beneath (its private directory)
    write_files: tuple[str, ...] = ()  # with Landlock: single files it may write (/dev/null)
    own_proc: bool = False  # with Landlock: it may read its own /proc/<pid> (and its threads'), no other process's
    user: tuple[int, int] | None = None  # (uid, gid) to drop to when the judge runs as root; None: keep the user
    drop_capabilities: bool = False  # drop every capability (a root judge's contestant keeps none)
    file_size_mb: int = 0  # RLIMIT_FSIZE: largest file it may write, its captured output included; 0: no cap

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Confinement:
        data = json.loads(text)
        user = data["user"]
        return cls(
            landlock_abi=int(data["landlock_abi"]),
            read=tuple(data["read"]),
            write=tuple(data["write"]),
            write_files=tuple(data["write_files"]),
            own_proc=bool(data["own_proc"]),
            user=None if user is None else (int(user[0]), int(user[1])),
            drop_capabilities=bool(data["drop_capabilities"]),
            file_size_mb=int(data["file_size_mb"]),
        )
