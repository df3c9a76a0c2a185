"""How trustworthy is the performance gate on this machine? A/A and A/B trials of the regression decision, on an
otherwise idle machine and beside the training a concurrent integration gate does.

    python -m benchmarks.fidelity [--aa 100] [--ab 30] [--cases small,large] [--modes idle,load] [--out fidelity.json]

A/A: the candidate is the norm kind's own reference formula (benchmarks/fidelity_modules/norm/rms_norm_same.py),
so candidate and baseline are identical code; every `suspect` or `fail` is a false alarm. A/B: the same
formula followed by a busy-wait of 5%, 10% or 20% of its own duration (rms_norm_slow5/10/20.py); every
`suspect` or `fail` is a detection. Each trial is one complete interleaved measurement of one forward case
by the gate's own code (harness.gates.performance.measure.measure, default PerfSettings, so the early stop once
the interval lies in one decision band included), decided by the gate's own rule (harness.perf.stats.decide,
threshold 10%). Trials run in contestants of 10 trials each, with fresh input pools (a new seed) per trial; every
contestant is pinned to the timing core like the gate's, and this process is kept off it like the judge.

Cases: `small` rms_norm 64 x 1024 fp32 (tens of microseconds a call, cache resident) and `large`
1024 x 4096 fp32 (milliseconds a call, 16 MB per tensor, memory bound).

Modes: `idle` adds no load of ours (on a shared machine others may run: the 1-minute load average at the start
and end of every arm is recorded); `load` runs every arm beside benchmarks/training_load.py, the integration gate's
own training of its small transformer, started (and training) before the arm's first trial and stopped after its
last, on every core but the timing core: what a performance gate would measure beside if `harness run` timed one
module while judging another's integration gate. The idle and load arms of one (case, slowdown) run back to back,
so drift on a shared machine reaches both alike. Rates carry Wilson 95% intervals (scipy.stats.binomtest); an arm
given 0 trials (`--ab 0`) is not run. A trial the gate's integrity checks call tampered (an honest module measured
on a busy machine) is recorded as such: a false alarm in the A/A arm, no detection in an A/B arm. The JSON holds
every trial, every arm's load averages and the load's training steps, and the provenance
(harness.results.fingerprint: CPU, torch, git commit, date).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from scipy.stats import binomtest

from benchmarks.training_load import TrainingLoad
from harness.core.contract import ModuleSpec
from harness.gates.performance.inputs import Mode, TimingPlan
from harness.gates.performance.measure import measure
from harness.gates.performance.tamper import Tampered, Watch
from harness.judge.sandbox import Contestant, Limits
from harness.judge.session import Session
from harness.perf.config import PerfSettings
from harness.perf.stats import decide
from harness.perf.timer import kept_off, timing_core
from harness.registry.sources import module_sources
from harness.results.fingerprint import fingerprint

MODULES = Path(__file__).parent / "fidelity_modules"
ARMS = {
    "A/A": "rms_norm_same",
    "A/B +5%": "rms_norm_slow5",
    "A/B +10%": "rms_norm_slow10",
    "A/B +20%": "rms_norm_slow20",
}
CASES = {"small": 0, "large": 1}  # index into the norm kind's perf_cases("rms_norm")
MODES = ("idle", "load")
SETTINGS = PerfSettings()  # the gate's defaults
PER_CONTESTANT = 10
# The issue's bar for measuring beside a training load: below it, the scheduling must keep the other core free.
DETECT_10_REQUIRED = 0.95  # share of +10% slowdowns flagged
FALSE_ALARMS_ALLOWED = 0.01  # share of A/A trials flagged
Record = dict[str, Any]


def trial(plan: TimingPlan, session: Session, mode: Mode) -> Record:
    """One measurement decided by the gate's rule; a false tampering finding (an honest module, a busy machine) is
    the outcome `tampered`, which the gate would give too."""
    start = time.perf_counter()
    try:
        m = measure(plan, Watch(plan), session, mode)
    except Tampered as exc:
        return {"outcome": "tampered", "reason": str(exc), "seconds": time.perf_counter() - start}
    assert m.ratio is not None
    return {
        "ratio": m.ratio.estimate,
        "low": m.ratio.low,
        "high": m.ratio.high,
        "blocks": m.blocks,
        "settled": m.settled,
        "outcome": decide(m.ratio, SETTINGS.threshold).outcome,
        "seconds": time.perf_counter() - start,
    }


def run_arm(module: str, case_name: str, trials: int, seed: int) -> list[Record]:
    """`trials` measurements of one module on one case; one record per trial."""
    source = {s.name: s for s in module_sources(MODULES, entry_points=False)}[module]
    spec = ModuleSpec(module, "norm", ("rms_norm",), True, None, "", str(source.path))
    records: list[Record] = []
    while len(records) < trials:
        plan = TimingPlan(spec, seed + len(records), SETTINGS)
        mode = Mode(plan.kind.perf_cases("rms_norm")[CASES[case_name]], backward=False)
        with Contestant(Limits(), module) as contestant:
            session = Session(contestant)
            session.send(plan.baseline_request(None, timing_core()))
            session.load(source)
            for _ in range(min(PER_CONTESTANT, trials - len(records))):
                plan = TimingPlan(spec, seed + len(records), SETTINGS)  # fresh input pools per trial
                r = trial(plan, session, mode)
                records.append(r)
                shown = f"{r['ratio']:.4f} [{r['low']:.4f}, {r['high']:.4f}]" if "ratio" in r else r["reason"]
                print(
                    f"  {module} {case_name} #{len(records)}: {shown} {r['outcome']} "
                    f"({r.get('blocks', '?')} blocks, {r['seconds']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                if r["outcome"] == "tampered":
                    break  # the contestant stopped mid-measurement; the next trial gets a fresh one
    return records


def run_in_mode(mode: str, case: str, arm: str, trials: int, seed: int) -> Record:
    """One arm in one mode: its trials, the load averages around them and, under load, what the load did."""
    load = TrainingLoad(set(os.sched_getaffinity(0)) - {timing_core()}) if mode == "load" else None
    with load or contextlib.nullcontext():
        started, loadavg_start = time.time(), os.getloadavg()[0]
        records = run_arm(ARMS[arm], case, trials, seed)
        ended, loadavg_end = time.time(), os.getloadavg()[0]
    return {
        "mode": mode,
        "case": case,
        "arm": arm,
        "module": ARMS[arm],
        "started": started,
        "ended": ended,
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg_end,
        "load": load.report if load else None,
        "trials": records,
    }


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of k successes in n trials."""
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(arm: Record) -> Record:
    """One arm's row: flagged share with its interval, outcomes, ratios, and the median trial's length.

    Flagged: `suspect` or `fail`; in the A/A arm also `tampered` (an honest module the gate would not pass). An A/B
    trial found `tampered` is no detection of its slowdown: it is counted in `tampered` only.
    """
    records: list[Record] = arm["trials"]
    alarms = ("suspect", "fail", "tampered") if arm["arm"] == "A/A" else ("suspect", "fail")
    flagged = sum(1 for r in records if r["outcome"] in alarms)
    low, high = wilson(flagged, len(records))
    ratios = [float(r["ratio"]) for r in records if "ratio" in r]
    load = arm["load"]
    return {
        **{k: arm[k] for k in ("mode", "case", "arm", "loadavg_start", "loadavg_end")},
        "trials": len(records),
        "flagged": flagged,
        "rate": flagged / len(records),
        "rate_low": low,
        "rate_high": high,
        "fail": sum(1 for r in records if r["outcome"] == "fail"),
        "tampered": sum(1 for r in records if r["outcome"] == "tampered"),
        "settled_early": sum(1 for r in records if r.get("settled") is not None),
        "ratio_median": _median(ratios),
        "ratio_min": min(ratios, default=None),
        "ratio_max": max(ratios, default=None),
        "seconds_median": statistics.median(float(r["seconds"]) for r in records),
        "blocks_median": _median([float(r["blocks"]) for r in records if "blocks" in r]),
        "load_steps_per_s": load["steps_per_s"] if load else None,
    }


