"""Do two results documents reach the same verdicts? Everything that does not depend on timing is compared.

    python -m benchmarks.same_verdicts BEFORE/results.json AFTER/results.json [--strip PREFIX ...]

For checking that a change to the harness changes no verdict: run `harness run --seed N` before and after, then
compare. Compared: every module's verdict, kind, variants, exactness and bound; every gate's verdict; every
case's id, dtype and pass/fail; and, outside the performance gate, reasons, failure messages and every metric
but durations. `--strip` removes a path prefix (e.g. each checkout's
root) from both documents first. Exit 0 when they agree, 1 otherwise, listing the differences.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

TIMED_GATES = ("perf",)  # gates whose reasons and figures are measurements, compared by verdict and cases only
TIMING_METRIC = re.compile(r"seconds")  # outside the timed gates, only durations depend on the machine's speed


def load(path: Path, strip: list[str]) -> dict[str, dict[str, Any]]:
    text = path.read_text()
    for prefix in strip:
        text = text.replace(prefix, "<root>")
    return {f"{m['name']} ({m['source']})": m for m in json.loads(text)["modules"]}


def _same_number(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _cases(where: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for x, y in zip(a["cases"], b["cases"], strict=True):
        here = f"{where} {x['case']} [{x['dtype']}]"
        if x["failures"] != y["failures"]:
            out.append(f"{here}: failures {x['failures'][:1]} != {y['failures'][:1]}")
        keys = {k for k in (*x["metrics"], *y["metrics"]) if not TIMING_METRIC.search(k)}
        out += [
            f"{here}: {k} {x['metrics'].get(k)} != {y['metrics'].get(k)}"
            for k in sorted(keys)
            if not _same_number(x["metrics"].get(k), y["metrics"].get(k))
        ]
    return out


def _gate(where: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    if a["verdict"] != b["verdict"]:
        out.append(f"{where}: verdict {a['verdict']} != {b['verdict']}")
    ids = [[(c["case"], c["dtype"], c["passed"]) for c in g["cases"]] for g in (a, b)]
    if ids[0] != ids[1]:
        return [*out, f"{where}: cases differ ({len(ids[0])} vs {len(ids[1])})"]
    if a["gate"] in TIMED_GATES:
        return out
    if a["reason"] != b["reason"]:
        out.append(f"{where}: reason {a['reason'][:200]!r} != {b['reason'][:200]!r}")
    return out + _cases(where, a, b)


def differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """Every timing-independent difference between two documents' modules, as readable lines."""
    out = [f"{name}: only in the first document" for name in before if name not in after]
    out += [f"{name}: only in the second document" for name in after if name not in before]
    for name in [n for n in before if n in after]:
        a, b = before[name], after[name]
        out += [
            f"{name}: {k} {a[k]!r} != {b[k]!r}"
            for k in ("verdict", "kind", "variants", "exact", "bound")
            if a[k] != b[k]
        ]
        gates = [[g["gate"] for g in m["gates"]] for m in (a, b)]
        if gates[0] != gates[1]:
            out.append(f"{name}: gates {gates[0]} != {gates[1]}")
            continue
        for x, y in zip(a["gates"], b["gates"], strict=True):
            out += _gate(f"{name} {x['gate']}", x, y)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.same_verdicts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--strip", action="append", default=[], help="path prefix to remove from both documents")
    args = parser.parse_args(argv)
    before, after = load(args.before, args.strip), load(args.after, args.strip)
    found = differences(before, after)
    print(f"{len(before)} and {len(after)} modules; {len(found)} differences")
    for line in found:
        print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
