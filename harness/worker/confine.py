"""The contestant confines itself before it imports the candidate: the restrictions the judge decided
(harness/core/isolation.py), applied in an order where each step still has the rights it needs.

1. RLIMIT_FSIZE: no file it writes (its captured output included) grows past the cap (SIGXFSZ beyond it).
2. no_new_privs: nothing it executes can gain privileges.
3. Landlock: reads and executes only beneath the interpreter, the harness, its imports and the modules being
   judged; writes only beneath its private directory; no TCP; no signals or abstract sockets beyond itself.
4. A different user, when the judge is root and the interpreter is readable by others.
5. No capabilities: not CAP_SYS_PTRACE (the judge's memory), not CAP_DAC_OVERRIDE (other users' files), none.
"""

from __future__ import annotations

import os
import resource

from harness.core import linux
from harness.core.isolation import Confinement

READ = linux.FS_EXECUTE | linux.FS_READ_FILE | linux.FS_READ_DIR


class ConfinementFailed(RuntimeError):
    """A restriction the judge asked for could not be applied; the contestant must not run the candidate."""


def confine(plan: Confinement) -> None:
    """Apply `plan` to this process (and so to everything it starts); ConfinementFailed names what failed."""
    try:
        if plan.file_size_mb > 0:
            cap = plan.file_size_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
        linux.no_new_privs()
        if plan.landlock_abi > 0:
            _landlock(plan)
        if plan.user is not None:
            uid, gid = plan.user
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        if plan.drop_capabilities:
            linux.drop_capabilities()
    except OSError as exc:
        raise ConfinementFailed(f"the contestant could not confine itself: {exc}") from exc
    if plan.drop_capabilities and linux.effective_capabilities() != 0:
        raise ConfinementFailed("the contestant still holds capabilities after dropping them")


def _landlock(plan: Confinement) -> None:
    abi = plan.landlock_abi
    handled_fs = linux.fs_rights(abi)
    handled_net = linux.NET_BIND_TCP | linux.NET_CONNECT_TCP if abi >= 4 else 0
    scoped = linux.SCOPE_SIGNAL | linux.SCOPE_ABSTRACT_UNIX_SOCKET if abi >= 6 else 0
    ruleset = linux.landlock_ruleset(abi, handled_fs, handled_net, scoped)
    try:
        for path in plan.read:
            if os.path.exists(path):
                linux.landlock_allow(ruleset, path, READ & handled_fs)
        if plan.own_proc:
            linux.landlock_allow(ruleset, f"/proc/{os.getpid()}", READ & handled_fs)
        for path in plan.write:
            linux.landlock_allow(ruleset, path, handled_fs)
        for path in plan.write_files:
            if os.path.exists(path):
                linux.landlock_allow(ruleset, path, (READ | linux.FS_WRITE_FILE | linux.FS_TRUNCATE) & handled_fs)
        linux.landlock_restrict_self(ruleset)
    finally:
        os.close(ruleset)
