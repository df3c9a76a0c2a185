"""The bot's comment as Markdown: headline, authority warning, provenance, regressions and failures first, one table
row per module, collapsible failure details, the run's link; cut to GitHub's size limit when it must be.

Every untrusted string goes through harness/bot/escape.py (`md` in Markdown, `html` inside `<summary>`); links are
built by harness/bot/paths.py from checked parts only. When the body would pass `COMMENT_LIMIT`, failure details
go first, least important module first, then table rows from the bottom, and the body ends saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from harness.bot.escape import MESSAGE_CAP, NAME_CAP, REASON_CAP, html, md
from harness.bot.facts import ModuleFacts
from harness.bot.plan import COMMENT_LIMIT, MARKER

LISTED = 20  # regressions or failures listed above the table (all are in the table)
DASH = "\u2013"  # an en dash: no value
_ICONS = {"pass": "✅", "fail": "❌", "suspect": "⚠️", "skipped": "⏭️", "tampered": "🚫"}
_GATES = ("unit", "integration", "perf")
_HEADER = ("module", "kind / variant", "unit", "integration", "perf", "time ratio [99%]", "memory", "would rank")

Key = tuple[str, str]  # (module name, device)


@dataclass(frozen=True)
class Comment:
    """What the comment says; `compose` lays it out with the first `rows` table rows and `details` failure details."""

    headline: str  # safe Markdown
    preamble: list[str]  # safe Markdown lines: warnings, provenance, changes
    modules: Sequence[ModuleFacts]  # most important first
    ranks: Mapping[Key, str] = field(default_factory=dict)
    links: Mapping[Key, str] = field(default_factory=dict)  # checked URLs of module files
    run_url: str | None = None  # checked URL

    @cached_property
    def _top(self) -> list[str]:
        """Everything above the table: it never shrinks."""
        lines = [MARKER, self.headline, "", *self.preamble]
        lines += _listed("Regressions", [m for m in self.modules if m.importance == 0])
        return lines + _listed("Failures", [m for m in self.modules if m.importance == 1])

    @cached_property
    def _rows(self) -> list[str]:
        return [_row(self._cells(m)) for m in self.modules]

    @cached_property
    def _blocks(self) -> list[list[str]]:
        return [["", *_details(m)] for m in self.modules if not m.passing]

    def compose(self, rows: int, details: int, cut: bool) -> str:
        """The body with the first `rows` table rows and the first `details` failure details; `cut` adds the notice."""
        lines = list(self._top)
        if self.modules:
            lines += ["", _row(_HEADER), _row(["---"] * len(_HEADER)), *self._rows[:rows]]
        if rows < len(self.modules):
            lines += ["", f"… {len(self.modules) - rows} more modules are not shown in this table."]
        if self._blocks[:details]:
            lines += ["", "### Failure details", *(line for block in self._blocks[:details] for line in block)]
        lines += ["", self._footer()]
        if cut:
            lines += [
                "",
                self.cut_notice(len(self.modules) - rows, len(self._blocks) - min(details, len(self._blocks))),
            ]
        return "\n".join(lines) + "\n"

    def _cells(self, m: ModuleFacts) -> list[str]:
        key = (m.name, m.device)
        name = md(m.name, NAME_CAP) + ("" if m.device == "cpu" else f" ({md(m.device, 12)})")
        link = self.links.get(key)
        gates = [_verdict(m.gates.get(g)) for g in _GATES]
        return [
            f"[{name}]({link})" if link else name,
            md(f"{m.kind or DASH} / {m.variant or DASH}", NAME_CAP),
            *gates,
            _speed(m),
            f"{m.memory_ratio:.2f}x" if m.memory_ratio is not None else DASH,
            md(self.ranks.get(key, DASH), 20),
        ]

    def _footer(self) -> str:
        run = f"[the workflow run]({self.run_url})" if self.run_url else "the workflow run"
        return f"Full results (`results.json`, every case and figure) are in {run}. This comment is updated in place."

    def cut_notice(self, rows: int, details: int) -> str:
        where = f"[the workflow run]({self.run_url})" if self.run_url else "the workflow run's results"
        return (
            f"✂️ **This comment was cut** to stay under GitHub's {COMMENT_LIMIT:,}-character limit: {details} failure "
            f"details and {rows} table rows are not shown. The full results are in {where}."
        )


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(verdict: str | None) -> str:
    if verdict is None:
        return DASH
    return f"{_ICONS.get(verdict, '❗')} {md(verdict, 12)}"


def _speed(m: ModuleFacts) -> str:
    if m.speed is None:
        return DASH
    ratio, low, high = m.speed
    return f"{ratio:.3f} [{low:.3f}, {high:.3f}] vs {'base' if m.versus == 'base' else 'ref'}"


def _bullet(m: ModuleFacts) -> str:
    where = "" if m.device == "cpu" else f" ({md(m.device, 12)})"
    return f"- **{md(m.name, NAME_CAP)}**{where}: {md(m.verdict, 12)}: {md(m.reason, REASON_CAP)}"


def _listed(title: str, modules: list[ModuleFacts]) -> list[str]:
    if not modules:
        return []
    more = [f"- … and {len(modules) - LISTED} more (in the table below)"] if len(modules) > LISTED else []
    return ["", f"### {title}", "", *(_bullet(m) for m in modules[:LISTED]), *more]


def _details(m: ModuleFacts) -> list[str]:
    """One collapsible block: the summary in an HTML block (escaped as HTML), the cases as a Markdown list."""
    where = "" if m.device == "cpu" else f" ({html(m.device, 12)})"
    summary = f"{_ICONS.get(m.verdict, '❗')} {html(m.name, NAME_CAP)}{where}: {html(m.reason, REASON_CAP)}"
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    for case in m.failures:
        messages = "; ".join(md(text, MESSAGE_CAP) for text in case.messages) or "no message"
        lines.append(f"- **{md(case.case, NAME_CAP)}** ({md(case.gate, 12)}, {md(case.dtype, 12)}): {messages}")
        if case.worst:
            lines.append(f"  - worst: {md(case.worst, REASON_CAP)}")
    if m.cases_failed > len(m.failures):
        lines.append(f"- … {m.cases_failed - len(m.failures)} more failing cases")
    if not m.failures:
        lines.append(f"- {md(m.reason, REASON_CAP) or 'no reason given'}")
    return [*lines, "", "</details>"]


def render_comment(comment: Comment) -> tuple[str, bool]:
    """The body and whether it was cut: whole when it fits, else the most details, then the most rows, that fit."""
    rows, failing = len(comment.modules), sum(not m.passing for m in comment.modules)
    whole = comment.compose(rows, failing, cut=False)
    if len(whole) <= COMMENT_LIMIT:
        return whole, False
    details = _most(failing, lambda d: len(comment.compose(rows, d, cut=True)) <= COMMENT_LIMIT)
    if details < 0:
        details = 0
        rows = max(_most(rows, lambda r: len(comment.compose(r, 0, cut=True)) <= COMMENT_LIMIT), 0)
    body = comment.compose(rows, details, cut=True)
    return (body if len(body) <= COMMENT_LIMIT else _hard_cut(body, comment)), True


def _most(top: int, fits: Callable[[int], bool]) -> int:
    """The largest n in 0..top with fits(n) (fits is monotone: true up to some n), or -1 when none fits."""
    low, high = -1, top
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _hard_cut(body: str, comment: Comment) -> str:
    """Last resort: whole lines up to the limit, then the cut notice."""
    notice = "\n\n" + comment.cut_notice(len(comment.modules), sum(not m.passing for m in comment.modules)) + "\n"
    kept = body[: COMMENT_LIMIT - len(notice)]
    return kept[: kept.rfind("\n")] + notice
