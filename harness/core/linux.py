"""The few Linux system calls the contestant's isolation uses, through ctypes: Landlock, prctl, capabilities.

Landlock (https://docs.kernel.org/userspace-api/landlock.html) lets an unprivileged process restrict its own
file-system access, TCP ports, signals and abstract sockets, for itself and every process it starts, with no
daemon; its system calls have the same numbers on every architecture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1

# File-system rights, by the Landlock ABI version that introduced them.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
FS_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # rights a file (not dir) takes

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class LinuxError(OSError):
    """A system call the isolation relies on failed; the message names the call."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(result: int, call: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise LinuxError(errno, f"{call}: {os.strerror(errno)}")
    return result


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when it has none (or it is disabled, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = int(
        _libc().syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    )
    return max(version, 0)


def fs_rights(abi: int) -> int:
    """Every file-system right the given ABI knows."""
    return FS_BY_ABI.get(abi, (1 << 16) - 1)


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def landlock_ruleset(abi: int, handled_fs: int, handled_net: int, scoped: int) -> int:
    """A new ruleset's file descriptor; the attribute is cut to the fields this ABI knows."""
    attr = _RulesetAttr(handled_fs, handled_net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    fd = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    return _check(int(fd), "landlock_create_ruleset")


def landlock_allow(ruleset: int, path: str, access: int) -> None:
    """Allow `access` beneath `path` (a directory) or on it (a file: only file rights apply)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rights = access if os.path.isdir(path) else access & FS_FILE_RIGHTS
        attr = _PathBeneathAttr(rights, fd)
        result = _libc().syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(attr), 0)
        _check(int(result), f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def landlock_restrict_self(ruleset: int) -> None:
    _check(int(_libc().syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)), "landlock_restrict_self")


def prctl(option: int, arg: int = 0) -> int:
    return _check(int(_libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0)), f"prctl({option})")


def no_new_privs() -> None:
    """Neither this process nor anything it starts can gain privileges (setuid binaries, file capabilities)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def become_subreaper() -> None:
    """Orphaned descendants re-parent to this process instead of init (PR_SET_CHILD_SUBREAPER)."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_dumpable(on: bool) -> None:
    """A non-dumpable process's memory (/proc/PID/mem) and tracing need CAP_SYS_PTRACE, even for its own user."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def is_dumpable() -> bool:
    return bool(_check(int(_libc().prctl(3, 0, 0, 0, 0)), "prctl(PR_GET_DUMPABLE)"))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def drop_capabilities() -> None:
    """Drop every capability: the bounding set (so no later exec regains one), ambient, and the current sets."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(int(_libc().capset(ctypes.byref(header), data)), "capset")


def effective_capabilities() -> int:
    """This process's effective capability mask, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0
