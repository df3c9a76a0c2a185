"""The versioned results document: built as modules finish, written atomically, validated by a JSON Schema."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.results.records import MODULE_VERDICTS, ModuleResult

SCHEMA_VERSION = "1.6.0"  # 1.1: integration gate, gate verdict "skipped"; 1.2: perf gate, summary, tampered/suspect;
# 1.3: trusted-judge runs (config.modules_from, modules_commit, authoritative, authority_note)
# 1.4: sharded runs merged by `harness merge` (config.shards); environment.isolation (contestant isolation in use)
# 1.5: module.reused (a verdict reused from an earlier run with the same file, harness, torch, device and settings);
# config.cases (a run limited to some cases by --case/--dtype)
# 1.6: config.config_file (--config) and config.entry_points (false with --no-entry-points), for reproduce commands
SCHEMA_ID = "harness/schema/results.schema.json"


def load_schema() -> dict[str, Any]:
    text = resources.files("harness").joinpath("schema/results.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `document` does not match the shipped schema."""
    jsonschema.validate(document, load_schema())


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultsDocument:
    """results.json for one run, rewritten after every module so a crash of the judge loses nothing."""

    def __init__(self, environment: dict[str, Any], config: dict[str, Any], out_dir: Path | None) -> None:
        self.environment = environment
        self.config = config
        self.out_dir = out_dir
        self.modules: list[ModuleResult] = []

    def add(self, result: ModuleResult) -> None:
        """Add a result; a result reported again (after its perf gate) keeps its place, rewritten."""
        if not any(m is result for m in self.modules):
            self.modules.append(result)
        if self.out_dir is not None:
            write_atomic(self.out_dir / "modules" / f"{result.name}.json", result.as_dict())
            write_atomic(self.out_dir / "results.json", self.as_dict())

    def summary(self) -> dict[str, Any]:
        counts = Counter(m.verdict for m in self.modules)
        return {"total": len(self.modules), **{str(verdict): counts.get(verdict, 0) for verdict in MODULE_VERDICTS}}

    def as_dict(self) -> dict[str, Any]:
        return {
            "$schema": SCHEMA_ID,
            "schema_version": SCHEMA_VERSION,
            "environment": self.environment,
            "config": self.config,
            "summary": self.summary(),
            "modules": [m.as_dict() for m in self.modules],
        }
