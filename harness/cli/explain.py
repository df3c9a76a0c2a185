"""`harness explain RESULTS NAME`: one module of a results document, its failing cases with the figures they
recorded (worst element, error against tolerance, metrics), and the command that reproduces each.

The document is untrusted input (it may come back from a pull request's job): it is read and validated like
`harness ingest` reads it, and its text is printed with control characters escaped and long messages cut.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from harness.cli.reproduce import Record, RunFacts, failures
from harness.results.records import PASSING
from harness.store import DocumentRejected, read_document

MAX_TEXT = 1000  # characters of one message, reason or path shown
FIRST_METRICS = ("max_abs_err", "tolerance", "ref_max_abs_err")  # what decided an exact comparison, shown first


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], modules_dir: Callable[[], Path]) -> None:
    """`explain`; `modules_dir` gives the default modules directory (reproduce commands name any other)."""
    parser = sub.add_parser(
        "explain", help="a module's failing cases in a results document, and the command that reproduces each"
    )
    parser.add_argument("results", type=Path, metavar="RESULTS", help="a results.json, or the --out directory of a run")
    parser.add_argument("name", metavar="NAME", help="the module (or policy) to explain")
    parser.set_defaults(default_modules_dir=modules_dir)


def cmd_explain(args: argparse.Namespace) -> int:
    """Exit 0 when the module passed, 1 when it did not, 2 when the document or the name cannot be used."""
    path = Path(args.results) / "results.json" if Path(args.results).is_dir() else Path(args.results)
    try:
        document, _sha = read_document(path)
    except DocumentRejected as exc:
        print(f"harness explain: error: {clean(str(exc))}", file=sys.stderr)
        return 2
    modules = [m for m in document["modules"] if m["name"] == args.name]
    if not modules:
        names = ", ".join(m["name"] for m in document["modules"]) or "none"
        problem = f"{path} has no module named {clean(args.name)!r}; it has: {names}"
        print(f"harness explain: error: {problem}. Fix: pass one of those names.", file=sys.stderr)
        return 2
    facts = RunFacts(document["environment"], document["config"], args.default_modules_dir())
    for module in modules:  # one, unless the run gave several files the same name (each an error)
        print("\n".join(explain(facts, module, path)))
    return 0 if all(m["verdict"] in PASSING for m in modules) else 1


def explain(facts: RunFacts, module: Record, path: Path) -> list[str]:
    """The module's verdict and provenance, then each gate, with every failing case and its reproduce command."""
    lines = [*_header(facts, module, path), ""]
    found = failures(facts, module)
    for gate in module["gates"]:
        total, failed = len(gate["cases"]), sum(1 for c in gate["cases"] if not c["passed"])
        reason = f": {clean(gate['reason'])}" if gate["reason"] else ""
        lines.append(f"{gate['gate']}: {gate['verdict']} ({total - failed}/{total} cases passed){reason}")
        for failure in (f for f in found if f.gate is gate):
            lines += _failure(failure.case, failure.command)
    if module["verdict"] in PASSING:
        lines.append(f"\n{module['name']} passed: nothing to reproduce.")
    return lines


def _header(facts: RunFacts, module: Record, path: Path) -> list[str]:
    env = facts.environment
    verdict = str(module["verdict"]).upper()
    said = {f"{g['gate']}: {g['reason']}" for g in module["gates"]}  # a gate's reason is shown with the gate
    reason = f" ({clean(module['reason'])})" if module["reason"] and module["reason"] not in said else ""
    variants = ", ".join(clean(str(v)) for v in module["variants"]) or "?"
    exact = {True: "exact", False: "approximate", None: "?"}[module["exact"]]
    lines = [
        f"{module['name']}: {verdict}{reason}",
        f"  {module['kind'] or '?'} ({variants}), {exact}; source {clean(module['source'])}",
        f"  from {clean(str(path))}: seed {facts.seed(module)} ({clean(str(env['seed_policy'])).split(':')[0]}), "
        f"device {clean(str(env['device']))}, commit {clean(str(env['git_commit']))[:12]}, {clean(str(env['date']))}",
    ]
    reused = module.get("reused")
    if reused:
        lines.append(
            f"  verdict reused from the run of {clean(reused['date'])} (commit {clean(reused['commit'])[:12]}, "
            f"seed {clean(reused['seed'])})"
        )
    return lines


def _failure(case: Record | None, command: str) -> list[str]:
    """One failing case: id, dtype and sizes, each failure message, the metrics it recorded, the command."""
    if case is None:
        return [f"  reproduce the gate: {command}"]
    sizes = " ".join(f"{clean(k)}={v}" for k, v in case["sizes"].items())
    lines = [f"  {clean(case['case'])} [{case['dtype']}]{'  ' + sizes if sizes else ''}"]
    lines += [f"    failed: {clean(message)}" for message in case["failures"]]
    lines += [f"    metrics {line}" for line in metric_lines(case["metrics"])]
    lines.append(f"    reproduce: {command}")
    return lines


def metric_lines(metrics: Record) -> list[str]:
    """One line per compared tensor ("output", "grad[x]", ...; the case's own figures under "case")."""
    groups: dict[str, dict[str, object]] = {}
    for key, value in metrics.items():
        tensor, _, field = str(key).rpartition(".")
        groups.setdefault(tensor or "case", {})[field] = value
    lines = []
    for tensor, fields in groups.items():
        order = [f for f in FIRST_METRICS if f in fields] + [f for f in fields if f not in FIRST_METRICS]
        lines.append(f"{clean(tensor)}: " + ", ".join(f"{clean(f)} {_number(fields[f])}" for f in order))
    return lines


def _number(value: object) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.5g}"
    return clean(str(value))  # "inf", "-inf", "nan": how results.json writes non-finite numbers


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Untrusted text for a terminal: control characters escaped (no terminal escape sequences), cut at `limit`."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
