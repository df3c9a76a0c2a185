"""Plain-text tables for the terminal: the module list and the verdicts of a run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.reproduce import RunFacts, reproduce_section
from harness.results.records import QUANTIZED_CASE, GateName, Verdict

if TYPE_CHECKING:
    from harness.judge.catalog import CatalogEntry
    from harness.results.records import CaseResult, GateResult, ModuleResult


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 90) -> str:
    """Left-aligned columns; cells longer than `max_width` are cut with an ellipsis."""
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *cells, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def print_list(entries: Sequence[CatalogEntry]) -> None:
    rows = []
    for e in entries:
        d = e.as_dict()
        exactness = "" if d["exact"] is None else ("exact" if d["exact"] else "approximate")
        rows.append([d["name"], d["kind"] or "?", ",".join(d["variant"]), exactness, e.error or d["source"]])
    print(table(["name", "kind", "variant", "exact", "source"], rows, max_width=100))
    broken = sum(1 for e in entries if e.error)
    print(
        f"\n{len(entries)} modules, {len({e.as_dict()['kind'] for e in entries})} kinds"
        + (f", {broken} failed to register" if broken else "")
    )


def provenance(env: dict[str, Any]) -> str:
    """One line naming where every figure above it comes from."""
    commit = str(env.get("git_commit", "?"))[:12] + (" (dirty)" if env.get("git_dirty") else "")
    dtypes = ", ".join(env.get("dtypes", []))
    policy = str(env.get("seed_policy", "")).split(":")[0]
    return (
        f"figures: device {env.get('device')}, {env.get('threads')} thread(s), dtypes {dtypes} (perf: float32), "
        f"torch {env.get('torch_version')}, harness {env.get('harness_version')}, commit {commit}, "
        f"{env.get('date')}, seed {env.get('seed')} ({policy})"
    )


VERDICT_HEADERS = ["module", "kind", "verdict", "gates", "s", "reason"]
INTEGRATION_HEADERS = [
    "module",
    "task",
    "val loss (ref)",
    "Δ loss (tol)",
    "ppl (ref)",
    "recall (ref, dense)",
    "Δ recall (tol)",
    "s",
    "result",
]
QUANTIZATION_HEADERS = [
    "module",
    "ppl (unquantized)",
    "change (limit)",
    "bytes",
    "codes",
    "min layer SQNR",
    "s",
    "result",
]
PERF_HEADERS = [
    "module",
    "case",
    "ratio [99% interval]",
    "candidate",
    "baseline",
    "roofline",
    "peak memory (ratio)",
    "blocks",
    "result",
]


def print_verdicts(
    results: Sequence[ModuleResult],
    seconds: float,
    env: dict[str, Any] | None = None,
    facts: RunFacts | None = None,
    results_path: Path | None = None,
) -> None:
    """The verdict of every module, then each gate's details, the command that reproduces each failure (given the
    run's `facts`; `results_path` is where `harness explain` finds the rest), the count, and the figures' origin."""
    rows = []
    for r in results:
        gates = " ".join(f"{g.gate}:{g.verdict}({sum(1 for c in g.cases if c.passed)}/{len(g.cases)})" for g in r.gates)
        verdict = r.verdict.upper() + (" (reused)" if r.reused else "")
        rows.append([r.name, r.kind or "?", verdict, gates, f"{r.seconds:.1f}", r.reason])
    print(table(VERDICT_HEADERS, rows, max_width=160))
    sections = (
        (
            "integration (candidate vs the reference configuration trained in this run)",
            INTEGRATION_HEADERS,
            integration_rows(results),
            60,
        ),
        ("quantized reference model (text task)", QUANTIZATION_HEADERS, quantization_rows(results), 60),
        (
            "performance (time ratio candidate / baseline, interleaved in one process; 99% interval)",
            PERF_HEADERS,
            perf_rows(results),
            70,
        ),
    )
    for title, headers, section, width in sections:
        if section:
            print(f"\n{title}")
            print(table(headers, section, max_width=width))
    reproduce = reproduce_section(facts, [r.as_dict() for r in results], results_path) if facts else []
    if reproduce:
        print("\n" + "\n".join(reproduce))
    passed = sum(1 for r in results if r.verdict == Verdict.PASS)
    print(f"\n{passed}/{len(results)} modules passed in {seconds:.1f} s")
    reused = [r for r in results if r.reused]
    if reused:
        dates = sorted(r.reused["date"] for r in reused if r.reused)
        print(
            f"{len(reused)} verdict{'s' if len(reused) != 1 else ''} reused from earlier runs on this machine "
            f"(judged {dates[0]}{' to ' + dates[-1] if dates[-1] != dates[0] else ''}): file, harness, torch, device "
            "and settings unchanged. --fresh judges them again."
        )
    if env:
        print(provenance(env))


def _interval(ratio: float, low: float, high: float) -> str:
    return f"{ratio:.3f} [{low:.3f}, {high:.3f}]"


def _duration(ns: float) -> str:
    return f"{ns / 1e3:.1f} us" if ns < 1e6 else f"{ns / 1e6:.2f} ms"


def _perf_case_row(name: str, c: CaseResult) -> list[str]:
    m = c.metrics
    roof = f"{m['roofline_pct']:.0f}% ({m['gbps']:.1f} GB/s)" if "roofline_pct" in m else ""
    mem = f"{m['candidate_peak_bytes'] / 2**20:.1f} MB ({m['memory_ratio']:.2f})" if "memory_ratio" in m else ""
    interval = _interval(m["ratio"], m["ratio_low"], m["ratio_high"])
    return [
        name,
        c.case.removeprefix("perf/"),
        interval,
        _duration(m["candidate_ns"]),
        _duration(m["baseline_ns"]),
        roof,
        mem,
        f"{m['blocks']:.0f}",
        "pass" if c.passed else c.failures[0],
    ]


def _perf_summary_rows(name: str, g: GateResult) -> list[list[str]]:
    rows = []
    s = g.summary
    for group in ("forward", "forward_backward", "all"):
        if f"{group}.ratio" in s:
            interval = _interval(s[f"{group}.ratio"], s[f"{group}.low"], s[f"{group}.high"])
            verdict = f"{g.verdict}: {g.reason}" if group == "all" else ""
            rows.append([name, f"geometric mean: {group.replace('_', '+')}", interval, "", "", "", "", "", verdict])
    if not s and g.verdict != Verdict.SKIPPED:
        rows.append([name, "", "", "", "", "", "", "", f"{g.verdict}: {g.reason}"])
    return rows


def perf_rows(results: Sequence[ModuleResult]) -> list[list[str]]:
    """One row per timed (case, mode), then one per geometric mean with the gate's verdict."""
    rows = []
    for r in results:
        for g in r.gates:
            if g.gate == GateName.PERF:
                rows += [_perf_case_row(r.name, c) for c in g.cases if "ratio" in c.metrics]
                rows += _perf_summary_rows(r.name, g)
    return rows


