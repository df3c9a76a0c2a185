"""Sharding a run over CI machines: `plan` spreads modules over shards by estimated cost, `merge` combines the
shards' results documents into the one document a single machine would have written.

Plan. A module's cost is the sum over the gates to run of its median seconds in that gate over its latest
`LATEST_RUNS` runs in the results store on the same device kind (`gates.seconds`, which add up to the module's
`modules.seconds`); a gate the store has no figure for costs `DEFAULT_SECONDS` of the module's kind. Modules go to
shards longest first, each to the shard with the least estimated time so far (LPT; ties by name, then by shard).

Merge. Shards must have been judged by one harness with one set of options: every field of `environment` and
`config` must agree except those describing each shard's own machine and start (`PER_SHARD_ENVIRONMENT`,
`PER_SHARD_CONFIG`), and no module may appear in two shards. The merged document lists the modules in the order a
single run gives them, recomputes the summary, and records each shard in `config.shards`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import jsonschema

from harness.results.document import SCHEMA_ID, SCHEMA_VERSION, validate, write_atomic
from harness.results.records import MODULE_VERDICTS
from harness.store import DocumentRejected, StoreError, connect, read_document
from harness.store.ingest import TooDeep, load_json

NAME = re.compile(r"[a-z_][a-z0-9_]{0,99}")  # a module name: a lower_snake_case identifier, at most 100 characters
MAX_CHANGES_BYTES = 2**20  # a `harness changed --json` document is a few kB; a larger file is refused unread
LATEST_RUNS = 5  # a module's cost in a gate: the median of its seconds over this many latest stored runs
MAX_SHARDS = 256  # GitHub Actions runs at most 256 jobs per matrix (docs: "Running variations of jobs in a workflow")

# Seconds one module spends in each gate, by kind: the median over the shipped modules of that kind in
# tests/fixtures/results/shipped-modules.json (2-core build machine, torch 2.13.0 CPU, 1 torch thread, --jobs 2).
# "*" (median over every shipped module) is for a module whose kind is unknown (an entry point, a policy).
DEFAULT_SECONDS: dict[str, dict[str, float]] = {
    "activation": {"unit": 3.1, "integration": 40.6, "perf": 27.4},
    "attention": {"unit": 4.5, "integration": 16.3, "perf": 30.1},
    "norm": {"unit": 2.5, "integration": 16.5, "perf": 25.6},
    "quantization": {"unit": 3.2, "integration": 4.1, "perf": 29.6},
    "*": {"unit": 3.4, "integration": 16.3, "perf": 27.9},
}

# Fields that describe one shard's machine, start and input seed rather than what was judged and how; they may
# differ between shards. The merged document keeps the first shard's (the earliest date, git_dirty if any shard
# was dirty) and lists every shard's own in config.shards.
PER_SHARD_ENVIRONMENT = ("date", "git_dirty", "platform", "cpu_model", "cpu_count", "seed")
PER_SHARD_CONFIG = ("modules_dir", "modules_from", "config_file")  # where the files lay on each machine
SEEDS_DIFFER = "the seed differs by shard (each one's is in config.shards.runs); this is the first shard's"


class PlanError(Exception):
    """The modules to plan cannot be read or named; the message says which input and what to do."""


class MergeError(Exception):
    """Shard results that cannot be merged; the message names the file, the field and what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Plan


@dataclass(frozen=True)
class Shard:
    """One machine's share of a run: its modules and their estimated seconds."""

    index: int  # 1-based
    of: int
    modules: tuple[str, ...]
    estimated_s: float

    def as_matrix_entry(self) -> dict[str, Any]:
        """One entry of a GitHub Actions matrix's `include` list."""
        return {"shard": self.index, "of": self.of, "modules": " ".join(self.modules), "estimated_s": self.estimated_s}


@dataclass(frozen=True)
class Plan:
    """Shards, each module's estimated seconds, and which estimates came from the store."""

    shards: list[Shard]
    costs: dict[str, float]
    from_store: frozenset[str] = field(default_factory=frozenset)

    def matrix(self) -> dict[str, Any]:
        """The GitHub Actions matrix: `{"include": [...]}`, empty when there is nothing to judge."""
        return {"include": [s.as_matrix_entry() for s in self.shards]}


def check_names(names: Iterable[str], where: str) -> list[str]:
    """`names` without repeats, each checked to be a module name; untrusted text (file names of a pull request)."""
    checked: list[str] = []
    for name in names:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            shown = repr(name[:60]) + ("..." if len(name) > 60 else "") if isinstance(name, str) else repr(name)[:60]
            raise PlanError(
                f"{where}: {shown} is not a module name. Expected a lower_snake_case Python identifier (a-z, 0-9 "
                "and _, not starting with a digit, at most 100 characters). Fix: rename the module file and its class."
            )
        if name not in checked:
            checked.append(name)
    return checked


