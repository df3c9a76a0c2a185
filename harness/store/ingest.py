"""`harness ingest`: results documents into the store, each checked first and written in one transaction.

A document is untrusted input once it leaves the judge (it may come back from a pull request's job), so it is
parsed, size-capped and validated against the shipped schema before the store is touched: a rejected document
leaves the store exactly as it was, and the error names the file and the JSON path of the problem.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from harness.results.document import SCHEMA_VERSION, load_schema
from harness.store.db import connect, retry_busy, transaction

# 80 times the results document of every shipped module through every gate (770 kB); also `harness unpack`'s default
# limit on an artifact. A bigger file is refused before parsing.
MAX_DOCUMENT_BYTES = 64 * 2**20
# Arrays and objects inside one another: the harness writes at most 8 levels (modules, gates, cases, metrics). Deeper
# input is refused, so nothing that walks a document recursively (jsonschema, json.dumps, a renderer) can overflow.
MAX_DEPTH = 32


class DocumentRejected(Exception):
    """A results document that cannot be ingested; the message names the file, the JSON path and the problem."""


class TooDeep(Exception):
    """JSON nested deeper than MAX_DEPTH levels, or too deep for Python's parser (which raises RecursionError)."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"{where}: arrays and objects nested more than {MAX_DEPTH} levels deep, where the harness writes at most 8"
        )
        self.where = where


def load_json(raw: bytes | str, **options: Any) -> Any:
    """`json.loads(raw, **options)` for untrusted input: TooDeep instead of a RecursionError, and for any document
    nested more than MAX_DEPTH levels; the parser's own errors (JSONDecodeError, UnicodeDecodeError) pass through."""
    try:
        document = json.loads(raw, **options)
    except RecursionError:
        raise TooDeep("$") from None
    where = too_deep(document)
    if where is not None:
        raise TooDeep(where)
    return document


def too_deep(document: Any) -> str | None:
    """The JSON path of the first array or object nested more than MAX_DEPTH levels deep in `document`, or None.
    Level by level, without recursion (a check for deep input must not itself overflow), and visiting each scalar
    once in a comprehension: a few hundredths of a second for the document of every shipped module."""
    level: list[tuple[Any, int, str | int]] = [(document, -1, "")] if isinstance(document, dict | list) else []
    levels = []  # each level's arrays and objects: (value, index of its parent in the level above, key in it)
    while level:
        levels.append(level)
        if len(levels) > MAX_DEPTH:
            return _path(levels)
        level = [
            (child, parent, key)
            for parent, (value, _, _) in enumerate(level)
            for key, child in (value.items() if isinstance(value, dict) else enumerate(value))
            if isinstance(child, dict | list)
        ]
    return None


def _path(levels: list[list[tuple[Any, int, str | int]]]) -> str:
    """The JSON path of the first value of the deepest level, from its parents."""
    keys: list[str | int] = []
    index = 0
    for level in reversed(levels[1:]):
        _, index, key = level[index]
        keys.append(key)
    return "$" + "".join(f"[{k}]" if isinstance(k, int) else f".{k[:40]}" for k in reversed(keys))


@dataclass(frozen=True)
class Ingested:
    """What one document added: its run id, or the run it already was."""

    path: Path
    run_id: int
    modules: int
    cases: int
    already_stored: bool


