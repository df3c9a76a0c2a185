"""The judge's side of the registry: which modules exist, found from file and entry-point names, never imported."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

from harness.core.contract import ModuleSource

ENTRY_POINT_GROUP = "harness.modules"  # outside packages register modules under this entry-point group


def module_sources(root: Path, *, entry_points: bool = True) -> list[ModuleSource]:
    """Every module the harness can judge, found from file and entry-point names without importing any."""
    found = [
        ModuleSource(name=path.stem, kind=path.parent.name, path=path.resolve())
        for path in sorted(root.glob("*/*.py"))
        if not path.name.startswith("_")
    ]
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            found.append(ModuleSource(name=ep.name, kind=None, path=None, entry_point=ep.value, distribution=dist))
    return found


def camel_case(name: str) -> str:
    """The class name a module name asks for: my_rms_norm -> MyRmsNorm."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def duplicate_names(sources: list[ModuleSource]) -> dict[str, list[ModuleSource]]:
    """Names claimed by more than one source (across kind directories or entry points)."""
    by_name: dict[str, list[ModuleSource]] = {}
    for source in sources:
        by_name.setdefault(source.name, []).append(source)
    return {name: group for name, group in by_name.items() if len(group) > 1}


def duplicate_message(name: str, wheres: Sequence[str]) -> str:
    """The one message for a name registered more than once: who claims it, what is expected, the fix."""
    return (
        f"module name {name!r} is registered more than once ({' and '.join(wheres)}). Expected each name once. "
        "Fix: rename one of the files (and its class) to a unique name."
    )
