"""How long `harness report` takes on a store with a long history: 1,000 runs of the shipped modules.

    python -m benchmarks.report_scale [--runs 1000] [--document RESULTS.json] [--keep DIR]

The runs are synthesized from a real results document (by default the shipped modules' results kept in
tests/fixtures/results/): each copy gets its own commit, date and seed, and its speed ratios are scaled by a
random factor per run, so history charts and rankings have something to draw. The copies go into a fresh store
through the same transaction code `harness ingest` uses (schema-checked once, since the copies share a shape),
then the report is built and rendered exactly as `harness report` does, and timed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.reports import build_leaderboard, to_markdown
from harness.reports.site import render_site
from harness.store.db import connect
from harness.store.ingest import read_document, write_run

DEFAULT_DOCUMENT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "results" / "shipped-modules.json"
RATIO_KEYS = ("ratio", "low", "high")


def synthesize(document: dict[str, Any], index: int, rng: random.Random) -> dict[str, Any]:
    """Run `index` of the history: its own commit, date, seed, and speed ratios scaled by one factor."""
    doc = copy.deepcopy(document)
    env = doc["environment"]
    env["git_commit"] = hashlib.sha1(f"commit {index}".encode()).hexdigest()
    env["date"] = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=6 * index)).isoformat()
    env["seed"] = index
    factor = rng.uniform(0.9, 1.1)
    for module in doc["modules"]:
        for gate in module["gates"]:
            if gate["gate"] == "perf":
                gate["summary"] = {
                    k: v * factor if isinstance(v, float) and k.rsplit(".", 1)[-1] in RATIO_KEYS else v
                    for k, v in gate["summary"].items()
                }
    return doc


def fill(store: Path, document_path: Path, runs: int) -> float:
    """`runs` synthesized runs into `store`; seconds taken."""
    document, _ = read_document(document_path)
    rng = random.Random(0)
    start = time.perf_counter()
    conn = connect(store)
    try:
        for i in range(runs):
            doc = synthesize(document, i, rng)
            sha = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
            write_run(conn, document_path, doc, sha)
    finally:
        conn.close()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--document", type=Path, default=DEFAULT_DOCUMENT)
    parser.add_argument("--keep", type=Path, default=None, help="keep the store and the site in this folder")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="harness-report-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "store.sqlite"
    store.unlink(missing_ok=True)
    filled = fill(store, args.document, args.runs)
    print(
        f"store: {args.runs} runs from {args.document.name} in {filled:.1f} s ({store.stat().st_size / 2**20:.0f} MB)"
    )
    start = time.perf_counter()
    board = build_leaderboard(store)
    built = time.perf_counter() - start
    pages = render_site(board, folder / "site")
    (folder / "leaderboard.md").write_text(to_markdown(board))
    total = time.perf_counter() - start
    print(f"report: leaderboard built in {built:.1f} s; site ({len(pages)} files) and Markdown in {total:.1f} s total")
    print(f"site: {folder / 'site' / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
