"""The leaderboard's charts as SVG text, drawn with matplotlib (Agg) and reproducible byte for byte: a fixed
`svg.hashsalt`, no date or creator in the metadata, text kept as text (`svg.fonttype = none`).

Figures are `matplotlib.figure.Figure` objects, never registered with pyplot, so nothing stays open between
charts and memory stays flat however many are drawn (there is no `plt.close` to forget).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no display, no GUI toolkit

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.typing import RcKeyType

from harness.reports.model import Board, ModulePage
from harness.reports.site_tables import size

_STYLE: dict[RcKeyType, Any] = {
    "text.parse_math": False,  # untrusted names: "$" must stay a dollar sign, never start mathtext
    "svg.hashsalt": "module-harness",  # element ids from this salt, not from a random uuid
    "svg.fonttype": "none",  # text as <text>: small files, the page's fonts
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_FASTER, _SLOWER, _NEUTRAL, _REFERENCE = "#2a7d4f", "#b8452f", "#5a6b7d", "#333333"
_SERIES = ("#1f5fa8", "#c26a00", "#6b4aa3", "#2a7d4f")  # one per device in a history chart
_ROW_INCHES, _WIDTH_INCHES, _LABEL_CHARS = 0.32, 6.4, 40
_MARKED_RUNS = 40  # a history longer than this is drawn as a plain line and band
_CHAR_INCHES = 0.068  # mean width of a 9-point DejaVu Sans character, for the left margin


def ratio_bars(board: Board) -> str:
    """Each ranked module's time ratio to the kind's reference with its 99% interval; left of 1.0 is faster."""
    frame = _positive(board.ranked, "ratio")
    if frame.empty:
        return _empty(f"{board.title}: no ranked module with a timing")
    labels = [f"{r} {_label(m)}" for r, m in zip(frame["rank_label"], frame["module"], strict=True)]
    ratios = frame["ratio"].astype(float).tolist()
    low = [min(lo, r) if lo > 0 else r for lo, r in zip(_filled(frame["ratio_low"], ratios), ratios, strict=True)]
    high = [max(hi, r) for hi, r in zip(_filled(frame["ratio_high"], ratios), ratios, strict=True)]
    with _figure(len(labels), labels=labels) as (fig, ax):
        colors = [_speed_color(lo, hi) for lo, hi in zip(low, high, strict=True)]
        ypos = range(len(labels))
        ax.barh(ypos, ratios, color=colors, height=0.6, zorder=2)
        errors = [
            [r - lo for r, lo in zip(ratios, low, strict=True)],
            [h - r for r, h in zip(ratios, high, strict=True)],
        ]
        ax.errorbar(ratios, ypos, xerr=errors, fmt="none", ecolor=_REFERENCE, capsize=3, lw=1, zorder=3)
        _reference_line(ax)
        _log_ratio_axis(ax, [*low, *high, 1.0])
        _module_axis(ax, labels)
        ax.set_xlabel("time / reference (log scale; whiskers: 99% interval)")
        ax.set_title(f"{board.title}: speed", loc="left")
        return _svg(fig, f"Speed ratio to the reference, {board.title}")


def memory_bars(board: Board) -> str:
    """Peak memory of one large forward call, as a ratio to the reference's, ranked and approximate modules."""
    frames = [f for f in (board.ranked, board.approximate) if not f.empty]
    frame = _rows_with(pd.concat(frames, ignore_index=True) if frames else board.ranked, "memory_ratio")
    if frame.empty:
        return _empty(f"{board.title}: no memory measurement")
    frame = frame.sort_values("memory_ratio", kind="stable")
    labels = [
        _label(m) + ("" if bool(e) else " (approx.)") for m, e in zip(frame["module"], frame["exact"], strict=True)
    ]
    ratios = frame["memory_ratio"].astype(float).tolist()
    with _figure(len(labels), labels=labels) as (fig, ax):
        colors = [_FASTER if r < 1 else _SLOWER if r > 1 else _NEUTRAL for r in ratios]
        ax.barh(range(len(labels)), ratios, color=colors, height=0.6, zorder=2)
        for y, (ratio, peak) in enumerate(zip(ratios, frame["peak_bytes"], strict=True)):
            text = f" {ratio:.2f}" + (f"  ({size(float(peak))})" if _present(peak) else "")
            ax.text(ratio, y, text, va="center", fontsize=8, zorder=4)
        _reference_line(ax)
        ax.set_xlim(0, max([*ratios, 1.0]) * 1.35)
        _module_axis(ax, labels)
        ax.set_xlabel("peak memory / reference's peak memory (large forward case)")
        ax.set_title(f"{board.title}: memory", loc="left")
        return _svg(fig, f"Peak memory ratio to the reference, {board.title}")


