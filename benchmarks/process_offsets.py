"""The machine facts the performance gate is built on, measured on this machine: how far the speed of the same
code differs from one fresh process to the next, and what the gate's process settings do to that.

    python -m benchmarks.process_offsets [--processes 8] [--arms gate,no-malloc,unpinned,two-threads] [--out F.json]

Each process is a fresh interpreter (this file with `--child`) that times the norm kind's rms_norm reference on the
performance gate's two rms_norm cases (harness/kinds/norm.py perf_cases: 64 x 1024 fp32, cache resident, and
1024 x 4096 fp32, 16 MB, memory bound) with the one timer (harness.perf.timer), in float32, with inputs from
the kind's own generator. Inside the process it calls the same function as two sides, X and Y, in random order
each round, in blocks of about 0.1 s whose first round is left out of the block's median, on two input pools A and
B that the sides swap every block, like the gate: an A/A comparison inside one process. The same calls grouped by
pool instead of side (A against B) show what swapping the pools cancels.

Arms (one process of each arm in turn, round after round, so drift on a shared machine reaches every arm alike):

- `gate`: the contestant's environment (harness.judge.sandbox.WORKER_ENV: pinned glibc malloc settings, one
  thread per library), one torch thread, pinned to the timing core (harness.perf.timer.timing_core) with this
  process kept off it: how the performance gate runs a contestant;
- `no-malloc`: the same without the MALLOC_* settings;
- `unpinned`: the gate's environment, no CPU affinity;
- `two-threads`: the gate's environment, two torch threads, no CPU affinity.

Per arm and case it reports the spread of the per-process median times (min, max, max/min, standard deviation
of their logs), the first call of each process against its median (cold start), the first call of each block
against the block's median, and the in-process ratios X/Y and A/B (exp of the mean of per-block median log ratios,
with the gate's 99% t interval, harness.perf.stats.ratio_interval) and how many of those intervals exclude 1. The
JSON holds every process's figures and the provenance (CPU, torch, git commit, date, load averages).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARMS = ("gate", "no-malloc", "unpinned", "two-threads")
WARMUP_S = 0.2  # per case, before any block (the gate's PerfSettings.warmup_s)
BLOCK_S = 0.1  # target length of one block (the gate's PerfSettings.block_s)
BLOCKS = 20  # blocks per case and process
SIDES = ("X", "Y")  # two sides running the same function: an A/A comparison
POOLS = ("A", "B")  # two input pools, as in the gate
Record = dict[str, Any]


def _bound(reference: Callable[[str, Any], object], args: Any) -> Callable[[], object]:
    return lambda: reference("rms_norm", args)


def child(seed: int, threads: int, cores: set[int]) -> Record:
    """One fresh process's figures for both cases (runs inside the child, on `cores`)."""
    os.sched_setaffinity(0, cores)
    import torch

    from harness.kinds import KINDS
    from harness.perf.stats import block_value, ratio_interval
    from harness.perf.timer import make_timer, quiet_gc

    torch.set_num_threads(threads)
    kind, timer, rng = KINDS["norm"], make_timer("cpu"), random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    cases: Record = {}
    for case in kind.perf_cases("rms_norm"):
        pools = {name: kind.make_inputs(case, torch.float32, gen) for name in POOLS}
        calls = {name: _bound(kind.reference, args) for name, args in pools.items()}
        with quiet_gc():
            first = timer.time(calls["A"])  # the first call of this op in this process
            deadline = time.perf_counter() + WARMUP_S
            warm: list[int] = []
            while time.perf_counter() < deadline or len(warm) < 3:
                warm.append(timer.time(calls["A"]) + timer.time(calls["B"]))
        rounds = max(3, min(4000, int(BLOCK_S * 1e9 / statistics.median(warm))))
        times: list[int] = []
        sides: list[float] = []  # per block, log(X / Y): the sides swap pools every block, as in the gate
        by_pool: list[float] = []  # per block, log(A / B): the same calls, grouped by input pool
        first_of_block: list[float] = []
        for block in range(BLOCKS):
            pool_of = dict(zip(SIDES, POOLS if block % 2 == 0 else POOLS[::-1], strict=True))
            ns: dict[str, list[int]] = {side: [] for side in SIDES}
            with quiet_gc():
                for _ in range(rounds):
                    for side in rng.sample(SIDES, 2):
                        ns[side].append(timer.time(calls[pool_of[side]]))
            times += ns["X"] + ns["Y"]
            first_of_block.append(ns["X"][0] / statistics.median(ns["X"]))
            sides.append(block_value(ns["X"][1:], ns["Y"][1:]))  # the gate drops a block's first round
            pool_ns = {pool_of[side]: ns[side][1:] for side in SIDES}
            by_pool.append(block_value(pool_ns["A"], pool_ns["B"]))
        aa, pools_ratio = ratio_interval(sides), ratio_interval(by_pool)
        median = statistics.median(times)
        cases[f"{case.sizes['rows']}x{case.sizes['hidden']}"] = {
            "median_ns": median,
            "first_ns": first,
            "cold_factor": first / median,
            "first_of_block_factor": statistics.median(first_of_block),
            "rounds_per_block": rounds,
            "aa_ratio": aa.estimate,
            "aa_low": aa.low,
            "aa_high": aa.high,
            "pool_ratio": pools_ratio.estimate,
            "pool_low": pools_ratio.low,
            "pool_high": pools_ratio.high,
        }
    return {"cases": cases, "threads": torch.get_num_threads(), "affinity": sorted(os.sched_getaffinity(0))}