def decisions(rows: list[Record]) -> list[Record]:
    """Per case under load: does the gate still meet the bar (+10% flagged >= 95%, A/A false alarms <= 1%)?"""
    out = []
    for case in dict.fromkeys(r["case"] for r in rows if r["mode"] == "load"):
        by_arm = {r["arm"]: r for r in rows if r["mode"] == "load" and r["case"] == case}
        detect, alarms = by_arm.get("A/B +10%"), by_arm.get("A/A")
        meets = (detect is None or detect["rate"] >= DETECT_10_REQUIRED) and (
            alarms is None or alarms["rate"] <= FALSE_ALARMS_ALLOWED
        )
        out.append(
            {
                "case": case,
                "detect_10": detect["rate"] if detect else None,
                "false_alarms": alarms["rate"] if alarms else None,
                "keep_other_core_free": not meets,
            }
        )
    return out


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_table(rows: list[Record]) -> None:
    print(
        f"{'mode':5} {'case':6} {'arm':9} {'trials':>6} {'flagged':>7} {'rate [Wilson 95%]':>22} {'fail':>4} "
        f"{'tamp':>4} {'early':>5} {'med ratio':>9} {'range':>15} {'med s':>6} {'med blocks':>10} {'load avg':>11} "
        f"{'steps/s':>7}"
    )
    for r in rows:
        interval = f"{100 * r['rate']:.1f}% [{100 * r['rate_low']:.1f}, {100 * r['rate_high']:.1f}]"
        ratios = f"{_num(r['ratio_min'], '.4f')}-{_num(r['ratio_max'], '.4f')}"
        print(
            f"{r['mode']:5} {r['case']:6} {r['arm']:9} {r['trials']:6d} {r['flagged']:7d} {interval:>22} "
            f"{r['fail']:4d} {r['tampered']:4d} {r['settled_early']:5d} {_num(r['ratio_median'], '.4f'):>9} "
            f"{ratios:>15} {r['seconds_median']:6.2f} {_num(r['blocks_median'], 'g'):>10} "
            f"{r['loadavg_start']:5.2f}-{r['loadavg_end']:.2f} {_num(r['load_steps_per_s'], '.1f'):>7}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fidelity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--aa", type=int, default=100, help="A/A trials per case and mode")
    parser.add_argument("--ab", type=int, default=30, help="A/B trials per case, slowdown and mode (0: no A/B arms)")
    parser.add_argument("--cases", default="small,large", help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--modes", default="idle,load", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--out", type=Path, default=None, help="write every trial, arm and summary as JSON")
    args = parser.parse_args(argv)
    cases, modes = args.cases.split(","), args.modes.split(",")
    for name, given, allowed in (("--cases", cases, CASES), ("--modes", modes, MODES)):
        if not set(given) <= set(allowed):
            parser.error(f"{name} takes some of {', '.join(allowed)}; got {', '.join(given)}")
    torch.set_num_threads(1)
    seed = secrets.randbits(40)
    provenance = fingerprint(device="cpu", threads=1, dtypes=["float32"], seed=seed, seed_policy="random")
    start = time.time()
    arms: list[Record] = []
    with kept_off(timing_core()):
        for case in cases:
            for arm in ARMS:
                count = args.aa if arm == "A/A" else args.ab
                arms += [run_in_mode(mode, case, arm, count, seed) for mode in modes if count > 0]
    rows = [summarize(a) for a in arms]
    print_table(rows)
    verdicts = decisions(rows)
    for d in verdicts:
        print(
            f"under load, {d['case']}: +10% flagged {d['detect_10']}, A/A false alarms {d['false_alarms']}: "
            + ("keep the other core free while timing" if d["keep_other_core_free"] else "meets the bar")
        )
    if args.out:
        document = {
            "command": ["python", "-m", "benchmarks.fidelity", *(argv if argv is not None else sys.argv[1:])],
            "provenance": provenance,
            "settings": asdict(SETTINGS),
            "threshold": SETTINGS.threshold,
            "timing_core": timing_core(),
            "seconds": time.time() - start,
            "summary": rows,
            "decisions": verdicts,
            "arms": arms,
        }
        args.out.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
