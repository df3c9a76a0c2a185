"""`harness list`: what each module registers, learned by importing it in a contestant, never in the judge."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.core.contract import ModuleSource, ModuleSpec
from harness.judge.integrity import Guard
from harness.judge.isolation import module_roots
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import LoadFailed, Session
from harness.protocol.errors import ContestantDied
from harness.registry.sources import duplicate_message, duplicate_names

IMPORT_TIMEOUT_S = 60.0  # one module's import; listing must not wait a whole gate's timeout for a hang


@dataclass(frozen=True)
class CatalogEntry:
    """One module as listed: its spec, or why it could not be registered."""

    source: ModuleSource
    spec: ModuleSpec | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": self.source.name,
            "kind": spec.kind if spec else self.source.kind,
            "variant": list(spec.variants) if spec else [],
            "exact": spec.exact if spec else None,
            "approximate": (not spec.exact) if spec else None,
            "bound": spec.bound.as_dict() if spec and spec.bound else None,
            "source": spec.source if spec else self.source.where,
            "error": self.error,
        }


def catalog(sources: list[ModuleSource], limits: Limits) -> list[CatalogEntry]:
    """Load every source in one contestant; a module that kills it is listed with the reason and skipped."""
    limits = limits.with_isolation(module_roots(s.path for s in sources))
    duplicates = duplicate_names(sources)
    entries: list[CatalogEntry] = []
    pending = [s for s in sources if s.name not in duplicates]
    for name, group in duplicates.items():
        message = duplicate_message(name, [s.where for s in group])
        entries += [CatalogEntry(s, None, message) for s in group]
    guard = Guard()
    while pending:
        with Contestant(limits, "catalog") as contestant:
            session = Session(contestant)
            while pending:
                source = pending.pop(0)
                contestant.deadline = time.monotonic() + min(limits.timeout_s, IMPORT_TIMEOUT_S)
                try:
                    entries.append(CatalogEntry(source, session.load_only(source), None))
                except LoadFailed as exc:
                    entries.append(CatalogEntry(source, None, str(exc)))
                except ContestantDied as died:
                    entries.append(CatalogEntry(source, None, f"{died.verdict}: {died.reason}"))
                    break  # this contestant is gone; the rest go to a fresh one
        guard.verify("catalog")  # HarnessTampered: a listed module changed the judge's files
    order = {s.name: i for i, s in enumerate(sources)}
    return sorted(entries, key=lambda e: (e.spec.kind if e.spec else e.source.kind or "", order[e.source.name]))