def arm_env(arm: str) -> dict[str, str]:
    """The environment a process of `arm` starts with: the contestant's, less the malloc settings for no-malloc."""
    from harness.judge.sandbox import WORKER_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(WORKER_ENV)
    if arm == "no-malloc":
        env = {k: v for k, v in env.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def spawn(arm: str, seed: int, core: int) -> Record:
    """One fresh process of `arm`; its figures. Unpinned arms get every core (this process keeps off `core`)."""
    cores = [core] if arm in ("gate", "no-malloc") else list(range(os.cpu_count() or 1))
    threads = 2 if arm == "two-threads" else 1
    command = [sys.executable, "-m", "benchmarks.process_offsets", "--child", str(seed), "--threads", str(threads)]
    command += ["--cores", ",".join(map(str, cores))]
    proc = subprocess.run(command, env=arm_env(arm), cwd=REPO, capture_output=True, text=True, timeout=600, check=True)
    return {"arm": arm, "seed": seed, **json.loads(proc.stdout)}


def spread(values: list[float]) -> Record:
    """Median, min, max, max/min and the standard deviation of the logs (in %) of per-process figures."""
    logs = [math.log(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "max_over_min": max(values) / min(values),
        "log_sd_pct": 100 * statistics.stdev(logs) if len(logs) > 1 else 0.0,
    }


def summarize(processes: list[Record]) -> list[Record]:
    """One row per (arm, case): the spread between processes, cold starts and the in-process A/A ratios."""
    rows = []
    for arm in dict.fromkeys(p["arm"] for p in processes):
        mine = [p for p in processes if p["arm"] == arm]
        for case in mine[0]["cases"]:
            figures = [p["cases"][case] for p in mine]
            aa = [f["aa_ratio"] for f in figures]
            by_pool = [f["pool_ratio"] for f in figures]
            rows.append(
                {
                    "arm": arm,
                    "case": case,
                    "processes": len(mine),
                    "median_us": spread([f["median_ns"] / 1e3 for f in figures]),
                    "cold_factor": statistics.median(f["cold_factor"] for f in figures),
                    "first_of_block_factor": statistics.median(f["first_of_block_factor"] for f in figures),
                    "aa_min": min(aa),
                    "aa_max": max(aa),
                    "aa_excluding_1": sum(1 for f in figures if f["aa_low"] > 1 or f["aa_high"] < 1),
                    "pool_min": min(by_pool),
                    "pool_max": max(by_pool),
                    "pool_excluding_1": sum(1 for f in figures if f["pool_low"] > 1 or f["pool_high"] < 1),
                }
            )
    return rows


def print_table(rows: list[Record]) -> None:
    print(
        f"{'arm':11} {'case':9} {'n':>2} {'median us':>9} {'min-max us':>17} {'max/min':>7} {'sd %':>6} "
        f"{'cold x':>6} {'block 1st x':>11} {'A/A, pools swapped':>18} {'excl. 1':>7} {'pool A / pool B':>15} "
        f"{'excl. 1':>7}"
    )
    for r in rows:
        t = r["median_us"]
        print(
            f"{r['arm']:11} {r['case']:9} {r['processes']:2d} {t['median']:9.1f} "
            f"{t['min']:8.1f}-{t['max']:<8.1f} {t['max_over_min']:7.2f} {t['log_sd_pct']:6.1f} "
            f"{r['cold_factor']:6.1f} {r['first_of_block_factor']:11.2f} "
            f"{r['aa_min']:10.4f}-{r['aa_max']:.4f} {r['aa_excluding_1']:4d}/{r['processes']:<2d} "
            f"{r['pool_min']:7.4f}-{r['pool_max']:.4f} {r['pool_excluding_1']:4d}/{r['processes']:<2d}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.process_offsets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--processes", type=int, default=8, help="fresh processes per arm")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--out", type=Path, default=None, help="write every process's figures and the summary as JSON")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # the seed, in a child process
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cores", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.threads, {int(c) for c in args.cores.split(",")})))
        return 0
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS) or args.processes < 2:
        parser.error(f"--arms takes some of {', '.join(ARMS)} and --processes at least 2")
    from harness.perf.timer import kept_off, timing_core
    from harness.results.fingerprint import fingerprint

    rng = random.Random()
    provenance = fingerprint(device="cpu", threads=1, dtypes=["float32"], seed=0, seed_policy="random")
    loadavg_start, start = os.getloadavg(), time.time()
    processes: list[Record] = []
    with kept_off(timing_core()):
        for i in range(args.processes):
            for arm in rng.sample(arms, len(arms)):  # a random arm order each round: no arm always runs first
                processes.append(spawn(arm, rng.getrandbits(32), timing_core()))
                print(f"  round {i + 1}/{args.processes}: {arm} done", file=sys.stderr, flush=True)
    rows = summarize([p for arm in arms for p in processes if p["arm"] == arm])
    print_table(rows)
    loadavg_end = os.getloadavg()
    print(f"load average (1 min) {loadavg_start[0]:.2f} at the start, {loadavg_end[0]:.2f} at the end")
    if args.out:
        document = {
            "command": ["python", "-m", "benchmarks.process_offsets", *(argv if argv is not None else sys.argv[1:])],
            "provenance": provenance,
            "timing_core": timing_core(),
            "seconds": time.time() - start,
            "loadavg_start": loadavg_start,
            "loadavg_end": loadavg_end,
            "summary": rows,
            "processes": processes,
        }
        args.out.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
