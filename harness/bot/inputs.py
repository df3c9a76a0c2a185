"""The results directory the bot reads: results.json (required), changes.json and gpu/results.json (optional).

Every file is untrusted input (an artifact of a pull request's job): each is size-capped, parsed, and checked against
its shape before anything is rendered; a file that does not fit raises `ResultsUnusable` naming the file, the JSON
path, what was expected and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from harness.results.document import load_schema
from harness.store.ingest import MAX_DOCUMENT_BYTES, TooDeep, load_json

RESULTS = "results.json"
CHANGES = "changes.json"
GPU_RESULTS = "gpu/results.json"
MAX_BYTES = MAX_DOCUMENT_BYTES  # larger than any honest run: the store's ingest refuses the same
_CHANGE_LISTS = ("added", "modified", "removed")
_MODULE_FIELDS = ("name", "kind", "path")
_FIX_RESULTS = "Fix: pass the directory `harness check --out DIR` or `harness run --out DIR` wrote, unchanged."
_FIX_CHANGES = "Fix: write it with `harness changed --base REF --json`, or leave it out."


class ResultsUnusable(Exception):
    """A file of the results directory is missing, unreadable, or not what the bot can render."""


@dataclass(frozen=True)
class ChangedFile:
    """One module file a change touches, as changes.json lists it (every field untrusted)."""

    name: str
    kind: str
    path: str


@dataclass(frozen=True)
class ChangeSet:
    """changes.json: what the change adds, modifies and removes, and whether it touches the harness."""

    added: tuple[ChangedFile, ...]
    modified: tuple[ChangedFile, ...]
    removed: tuple[ChangedFile, ...]
    harness_changed: bool
    judge: tuple[str, ...] = ()  # the module names the change asks to judge


@dataclass(frozen=True)
class Inputs:
    """Everything read from a results directory, checked."""

    results: dict[str, Any] | None  # schema-valid results document; None when changes.json left nothing to judge
    changes: ChangeSet | None
    gpu: dict[str, Any] | None  # schema-valid results document whose config.device is cuda


def load_inputs(results_dir: Path) -> Inputs:
    """Read and check the results directory's files; ResultsUnusable names the first problem."""
    results_path = results_dir / RESULTS
    gpu_path = results_dir / GPU_RESULTS
    changes_path = results_dir / CHANGES
    changes = _changes(changes_path) if changes_path.is_file() else None
    if not results_path.is_file():
        if changes is not None and not changes.judge:  # a change that adds or modifies no module: nothing ran
            return Inputs(None, changes, None)
        raise ResultsUnusable(f"{results_path}: not found; expected a results document there. {_FIX_RESULTS}")
    gpu = _results_document(gpu_path) if gpu_path.is_file() else None
    if gpu is not None and gpu["config"]["device"] != "cuda":
        raise ResultsUnusable(
            f"{gpu_path}: $.config.device: expected 'cuda' (the GPU gates' results), found "
            f"{gpu['config']['device']!r}. Fix: put only a --device cuda run's results.json there."
        )
    return Inputs(_results_document(results_path), changes, gpu)


def _read_json(path: Path, fix: str) -> Any:
    """The parsed JSON at `path`, refused when too large, unreadable or not JSON."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ResultsUnusable(f"{path}: $: more than {MAX_BYTES:,} bytes, larger than any run writes. {fix}")
        return load_json(path.read_bytes())
    except TooDeep as exc:
        raise ResultsUnusable(f"{path}: {exc}. {fix}") from None
    except OSError as exc:
        raise ResultsUnusable(f"{path}: cannot be read ({exc.strerror}). {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsUnusable(
            f"{path}: $: not valid JSON ({exc.__class__.__name__}; a truncated file?). {fix}"
        ) from None


def _results_document(path: Path) -> dict[str, Any]:
    """A results document valid against harness/schema/results.schema.json."""
    document = _read_json(path, _FIX_RESULTS)
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise ResultsUnusable(
            f"{path}: {error.json_path}: {error.message[:300]}; expected a results document as "
            f"harness/schema/results.schema.json describes it. {_FIX_RESULTS}"
        )
    assert isinstance(document, dict)  # the schema's top-level type is object
    return document


def _changes(path: Path) -> ChangeSet:
    """changes.json as `harness changed --json` writes it (harness/judge/changes.py `Changes.as_dict`)."""
    data = _read_json(path, _FIX_CHANGES)
    if not isinstance(data, dict):
        raise _bad_change(path, "$", "an object", data)
    lists = {key: _changed_files(path, key, data.get(key, [])) for key in _CHANGE_LISTS}
    harness_changed = data.get("harness_changed", False)
    if not isinstance(harness_changed, bool):
        raise _bad_change(path, "$.harness_changed", "true or false", harness_changed)
    judge = data.get("judge", [])
    if not isinstance(judge, list) or not all(isinstance(name, str) for name in judge):
        raise _bad_change(path, "$.judge", "a list of module names", judge)
    return ChangeSet(lists["added"], lists["modified"], lists["removed"], harness_changed, tuple(judge))


def _changed_files(path: Path, key: str, items: Any) -> tuple[ChangedFile, ...]:
    if not isinstance(items, list):
        raise _bad_change(path, f"$.{key}", "a list", items)
    files = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not all(isinstance(item.get(f), str) for f in _MODULE_FIELDS):
            raise _bad_change(path, f"$.{key}[{index}]", "an object with string name, kind and path", item)
        files.append(ChangedFile(item["name"], item["kind"], item["path"]))
    return tuple(files)


def _bad_change(path: Path, where: str, expected: str, found: Any) -> ResultsUnusable:
    shown = json.dumps(found, default=str)[:80]
    return ResultsUnusable(f"{path}: {where}: expected {expected}, found {shown}. {_FIX_CHANGES}")
