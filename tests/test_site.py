"""The leaderboard site, rendered from a hand-built Leaderboard and opened in headless Chromium from file:// URLs:
every page renders without console errors, every chart loads, tables sort and filter, untrusted names stay text.

Screenshots of one page of each type go to $HARNESS_SCREENSHOTS (default results/screenshots/, beside the main job's
output and ignored by git) for a person to look at.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from harness.reports import charts
from harness.reports.model import (
    BOARD_COLUMNS,
    CASE_COLUMNS,
    FAILED_COLUMNS,
    GATE_COLUMNS,
    HISTORY_COLUMNS,
    POLICY_COLUMNS,
    Board,
    Leaderboard,
    ModulePage,
    PolicyBoard,
    Provenance,
)
from harness.reports.site import render_site
from tests import browser as chromium
from tests.conftest import REPO

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

HOSTILE = "<script>alert(1)</script>|x"
HOSTILE_REASON = 'expected <img src=x onerror="alert(2)"> & got $\\frac{1}{0}$'
COMMITS = ("1111111aaaaaaa", "2222222bbbbbbb", "3333333ccccccc")
DATES = ("2026-02-27T09:00:00+00:00", "2026-02-28T09:00:00+00:00", "2026-03-01T09:00:00+00:00")
NAN = math.nan


# ---------------------------------------------------------------------------------------------------------------
# A hand-built leaderboard: two boards with ranked, approximate and failed modules, a board with no approximate or
# failed module, a policy board, and module pages with a three-commit history


def provenance(runs: int = 3, device: str = "cpu") -> Provenance:
    return Provenance(device, "float32", ("2.13.0",), ("0.1.0",), COMMITS, DATES[0], DATES[-1], runs)


def entry(module: str, rank: int, label: str, ratio: float, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(BOARD_COLUMNS, NAN)
    low, high = ratio * 0.98, ratio * 1.02
    row.update(module=module, rank=rank, rank_label=label, exact=True, ratio=ratio, ratio_low=low, ratio_high=high)
    row.update(fwd_ratio=ratio * 0.9, fwd_low=low * 0.9, fwd_high=high * 0.9, fwdbwd_ratio=ratio * 1.1)
    row.update(fwdbwd_low=low * 1.1, fwdbwd_high=high * 1.1, roofline_pct=42.0, worst_error=0.31)
    row.update(commit=COMMITS[-1], date=DATES[-1], run_id=3)
    row.update(extra)
    return row


def failure(module: str, gate: str, reason: str) -> dict[str, Any]:
    return {"module": module, "gate": gate, "verdict": "fail", "reason": reason, "commit": COMMITS[-1]} | {
        "date": DATES[-1],
        "run_id": 3,
    }


def frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def make_board(
    kind: str,
    variant: str,
    ranked: list[dict[str, Any]],
    approximate: list[dict[str, Any]] | None = None,
    failed: list[dict[str, Any]] | None = None,
    runs: int = 3,
) -> Board:
    ranked_frame, approximate_frame = frame(ranked, BOARD_COLUMNS), frame(approximate or [], BOARD_COLUMNS)
    failed_frame = frame(failed or [], FAILED_COLUMNS)
    return Board(kind, variant, "cpu", "float32", ranked_frame, approximate_frame, failed_frame, provenance(runs))


def norm_board() -> Board:
    # Peak bytes chosen so text order ("16777216" < "2097152" < "8388608") differs from numeric order.
    ranked = [
        entry("rms_norm_fused", 1, "1", 0.619, peak_bytes=8388608, memory_ratio=0.5),
        entry(HOSTILE, 2, "=2", 0.950, peak_bytes=16777216, memory_ratio=1.0),
        entry("rms_norm_torch", 2, "=2", 0.953, peak_bytes=2097152, memory_ratio=0.25),
        entry("rms_norm_slow", 4, "4", 1.800, peak_bytes=33554432, memory_ratio=2.0),
    ]
    approximate = [entry("rms_norm_approx", 1, "1", 0.45, exact=False, loss_delta=0.012, worst_error=3.2)]
    failed = [
        failure("rms_norm_dirty_workspace", "integration", "training loss became non-finite at step 30 of 250"),
        failure("rms_norm_broken", "unit", HOSTILE_REASON),
    ]
    return make_board("norm", "rms_norm", ranked, approximate, failed, runs=7)


def attention_board() -> Board:
    ranked = [
        entry("sdpa_attention", 1, "1", 0.612, peak_bytes=1 << 20, memory_ratio=0.06, loss_delta=0.001),
        entry("eager_attention", 2, "2", 1.004, peak_bytes=18 << 20, memory_ratio=1.05, loss_delta=-0.002),
    ]
    approximate = [
        entry("dense_but_lossy", 1, "1", 0.50, exact=False, loss_delta=0.09, recall_delta=-0.2),
        entry("sliding_window_attention", 1, "1", 0.618, exact=False, loss_delta=0.03, recall_delta=-0.93),
        entry("topk_sparse_attention", 2, "2", 1.772, exact=False, loss_delta=0.05, recall_delta=-0.757),
    ]
    failed = [failure("causal_peeker", "integration", "validation loss 0.4 nats better than the reference")]
    return make_board("attention", "causal", ranked, approximate, failed, runs=6)


def quantization_board() -> Board:
    ranked = [entry("int8_channel", 1, "1", 0.979, perplexity_change=-0.0002, quantized_bytes=170752)]
    return make_board("quantization", "int8_channel", ranked, runs=1)


def policies() -> PolicyBoard:
    row = {"policy": "fp8_body_int4_head", "perplexity": 7.51, "perplexity_change": 0.0014, "limit": 0.1}
    row |= {"model_bytes": 460032, "quantized_bytes": 163584, "bits": "4b x1 8b x14", "commit": COMMITS[-1]}
    row |= {"date": DATES[-1], "run_id": 3}
    return PolicyBoard(frame([row], POLICY_COLUMNS), provenance(runs=1))


def module_page(name: str, kind: str, ratio: float, verdict: str = "pass", reason: str = "") -> ModulePage:
    runs = zip(COMMITS, DATES, ("pass", "fail", verdict), (ratio * 1.2, NAN, ratio), strict=True)
    history = [
        {"commit": c, "date": d, "run_id": i + 1, "verdict": v, "device": "cpu"}
        | ({"ratio": r, "ratio_low": r * 0.97, "ratio_high": r * 1.03} if v == "pass" else {})
        for i, (c, d, v, r) in enumerate(runs)
    ]
    gates = [
        {"gate": "unit", "verdict": "pass", "reason": "", "seconds": 4.2, "cases_total": 24, "cases_failed": 0},
        {"gate": "perf", "verdict": verdict, "reason": reason, "seconds": 25.1, "cases_total": 4, "cases_failed": 0},
    ]
    cases = [
        {"gate": "unit", "case": f"unit/{n}x{n + 1}", "dtype": dt, "passed": True, "failure": "", "seconds": 0.01 * n}
        for n in (1, 17, 64)
        for dt in ("float32", "bfloat16")
    ]
    if verdict != "pass":
        cases.append({"gate": "unit", "case": "unit/odd", "dtype": "float16", "passed": False, "failure": reason})
    return ModulePage(
        name=name,
        kind=kind,
        variants=("rms_norm",) if kind == "norm" else ("causal",),
        exact=True,
        source=f"modules/{kind}/{name}.py",
        verdict=verdict,
        reason=reason,
        authority="",
        gates=frame(gates, GATE_COLUMNS),
        cases=frame(cases, CASE_COLUMNS),
        history=frame(history, HISTORY_COLUMNS),
        provenance=provenance(),
    )


def leaderboard() -> Leaderboard:
    pages = [
        module_page("rms_norm_fused", "norm", 0.619),
        module_page(HOSTILE, "norm", 0.95),
        module_page("rms_norm_torch", "norm", 0.953),
        module_page("rms_norm_broken", "norm", 1.0, verdict="fail", reason=HOSTILE_REASON),
        module_page("sdpa_attention", "attention", 0.612),
        module_page("a$b$ dollar", "attention", 1.1),
    ]
    notes = [f"{HOSTILE} (error, no variant known) is on no board: no norm board on cuda"]
    return Leaderboard(
        boards=[norm_board(), attention_board(), quantization_board()],
        policies=policies(),
        modules=pages,
        generated="2026-03-01T12:00:00+00:00",
        store="results/store.sqlite",
        notes=notes,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    render_site(leaderboard(), out)
    return out


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


# ---------------------------------------------------------------------------------------------------------------
# Without a browser


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("href", "src", "action", "srcset", "poster", "data") and v]


def test_render_site_writes_every_page_and_returns_the_files(site: Path, tmp_path: Path) -> None:
    written = render_site(leaderboard(), tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"index.html", "policies.html", "boards/norm-rms_norm-cpu-float32.html"} <= names
    assert len([n for n in names if n.startswith("modules/")]) == 6
    assert all(p.is_file() for p in written) and not list(tmp_path.rglob("*.partial"))
    # A history chart for each module with two timed runs or more (rms_norm_broken has one), three charts at most a
    # board (none for an empty approximate table): never a chart per run.
    svgs = sorted(n for n in names if n.endswith(".svg"))
    assert len([n for n in svgs if n.startswith("charts/module-")]) == 5
    assert "charts/module-rms_norm_broken-history.svg" not in svgs
    assert [n for n in svgs if n.startswith("charts/quantization-")] == [
        "charts/quantization-int8_channel-cpu-float32-speed.svg"
    ]
    assert len(svgs) == 5 + 3 + 3 + 1


def many_runs(modules: int = 40, runs: int = 25, per_board: int = 5) -> Leaderboard:
    """`modules` x `runs` judged runs: boards of `per_board` modules, each module with its whole history."""
    boards, pages = [], []
    for b in range(modules // per_board):
        names = [f"norm_{b}_{i}" for i in range(per_board)]
        ranked = [entry(n, i + 1, str(i + 1), 0.5 + 0.1 * i, memory_ratio=0.9) for i, n in enumerate(names)]
        boards.append(make_board("norm", f"variant_{b}", ranked, runs=per_board * runs))
        for name in names:
            history = [
                {"commit": f"{r:040x}", "date": f"2026-01-{1 + r // 24:02d}T{r % 24:02d}:00:00+00:00", "run_id": r}
                | {"verdict": "pass", "ratio": 0.9, "ratio_low": 0.88, "ratio_high": 0.92, "device": "cpu"}
                for r in range(runs)
            ]
            page = module_page(name, "norm", 0.9)
            pages.append(ModulePage(**{**vars(page), "history": frame(history, HISTORY_COLUMNS)}))
    return Leaderboard(boards, None, pages, "2026-03-01T12:00:00+00:00", "store.sqlite")


def test_a_thousand_runs_draw_one_chart_per_module_and_board_at_most(tmp_path: Path) -> None:
    lb = many_runs()
    assert sum(len(p.history) for p in lb.modules) == 1000
    started = time.perf_counter()
    written = render_site(lb, tmp_path)
    seconds = time.perf_counter() - started
    svgs = [p for p in written if p.suffix == ".svg"]
    assert len(svgs) == len(lb.modules) + 2 * len(lb.boards)  # history; speed and memory (no approximate module)
    print(f"1,000 runs: {len(written)} files, {len(svgs)} charts in {seconds:.1f} s")


def test_every_link_is_relative_and_resolves(site: Path) -> None:
    for page in pages(site):
        parser = _Refs()
        parser.feed(page.read_text(encoding="utf-8"))
        for ref in parser.refs:
            if ref == "data:,":  # the empty favicon, so no browser asks the server for /favicon.ico
                continue
            assert not re.match(r"^([a-z][a-z0-9+.-]*:|//|/)", ref, re.I), f"{page.name}: non-relative link {ref}"
            assert (page.parent / ref.split("#")[0]).resolve().is_file(), f"{page.name}: broken link {ref}"


def test_the_site_loads_nothing_from_outside(site: Path) -> None:
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        assert "http://" not in html and "https://" not in html, f"{page.name} names an outside URL"
        assert "default-src 'none'" in unescape(html)  # the page's policy blocks any outside resource at run time too
    for svg in site.rglob("*.svg"):
        text = svg.read_text(encoding="utf-8")
        # The XML namespace and DTD identifiers are names, never fetched; anything else would be a resource.
        rest = re.sub(r'(xmlns(:\w+)?="[^"]*"|<!DOCTYPE[^>]*>)', "", text)
        assert "http://" not in rest and "https://" not in rest, f"{svg.name} references an outside resource"
        assert not re.search(r"<(script|image|foreignObject)\b", text), f"{svg.name} embeds active or outside content"


def test_untrusted_text_is_escaped_in_every_page(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    board = (site / "boards" / "norm-rms_norm-cpu-float32.html").read_text(encoding="utf-8")
    for html in (index, board):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;|x" in html
    assert "&lt;img src=x onerror=" in board
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        assert "<script>alert" not in html and "<img src=x" not in html, page.name
        assert html.count("<script") == 1, f"{page.name}: only the site's own script may appear"


def test_every_page_states_its_provenance(site: Path) -> None:
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        for shown in ("cpu", "float32", "2.13.0", "0.1.0", COMMITS[0][:10], "2026-02-27", "2026-03-01"):
            assert shown in html, f"{page.name} does not state {shown}"
    # The index counts distinct runs (run ids 1-3 here), not the sum of its pages' overlapping counts.
    assert "(3 runs)" in (site / "index.html").read_text(encoding="utf-8")


def test_an_empty_store_and_clashing_names_still_render(tmp_path: Path) -> None:
    empty = Leaderboard([], None, [], "2026-03-01T12:00:00+00:00", "store.sqlite")
    assert [p.name for p in render_site(empty, tmp_path / "empty")] == ["index.html"]
    assert "No board" in (tmp_path / "empty" / "index.html").read_text(encoding="utf-8")

    bare = module_page("a-b", "norm", 1.0)
    bare = ModulePage(**{**vars(bare), "kind": None, "exact": None, "variants": ()})
    clash = ModulePage(**{**vars(module_page("a_b", "norm", 1.0)), "history": frame([], HISTORY_COLUMNS)})
    lb = Leaderboard([], None, [bare, clash], "2026-03-01T12:00:00+00:00", "store.sqlite")
    written = {p.relative_to(tmp_path / "clash").as_posix() for p in render_site(lb, tmp_path / "clash")}
    assert {"modules/a_b.html", "modules/a_b-2.html"} <= written  # same slug, two pages, each linked once
    index = (tmp_path / "clash" / "index.html").read_text(encoding="utf-8")
    assert index.count('href="modules/a_b.html"') == 1 and index.count('href="modules/a_b-2.html"') == 1


def test_charts_are_reproducible_byte_for_byte() -> None:
    board, page = norm_board(), module_page("a$b$ dollar", "attention", 1.1)
    drawn: list[Callable[[], str]] = [
        lambda: charts.ratio_bars(board),
        lambda: charts.memory_bars(board),
        lambda: charts.pareto(board),
        lambda: charts.history(page),
    ]
    for draw in drawn:
        first, second = draw(), draw()
        assert first == second
        assert first.startswith("<?xml") and "<dc:date>" not in first
    assert "a$b$ dollar" in charts.history(page)  # dollars stay text: no mathtext


def test_charts_of_a_board_without_figures_still_draw() -> None:
    empty = make_board("norm", "layer_norm", [], runs=0)
    for svg in (charts.ratio_bars(empty), charts.pareto(empty), charts.memory_bars(empty)):
        assert "<svg" in svg


# ---------------------------------------------------------------------------------------------------------------
# In headless Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium.chromium() as launched:
        yield launched


class Watched:
    """A page with its console errors, uncaught exceptions and dialogs recorded."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: Path) -> Page:
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        return self.page

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Watched]:
    watched = Watched(browser)
    yield watched
    watched.close()
    assert not watched.dialogs, f"a dialog opened: untrusted text ran as script: {watched.dialogs}"


