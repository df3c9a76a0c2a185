"""The leaderboard as a static site: `index.html`, one page per board (`boards/`) and per module (`modules/`),
`policies.html` and the charts (`charts/*.svg`). Relative links only and no outside resource, so the same files work
from file:// and from GitHub Pages.

Module names, reasons and failure messages are untrusted text: jinja2 escapes everything (autoescape on; nothing
from the data is ever marked safe), and each page's Content-Security-Policy allows only the site's own hashed script
and style and same-origin images, so even a missed escape could not run a script or load anything from outside.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pandas as pd

from harness.reports import charts
from harness.reports import site_tables as t
from harness.reports.model import Board, Leaderboard, ModulePage, Provenance

__all__ = ["render_site"]

_TEMPLATES = Path(__file__).parent / "templates"
_SHOWN_COMMITS = 6
_NAME_CHARS = 80  # longest file name made from a slug, before ".html"


@dataclass(frozen=True)
class Chart:
    src: str
    alt: str
    caption: str
    width: int  # CSS pixels, so the page keeps its layout while the image loads
    height: int


@dataclass(frozen=True)
class ProvenanceView:
    """A page's Provenance, or the union of several (the index draws on every board and module)."""

    devices: list[str]
    dtypes: list[str]
    torch_versions: list[str]
    harness_versions: list[str]
    commits: list[str]
    first_date: str
    last_date: str
    runs: int

    @property
    def shown_commits(self) -> list[str]:
        return [c[:10] for c in self.commits[:_SHOWN_COMMITS]]

    @property
    def hidden_commits(self) -> int:
        return max(0, len(self.commits) - _SHOWN_COMMITS)


def render_site(lb: Leaderboard, out: Path) -> list[Path]:
    """Write the site under `out` (directories created; each file written whole, then renamed into place, the index
    last) and return the files written."""
    site = _Site(lb, out)
    for board in lb.boards:
        site.board(board)
    for page in lb.modules:
        site.module(page)
    site.policies()
    site.index()
    return site.written


