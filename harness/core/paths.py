"""Where the harness keeps what it measures once per machine (seed-to-seed spreads, trained reference models, the
roofline), and the digest of the harness sources such an entry depends on."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

# Shared by the integration gate's spread and reference caches, the performance gate's roofline and the benchmarks.
# Entries are keyed by everything that changes them (machine, torch version, the sources that compute them), so a
# stale entry is never read.
CACHE_DIR = Path.home() / ".cache" / "module-harness"

PACKAGE = Path(__file__).resolve().parents[1]  # the harness package


@cache
def sources_digest(*parts: str) -> str:
    """sha256 over the Python sources under `parts` of the harness package (directories or files, relative to it,
    e.g. "kinds", "integration", "perf/roofline.py"): a cache entry keyed by it is invalidated when any of them
    changes, e.g. a kind's contract (its reference, input generator or tolerance) or the integration model."""
    digest = hashlib.sha256()
    for part in parts:
        root = PACKAGE / part
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
