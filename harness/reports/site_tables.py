"""The site's tables: which frame columns each table shows, how a value reads, and the key it sorts on.

A cell carries its display text and a `data-sort` key (numbers as plain decimal text, so the page's script sorts
them numerically). Texts stay plain strings here: the templates escape them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

Row = Mapping[str, Any]
VERDICTS = frozenset({"pass", "fail", "skipped", "error", "timeout", "crash", "oom", "tampered", "suspect"})


@dataclass(frozen=True)
class Cell:
    text: str
    sort: str  # the key the table sorts on: a number as decimal text in numeric columns, "" when missing
    href: str | None = None
    cls: str = ""
    note: str = ""  # a muted second part, e.g. the interval


@dataclass(frozen=True)
class Header:
    label: str
    title: str = ""


@dataclass(frozen=True)
class Table:
    id: str  # the element id, unique on its page
    noun: str  # what a row is, for the filter's placeholder
    headers: list[Header]
    rows: list[list[Cell]]
    empty: str  # shown instead of an empty table


@dataclass(frozen=True)
class Column:
    key: str  # the frame column whose presence decides whether the column is shown
    header: str
    show: Callable[[Row], Cell]
    title: str = ""  # the header's tooltip
    always: bool = False  # shown even when no row has a value


Link = Callable[[Row], Cell]


def table(table_id: str, noun: str, frame: pd.DataFrame, columns: Sequence[Column], empty: str) -> Table:
    """The frame's rows as a table; columns no row has a value for are left out (a norm board has no perplexity)."""
    rows = [dict(r) for r in frame.to_dict("records")]
    shown = [c for c in columns if c.always or any(present(r.get(c.key)) for r in rows)]
    headers = [Header(c.header, c.title) for c in shown]
    return Table(table_id, noun, headers, [[c.show(r) for c in shown] for r in rows], empty)


def board_columns(link: Link) -> list[Column]:
    """Ranked and approximate boards (BOARD_COLUMNS)."""
    rank = "1 + the number of modules significantly faster; approximate modules: Pareto layer"
    return [
        Column("rank", "Rank", lambda r: Cell(text(r.get("rank_label")), key(r.get("rank")), cls="num"), rank, True),
        Column("module", "Module", link, always=True),
        Column("ratio", "Time ratio", ratio("ratio"), "time / reference, geometric mean over cases and modes, 99%"),
        Column("fwd_ratio", "Forward", ratio("fwd_ratio", "fwd_low", "fwd_high"), "forward only, 99% interval"),
        Column("fwdbwd_ratio", "Fwd+bwd", ratio("fwdbwd_ratio", "fwdbwd_low", "fwdbwd_high"), "with backward, 99%"),
        Column("roofline_pct", "Roofline", number("roofline_pct", "{:.0f}%"), "share of the machine's bound reached"),
        Column("peak_bytes", "Peak memory", number("peak_bytes"), "peak memory of one large forward call"),
        Column("memory_ratio", "Memory ratio", number("memory_ratio", "{:.2f}"), "peak memory / reference's"),
        Column("loss_delta", "Loss change", number("loss_delta", "{:+.3f} nats"), "validation loss vs reference"),
        Column("recall_delta", "Recall change", number("recall_delta", "{:+.3f}"), "MQAR recall vs reference"),
        Column("perplexity_change", "Perplexity change", number("perplexity_change", "{:+.2%}")),
        Column("quantized_bytes", "Model bytes", number("quantized_bytes", "{:,.0f}"), "model bytes, quantized"),
        Column("worst_error", "Worst error", number("worst_error", "{:.2f}"), "max-abs error / tolerance (<= 1)"),
        *run_columns(),
    ]


def failed_columns(link: Link) -> list[Column]:
    """Modules that did not pass (FAILED_COLUMNS), with the gate and reason."""
    return [
        Column("module", "Module", link, always=True),
        text_column("gate", "Gate"),
        Column("verdict", "Verdict", lambda r: verdict(r.get("verdict")), always=True),
        text_column("reason", "Reason"),
        *run_columns(),
    ]


def policy_columns() -> list[Column]:
    """Mixed-precision policies (POLICY_COLUMNS)."""
    return [
        text_column("policy", "Policy"),
        Column("perplexity", "Perplexity", number("perplexity", "{:.3f}")),
        Column("perplexity_change", "Change", number("perplexity_change", "{:+.2%}"), "vs the float32 model"),
        Column("limit", "Limit", number("limit", "{:.0%}"), "the largest change allowed"),
        Column("model_bytes", "Bytes before", number("model_bytes", "{:,.0f}"), "float32 model bytes"),
        Column("quantized_bytes", "Bytes after", number("quantized_bytes", "{:,.0f}"), "model bytes, quantized"),
        text_column("bits", "Bits per layer"),
        *run_columns(),
    ]