class _Site:
    def __init__(self, lb: Leaderboard, out: Path) -> None:
        self.lb, self.out = lb, out
        self.written: list[Path] = []
        self.board_files = dict(zip(map(id, lb.boards), _file_names([b.slug for b in lb.boards]), strict=True))
        self.boards_of = _boards_of(lb.boards)
        names = _file_names([p.slug for p in lb.modules])
        self.module_files = dict(zip([p.name for p in lb.modules], names, strict=True))

    def index(self) -> None:
        policies = self.lb.policies
        every = [b.provenance for b in self.lb.boards] + [p.provenance for p in self.lb.modules]
        self._page(
            "index.html",
            "index.html.j2",
            "",
            provenance=_view(every + ([policies.provenance] if policies else []), runs=self._run_count()),
            notes=self.lb.notes,
            boards=self._boards_table(),
            modules=self._modules_table(),
            policy_count=0 if policies is None else len(policies.table),
        )

    def board(self, board: Board) -> None:
        name = self.board_files[id(board)]
        link = self._module_link("../")
        shown = []
        if _has(board.ranked, "ratio"):
            shown.append(self._chart(f"{name}-speed", charts.ratio_bars(board), _speed_text(board)))
        if charts.quality_cost(board.approximate)[0].notna().any():
            shown.append(self._chart(f"{name}-pareto", charts.pareto(board), _pareto_text(board)))
        if _has(board.ranked, "memory_ratio") or _has(board.approximate, "memory_ratio"):
            shown.append(self._chart(f"{name}-memory", charts.memory_bars(board), _memory_text(board)))
        self._page(
            f"boards/{name}.html",
            "board.html.j2",
            "../",
            board=board,
            provenance=_view([board.provenance]),
            charts=shown,
            summary=_summary(board),
            quality=charts.quality_cost(board.approximate)[1],
            ranked=t.table("ranked", "ranked modules", board.ranked, t.board_columns(link), "No exact module passed."),
            approximate=t.table(
                "approximate", "approximate modules", board.approximate, t.board_columns(link), "None passed."
            ),
            failed=t.table("failed", "failed modules", board.failed, t.failed_columns(link), "No module failed."),
        )

    def module(self, page: ModulePage) -> None:
        name = self.module_files[page.name]
        chart = None
        if _timed_runs(page) >= 2:  # one point is no trend (the table has it), and charts are the cost of a render
            alt = f"Line chart: time ratio of {page.name} to its reference over its {len(page.history)} judged runs"
            caption = "Time / reference at each judged commit, oldest first; the band is the 99% interval."
            chart = self._chart(f"module-{name}-history", charts.history(page), (alt, caption))
        boards = [
            {"href": f"../boards/{self.board_files[id(b)]}.html", "title": b.title}
            for b in self.boards_of.get(page.name, [])
        ]
        self._page(
            f"modules/{name}.html",
            "module.html.j2",
            "../",
            page=page,
            provenance=_view([page.provenance]),
            verdict_class=t.verdict_class(page.verdict),
            boards=boards,
            chart=chart,
            gates=t.table("gates", "gates", page.gates, t.gate_columns(), "No gate result."),
            history=t.table("history", "runs", page.history.iloc[::-1], t.history_columns(), "No run."),  # newest first
            cases=t.table("cases", "cases", page.cases, t.case_columns(), "No case result."),
        )

    def policies(self) -> None:
        policies = self.lb.policies
        if policies is not None:
            table = t.table("policies", "policies", policies.table, t.policy_columns(), "No policy passed.")
            self._page("policies.html", "policies.html.j2", "", provenance=_view([policies.provenance]), table=table)

    def _run_count(self) -> int:
        """Distinct runs behind the whole site (each Provenance counts its own, and they overlap)."""
        frames = [f for b in self.lb.boards for f in (b.ranked, b.approximate, b.failed)]
        frames += [p.history for p in self.lb.modules] + ([self.lb.policies.table] if self.lb.policies else [])
        return len({t.text(r) for f in frames if "run_id" in f for r in f["run_id"] if t.present(r)})

    def _boards_table(self) -> t.Table:
        labels = ("Board", "Kind", "Variant", "Device", "Dtype", "Top entry", "Ranked", "Approx.", "Failed", "Latest")
        link, rows = self._module_link(""), []
        for b in self.lb.boards:
            top = t.Cell("none", "")
            if len(b.ranked):
                first = b.ranked.iloc[0].to_dict()
                name, speed = link(first), t.ratio("ratio")(first)
                top = t.Cell(name.text, name.sort, name.href, name.cls, f"{speed.text} {speed.note}".strip())
            rows.append(
                [
                    t.plain(b.title, f"boards/{self.board_files[id(b)]}.html"),
                    *(t.plain(v) for v in (b.kind, b.variant, b.device, b.dtype)),
                    top,
                    *(t.count(len(f)) for f in (b.ranked, b.approximate, b.failed)),
                    t.date(b.provenance.last_date),
                ]
            )
        return t.Table("boards", "boards", [t.Header(h) for h in labels], rows, "No board: no module has passed yet.")

    def _modules_table(self) -> t.Table:
        labels = ("Module", "Kind", "Variants", "Exact", "Verdict", "Reason", "Latest ratio", "Runs", "Latest")
        link, rows = self._module_link(""), []
        for p in self.lb.modules:
            last = p.history.iloc[-1].to_dict() if len(p.history) else {}
            rows.append(
                [
                    link({"module": p.name}),
                    t.plain(p.kind),
                    t.plain(", ".join(p.variants)),
                    t.plain("" if p.exact is None else "yes" if p.exact else "no"),
                    t.verdict(p.verdict),
                    t.Cell(p.reason, p.reason, cls="text"),
                    t.ratio("ratio")(last),
                    t.count(p.provenance.runs),
                    t.date(p.provenance.last_date),
                ]
            )
        return t.Table("modules", "modules", [t.Header(h) for h in labels], rows, "No module judged yet.")

    def _module_link(self, root: str) -> t.Link:
        def link(row: t.Row) -> t.Cell:
            name = t.text(row.get("module"))
            file = self.module_files.get(name)
            return t.Cell(name, name, f"{root}modules/{file}.html" if file else None, cls="name")

        return link

    def _chart(self, stem: str, svg: str, text: tuple[str, str]) -> Chart:
        self._write(f"charts/{stem}.svg", svg)
        width, height = _svg_size(svg)
        return Chart(f"../charts/{stem}.svg", text[0], text[1], width, height)

    def _page(self, relative: str, template: str, root: str, **context: Any) -> None:
        env, assets = _environment()
        html = env.get_template(template).render(
            root=root,
            generated=self.lb.generated,
            store=self.lb.store,
            has_policies=self.lb.policies is not None,
            **assets,
            **context,
        )
        self._write(relative, html)

    def _write(self, relative: str, content: str) -> None:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(content, encoding="utf-8")
        os.replace(partial, path)
        self.written.append(path)


