"""This machine's roofline as the performance gate measures it, several times over, to see how steady it is.

    python -m benchmarks.roofline [--times 3] [--out roofline.json]

Each time calls harness.perf.roofline.measure (one torch thread, best of 5 copies per buffer size from 32 KB to
256 MB, best of 10 fp32 512 x 512 matmuls), in this process pinned to the timing core as contestants are. The gate
measures once per machine and caches the result (~/.cache/module-harness/roofline-*.json); a forward case's bound
is max(bytes / bandwidth at its working-set size, FLOPs / matmul rate), and a case faster than half its bound fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.roofline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--times", type=int, default=3, help="measurements, one after another")
    parser.add_argument("--out", type=Path, default=None, help="write every measurement and the provenance as JSON")
    args = parser.parse_args(argv)
    from harness.perf.roofline import SIZES, measure
    from harness.perf.timer import timing_core
    from harness.results.fingerprint import fingerprint

    os.sched_setaffinity(0, {timing_core()})
    loadavg_start = os.getloadavg()
    runs = [measure(threads=1) for _ in range(args.times)]
    loadavg_end = os.getloadavg()
    print(f"{'buffer':>8} " + " ".join(f"{'GB/s #' + str(i + 1):>9}" for i in range(len(runs))))
    for size in SIZES:
        label = f"{size // 2**10} KB" if size < 2**20 else f"{size // 2**20} MB"
        print(f"{label:>8} " + " ".join(f"{r.bandwidth[size]:9.1f}" for r in runs))
    print(f"{'matmul':>8} " + " ".join(f"{r.matmul_gflops:9.1f}" for r in runs) + "  GFLOP/s (fp32 512 x 512)")
    print(
        f"{runs[0].machine}; load average (1 min) {loadavg_start[0]:.2f} at the start, {loadavg_end[0]:.2f} at the end"
    )
    if args.out:
        provenance = fingerprint(device="cpu", threads=1, dtypes=["float32"], seed=0, seed_policy="random")
        document = {
            "command": ["python", "-m", "benchmarks.roofline", *(argv if argv is not None else sys.argv[1:])],
            "provenance": provenance,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": loadavg_start,
            "loadavg_end": loadavg_end,
            "runs": [r.as_dict() for r in runs],
        }
        args.out.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
