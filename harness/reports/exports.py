"""A leaderboard as Markdown (what a README or a pull-request comment embeds), CSV and JSON.

Module names, reasons and every other string from a results document are untrusted: in Markdown they are flattened
to one line, capped, stripped of invisible characters and escaped so they cannot break a table, open a link or raw
HTML, or mention a user, team or issue. CSV and JSON are written by pandas over one long frame of every board's rows.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from harness.reports.model import BOARD_COLUMNS, FAILED_COLUMNS, POLICY_COLUMNS, Board, Leaderboard, Provenance

BOARD_KEYS = ("kind", "variant", "device", "dtype", "section")  # added to each row of the long frame
LONG_COLUMNS = tuple(dict.fromkeys((*BOARD_KEYS, *BOARD_COLUMNS, *FAILED_COLUMNS, *POLICY_COLUMNS[1:])))
NAME_CAP = 80  # characters of a module name shown in Markdown
REASON_CAP = 240  # characters of a failure reason or note shown in Markdown
_MD_SPECIAL = frozenset("\\`*[]<>|~$&")  # backslash-escaped (CommonMark allows it for any ASCII punctuation)
# "_" is left alone: inside a word (every module name) GFM never reads it as emphasis
# Mentions, issue references (#1, GH-1), autolinks (any case): broken by a zero-width space after the first character
_INERT = re.compile(r"(?i)[@#]|://|www\.|gh-(?=\d)")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula (OWASP)


def to_markdown(lb: Leaderboard) -> str:
    """Every board as a Markdown section: ranked table, Pareto layers, failures with reasons, provenance."""
    lines = ["# Module leaderboard", "", f"Generated {md_text(lb.generated, 40)}.", ""]
    for board in lb.boards:
        lines += _board_markdown(board)
    if not lb.boards:
        lines += ["No board yet: the store holds no module's results.", ""]
    if lb.policies is not None:
        lines += ["## Mixed-precision policies", "", *_policy_table(lb.policies.table), ""]
        lines += [_provenance_line(lb.policies.provenance), ""]
    if lb.notes:
        lines += ["## Notes", "", *(f"- {md_text(note, REASON_CAP)}" for note in lb.notes), ""]
    return "\n".join(lines)


def to_csv(lb: Leaderboard) -> str:
    """One row per module per board (section: ranked, approximate, failed, policies); text cells that a spreadsheet
    would evaluate as a formula are prefixed with an apostrophe, in every column: a results document's variant,
    device and commit are as untrusted as its module names and reasons."""
    frame = long_frame(lb)
    for column in frame.columns:
        if pd.api.types.is_string_dtype(frame[column].dtype):  # object or str: every text column
            frame[column] = frame[column].map(_defuse_formula)
    return str(frame.to_csv(index=False, lineterminator="\n"))


def to_json(lb: Leaderboard) -> str:
    """The long frame as a JSON array of records (missing figures as null)."""
    return str(long_frame(lb).to_json(orient="records"))


def long_frame(lb: Leaderboard) -> pd.DataFrame:
    """Every board's rows in one frame, each with the board's kind, variant, device, dtype and its section."""
    parts = []
    for board in lb.boards:
        keys = {"kind": board.kind, "variant": board.variant, "device": board.device, "dtype": board.dtype}
        for section, rows in (("ranked", board.ranked), ("approximate", board.approximate), ("failed", board.failed)):
            if not rows.empty:
                parts.append(rows.assign(**keys, section=section))
    if lb.policies is not None and not lb.policies.table.empty:
        origin = lb.policies.provenance
        rows = lb.policies.table.rename(columns={"policy": "module"})
        parts.append(
            rows.assign(
                kind="quantization",
                variant="mixed_precision",
                device=origin.device,
                dtype=origin.dtype,
                section="policies",
            )
        )
    if not parts:
        return pd.DataFrame(columns=list(LONG_COLUMNS)).astype({"rank": "Int64", "run_id": "Int64"})
    frame = pd.concat(parts, ignore_index=True).reindex(columns=list(LONG_COLUMNS))
    return frame.astype({"rank": "Int64", "run_id": "Int64"})  # failed and policy rows have no rank


def md_text(text: Any, cap: int) -> str:
    """Untrusted text made safe for one Markdown table cell or list item: one line, at most `cap` characters
    (an ellipsis marks a cut), no invisible characters, Markdown punctuation escaped, `@`/`#`/links made inert."""
    flat = "".join(ch for ch in " ".join(str(text).split()) if ch.isprintable())
    if len(flat) > cap:
        flat = flat[: cap - 1] + "…"
    escaped = "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in flat)
    return _INERT.sub(lambda m: f"{m.group()[0]}&#8203;{m.group()[1:]}", escaped)


# ---------------------------------------------------------------------------------------------------------------
# Markdown pieces


def _board_markdown(board: Board) -> list[str]:
    lines = [f"## {md_text(board.title, 200)}", ""]
    if board.ranked.empty:
        lines += ["No exact module passed every gate on this board.", ""]
    else:
        lines += [*_ranked_table(board.ranked, "rank"), ""]
    if not board.approximate.empty:
        lines += ["### Approximate (Pareto layers)", "", *_ranked_table(board.approximate, "layer"), ""]
    if not board.failed.empty:
        lines += ["### Not ranked (failed a gate)", "", *_failed_table(board.failed), ""]
    return [*lines, _provenance_line(board.provenance), ""]


def _ranked_table(rows: pd.DataFrame, first: str) -> list[str]:
    header = [
        first,
        "module",
        "time ratio [99% CI]",
        "fwd",
        "fwd+bwd",
        "memory",
        "quality Δ",
        "worst err/tol",
        "commit",
        "date",
    ]
    body = [
        [
            md_text(r["rank_label"], 8),
            md_text(r["module"], NAME_CAP),
            _interval(r["ratio"], r["ratio_low"], r["ratio_high"]),
            _interval(r["fwd_ratio"], r["fwd_low"], r["fwd_high"]),
            _interval(r["fwdbwd_ratio"], r["fwdbwd_low"], r["fwdbwd_high"]),
            _figure(r["memory_ratio"], "{:.3f}"),
            _quality(r),
            _figure(r["worst_error"], "{:.2f}"),
            md_text(str(r["commit"])[:12], 12),
            _date(r["date"]),
        ]
        for r in rows.to_dict(orient="records")
    ]
    return _table(header, body)


def _failed_table(rows: pd.DataFrame) -> list[str]:
    header = ["module", "gate", "verdict", "reason", "commit", "date"]
    body = [
        [
            md_text(r["module"], NAME_CAP),
            md_text(r["gate"] or "-", 20),
            md_text(r["verdict"], 20),
            md_text(r["reason"], REASON_CAP),
            md_text(str(r["commit"])[:12], 12),
            _date(r["date"]),
        ]
        for r in rows.to_dict(orient="records")
    ]
    return _table(header, body)


def _policy_table(rows: pd.DataFrame) -> list[str]:
    header = ["policy", "bits per layer", "quantized bytes", "of float32", "perplexity", "change", "limit", "commit"]
    body = [
        [
            md_text(r["policy"], NAME_CAP),
            md_text(r["bits"], 80),
            _figure(r["quantized_bytes"], "{:,.0f}"),
            _figure(r["quantized_bytes"] / r["model_bytes"] if r["model_bytes"] else math.nan, "{:.1%}"),
            _figure(r["perplexity"], "{:.3f}"),
            _figure(r["perplexity_change"], "{:+.2%}"),
            _figure(r["limit"], "{:.0%}"),
            md_text(str(r["commit"])[:12], 12),
        ]
        for r in rows.to_dict(orient="records")
    ]
    return _table(header, body)


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(cells) for cells in body)]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _provenance_line(p: Provenance) -> str:
    runs = f"{p.runs} run" + ("" if p.runs == 1 else "s")
    dates = p.first_date if p.first_date == p.last_date else f"{p.first_date} to {p.last_date}"
    parts = [
        f"{p.device}, {p.dtype}",
        f"torch {', '.join(p.torch_versions)}",
        f"harness {', '.join(p.harness_versions)}",
        f"commit {', '.join(c[:12] for c in p.commits)}",
        dates,
        runs,
    ]
    return "Provenance: " + md_text("; ".join(parts), 600) + "."


def _quality(r: dict[str, Any]) -> str:
    shown = (("loss", "loss_delta", 4, ""), ("recall", "recall_delta", 3, ""), ("ppl", "perplexity_change", 2, "%"))
    parts = [f"{label} {_signed(r[column], digits, unit)}" for label, column, digits, unit in shown]
    return ", ".join(p for p in parts if not p.endswith(" -")) or "-"


def _signed(value: Any, digits: int, unit: str) -> str:
    """A change with its sign; one too small to show is +0 (never "-0.0000")."""
    if not _finite(value):
        return "-"
    scaled = value * 100 if unit == "%" else value
    return f"{round(scaled, digits) + 0.0:+.{digits}f}{unit}"


def _interval(ratio: Any, low: Any, high: Any) -> str:
    if not all(_finite(v) for v in (ratio, low, high)):
        return "-"
    return f"{ratio:.3f} [{low:.3f}, {high:.3f}]"


def _figure(value: Any, spec: str) -> str:
    return spec.format(value) if _finite(value) else "-"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _date(value: Any) -> str:
    return md_text(str(value)[:16].replace("T", " "), 16)


def _defuse_formula(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value
