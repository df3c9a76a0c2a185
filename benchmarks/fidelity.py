"""How trustworthy is the performance gate on this machine? A/A and A/B trials of the regression decision.

    python -m benchmarks.fidelity [--aa 100] [--ab 30] [--cases small,large] [--out fidelity.json]

A/A: the candidate is the norm kind's own reference formula (benchmarks/fidelity_modules/norm/rms_norm_same.py),
so candidate and baseline are identical code; every `suspect` or `fail` is a false alarm. A/B: the same
formula followed by a busy-wait of 5%, 10% or 20% of its own duration (rms_norm_slow5/10/20.py); every
`suspect` or `fail` is a detection. Each trial is one complete interleaved measurement of one forward case
by the gate's own code (harness.gates.performance.measure.measure, default PerfSettings), decided by the gate's
own rule (harness.perf.stats.decide, threshold 10%). Trials run in contestants of 10 trials each, with fresh
input pools (a new seed) per trial; every contestant is pinned to the last core like the gate's.

Cases: `small` rms_norm 64 x 1024 fp32 (tens of microseconds a call, cache resident) and `large`
1024 x 4096 fp32 (milliseconds a call, 16 MB per tensor, memory bound).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

import torch

from harness.core.contract import ModuleSpec
from harness.gates.performance.inputs import Mode, TimingPlan
from harness.gates.performance.measure import measure
from harness.gates.performance.tamper import Watch
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import Session
from harness.perf.config import PerfSettings
from harness.perf.stats import decide
from harness.perf.timer import kept_off, timing_core
from harness.registry.sources import module_sources

MODULES = Path(__file__).parent / "fidelity_modules"
ARMS = {
    "A/A": "rms_norm_same",
    "A/B +5%": "rms_norm_slow5",
    "A/B +10%": "rms_norm_slow10",
    "A/B +20%": "rms_norm_slow20",
}
CASES = {"small": 0, "large": 1}  # index into the norm kind's perf_cases("rms_norm")
THRESHOLD = 0.10
PER_CONTESTANT = 10


def run_arm(module: str, case_name: str, trials: int, seed: int) -> list[dict[str, object]]:
    """`trials` measurements of one module on one case; one record per trial."""
    source = {s.name: s for s in module_sources(MODULES, entry_points=False)}[module]
    spec = ModuleSpec(module, "norm", ("rms_norm",), True, None, "", str(source.path))
    records: list[dict[str, object]] = []
    while len(records) < trials:
        plan = TimingPlan(spec, seed + len(records), PerfSettings())
        mode = Mode(plan.kind.perf_cases("rms_norm")[CASES[case_name]], backward=False)
        with Contestant(Limits(), module) as contestant:
            session = Session(contestant)
            session.send(plan.baseline_request(None, timing_core()))
            session.load(source)
            for _ in range(min(PER_CONTESTANT, trials - len(records))):
                plan = TimingPlan(spec, seed + len(records), PerfSettings())  # fresh input pools per trial
                start = time.perf_counter()
                m = measure(plan, Watch(plan), session, mode)
                assert m.ratio is not None
                decision = decide(m.ratio, THRESHOLD)
                records.append(
                    {
                        "ratio": m.ratio.estimate,
                        "low": m.ratio.low,
                        "high": m.ratio.high,
                        "blocks": m.blocks,
                        "outcome": decision.outcome,
                        "seconds": time.perf_counter() - start,
                    }
                )
                print(
                    f"  {module} {case_name} #{len(records)}: {m.ratio.estimate:.4f} "
                    f"[{m.ratio.low:.4f}, {m.ratio.high:.4f}] {decision.outcome} "
                    f"({records[-1]['seconds']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return records


def summarize(arm: str, case: str, records: list[dict[str, object]]) -> dict[str, object]:
    flagged = sum(1 for r in records if r["outcome"] in ("suspect", "fail"))
    ratios = [float(r["ratio"]) for r in records]  # type: ignore[arg-type]
    return {
        "arm": arm,
        "case": case,
        "trials": len(records),
        "flagged": flagged,
        "rate": flagged / len(records),
        "fail": sum(1 for r in records if r["outcome"] == "fail"),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "seconds_per_trial": statistics.fmean(float(r["seconds"]) for r in records),
    }  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fidelity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--aa", type=int, default=100, help="A/A trials per case")
    parser.add_argument("--ab", type=int, default=30, help="A/B trials per case and slowdown")
    parser.add_argument("--cases", default="small,large")
    parser.add_argument("--out", type=Path, default=None, help="write every trial and the summary as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seed = secrets.randbits(40)
    rows, trials = [], {}
    with kept_off(timing_core()):
        for case in args.cases.split(","):
            for arm, module in ARMS.items():
                count = args.aa if arm == "A/A" else args.ab
                records = run_arm(module, case, count, seed)
                trials[f"{case} {arm}"] = records
                rows.append(summarize(arm, case, records))
    print(
        f"{'case':6} {'arm':9} {'trials':>6} {'flagged':>8} {'rate':>6} {'fail':>5} {'median ratio':>13} "
        f"{'range':>17} {'s/trial':>8}"
    )
    for r in rows:
        print(
            f"{r['case']:6} {r['arm']:9} {r['trials']:6d} {r['flagged']:8d} {100 * r['rate']:5.1f}% {r['fail']:5d} "
            f"{r['ratio_median']:13.4f} {r['ratio_min']:8.4f}-{r['ratio_max']:.4f} {r['seconds_per_trial']:8.1f}"
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {"threshold": THRESHOLD, "summary": rows, "trials": trials, "torch": torch.__version__}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