def _integration_cases(results: Sequence[ModuleResult]) -> list[tuple[str, CaseResult]]:
    return [(r.name, c) for r in results for g in r.gates if g.gate == GateName.INTEGRATION for c in g.cases]


def integration_rows(results: Sequence[ModuleResult]) -> list[list[str]]:
    """One row per trained task: the candidate's metrics, the reference's, the deltas and the tolerances."""
    rows = []
    for name, case in _integration_cases(results):
        m = case.metrics
        if case.case == QUANTIZED_CASE:
            continue
        if "val_loss" not in m:
            rows.append([name, case.case.split("/")[-1], "", "", "", "", "", f"{case.seconds:.1f}", case.failures[0]])
            continue
        rows.append(
            [
                name,
                case.case.split("/")[-1],
                f"{m['val_loss']:.4f} ({m['ref_val_loss']:.4f})",
                f"{m['val_loss_delta']:+.4f} ({m['val_loss_tolerance']:.4f})",
                f"{m['perplexity']:.3f} ({m['ref_perplexity']:.3f})",
                f"{m['recall']:.3f} ({m['ref_recall']:.3f}, {m['dense_recall']:.3f})",
                f"{m['recall_delta']:+.3f} ({m['recall_tolerance']:.3f})",
                f"{case.seconds:.1f}",
                "pass" if case.passed else case.failures[0],
            ]
        )
    return rows


def quantization_rows(results: Sequence[ModuleResult]) -> list[list[str]]:
    """One row per quantization module: perplexity change, bytes before and after, worst layer."""
    rows = []
    for name, case in _integration_cases(results):
        m = case.metrics
        if case.case != QUANTIZED_CASE:
            continue
        if "perplexity" not in m:
            rows.append([name, "", "", "", "", "", f"{case.seconds:.1f}", case.failures[0]])
            continue
        sqnr = [v for k, v in m.items() if k.startswith("sqnr_db[")]
        bits = [int(v) for k, v in m.items() if k.startswith("bits[")]
        codes = " ".join(f"{b}b x{bits.count(b)}" for b in sorted(set(bits)))
        rows.append(
            [
                name,
                f"{m['perplexity']:.4f} ({m['ref_perplexity']:.4f})",
                f"{100 * m['perplexity_increase']:+.3f}% ({100 * m['perplexity_increase_limit']:g}%)",
                f"{m['model_bytes']:,.0f} -> {m['quantized_model_bytes']:,.0f}",
                codes,
                f"{min(sqnr):.1f} dB" if sqnr else "",
                f"{case.seconds:.1f}",
                "pass" if case.passed else case.failures[0],
            ]
        )
    return rows