def gate_columns() -> list[Column]:
    return [
        text_column("gate", "Gate"),
        Column("verdict", "Verdict", lambda r: verdict(r.get("verdict"))),
        text_column("reason", "Reason"),
        Column("seconds", "Seconds", number("seconds", "{:.1f}")),
        Column("cases_total", "Cases", number("cases_total", "{:.0f}")),
        Column("cases_failed", "Failed", number("cases_failed", "{:.0f}")),
    ]


def case_columns() -> list[Column]:
    return [
        text_column("gate", "Gate"),
        text_column("case", "Case"),
        text_column("dtype", "Dtype"),
        Column("passed", "Passed", passed),
        text_column("failure", "Failure"),
        Column("seconds", "Seconds", number("seconds", "{:.2f}")),
    ]


def history_columns() -> list[Column]:
    return [
        *run_columns(),
        text_column("device", "Device"),
        Column("verdict", "Verdict", lambda r: verdict(r.get("verdict"))),
        Column("ratio", "Time ratio", ratio("ratio")),
    ]


def run_columns() -> list[Column]:
    """The run a row comes from."""
    return [
        Column("commit", "Commit", lambda r: commit(r.get("commit"))),
        Column("date", "Date", lambda r: date(r.get("date"))),
        Column("run_id", "Run", lambda r: Cell(text(r.get("run_id")), key(r.get("run_id")), cls="num")),
    ]


def text_column(name: str, header: str) -> Column:
    return Column(name, header, lambda r: Cell(text(r.get(name)), text(r.get(name)), cls="text"))


def number(name: str, fmt: str | None = None) -> Callable[[Row], Cell]:
    """A numeric column; without a format the value is a byte count."""

    def show(row: Row) -> Cell:
        value: Any = row.get(name)
        if not present(value):
            return Cell("", "", cls="num")
        figure = float(value)
        return Cell(fmt.format(figure) if fmt else size(figure), key(figure), cls="num")

    return show


def ratio(name: str, low: str | None = None, high: str | None = None) -> Callable[[Row], Cell]:
    """A time ratio with its 99% interval ("ratio", "ratio_low", "ratio_high" by default); sorted on the ratio."""
    low, high = low or f"{name}_low", high or f"{name}_high"

    def show(row: Row) -> Cell:
        value: Any = row.get(name)
        lo: Any = row.get(low)
        hi: Any = row.get(high)
        if not present(value):
            return Cell("", "", cls="num")
        note = f"[{float(lo):.3f}, {float(hi):.3f}]" if present(lo) and present(hi) else ""
        return Cell(f"{float(value):.3f}", key(value), cls="num", note=note)

    return show


def passed(row: Row) -> Cell:
    value = row.get("passed")
    if not present(value):
        return Cell("", "")
    return Cell("yes", "1", cls="verdict v-pass") if bool(value) else Cell("no", "0", cls="verdict v-fail")


def verdict(value: Any) -> Cell:
    shown = text(value)
    return Cell(shown, shown, cls=f"verdict {verdict_class(shown)}")


def verdict_class(value: str) -> str:
    """A CSS class from a verdict; only known verdicts become class names."""
    return f"v-{value}" if value in VERDICTS else "v-other"


def commit(value: Any) -> Cell:
    full = text(value)
    return Cell(full[:10], full, cls="code")


def date(value: Any) -> Cell:
    """ISO 8601 shown to the minute ("2026-03-01 14:05"), sorted on the full text."""
    full = text(value)
    short = f"{full[:10]} {full[11:16]}" if len(full) >= 16 and full[10] == "T" else full
    return Cell(short, full, cls="num")


def plain(value: Any, href: str | None = None) -> Cell:
    return Cell(text(value), text(value), href)


def count(n: int) -> Cell:
    return Cell(str(n), str(n), cls="num")


def present(value: Any) -> bool:
    """False for None, NaN, pd.NA and the empty string."""
    if value is None or isinstance(value, str):
        return bool(value)
    if isinstance(value, (list, tuple, dict, set)):
        return True
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def text(value: Any) -> str:
    return str(value) if present(value) else ""


def key(value: Any) -> str:
    """A sort key: integers without a decimal point, other numbers exact, infinities as JavaScript reads them."""
    if not present(value):
        return ""
    try:
        figure = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(figure):
        return "Infinity" if figure > 0 else "-Infinity"
    return str(int(figure)) if figure.is_integer() else repr(figure)


def size(count: float) -> str:
    """Bytes for reading: "512 B", "1.5 MB"."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:,.0f} B" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count:,.1f} GB"
