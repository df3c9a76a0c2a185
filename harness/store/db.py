"""The SQLite file: where it lives, how it is opened (WAL, busy timeout), and its migrations.

The store's schema version is SQLite's `user_version`: the number of migration files applied, in order, from
`harness/store/migrations/NNN_*.sql`. Opening a store applies the missing ones in one transaction, so several
processes opening a new store at once agree on one schema.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TypeVar

BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another process's transaction before SQLite says busy
BUSY_RETRIES = 20  # then the whole transaction is retried this many times, backing off
STORE_ENV = "HARNESS_STORE"  # overrides the default location

T = TypeVar("T")


class StoreError(Exception):
    """The store cannot be opened or written; the message names the file and what to do."""


def default_store() -> Path:
    """$HARNESS_STORE, or ~/.local/share/module-harness/store.sqlite: one history per user across checkouts."""
    override = os.environ.get(STORE_ENV)
    if override:
        return Path(override)
    return Path.home() / ".local" / "share" / "module-harness" / "store.sqlite"


def migrations() -> list[tuple[str, str]]:
    """(file name, SQL) of every migration, in order."""
    folder = resources.files("harness.store").joinpath("migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text()) for name in names]


SCHEMA_VERSION = len(migrations())  # the store schema this harness writes


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """An open store: created and migrated on first use (unless read-only), WAL journal, foreign keys on."""
    if readonly:
        if not path.is_file():
            raise StoreError(f"{path}: no store here. Fix: run `harness ingest RESULTS.json --store {path}` first.")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        _check_version(conn, path)
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at checkpoints, never corrupt
    retry_busy(lambda: _migrate(conn, path))
    return conn


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: store schema version {version}, this harness knows {SCHEMA_VERSION}. "
            "Fix: upgrade the harness, or use another --store."
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        _check_version(conn, path)
        for _name, sql in migrations()[version:]:
            for statement in _statements(sql):
                conn.execute(statement)
            version += 1
            conn.execute(f"PRAGMA user_version = {version}")  # inside the transaction: atomic with the DDL


def _statements(sql: str) -> list[str]:
    """The statements of a migration file (`executescript` would commit the open transaction)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock up front, so two writers never deadlock mid-way) ... COMMIT or ROLLBACK."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def retry_busy(action: Callable[[], T]) -> T:
    """`action`, retried with backoff while another process holds the store's write lock."""
    for attempt in range(BUSY_RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(min(1.0, 0.05 * 2**attempt))
    return action()
