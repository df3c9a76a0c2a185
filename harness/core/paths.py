"""Where the harness keeps what it measures once per machine: seed-to-seed spreads, the roofline."""

from __future__ import annotations

from pathlib import Path

# Shared by the integration gate's spread cache, the performance gate's roofline and the benchmarks. Entries are
# keyed by everything that changes them (machine, torch and harness versions), so a stale entry is never read.
CACHE_DIR = Path.home() / ".cache" / "module-harness"
