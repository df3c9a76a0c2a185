"""The results store: an embedded SQLite file holding every ingested run, for history and leaderboards.

- `db.py`: where the store lives, opening it (WAL, busy retries), migrations (`migrations/NNN_*.sql`).
- `ingest.py`: results documents checked against the schema, then written in one transaction each.

The store reads results documents only; it never imports modules or runs gates.
"""

from harness.store.db import SCHEMA_VERSION, StoreError, connect, default_store
from harness.store.ingest import DocumentRejected, Ingested, ingest, read_document

__all__ = [
    "SCHEMA_VERSION",
    "DocumentRejected",
    "Ingested",
    "StoreError",
    "connect",
    "default_store",
    "ingest",
    "read_document",
]