@cache
def _environment() -> tuple[jinja2.Environment, dict[str, Any]]:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    # The script and style are this package's own files, never data: they go in verbatim, and their hashes are the
    # only inline code each page's policy allows.
    script = (_TEMPLATES / "site.js.j2").read_text(encoding="utf-8")
    style = (_TEMPLATES / "site.css.j2").read_text(encoding="utf-8")
    csp = (
        f"default-src 'none'; img-src 'self' data:; style-src '{_sha256(style)}'; "
        f"script-src '{_sha256(script)}'; base-uri 'none'; form-action 'none'"
    )
    return env, {"script": markupsafe.Markup(script), "style": markupsafe.Markup(style), "csp": csp}


def _sha256(content: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(content.encode("utf-8")).digest()).decode("ascii")


def _view(provenances: Iterable[Provenance], runs: int | None = None) -> ProvenanceView:
    found = list(provenances)
    return ProvenanceView(
        devices=_distinct(p.device for p in found),
        dtypes=_distinct(p.dtype for p in found),
        torch_versions=_distinct(v for p in found for v in p.torch_versions),
        harness_versions=_distinct(v for p in found for v in p.harness_versions),
        commits=_distinct(c for p in found for c in p.commits),
        first_date=min((p.first_date for p in found if p.first_date), default=""),
        last_date=max((p.last_date for p in found if p.last_date), default=""),
        runs=sum(p.runs for p in found) if runs is None else runs,
    )


def _summary(board: Board) -> str:
    n = len(board.ranked)
    parts = [f"{n} exact module{'' if n == 1 else 's'} ranked", f"{len(board.approximate)} approximate"]
    parts.append(f"{len(board.failed)} failed")
    if n and t.present(board.ranked.iloc[0].get("ratio")):
        top = board.ranked.iloc[0]
        parts.append(f"fastest: {top['module']}, at {float(top['ratio']):.3f} of the reference's time")
    return "; ".join(parts) + "."


def _speed_text(board: Board) -> tuple[str, str]:
    """Alt text (what the chart shows and its top figure) and caption."""
    top = board.ranked.iloc[0]
    alt = (
        f"Bar chart: time ratio to the reference of the {len(board.ranked)} ranked modules of {board.title}, "
        f"with 99% intervals; first is {top['module']} at {float(top['ratio']):.3f}"
    )
    return alt, "Time / reference per ranked module, 99% interval whiskers; left of the dashed line (1.0) is faster."


def _pareto_text(board: Board) -> tuple[str, str]:
    measure = charts.quality_cost(board.approximate)[1]
    alt = (
        f"Scatter plot: {measure} against time ratio for the {len(board.approximate)} approximate modules of "
        f"{board.title}, the Pareto front connected"
    )
    return alt, f"Approximate modules: {measure} against time / reference; lower left is better."


def _memory_text(board: Board) -> tuple[str, str]:
    alt = f"Bar chart: peak memory of one large forward call relative to the reference, per module of {board.title}"
    return alt, "Peak memory / the reference's peak memory on the large forward case; below 1.0 uses less."


def _boards_of(boards: Sequence[Board]) -> dict[str, list[Board]]:
    """The boards each module name appears on (ranked, approximate or failed), read once for all module pages."""
    found: dict[str, list[Board]] = {}
    for board in boards:
        frames = (board.ranked, board.approximate, board.failed)
        names = {t.text(n) for f in frames if "module" in f for n in f["module"]}
        for name in sorted(names):
            found.setdefault(name, []).append(board)
    return found


def _timed_runs(page: ModulePage) -> int:
    if "ratio" not in page.history:
        return 0
    return int(pd.to_numeric(page.history["ratio"], errors="coerce").notna().sum())


def _has(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(pd.to_numeric(frame[column], errors="coerce").notna().any())


def _file_names(slugs: Sequence[str]) -> list[str]:
    """File names from slugs: no leading dot, bounded length, distinct even on a case-insensitive file system."""
    names: list[str] = []
    taken: set[str] = set()
    for slug in slugs:
        base = slug.lstrip(".")[:_NAME_CHARS] or "unnamed"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def _distinct(values: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(t.text(v) for v in values if t.text(v)))


def _svg_size(svg: str) -> tuple[int, int]:
    """The chart's size in CSS pixels, from the SVG's width and height in points."""
    found = re.search(r'<svg[^>]*?width="([\d.]+)pt"[^>]*?height="([\d.]+)pt"', svg)
    return (round(float(found[1]) * 4 / 3), round(float(found[2]) * 4 / 3)) if found else (720, 360)
