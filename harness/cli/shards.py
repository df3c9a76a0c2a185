"""`harness plan` and `harness merge`: a run sharded over the machines of a CI matrix, merged back into one results
document (the planning and merging live in harness/judge/shards.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from harness.gates import GATES
from harness.judge.shards import MergeError, Plan, PlanError, check_names, merge, names_from_changes, plan
from harness.registry.sources import module_sources
from harness.store import default_store

STORE_HELP = "results store whose past runs give the costs (default: as `harness ingest`; read only; none: defaults)"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], modules_dir: Callable[[], Path]) -> None:
    """`plan` and `merge`; `modules_dir` gives the default modules directory."""
    planner = sub.add_parser("plan", help="spread modules over N shards by estimated cost: a GitHub Actions matrix")
    planner.add_argument("--shards", type=int, required=True, metavar="N", help="machines to spread the modules over")
    chosen = planner.add_mutually_exclusive_group()
    chosen.add_argument(
        "--changes", type=Path, default=None, help="judge the `judge` list of this `harness changed --json` file"
    )
    chosen.add_argument("--modules", nargs="+", default=None, metavar="NAME", help="these modules (default: every one)")
    planner.add_argument("--store", type=Path, default=None, help=STORE_HELP)
    planner.add_argument("--gates", default=",".join(GATES), help="gates whose seconds are estimated (default: all)")
    planner.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device of the past runs to use")
    planner.add_argument("--json", action="store_true", help='one line: {"include": [...]} for $GITHUB_OUTPUT')
    planner.add_argument("--modules-dir", type=Path, default=None, help="where modules live (default: in-tree modules)")
    planner.add_argument("--no-entry-points", action="store_true", help="ignore modules from installed packages")
    planner.set_defaults(default_modules_dir=modules_dir)

    merger = sub.add_parser("merge", help="combine the shards' results into one results document")
    merger.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="each shard's --out directory")
    merger.add_argument("--out", type=Path, required=True, help="write OUT/results.json (and OUT/modules/*.json)")


def _kinds(args: argparse.Namespace, every: bool) -> dict[str, str | None]:
    """Kind of each module found (name -> kind); the modules directory must exist when every module is planned."""
    root = Path(args.modules_dir or args.default_modules_dir())
    if not root.is_dir():
        if every:
            raise PlanError(f"modules directory {root} does not exist. Fix: pass --modules-dir DIR.")
        return {}
    return {s.name: s.kind for s in module_sources(root, entry_points=not args.no_entry_points)}


def _planned(args: argparse.Namespace) -> Plan:
    gates = [g.strip() for g in args.gates.split(",") if g.strip()]
    unknown = [g for g in gates if g not in GATES]
    if not gates or unknown:
        raise PlanError(f"--gates: unknown gate(s) {unknown or gates}; available: {', '.join(GATES)}")
    every = args.changes is None and args.modules is None
    kinds = _kinds(args, every)
    if args.changes is not None:
        names = names_from_changes(args.changes)
    elif args.modules is not None:
        names = check_names(args.modules, "--modules")
    else:
        names = check_names(sorted(kinds), f"module file names in {args.modules_dir or args.default_modules_dir()}")
    store = args.store or default_store()
    return plan(names, args.shards, kinds=kinds, gates=gates, store=store, device=args.device)


def _table(result: Plan) -> str:
    lines = [f"{'shard':<7}  {'estimated s':>11}  modules"]
    for shard in result.shards:
        lines.append(f"{shard.index}/{shard.of:<5}  {shard.estimated_s:>11.1f}  {' '.join(shard.modules)}")
    total = sum(result.costs.values())
    longest = max((s.estimated_s for s in result.shards), default=0.0)
    lines.append(
        f"{len(result.costs)} modules over {len(result.shards)} shards: {total:.1f} s in all, {longest:.1f} s on the "
        f"longest shard; {len(result.from_store)} estimated from past runs, the rest from per-kind defaults"
    )
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        result = _planned(args)
    except PlanError as exc:
        print(f"harness plan: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.matrix(), separators=(",", ":")) if args.json else _table(result))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    try:
        document = merge(list(args.dirs), args.out)
    except MergeError as exc:
        print(f"harness merge: rejected, nothing written: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {v}" for v, n in document["summary"].items() if v != "total" and n)
    print(f"merged {len(args.dirs)} shards: {document['summary']['total']} modules ({counts or 'none'})")
    print(f"results: {args.out / 'results.json'}")
    return 0