def pareto(board: Board) -> str:
    """Approximate modules: the quality they give up against their speed ratio; the first Pareto layer connected."""
    cost, axis_label = quality_cost(board.approximate)
    frame = board.approximate.assign(_cost=cost)
    frame = _rows_with(_positive(frame, "ratio"), "_cost")
    if frame.empty:
        return _empty(f"{board.title}: no approximate module with speed and quality figures")
    ratios = frame["ratio"].astype(float).tolist()
    costs = frame["_cost"].astype(float).tolist()
    with _figure(0, height=3.6) as (fig, ax):
        front = sorted((r, c) for r, c, layer in zip(ratios, costs, frame["rank"], strict=True) if _int(layer) == 1)
        if front:
            ax.plot(*zip(*front, strict=True), color=_FASTER, lw=1.5, zorder=2, label="Pareto front (layer 1)")
        ax.scatter(ratios, costs, color=_NEUTRAL, zorder=3, label="approximate module")
        ax.scatter([1.0], [0.0], marker="D", color=_REFERENCE, zorder=3, label="reference (exact)")
        for ratio, cost_, module in zip(ratios, costs, frame["module"], strict=True):
            ax.annotate(_label(module), (ratio, cost_), xytext=(4, 4), textcoords="offset points", fontsize=8)
        _log_ratio_axis(ax, [*ratios, 1.0])
        ax.margins(y=0.15)  # room for the labels above the highest point
        ax.axvline(1.0, color=_REFERENCE, lw=0.8, ls=":", zorder=1)
        ax.set_xlabel("time / reference (log scale)")
        ax.set_ylabel(axis_label)
        ax.legend(loc="best", fontsize=8, frameon=False)
        ax.set_title(f"{board.title}: approximate modules", loc="left")
        return _svg(fig, f"Quality cost against speed ratio, {board.title}")


def history(page: ModulePage) -> str:
    """The module's time ratio to its reference at each judged run, oldest first, its 99% interval as a band; one
    line per device (each ratio is relative to the reference on its own device)."""
    frame = page.history.reset_index(drop=True)
    if _rows_with(frame, "ratio").empty:
        return _empty(f"{page.name}: no timing in its history")
    devices = frame["device"].astype(str) if "device" in frame else pd.Series("", index=frame.index)
    several = devices.nunique() > 1
    commits = [str(c)[:8] for c in frame["commit"]]
    with _figure(0, height=3.0) as (fig, ax):
        for n, device in enumerate(dict.fromkeys(devices)):
            runs = frame[devices == device]
            if _rows_with(runs, "ratio").empty:
                continue
            # NaN where a run has no timing: the line and band break there instead of bridging the gap.
            x, ratios = runs.index.tolist(), _numbers(runs, "ratio").tolist()
            color, suffix = _SERIES[n % len(_SERIES)], f" on {_label(device)}" if several else ""
            band = _filled(runs["ratio_low"], ratios), _filled(runs["ratio_high"], ratios)
            ax.fill_between(x, *band, color=color, alpha=0.2, lw=0, zorder=1, label=f"99% interval{suffix}")
            few = len(x) <= _MARKED_RUNS  # markers and whiskers only while they stay apart
            marker = {"marker": "o", "lw": 1.5} if few else {"lw": 1.0}
            ax.plot(x, ratios, color=color, zorder=3, label=f"time / reference{suffix}", **marker)
            whiskers = [
                [r - lo for r, lo in zip(ratios, band[0], strict=True)],
                [h - r for r, h in zip(ratios, band[1], strict=True)],
            ]
            if few:  # a lone run between gaps has no band: its whisker shows the interval
                ax.errorbar(x, ratios, yerr=whiskers, fmt="none", ecolor=color, elinewidth=0.8, zorder=2)
        failed = [i for i, v in enumerate(frame["verdict"]) if str(v) not in ("pass", "suspect")]
        if failed:  # along the bottom edge: x in data, y in axes coordinates
            where = ax.get_xaxis_transform()
            ax.scatter(failed, [0.04] * len(failed), marker="x", color=_SLOWER, zorder=4, transform=where)
            ax.scatter([], [], marker="x", color=_SLOWER, label="run did not pass")  # the legend's entry
        _reference_line(ax, across=True)
        ax.set_xlim(-0.5, len(frame) - 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))  # 8-character labels: 8 fit side by side
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: commits[int(v)] if 0 <= int(v) < len(commits) else ""))
        ax.set_xlabel("commit of each judged run, oldest first")
        ax.set_ylabel("time / reference")
        ax.legend(loc="best", fontsize=8, frameon=False)
        ax.set_title(f"{_label(page.name)}: speed over time", loc="left")
        return _svg(fig, f"Speed ratio history of {page.name}")


