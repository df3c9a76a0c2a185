"""Plain-text tables for the terminal: the module list and the verdicts of a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.catalog import CatalogEntry
    from harness.results.records import ModuleResult


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
    print(f"\n{len(entries)} modules, {len({e.as_dict()['kind'] for e in entries})} kinds" +
          (f", {broken} failed to register" if broken else ""))


def print_verdicts(results: Sequence[ModuleResult], seconds: float) -> None:
    rows = []
    for r in results:
        gates = " ".join(f"{g.gate}:{g.verdict}({sum(1 for c in g.cases if c['passed'])}/{len(g.cases)})"
                         for g in r.gates)
        rows.append([r.name, r.kind or "?", r.verdict.upper(), gates, f"{r.seconds:.1f}", r.reason])
    print(table(["module", "kind", "verdict", "gates", "s", "reason"], rows, max_width=160))
    passed = sum(1 for r in results if r.verdict == "pass")
    print(f"\n{passed}/{len(results)} modules passed in {seconds:.1f} s")
