"""Command line: `harness list | check | run | new | changed | plan | merge | ingest | report | pr | unpack |
explain`. Exit codes: 0 all passed, 1 something failed, 2 usage error."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
from pathlib import Path

import torch

from harness.cli import cases, explain, pr, report, shards, unpack
from harness.cli.progress import progress_for
from harness.cli.reproduce import RunFacts
from harness.cli.scaffold import ScaffoldError, scaffold
from harness.cli.terminal import print_list, print_verdicts
from harness.core.contract import ModuleSource
from harness.core.seeding import dtype_name
from harness.gates import GATES
from harness.integration.policy import MixedPrecisionPolicy, PolicyError, load_policies
from harness.judge.base_branch import BaseBranchError, base_sources, git
from harness.judge.catalog import catalog
from harness.judge.changes import changes, describe
from harness.judge.integrity import HarnessTampered
from harness.judge.isolation import MODES, module_roots
from harness.judge.reuse import Provenance, Reuse, verdict_directory
from harness.judge.runner import RunOptions, RunStopped, judge_all
from harness.judge.sandbox import Limits
from harness.kinds import KINDS
from harness.perf.config import PerfConfigError, PerfSettings, load_thresholds
from harness.perf.timer import seconds
from harness.registry.sources import module_sources
from harness.results.document import ResultsDocument
from harness.results.fingerprint import REPO_ROOT as JUDGE_ROOT
from harness.results.fingerprint import fingerprint, git_commit
from harness.results.records import PASSING, GateName, ModuleResult
from harness.store import DocumentRejected, StoreError, default_store, ingest
from harness.store.db import STORE_ENV

SEED_SECRET = "secret: drawn by the judge at start from os.urandom, disclosed here after the run"
SEED_FIXED = "fixed by --seed"


def checked_dtypes() -> list[str]:
    """Every dtype some kind's unit gate checks on this machine."""
    names = {dtype_name(d) for k in KINDS.values() for v in k.variants for d in k.dtypes(v)}
    return sorted(names)


class UsageError(Exception):
    """The command line asks for something that cannot be done; exit code 2."""


def default_modules_dir() -> Path:
    """The in-tree modules/ directory, found without importing any module in it."""
    import importlib.util

    spec = importlib.util.find_spec("modules")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path.cwd() / "modules"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="list registered modules (imported in a contestant process)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    _add_source_options(listing)

    check = sub.add_parser("check", help="run named modules through the gates")
    check.add_argument("names", nargs="+", metavar="NAME")
    _add_run_options(check)
    cases.add_options(check)

    run = sub.add_parser("run", help="run every module through every gate; with --out, publish to the store and site")
    _add_run_options(run)
    _add_store_option(run)
    run.add_argument("--no-publish", action="store_true", help="do not ingest the results or render the leaderboard")

    ingest = sub.add_parser("ingest", help="add results documents to the store (history and leaderboards)")
    ingest.add_argument("documents", nargs="+", type=Path, metavar="RESULTS.json")
    _add_store_option(ingest)

    report.add_parser(sub, STORE_HELP)
    pr.add_parser(sub)
    unpack.add_parser(sub)
    shards.add_parsers(sub, default_modules_dir)
    explain.add_parser(sub, default_modules_dir)

    changed = sub.add_parser(
        "changed", help="modules a change adds, modifies or removes; whether it touches the harness"
    )
    changed.add_argument(
        "--base", required=True, metavar="REF", help="the branch the change goes into, e.g. origin/main"
    )
    changed.add_argument("--head", default="HEAD", metavar="REF", help="the change's last commit (default: HEAD)")
    changed.add_argument("--json", action="store_true", help="machine-readable output")
    changed.add_argument(
        "--modules-dir", type=Path, default=None, help="where modules live (default: in-tree modules/)"
    )

    new = sub.add_parser("new", help="scaffold a module file that passes `harness check` as generated")
    new.add_argument("kind", choices=sorted(KINDS))
    new.add_argument("name", help="lower_snake_case module name; becomes the file name")
    new.add_argument("--variant", help="variant to implement (default: the kind's first variant)")
    new.add_argument("--modules-dir", type=Path, default=None, help="where modules live (default: in-tree modules/)")
    return parser