def names_from_changes(path: Path) -> list[str]:
    """The `judge` list of a `harness changed --json` document, every name checked."""
    fix = "Fix: pass the file `harness changed --base REF --json` wrote."
    try:
        if path.stat().st_size > MAX_CHANGES_BYTES:
            raise PlanError(f"{path}: larger than {MAX_CHANGES_BYTES:,} bytes, not a `harness changed` document. {fix}")
        document = load_json(path.read_bytes())
    except OSError as exc:
        raise PlanError(f"{path}: cannot be read ({exc.strerror}). {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PlanError(f"{path}: not valid JSON. {fix}") from None
    except TooDeep as exc:
        raise PlanError(f"{path}: {exc}, not a `harness changed` document. {fix}") from None
    judge = document.get("judge") if isinstance(document, dict) else None
    if not isinstance(judge, list):
        raise PlanError(f'{path}: expected a JSON object with a "judge" list of module names; found none. {fix}')
    return check_names(judge, f"{path} (judge list)")


def default_seconds(kind: str | None, gate: str) -> float:
    """A module's seconds in `gate` when the store has no figure: its kind's shipped median."""
    table = DEFAULT_SECONDS.get(kind or "*", DEFAULT_SECONDS["*"])
    return table.get(gate, max(table.values()))


def stored_seconds(
    store: Path, names: Iterable[str], gates: Sequence[str], device: str
) -> dict[tuple[str, str], float]:
    """(module, gate) -> median seconds over that module's latest stored runs of the gate on `device` (cpu, cuda)."""
    wanted, gate_set = set(names), set(gates)
    try:
        conn = connect(store, readonly=True)
        try:
            rows = conn.execute(
                "SELECT g.module, g.gate, g.seconds FROM gates g JOIN runs r ON r.run_id = g.run_id "
                "WHERE r.device = ? OR r.device LIKE ? ORDER BY r.date DESC, r.run_id DESC",
                (device, f"{device}:%"),
            ).fetchall()
        finally:
            conn.close()
    except (StoreError, sqlite3.DatabaseError) as exc:
        raise PlanError(f"{store}: cannot read past runs ({exc}). Fix: pass another --store, or none.") from None
    latest: dict[tuple[str, str], list[float]] = {}
    for module, gate, seconds in rows:
        if module in wanted and gate in gate_set and len(latest.setdefault((module, gate), [])) < LATEST_RUNS:
            latest[(module, gate)].append(float(seconds))
    return {key: statistics.median(values) for key, values in latest.items()}


def spread(costs: Mapping[str, float], shards: int) -> list[Shard]:
    """Longest-processing-time-first: each module, costliest first (ties by name), to the least loaded shard."""
    if not 1 <= shards <= MAX_SHARDS:
        raise PlanError(
            f"--shards {shards}: expected 1 to {MAX_SHARDS} shards (a GitHub Actions matrix runs at most "
            f"{MAX_SHARDS} jobs). Fix: pass a --shards in that range."
        )
    count = min(shards, len(costs))
    loads = [0.0] * count
    members: list[list[str]] = [[] for _ in range(count)]
    for name in sorted(costs, key=lambda n: (-costs[n], n)):
        target = min(range(count), key=lambda i: (loads[i], i))
        loads[target] += costs[name]
        members[target].append(name)
    return [Shard(i + 1, count, tuple(sorted(members[i])), round(loads[i], 1)) for i in range(count)]


def plan(
    names: Sequence[str],
    shards: int,
    *,
    kinds: Mapping[str, str | None],
    gates: Sequence[str],
    store: Path | None = None,
    device: str = "cpu",
) -> Plan:
    """The shards for `names` (checked names; `kinds` by name where known), costed from `store` when it exists."""
    stored = stored_seconds(store, names, gates, device) if store is not None and store.is_file() else {}
    costs = {
        name: round(sum(stored.get((name, g), default_seconds(kinds.get(name), g)) for g in gates), 1) for name in names
    }
    from_store = frozenset(name for name, _gate in stored)
    return Plan(spread(costs, shards), costs, from_store)


# ---------------------------------------------------------------------------------------------------------------
# Merge


@dataclass(frozen=True)
class ShardResults:
    """One shard's validated results document and the file it came from."""

    path: Path
    document: dict[str, Any]

    @property
    def environment(self) -> dict[str, Any]:
        return dict(self.document["environment"])

    @property
    def modules(self) -> list[dict[str, Any]]:
        return list(self.document["modules"])


def read_shards(dirs: Sequence[Path]) -> list[ShardResults]:
    """DIR/results.json of every shard, each parsed and checked against the results schema."""
    if not dirs:
        raise MergeError("no shard directories given. Fix: pass the directory of every shard's --out.")
    shards = []
    for folder in dirs:
        path = folder / "results.json"
        try:
            document, _sha = read_document(path)
        except DocumentRejected as exc:
            raise MergeError(f"not a shard's results ({exc}). Did the shard's job finish and upload {path}?") from None
        if "shards" in document["config"]:
            raise MergeError(f"{path}: already a merge of shards. Fix: merge the shards' own results.json files.")
        shards.append(ShardResults(path, document))
    return shards


_ABSENT = "(absent)"


def _canonical(part: Mapping[str, Any], key: str) -> str:
    """A field's value as comparable text: JSON with sorted keys, or `_ABSENT`."""
    return json.dumps(part[key], sort_keys=True) if key in part else _ABSENT


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _agree(shards: Sequence[ShardResults], section: str | None, per_shard: Iterable[str]) -> None:
    """Every field of `section` (None: the top level) equal in all shards, except the `per_shard` ones."""
    parts = [s.document if section is None else s.document[section] for s in shards]
    keys = sorted(set().union(*(p.keys() for p in parts)) - set(per_shard))
    for key in keys:
        first = _canonical(parts[0], key)
        for shard, part in zip(shards[1:], parts[1:], strict=True):
            value = _canonical(part, key)
            if value != first:
                where = f"{section}.{key}" if section else key
                raise MergeError(
                    f"{where} differs: {_shown(first)} in {shards[0].path}, {_shown(value)} in {shard.path}. "
                    "Expected every shard judged by the same harness, torch and options (only each machine's own "
                    f"{', '.join(PER_SHARD_ENVIRONMENT + PER_SHARD_CONFIG)} may differ). Fix: rerun the shards from "
                    "one commit with the same `harness check` options, then merge them."
                )


def check_compatible(shards: Sequence[ShardResults]) -> None:
    """Same schema version, environment and config in every shard (but each machine's own), disjoint modules."""
    _agree(shards, None, ("environment", "config", "summary", "modules"))
    _agree(shards, "environment", PER_SHARD_ENVIRONMENT)
    _agree(shards, "config", PER_SHARD_CONFIG)
    seen: dict[str, Path] = {}
    for shard in shards:
        for name in sorted({m["name"] for m in shard.modules}):
            if name in seen:
                raise MergeError(
                    f"module {name!r} is in two shards: {seen[name]} and {shard.path}. Expected each module judged "
                    "in exactly one shard, as `harness plan` spreads them. Fix: merge the shards of one plan only."
                )
            seen[name] = shard.path


def run_order(module: Mapping[str, Any]) -> tuple[int, str, str]:
    """A single run's order (`judge_all`): module files by kind directory, then name; then the rest by name."""
    source = PurePath(str(module["source"]))
    if source.suffix == ".py":
        return (0, source.parent.name, str(module["name"]))
    return (1, "", str(module["name"]))


def summary(modules: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Module counts by verdict, as `ResultsDocument.summary` writes them."""
    counts = Counter(str(m["verdict"]) for m in modules)
    return {"total": len(modules), **{str(v): counts.get(str(v), 0) for v in MODULE_VERDICTS}}


def _environment(shards: Sequence[ShardResults]) -> dict[str, Any]:
    """The first shard's environment, dated at the earliest shard's start; dirty if any shard's checkout was."""
    envs = [s.environment for s in shards]
    merged = dict(envs[0])
    merged["date"] = min(str(e["date"]) for e in envs)  # ISO 8601 UTC: string order is time order
    merged["git_dirty"] = any(bool(e["git_dirty"]) for e in envs)
    if len({e["seed"] for e in envs}) > 1:
        merged["seed_policy"] = f"{merged['seed_policy']}; {SEEDS_DIFFER}"
    return merged


def _provenance(shards: Sequence[ShardResults]) -> dict[str, Any]:
    """config.shards: how many shards, and each one's file, start, machine, seed and modules."""
    runs = []
    for shard in shards:
        env = shard.environment
        runs.append(
            {
                "results": str(shard.path),
                "date": env["date"],
                "cpu_model": env["cpu_model"],
                "cpu_count": env["cpu_count"],
                "platform": env.get("platform", ""),
                "seed": env["seed"],
                "modules": sorted({m["name"] for m in shard.modules}),
            }
        )
    return {"count": len(shards), "runs": runs}


def merged_document(shards: Sequence[ShardResults]) -> dict[str, Any]:
    """One results document holding every shard's modules, as a single run over all of them writes it."""
    check_compatible(shards)
    modules = sorted((m for s in shards for m in s.modules), key=run_order)
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "environment": _environment(shards),
        "config": {**shards[0].document["config"], "shards": _provenance(shards)},
        "summary": summary(modules),
        "modules": modules,
    }


def merge(dirs: Sequence[Path], out: Path) -> dict[str, Any]:
    """Merge DIR/results.json of every shard into OUT/results.json and OUT/modules/<name>.json; returns the document."""
    if out.resolve() in {d.resolve() for d in dirs}:
        raise MergeError(f"--out {out} is one of the shards. Fix: write the merged results to a directory of its own.")
    document = merged_document(read_shards(dirs))
    try:
        validate(document)
    except jsonschema.ValidationError as exc:
        raise MergeError(f"the merged document does not match the results schema: {exc.message[:300]}") from None
    for module in document["modules"]:  # names match the schema's ^[a-z_][a-z0-9_]*$: safe as file names
        write_atomic(out / "modules" / f"{module['name']}.json", module)
    write_atomic(out / "results.json", document)
    return document
