"""The judge's own files, hashed before the run and after every contestant: a contestant that changed the harness,
a kind's contract or a startup hook of the Python environment is caught even where the isolation
(harness/judge/isolation.py) could not stop the write, and the run stops instead of judging on with modified code.

Hashed: every file of the installed harness package (sources and compiled bytecode; the judge writes no bytecode
during a run, so a new or changed .pyc is someone else's), and every startup hook of the environment: `.pth` files,
`sitecustomize` and `usercustomize`, and the top-level modules beside them (an editable install's finder).
"""

from __future__ import annotations

import hashlib
import site
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.protocol.errors import ContestantDied
from harness.results.records import Verdict

PACKAGE = Path(__file__).resolve().parents[1]  # the harness package this judge runs from

HOOK_SUFFIXES = (".pth", ".py")


class HarnessTampered(ContestantDied):
    """A contestant changed the judge's files: its verdict is `tampered`, and the run stops."""

    def __init__(self, reason: str) -> None:
        super().__init__(Verdict.TAMPERED, reason)


@dataclass(frozen=True)
class Integrity:
    """Hashes of the judge's files at one moment."""

    hashes: dict[str, str]

    @classmethod
    def take(cls) -> Integrity:
        return cls({str(path): _sha256(path) for path in watched()})

    def changes(self, later: Integrity) -> list[str]:
        """What differs from `later`: 'changed X', 'added X', 'removed X', sorted by path."""
        found = [f"changed {p}" for p in self.hashes if p in later.hashes and later.hashes[p] != self.hashes[p]]
        found += [f"removed {p}" for p in self.hashes if p not in later.hashes]
        found += [f"added {p}" for p in later.hashes if p not in self.hashes]
        return sorted(found, key=lambda line: line.split(" ", 1)[1])


def watched() -> Iterator[Path]:
    """Every file the integrity check hashes."""
    package = PACKAGE
    yield from sorted(p for p in package.rglob("*") if p.is_file())
    for directory in startup_dirs():
        yield from sorted(p for p in directory.iterdir() if p.is_file() and _is_hook(p))


def startup_dirs() -> list[Path]:
    """The directories whose hooks run at every interpreter start: site-packages (system and user)."""
    found = [*site.getsitepackages(), site.getusersitepackages()]
    found += [p for p in sys.path if p.endswith("site-packages")]
    return [Path(p) for p in dict.fromkeys(found) if Path(p).is_dir()]


def _is_hook(path: Path) -> bool:
    return path.suffix in HOOK_SUFFIXES or path.stem in ("sitecustomize", "usercustomize")


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


class Guard:
    """The run's integrity baseline; `verify` after each contestant raises HarnessTampered on any change."""

    def __init__(self) -> None:
        sys.dont_write_bytecode = True  # the judge's own lazy imports must not look like a contestant's write
        self.baseline = Integrity.take()
        self.stopped: str | None = None

    def verify(self, label: str) -> None:
        """Compare the judge's files with the baseline; a change stops the run and names the files."""
        changes = self.baseline.changes(Integrity.take())
        if not changes:
            return
        shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        self.stopped = (
            f"the judge's own files changed while contestant {label!r} ran ({shown}): the run stopped, because "
            "every later verdict would come from modified code. Fix: restore the harness (git checkout -- harness/ "
            "or reinstall it) and the environment's startup hooks, and remove the module that wrote them"
        )
        raise HarnessTampered(self.stopped)