STORE_HELP = f"SQLite store (default: ${STORE_ENV} or {default_store()}; created on first use)"


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=None, help=STORE_HELP)


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modules-dir", type=Path, default=None, help="where modules live (default: in-tree modules/)")
    parser.add_argument("--no-entry-points", action="store_true", help="ignore modules from installed packages")
    parser.add_argument("--timeout", type=float, default=Limits.timeout_s, help="seconds per module and gate")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="memory cap per contestant process")
    parser.add_argument(
        "--isolation",
        choices=MODES,
        default="auto",
        help="auto (default): contestants get the strongest isolation this machine allows (Landlock, another user, "
        "no capabilities); off: none, for testing the integrity check only",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_source_options(parser)
    parser.add_argument("--gates", default=",".join(GATES), help=f"comma-separated gates among {', '.join(GATES)}")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--modules-from",
        type=Path,
        default=None,
        metavar="TREE",
        help="trusted judge: judge the module files of TREE/modules (e.g. a pull request's head checkout) with "
        "this harness, its kinds and its settings; nothing else of TREE is read or imported",
    )
    parser.add_argument(
        "--not-authoritative",
        action="store_true",
        help="mark the results as not authoritative (the change being judged edits the harness itself)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write DIR/results.json (and DIR/modules/*.json)")
    parser.add_argument("--seed", type=int, default=None, help="fix the input seed (default: a secret random seed)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="judge every module again; by default a module whose file, harness, torch, device and settings are "
        "unchanged since a stored verdict on this machine gets that verdict back (marked reused, with its date)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="no progress and no table: the summary line only")
    shown.add_argument("--json", action="store_true", help="progress as JSON lines (one per finished gate), no table")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="modules judged at once (default: 2 on machines with 2+ cores)",
    )
    parser.add_argument(
        "--base",
        default=None,
        metavar="REF",
        help="time each module against its version at the merge-base of REF and HEAD (perf gate)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="pyproject.toml with [tool.harness.mixed_precision] policies "
        "(default: the one beside the modules directory)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.command == "new":
            return cmd_new(args)
        if args.command == "ingest":
            return cmd_ingest(args)
        if args.command == "report":
            return report.cmd_report(args)
        if args.command == "pr":
            return pr.cmd_pr(args)
        if args.command == "unpack":
            return unpack.cmd_unpack(args)
        if args.command == "plan":
            return shards.cmd_plan(args)
        if args.command == "merge":
            return shards.cmd_merge(args)
        if args.command == "changed":
            return cmd_changed(args)
        if args.command == "explain":
            return explain.cmd_explain(args)
        return cmd_judge(args)
    except (UsageError, report.ReportError, cases.CaseError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2


def _modules_root(args: argparse.Namespace) -> Path:
    """Where the module files come from: TREE/modules with --modules-from, else --modules-dir or the in-tree one."""
    tree: Path | None = getattr(args, "modules_from", None)
    if tree is None:
        return Path(args.modules_dir or default_modules_dir())
    if args.modules_dir is not None:
        raise UsageError("--modules-from TREE reads TREE/modules; it cannot be combined with --modules-dir.")
    return tree / "modules"


def _sources(args: argparse.Namespace) -> list[ModuleSource]:
    root = _modules_root(args)
    if not root.is_dir():
        fix = "pass a checkout that has modules/" if getattr(args, "modules_from", None) else "pass --modules-dir DIR"
        raise UsageError(f"modules directory {root} does not exist. Fix: {fix}.")
    # A trusted-judge run judges the tree's files only: an installed package's modules are not the change's.
    entry_points = not args.no_entry_points and getattr(args, "modules_from", None) is None
    return module_sources(root, entry_points=entry_points)


def _policies(args: argparse.Namespace) -> list[MixedPrecisionPolicy]:
    path = _config_path(args)
    if args.config is not None and not path.is_file():
        raise UsageError(f"--config {path} does not exist.")
    try:
        return load_policies(path)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None


def _config_path(args: argparse.Namespace) -> Path:
    """--config, else the pyproject.toml beside the modules; in a trusted-judge run, the judge's own, never TREE's."""
    if args.config is not None:
        return Path(args.config)
    if getattr(args, "modules_from", None) is not None:
        return JUDGE_ROOT / "pyproject.toml"
    return _modules_root(args).resolve().parent / "pyproject.toml"


def _perf_thresholds(args: argparse.Namespace) -> tuple[float | None, dict[str, float]]:
    try:
        return load_thresholds(_config_path(args))
    except PerfConfigError as exc:
        raise UsageError(str(exc)) from None


def _limits(args: argparse.Namespace) -> Limits:
    if args.timeout <= 0 or args.memory_mb <= 0:
        raise UsageError("--timeout and --memory-mb must be positive")
    return Limits(
        timeout_s=args.timeout,
        memory_mb=args.memory_mb,
        device=getattr(args, "device", "cpu"),
        isolation_mode=args.isolation,
    )


def cmd_list(args: argparse.Namespace) -> int:
    try:
        entries = catalog(_sources(args), _limits(args))
    except HarnessTampered as exc:
        print(f"harness: error: {exc.reason}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([entry.as_dict() for entry in entries], indent=1))
    else:
        print_list(entries)
    return 1 if any(entry.error for entry in entries) else 0


def cmd_changed(args: argparse.Namespace) -> int:
    modules = (args.modules_dir or default_modules_dir()).resolve()
    try:
        root = Path(git(modules.parent if not modules.is_dir() else modules, "rev-parse", "--show-toplevel"))
        result = changes(root, args.base, args.head, modules.relative_to(root.resolve()).as_posix())
    except (BaseBranchError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result.as_dict(), indent=1) if args.json else describe(result))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Every document validated first; none is written unless all are valid."""
    store = args.store or default_store()
    try:
        done = ingest(list(args.documents), store)
    except (DocumentRejected, StoreError) as exc:
        print(f"harness ingest: rejected, the store is unchanged: {exc}", file=sys.stderr)
        return 1
    for item in done:
        what = (
            f"already stored as run {item.run_id}"
            if item.already_stored
            else (f"run {item.run_id}: {item.modules} modules, {item.cases} cases")
        )
        print(f"{item.path}: {what}")
    print(f"store: {store}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    root = args.modules_dir or default_modules_dir()
    try:
        path = scaffold(args.kind, args.name, args.variant, root)
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from None
    print(f"created {path}\nnext: harness check {args.name}")
    return 0


def _gates(args: argparse.Namespace) -> tuple[GateName, ...]:
    names = tuple(g.strip() for g in args.gates.split(",") if g.strip())
    unknown = [g for g in names if g not in GATES]
    if not names or unknown:
        raise UsageError(f"unknown gate(s) {unknown or names}; available: {', '.join(GATES)}")
    return tuple(GateName(g) for g in names)


def _selected(
    args: argparse.Namespace, available: list[ModuleSource], policies: list[MixedPrecisionPolicy]
) -> tuple[list[ModuleSource], list[MixedPrecisionPolicy]]:
    """Every module and policy for `run`; the named ones for `check`, every name known."""
    if args.command != "check":
        return available, policies
    known = {s.name for s in available} | {p.name for p in policies}
    missing = [n for n in args.names if n not in known]
    if missing:
        raise UsageError(
            f"no module or policy named {', '.join(missing)}. `harness list` shows the modules; "
            "policies are in [tool.harness.mixed_precision] and judged with --gates integration."
        )
    wanted = set(args.names)
    return [s for s in available if s.name in wanted], [p for p in policies if p.name in wanted]


def _base(args: argparse.Namespace, gates: tuple[GateName, ...]) -> tuple[str | None, dict[str, ModuleSource]]:
    """(merge-base commit, base versions by name) for --base with the perf gate; (None, {}) otherwise."""
    if args.base is None or GateName.PERF not in gates:
        return None, {}
    try:
        return base_sources(args.base, _modules_root(args))
    except BaseBranchError as exc:
        raise UsageError(str(exc)) from None


def _options(
    args: argparse.Namespace,
    gates: tuple[GateName, ...],
    policies: list[MixedPrecisionPolicy],
    seed: int,
    base: dict[str, ModuleSource],
) -> RunOptions:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    default_threshold, per_kind = _perf_thresholds(args)
    perf_settings = PerfSettings() if default_threshold is None else PerfSettings(threshold=default_threshold)
    return RunOptions(
        gates=gates,
        limits=_limits(args),
        seed=seed,
        jobs=args.jobs,
        policies=tuple(policies),
        perf=perf_settings,
        perf_thresholds=per_kind,
        base=base,
    )


def _seed(args: argparse.Namespace) -> int:
    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must be a non-negative integer")
    return args.seed if args.seed is not None else secrets.randbits(63)


NOT_AUTHORITATIVE = (
    "not authoritative: the change being judged edits the harness itself; the verdict that counts comes from the "
    "base branch's harness, and a maintainer must approve the change to the harness"
)


def _authority(args: argparse.Namespace) -> dict[str, object]:
    """What a trusted-judge run records about where the modules came from and whether its verdicts count."""
    fields: dict[str, object] = {"authoritative": not args.not_authoritative}
    if args.not_authoritative:
        fields["authority_note"] = NOT_AUTHORITATIVE
    if args.modules_from is not None:
        commit, _dirty = git_commit(Path(args.modules_from))
        fields["modules_from"] = str(Path(args.modules_from).resolve())
        fields["modules_commit"] = None if commit == "unknown" else commit
    return fields


def _gate_runs(options: RunOptions, sources: list[ModuleSource]) -> int:
    return (len(sources) + len(options.policies)) * len(options.gates)


def _headline(sources: list[ModuleSource], options: RunOptions, isolation: list[str]) -> str:
    modules = f"{len(sources)} module{'' if len(sources) == 1 else 's'}"
    count = len(options.policies)
    policies = f" and {count} polic{'y' if count == 1 else 'ies'}" if options.policies else ""
    gates, where = ", ".join(options.gates), options.limits.device
    return (
        f"judging {modules}{policies} through {gates} on {where}, {options.jobs} at a time "
        f"(isolation: {', '.join(isolation) or 'off'})"
    )


def _summary_line(args: argparse.Namespace, results: list[ModuleResult], elapsed: float) -> None:
    passed = sum(1 for r in results if r.verdict in PASSING)
    if args.json:
        verdicts = {r.name: str(r.verdict) for r in results}
        print(json.dumps({"event": "end", "passed": passed, "total": len(results), "verdicts": verdicts}))
    else:
        print(f"{passed}/{len(results)} modules passed in {elapsed:.1f} s")


def cmd_judge(args: argparse.Namespace) -> int:
    gates = _gates(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda needs a CUDA device and a CUDA build of torch; none is available here")
    available = _sources(args)
    sources, policies = _selected(args, available, _policies(args) if GateName.INTEGRATION in gates else [])
    gates, selection = cases.select(args, sources, policies, gates, checked_dtypes())
    seed = _seed(args)
    base_commit, base = _base(args, gates)
    options = dataclasses.replace(_options(args, gates, policies, seed, base), cases=selection)
    roots = module_roots(s.path for s in [*available, *base.values()])
    options = dataclasses.replace(options, limits=options.limits.with_isolation(roots))
    limits = options.limits
    assert limits.isolation is not None
    env = fingerprint(
        device=args.device,
        threads=limits.threads,
        dtypes=checked_dtypes(),
        seed=seed,
        seed_policy=SEED_FIXED if args.seed is not None else SEED_SECRET,
    )
    env["isolation"] = limits.isolation.as_dict()
    config = {
        "gates": [str(g) for g in gates],
        "base_ref": args.base,
        "base_commit": base_commit,
        "timeout_s": limits.timeout_s,
        "memory_mb": limits.memory_mb,
        "device": args.device,
        "modules_dir": str(_modules_root(args)),
        "config_file": None if args.config is None else str(Path(args.config).resolve()),
        "entry_points": not args.no_entry_points,
        **_authority(args),
    }
    if selection.limited:
        config["cases"] = {"cases": sorted(selection.cases), "dtypes": sorted(selection.dtypes)}
    document = ResultsDocument(env, config, args.out)
    start = seconds()
    stopped = None
    progress = progress_for("quiet" if args.quiet else "json" if args.json else "auto", _gate_runs(options, sources))
    verdicts = verdict_directory()
    reuse = None
    if verdicts is not None:
        reuse = Reuse(
            lookup=not args.fresh,
            provenance=Provenance(date=str(env["date"]), commit=str(env["git_commit"]), seed=str(seed)),
            fixed_seed=args.seed,
            directory=verdicts,
        )
    options = dataclasses.replace(options, on_gate=progress, on_reused=progress.reused, reuse=reuse)
    progress.begin(_headline(sources, options, limits.isolation.mechanisms()))
    try:
        results = judge_all(sources, options, document.add, available=available)
    except RunStopped as exc:
        results, stopped = exc.results, str(exc)
    finally:
        progress.end()
    if args.quiet or args.json:
        _summary_line(args, results, seconds() - start)
    else:
        facts = RunFacts(env, config, default_modules_dir())
        print_verdicts(results, seconds() - start, env, facts, args.out / "results.json" if args.out else None)
    if stopped:
        print(f"harness: error: {stopped}", file=sys.stderr)
        return 1
    if args.out is not None:
        print(f"results: {args.out / 'results.json'}")
        if args.command == "run" and not args.no_publish:
            report.publish(args.out / "results.json", args.store or default_store(), args.out)
    return 0 if results and all(r.verdict in PASSING for r in results) else 1
