"""Incremental re-judging: a module whose verdict cannot have changed gets its stored verdict back.

A verdict is stored under a key (sha256) of everything it depends on: the module's file, the harness's own files
(its gates, kinds and references), torch and Python, the device and the machine, and the run's settings (gates,
limits, isolation, performance settings and the kind's threshold, integration set-ups, a base version's file,
and the seed when --seed fixes it). Any change to one of them is a new key, so a stale verdict is never read.
A policy's key covers its definition and the files of the modules it names.

Only verdicts that say something about the module are stored: a run whose gates all ended pass, fail or suspect
(or were skipped). A timeout, crash, out-of-memory, error or tampered verdict is judged again next time: the
machine may have been busy, and the verdict of a run a contestant interfered with is not kept. Modules from
installed packages (entry points) are always judged: their files are not known without importing them.

Entries are read when the run starts, before any contestant exists, and written by the judge when the run ends
(never after a run that stopped); a contestant's isolation keeps it out of the cache directory in between.
`harness check/run --fresh` judges everything and replaces the stored entries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.core import paths
from harness.core.contract import ModuleSource
from harness.integration.policy import MixedPrecisionPolicy
from harness.judge.integrity import PACKAGE, Integrity
from harness.judge.sandbox import Limits
from harness.results.document import write_atomic
from harness.results.fingerprint import cpu_model
from harness.results.records import GateName, ModuleResult, Verdict

FORMAT = 1  # of a stored entry and its key; a change here invalidates every entry
DIRECTORY = paths.CACHE_DIR / "verdicts"
DIRECTORY_ENV = "HARNESS_VERDICTS"  # overrides DIRECTORY; "off" turns reuse off (the test suite)
KEPT = (Verdict.PASS, Verdict.FAIL, Verdict.SUSPECT)  # module and gate verdicts worth reusing (and skipped gates)


@dataclass(frozen=True)
class Provenance:
    """Where stored verdicts come from: the run that judged them."""

    date: str  # when that run started (ISO 8601)
    commit: str  # git commit of the judged tree
    seed: str  # the run's seed, disclosed after it ("secret" runs included)


@dataclass(frozen=True)
class Reuse:
    """How a run uses stored verdicts (RunOptions.reuse; None: neither read nor written)."""

    lookup: bool  # False with --fresh: judge everything, store the new verdicts
    provenance: Provenance  # what entries written by this run say about it
    fixed_seed: int | None  # the seed when --seed fixed it (part of the key); None for a secret seed
    directory: Path = DIRECTORY


def verdict_directory() -> Path | None:
    """$HARNESS_VERDICTS, or ~/.cache/module-harness/verdicts; None when $HARNESS_VERDICTS is "off" (verdicts
    neither read nor stored: the test suite, whose runs must not depend on what an earlier run left)."""
    override = os.environ.get(DIRECTORY_ENV)
    if override == "off":
        return None
    return Path(override) if override else DIRECTORY


@dataclass(frozen=True)
class Settings:
    """Everything of a run, besides the module's own file, that a verdict depends on."""

    gates: tuple[GateName, ...]
    limits: Limits
    perf: dict[str, Any]  # PerfSettings as a dict
    thresholds: dict[str, float]  # per-kind slowdown thresholds
    integration: list[dict[str, Any]]  # TaskSetup dicts
    fixed_seed: int | None  # the seed when --seed fixed it; None for the secret seed of each run


def harness_digest(integrity: Integrity) -> str:
    """sha256 over the harness package's files (sources, schema, migrations; no bytecode), from the judge's
    integrity baseline, so the key describes exactly the files the run's judge verified."""
    package = str(PACKAGE)
    files = sorted(
        (path, digest)
        for path, digest in integrity.hashes.items()
        if path.startswith(package + os.sep) and "__pycache__" not in path
    )
    text = "\n".join(f"{Path(path).relative_to(package).as_posix()} {digest}" for path, digest in files)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
    }


def _limits(limits: Limits) -> dict[str, Any]:
    return {
        "timeout_s": limits.timeout_s,
        "memory_mb": limits.memory_mb,
        "threads": limits.threads,
        "device": limits.device,
        "isolation": limits.isolation_mode,
    }


class VerdictCache:
    """Stored verdicts on this machine, one JSON file per key under `directory`."""

    def __init__(self, settings: Settings, harness: str, directory: Path = DIRECTORY) -> None:
        self.directory = directory
        self._common = {
            "format": FORMAT,
            "harness": harness,
            "environment": _environment(),
            "gates": [str(g) for g in settings.gates],
            "limits": _limits(settings.limits),
            "perf": settings.perf,
            "integration": settings.integration,
            "seed": settings.fixed_seed,
        }
        self._thresholds = settings.thresholds

    # --- keys -----------------------------------------------------------------------------------------------

    def module_key(self, source: ModuleSource, base: ModuleSource | None) -> str | None:
        """The key of `source`'s verdict in this run, or None when it cannot be reused (no file to hash)."""
        file_hash = _file_sha256(source.path)
        if file_hash is None or source.entry_point is not None:
            return None
        base_hash = None
        if base is not None:
            base_hash = _file_sha256(base.path)
            if base_hash is None:
                return None
        material = {
            **self._common,
            "module": source.name,
            "kind": source.kind,
            "file": file_hash,
            "base": base_hash,
            "threshold": self._thresholds.get(source.kind or ""),
        }
        return _digest(material)

    def policy_key(self, policy: MixedPrecisionPolicy, sources: dict[str, ModuleSource]) -> str | None:
        """The key of a policy's verdict: its definition and the files of its modules."""
        files: dict[str, str | None] = {}
        for name in sorted(set(policy.modules)):
            source = sources.get(name)
            files[name] = None if source is None else _file_sha256(source.path)
            if files[name] is None:
                return None
        return _digest({**self._common, "policy": [policy.name, list(policy.rules)], "files": files})

    # --- entries --------------------------------------------------------------------------------------------

    def load(self, key: str) -> ModuleResult | None:
        """The stored verdict for `key`, marked as reused; None when there is none or it cannot be read."""
        path = self.directory / f"{key}.json"
        try:
            entry = json.loads(path.read_text())
            if entry.get("format") != FORMAT or entry.get("key") != key:
                return None
            result = ModuleResult.from_dict(entry["result"])
            provenance = entry["provenance"]
            result.reused = {
                "date": str(provenance["date"]),
                "commit": str(provenance["commit"]),
                "seed": str(provenance["seed"]),
                "key": key,
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return result if reusable(result) else None

    def save(self, key: str, result: ModuleResult, provenance: Provenance) -> None:
        """Store a freshly judged verdict, when it is one worth reusing."""
        if result.reused is not None or not reusable(result):
            return
        entry = {"format": FORMAT, "key": key, "provenance": dataclasses.asdict(provenance), "result": result.as_dict()}
        write_atomic(self.directory / f"{key}.json", entry)


def reusable(result: ModuleResult) -> bool:
    """A verdict about the module itself: pass, fail or suspect, every gate finished or skipped."""
    return result.verdict in KEPT and all(g.verdict in (*KEPT, Verdict.SKIPPED) for g in result.gates)


def _digest(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


__all__ = ["Provenance", "Reuse", "Settings", "VerdictCache", "harness_digest", "reusable", "verdict_directory"]