def test_every_page_renders_without_errors_and_loads_its_charts(site: Path, tab: Watched) -> None:
    opened = 0
    for path in pages(site):
        page = tab.open(path)
        page.wait_for_load_state("networkidle")
        assert not tab.errors, f"{path.relative_to(site)}: {tab.errors}"
        images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert all(width > 0 for _, width in images), f"{path.relative_to(site)}: images not loaded: {images}"
        assert all(page.evaluate("Array.from(document.images).map(i => i.alt.length > 20)"))
        opened += 1
    assert opened == len(pages(site)) >= 10


def _column(page: Page, table: str, index: int) -> list[str]:
    keys = page.eval_on_selector_all(f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].dataset.sort)")
    return [str(k) for k in keys]


def _header_index(page: Page, table: str, label: str) -> int:
    labels = page.eval_on_selector_all(f"#{table} thead th", "ths => ths.map(th => th.textContent.trim())")
    return int(labels.index(label))


def test_clicking_a_header_sorts_the_rows_numerically_both_ways(site: Path, tab: Watched) -> None:
    page = tab.open(site / "boards" / "norm-rms_norm-cpu-float32.html")
    assert _column(page, "ranked", 0) == ["1", "2", "2", "4"]  # by rank, as rendered
    ratio = _header_index(page, "ranked", "Time ratio")
    page.click(f"#ranked thead th:nth-child({ratio + 1})")
    ascending = [float(v) for v in _column(page, "ranked", ratio)]
    assert ascending == sorted(ascending)
    page.click(f"#ranked thead th:nth-child({ratio + 1})")
    assert [float(v) for v in _column(page, "ranked", ratio)] == sorted(ascending, reverse=True)
    assert _column(page, "ranked", 0) == ["4", "2", "2", "1"]  # the first column followed its rows

    memory = _header_index(page, "ranked", "Peak memory")
    page.click(f"#ranked thead th:nth-child({memory + 1})")
    assert _column(page, "ranked", memory) == ["2097152", "8388608", "16777216", "33554432"]  # numeric, not text
    assert page.get_attribute(f"#ranked thead th:nth-child({memory + 1})", "aria-sort") == "ascending"
    modules = page.eval_on_selector_all("#ranked tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    assert modules == ["rms_norm_torch", "rms_norm_fused", HOSTILE, "rms_norm_slow"]
    assert not tab.errors


def test_typing_in_the_filter_hides_the_other_rows(site: Path, tab: Watched) -> None:
    page = tab.open(site / "index.html")
    rows = page.locator("#modules tbody tr")
    assert rows.count() == 6 and all(rows.nth(i).is_visible() for i in range(6))

    def visible() -> list[str]:
        return [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count()) if rows.nth(i).is_visible()]

    page.fill("input.filter[data-table=modules]", "fused")
    assert visible() == ["rms_norm_fused"]
    page.fill("input.filter[data-table=modules]", "ATTENTION")  # any cell, any case: here the kind
    assert visible() == ["sdpa_attention", "a$b$ dollar"]
    assert page.inner_text("output[for=filter-modules]") == "2 of 6 rows"
    page.fill("input.filter[data-table=modules]", "")
    assert all(rows.nth(i).is_visible() for i in range(6))
    assert not tab.errors


def test_a_hostile_module_name_is_shown_as_text(site: Path, tab: Watched) -> None:
    for path in (site / "index.html", site / "boards" / "norm-rms_norm-cpu-float32.html", *site.glob("modules/_*")):
        page = tab.open(path)
        assert page.get_by_text(HOSTILE, exact=True).count() >= 1, f"{path.name} does not show the name as text"
        assert page.evaluate("document.scripts.length") == 1
        assert page.evaluate("document.querySelectorAll('img:not([src$=\".svg\"])').length") == 0
    assert not tab.errors


def test_screenshots_of_each_page_type(site: Path, tab: Watched, tmp_path: Path) -> None:
    shots = Path(os.environ.get("HARNESS_SCREENSHOTS") or REPO / "results" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    for kind, path in (
        ("index", site / "index.html"),
        ("board", site / "boards" / "norm-rms_norm-cpu-float32.html"),
        ("module", site / "modules" / "rms_norm_fused.html"),
        ("policies", site / "policies.html"),
    ):
        target = shots / f"{kind}.png"
        tab.open(path).screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000
        print(f"screenshot of the {kind} page: {target}")
    assert not tab.errors
