"""Showcase: what the shipped modules buy, measured by the harness's own helpers on this machine.

    python -m benchmarks.showcase [--part attention|policy|roofline|all] [--out showcase.json] [--markdown]

- attention (benchmarks/showcase_attention.py): sliding-window, top-k and dynamic-window attention against dense
  attention at 4k, 8k and 16k tokens: peak memory, time, the compute each does and the attention mass it keeps;
- policy (benchmarks/showcase_policy.py): mixed-precision quantization of the integration gate's trained model:
  model bytes against perplexity retained;
- roofline (benchmarks/showcase_roofline.py): every shipped norm and activation module as a percentage of this
  machine's measured roofline.

The shipped modules of this tree run in this process (they are reviewed code; a pull request's modules are judged
by `harness check` in contestants instead). Like a contestant, the process runs with the judge's pinned allocator
settings and one thread per library (`harness.judge.sandbox.WORKER_ENV`): it re-executes itself once with them.
Progress goes to stderr; the JSON carries the provenance of every figure (device, dtype, torch version, commit,
date, CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks import showcase_attention, showcase_policy, showcase_roofline
from harness.judge.sandbox import WORKER_ENV
from harness.perf.timer import seconds
from harness.results.fingerprint import fingerprint

PARTS = ("attention", "policy", "roofline")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def provenance(seed: int) -> dict[str, Any]:
    env = fingerprint(device="cpu", threads=1, dtypes=["float32"], seed=seed, seed_policy="fixed")
    allocator = {k: os.environ.get(k) for k in WORKER_ENV if k.startswith("MALLOC_")}
    return {**env, "allocator": allocator, "loadavg_start": os.getloadavg()[0]}  # other work on a shared machine


def run(parts: list[str], seed: int) -> dict[str, Any]:
    started = seconds()
    doc: dict[str, Any] = {"provenance": provenance(seed), "parts": {}}
    if "attention" in parts:
        doc["parts"]["attention"] = showcase_attention.run(showcase_attention.AttentionConfig(seed=seed), log)
    if "policy" in parts:
        doc["parts"]["policy"] = showcase_policy.run(showcase_policy.PolicyConfig(seed=seed), log)
    if "roofline" in parts:
        doc["parts"]["roofline"] = showcase_roofline.run(showcase_roofline.RooflineConfig(seed=seed), log)
    doc["seconds"] = seconds() - started
    doc["provenance"]["loadavg_end"] = os.getloadavg()[0]
    return doc


# --- Markdown ---------------------------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def attention_markdown(part: dict[str, Any]) -> str:
    cfg = part["config"]
    lines = [
        f"Batch 1, {cfg['heads']} heads x {cfg['head_dim']}, float32, one thread; sliding window {cfg['window']} keys, "
        "top-k 256 keys; time is the median (and range) over rounds of the ratio to dense sdpa in the same round.",
        "",
        "| tokens | method | peak MiB | ms | time / sdpa (range) | scores / causal pairs | mass recall (p5) "
        "| output cosine | mass recall, random q/k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for length in part["lengths"]:
        random_recall = length["random_inputs"]["mass_recall"]
        for name, m in length["methods"].items():
            rnd = random_recall.get(name)
            low, high = m["time_vs_dense_range"]
            lines.append(
                f"| {length['length']} | `{name}` | {_mib(m['peak_bytes'])} | {m['median_ms']:,.0f} | "
                f"{m['time_vs_dense']:.2f} ({low:.2f}-{high:.2f}) | {m['score_fraction']:.2f} | {m['mass_recall']:.3f} "
                f"({m['mass_recall_p5']:.3f}) | {m['output_cosine']:.4f} | {'1' if rnd is None else f'{rnd:.3f}'} |"
            )
        for name, why in length["skipped"].items():
            lines.append(f"| {length['length']} | `{name}` | {why} (about 3 alive, ~30 s a call) | | | | | | |")
    lines += ["", "Dynamic window: share of the causal score blocks computed, by the mass each probe must cover:", ""]
    targets = [row["mass"] for row in part["lengths"][0]["dynamic_mass_sweep"]]
    lines.append(
        "| tokens | " + " | ".join(f"mass {t:g}: blocks, recall" for t in targets) + " | random q/k, default |"
    )
    lines.append("|---" * (len(targets) + 2) + "|")
    for length in part["lengths"]:
        cells = [f"{r['block_fraction']:.2f}, {r['mass_recall']:.3f}" for r in length["dynamic_mass_sweep"]]
        random_blocks = length["random_inputs"]["dynamic_block_fraction"]
        lines.append(f"| {length['length']} | " + " | ".join(cells) + f" | {random_blocks:.2f} |")
    if part.get("gradients"):
        lines += [
            "",
            f"Gradients at {cfg['grad_length']} tokens (structured inputs, random output gradient), cosine / SQNR dB "
            "against float64 dense attention:",
            "",
            "| method | output | grad q | grad k | grad v |",
            "|---|---|---|---|---|",
        ]
        for name, tensors in part["gradients"].items():
            cells = [f"{t['cosine']:.3f} / {t['sqnr_db']:.1f}" for t in tensors.values()]
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def policy_markdown(part: dict[str, Any]) -> str:
    lines = [
        "| model | code bits | model bytes | bytes / float | perplexity | perplexity retained | gate limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in part["points"]:
        limit = p.get("perplexity_limit")
        verdict = "" if limit is None else f"+{100 * limit:g}% ({'pass' if p['gate_passed'] else 'fail'})"
        bits = "/".join(str(b) for b in p["bits"])
        lines.append(
            f"| {p['label']} | {bits} | {p['model_bytes']:,} | {p['bytes_vs_float']:.3f} | {p['perplexity']:.4f} | "
            f"{p['perplexity_retained']:.4f} | {verdict} |"
        )
    return "\n".join(lines)


def roofline_markdown(part: dict[str, Any]) -> str:
    lines = [
        "| module | case | us | GB/s | roofline % | time / reference | roofline %, last perf gate run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in part["rows"]:
        stored = r["stored_roofline_pct"]
        lines.append(
            f"| `{r['module']}` | {r['case']} | {r['median_us']:,.1f} | {r['gbps']:.1f} | {r['roofline_pct']:.1f} | "
            f"{r['vs_reference']:.2f} | {'-' if stored is None else f'{stored:.1f}'} |"
        )
    best = ", ".join(
        f"{kind}: `{b['module']}` {b['roofline_pct']:.1f}% on {b['case']}" for kind, b in part["best"].items()
    )
    return "\n".join([*lines, "", f"Best: {best}."])


def markdown(doc: dict[str, Any]) -> str:
    env = doc["provenance"]
    head = (
        f"Measured {env['date'][:10]} on {env['cpu_model']} ({env['cpu_count']} cores), torch {env['torch_version']}, "
        f"commit {env['git_commit'][:8]}{' (dirty)' if env['git_dirty'] else ''}; whole run {doc['seconds']:.0f} s; "
        f"load average {env['loadavg_start']:.1f} at the start, {env.get('loadavg_end', math.nan):.1f} at the end."
    )
    render = {"attention": attention_markdown, "policy": policy_markdown, "roofline": roofline_markdown}
    sections = [head]
    for name, part in doc["parts"].items():
        sections.append(f"### {name} ({part.get('seconds', math.nan):.0f} s)\n\n" + render[name](part))
    return "\n\n".join(sections) + "\n"


# --- command line -----------------------------------------------------------------------------------------------


def _pinned_env() -> None:
    """Re-execute once with the contestant's allocator and thread settings, so figures match the gate's."""
    if all(os.environ.get(k) == v for k, v in WORKER_ENV.items()):
        return
    env = {**os.environ, **WORKER_ENV}
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.showcase", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.showcase", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all")
    parser.add_argument("--out", type=Path, default=Path("showcase.json"), help="where the JSON goes")
    parser.add_argument("--markdown", action="store_true", help="also print the README tables to stdout")
    parser.add_argument("--seed", type=int, default=0, help="seeds every input (the figures are reproducible)")
    args = parser.parse_args(argv)
    if argv is None:
        _pinned_env()
    parts = list(PARTS) if args.part == "all" else [args.part]
    doc = run(parts, args.seed)
    args.out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    log(f"showcase: {', '.join(parts)} in {doc['seconds']:.0f} s; wrote {args.out}")
    if args.markdown:
        print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