def read_document(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed, schema-valid document at `path` and the sha256 of its bytes; DocumentRejected otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentRejected(
                f"{path}: $: {size:,} bytes, more than the {MAX_DOCUMENT_BYTES:,} a results "
                "document may have. Fix: ingest the results.json of one run."
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentRejected(
            f"{path}: cannot be read ({exc.strerror}). Fix: pass an existing results.json."
        ) from None
    try:
        document = load_json(raw)
    except TooDeep as exc:
        raise DocumentRejected(f"{path}: {exc}. Fix: ingest a results.json the harness wrote.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "its bytes"
        raise DocumentRejected(
            f"{path}: $: not valid JSON ({exc.__class__.__name__} at {where}; a truncated or "
            "partly written file?). Fix: ingest a complete results.json."
        ) from None
    _validate(path, document)
    limited = document["config"].get("cases")
    if limited:
        raise DocumentRejected(
            f"{path}: $.config.cases: the run was limited to some cases ({', '.join(limited['cases'])}) to "
            "reproduce a failure; its verdicts are not the modules' verdicts. Fix: ingest a run without --case."
        )
    return document, hashlib.sha256(raw).hexdigest()


def _validate(path: Path, document: Any) -> None:
    if isinstance(document, dict) and isinstance(document.get("schema_version"), str):
        _check_version(path, document["schema_version"])
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(load_schema()).iter_errors(document))
    if error is not None:
        raise DocumentRejected(
            f"{path}: {error.json_path}: {error.message[:300]}. Expected a results document as "
            "harness/schema/results.schema.json describes it."
        )


def _check_version(path: Path, version: str) -> None:
    """Same major version, and no newer minor version than this harness writes."""
    try:
        major, minor, _ = (int(p) for p in version.split("."))
    except ValueError:
        raise DocumentRejected(f"{path}: $.schema_version: {version[:40]!r} is not MAJOR.MINOR.PATCH.") from None
    ours = tuple(int(p) for p in SCHEMA_VERSION.split("."))
    if major != ours[0] or minor > ours[1]:
        raise DocumentRejected(
            f"{path}: $.schema_version: {version!r}, this harness reads 1.0 to {SCHEMA_VERSION}. "
            "Fix: ingest it with the harness version that wrote it, or upgrade this one."
        )


def ingest(paths: list[Path], store: Path) -> list[Ingested]:
    """Every document checked before the store is opened, then each written in its own transaction."""
    documents = [(path, *read_document(path)) for path in paths]
    conn = connect(store)
    try:
        return [_write_retrying(conn, path, doc, sha) for path, doc, sha in documents]
    finally:
        conn.close()


def _write_retrying(conn: sqlite3.Connection, path: Path, document: dict[str, Any], sha: str) -> Ingested:
    try:
        return retry_busy(lambda: write_run(conn, path, document, sha))
    except sqlite3.IntegrityError as exc:  # e.g. one module listed twice with the same source: rolled back
        raise DocumentRejected(f"{path}: $.modules: {exc}; the document was not stored.") from None


def write_run(conn: sqlite3.Connection, path: Path, document: dict[str, Any], sha: str) -> Ingested:
    """One already-validated document as a new run (or the run it already is), in one transaction."""
    with transaction(conn):
        existing = conn.execute("SELECT run_id FROM runs WHERE document_sha256 = ?", (sha,)).fetchone()
        if existing:
            return Ingested(path, int(existing[0]), 0, 0, already_stored=True)
        run_id = _insert_run(conn, path, document, sha)
        cases = sum(_insert_module(conn, run_id, m) for m in document["modules"])
    return Ingested(path, run_id, len(document["modules"]), cases, already_stored=False)


def _machine(env: dict[str, Any]) -> str:
    parts = [str(env.get(k, "")) for k in ("cpu_model", "cpu_count", "platform", "device")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _insert_run(conn: sqlite3.Connection, path: Path, document: dict[str, Any], sha: str) -> int:
    env = document["environment"]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cursor = conn.execute(
        "INSERT INTO runs (document_sha256, source_path, ingested_at, schema_version, harness_version, git_commit, "
        "git_dirty, torch_version, python_version, platform, device, cpu_model, cpu_count, threads, dtypes, seed, "
        "seed_policy, date, machine, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sha,
            str(path),
            now,
            document["schema_version"],
            env["harness_version"],
            env["git_commit"],
            int(env["git_dirty"]),
            env["torch_version"],
            env["python_version"],
            env.get("platform"),
            env["device"],
            env["cpu_model"],
            env["cpu_count"],
            env["threads"],
            json.dumps(env["dtypes"]),
            env["seed"],
            env["seed_policy"],
            env["date"],
            _machine(env),
            json.dumps(document["config"]),
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _insert_module(conn: sqlite3.Connection, run_id: int, m: dict[str, Any]) -> int:
    """The module's row, its gates and their cases; returns the number of cases."""
    key = (run_id, m["name"], m["source"])
    conn.execute(
        "INSERT INTO modules (run_id, name, source, kind, variants, exact, bound, verdict, reason, seconds) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *key,
            m["kind"],
            json.dumps(m["variants"]),
            None if m["exact"] is None else int(m["exact"]),
            None if m["bound"] is None else json.dumps(m["bound"]),
            m["verdict"],
            m["reason"],
            m["seconds"],
        ),
    )
    cases = 0
    for g in m["gates"]:
        conn.execute(
            "INSERT INTO gates (run_id, module, source, gate, verdict, reason, seconds, cases_total, cases_failed, "
            "summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key,
                g["gate"],
                g["verdict"],
                g["reason"],
                g["seconds"],
                g["cases_total"],
                g["cases_failed"],
                json.dumps(g["summary"]),
            ),
        )
        conn.executemany(
            'INSERT INTO cases (run_id, module, source, gate, ordinal, "case", dtype, passed, failures, sizes, '
            "metrics, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *key,
                    g["gate"],
                    i,
                    c["case"],
                    c["dtype"],
                    int(c["passed"]),
                    json.dumps(c["failures"]),
                    json.dumps(c["sizes"]),
                    json.dumps(c["metrics"]),
                    c["seconds"],
                )
                for i, c in enumerate(g["cases"])
            ],
        )
        cases += len(g["cases"])
    return cases