def quality_cost(frame: pd.DataFrame) -> tuple[pd.Series, str]:
    """What an approximate module gives up, as boards.py places its Pareto layers: the validation-loss increase, or
    for a quantizer (which has none) its perplexity change; and the axis label naming what the figures are."""
    loss = _numbers(frame, "loss_delta")
    perplexity = _numbers(frame, "perplexity_change")
    cost = loss.fillna(perplexity)
    if loss.notna().any() and not perplexity[loss.isna()].notna().any():
        return cost, "validation loss increase (nats)"
    if not loss.notna().any():
        return cost, "perplexity change (fraction)"
    return cost, "loss increase (nats) or perplexity change"


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(float("nan"), index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


@contextmanager
def _figure(rows: int, height: float | None = None, labels: Sequence[str] = ()) -> Iterator[tuple[Figure, Axes]]:
    """A figure with one axes and fixed margins (inches): the left one fits the longest of `labels`, or a y-axis
    label. Fixed margins, not a layout engine, because a layout engine draws every chart twice."""
    width, high = _WIDTH_INCHES, height or 1.2 + _ROW_INCHES * max(rows, 1)
    left = 0.3 + _CHAR_INCHES * max((len(label) for label in labels), default=0) if labels else 0.85
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, high))
        fig.subplots_adjust(left=left / width, right=1 - 0.3 / width, bottom=0.6 / high, top=1 - 0.35 / high)
        yield fig, fig.add_subplot()


def _svg(fig: Figure, title: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={**_NO_METADATA, "Title": title})
    return buffer.getvalue().decode("utf-8")


def _empty(message: str) -> str:
    with _figure(0, height=1.0) as (fig, ax):
        ax.axis("off")
        ax.text(0.5, 0.5, _label(message, 120), ha="center", va="center")
        return _svg(fig, message)


def _reference_line(ax: Axes, *, across: bool = False) -> None:
    """The reference's own ratio, 1.0: a vertical line where the ratio is on x, horizontal (`across`) where on y."""
    style: dict[str, Any] = {"color": _REFERENCE, "lw": 1, "ls": "--", "zorder": 4, "label": "reference = 1.0"}
    ax.axhline(1.0, **style) if across else ax.axvline(1.0, **style)


def _log_ratio_axis(ax: Axes, values: Sequence[float]) -> None:
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.25, hi * 1.25)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if hi / lo < 6 else ""))


def _module_axis(ax: Axes, labels: Sequence[str]) -> None:
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top
    ax.grid(axis="y", visible=False)


def _speed_color(low: float, high: float) -> str:
    return _FASTER if high < 1 else _SLOWER if low > 1 else _NEUTRAL


def _rows_with(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows with a finite number in `column`."""
    values = _numbers(frame, column)
    return frame[values.notna() & (values.abs() != math.inf)]


def _positive(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows with a finite, positive number in `column` (what a log axis can show)."""
    frame = _rows_with(frame, column)
    return frame[_numbers(frame, column) > 0]


def _filled(values: pd.Series, fallback: Sequence[float]) -> list[float]:
    """Interval ends, with the estimate itself where an end is missing (no whisker rather than a broken chart)."""
    return [float(v) if _present(v) else f for v, f in zip(values, fallback, strict=True)]


def _present(value: Any) -> bool:
    try:
        return value is not None and bool(pd.notna(value)) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _int(value: Any) -> int | None:
    return int(value) if _present(value) else None


def _label(text: Any, limit: int = _LABEL_CHARS) -> str:
    """Untrusted text as a label, cut to `limit` characters (mathtext is off, see _STYLE)."""
    plain = str(text)
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"
