"""Leaderboards built from a results store: ranking with intervals, failures kept apart, Pareto layers for
approximate modules, the real shipped modules' results, and exports whose untrusted text is escaped.

The store is made here from the migration SQL and a small loader (`load_document`), so these tests do not depend on
the store's own ingest.
"""

from __future__ import annotations

import copy
import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.reports import build_leaderboard, compare, rank_entries, to_csv, to_json, to_markdown
from harness.reports.model import Board, Leaderboard
from harness.reports.ranking import Z99, Speed, pareto_layers
from harness.store import StoreError, ingest
from tests.conftest import FIXTURES, REPO

MIGRATION = REPO / "harness" / "store" / "migrations" / "001_initial.sql"
SHIPPED = FIXTURES / "results" / "shipped-modules.json"


# ---------------------------------------------------------------------------------------------------------------
# A store made from documents


def load_document(conn: sqlite3.Connection, doc: dict[str, Any], run_id: int) -> None:
    """Insert one results document as run `run_id` (the store's own ingest also hashes and validates it)."""
    env = doc["environment"]
    copied = ("harness_version", "git_commit", "torch_version", "python_version", "platform", "device", "cpu_model",
              "cpu_count", "threads", "seed", "seed_policy", "date")  # fmt: skip
    insert(conn, "runs", run_id=run_id, document_sha256=f"sha-{run_id}", source_path="test", ingested_at=env["date"],
           schema_version=doc["schema_version"], git_dirty=int(env["git_dirty"]), dtypes=json.dumps(env["dtypes"]),
           machine="test", config=json.dumps(doc["config"]), **{k: env.get(k) for k in copied})  # fmt: skip
    for m in doc["modules"]:
        key = {"run_id": run_id, "source": m["source"]}
        insert(conn, "modules", **key, name=m["name"], kind=m["kind"], variants=json.dumps(m["variants"]),
               exact=m["exact"], bound=json.dumps(m["bound"]), verdict=m["verdict"], reason=m["reason"],
               seconds=m["seconds"])  # fmt: skip
        for g in m["gates"]:
            figures = {k: g[k] for k in ("gate", "verdict", "reason", "seconds", "cases_total", "cases_failed")}
            insert(conn, "gates", **key, module=m["name"], **figures, summary=json.dumps(g["summary"]))
            for ordinal, c in enumerate(g["cases"]):
                texts = {k: json.dumps(c[k]) for k in ("failures", "sizes", "metrics")}
                insert(conn, "cases", **key, module=m["name"], gate=g["gate"], ordinal=ordinal, case=c["case"],
                       dtype=c["dtype"], passed=c["passed"], seconds=c["seconds"], **texts)  # fmt: skip


def insert(conn: sqlite3.Connection, table: str, **row: Any) -> None:
    names = ", ".join(f'"{name}"' for name in row)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def make_store(path: Path, *docs: dict[str, Any]) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATION.read_text())
        for run_id, doc in enumerate(docs, start=1):
            load_document(conn, doc, run_id)
    conn.close()
    return path


def environment(date: str = "2026-12-02T00:00:00+00:00", commit: str = "0123456789abcdef0123") -> dict[str, Any]:
    return {"harness_version": "0.1.0", "git_commit": commit, "git_dirty": False, "torch_version": "2.13.0+cpu",
            "python_version": "3.11.7", "platform": "Linux", "device": "cpu", "cpu_model": "test", "cpu_count": 2,
            "threads": 1, "dtypes": ["float32"], "seed": 1, "seed_policy": "fixed", "date": date}  # fmt: skip


def document(*modules: dict[str, Any], date: str = "2026-12-02T00:00:00+00:00") -> dict[str, Any]:
    config = {"gates": ["unit", "integration", "perf"], "timeout_s": 60.0, "memory_mb": 4096, "device": "cpu"}
    return {"schema_version": "1.2.0", "environment": environment(date), "config": config, "summary": {},
            "modules": list(modules)}  # fmt: skip


def gate(name: str, verdict: str = "pass", reason: str = "", summary: dict[str, float] | None = None,
         cases: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    cases = cases or []
    return {"gate": name, "summary": summary or {}, "verdict": verdict, "reason": reason, "cases": cases,
            "cases_total": len(cases), "cases_failed": 0, "seconds": 1.0}  # fmt: skip


def case(name: str, metrics: dict[str, Any], passed: bool = True) -> dict[str, Any]:
    failures = [] if passed else [f"{name}: wrong"]
    return {"case": name, "dtype": "float32", "passed": passed, "sizes": {}, "failures": failures,
            "metrics": metrics, "seconds": 0.1}  # fmt: skip


def module(name: str, ratio: float, low: float, high: float, *, exact: bool = True, loss_delta: float = 0.0,
           unit: str = "pass", reason: str = "") -> dict[str, Any]:  # fmt: skip
    """A norm/rms_norm module that passed every gate (unless `unit` says otherwise) with the given time ratio."""
    summary = {f"{p}.{s}": v for p in ("all", "forward", "forward_backward") for s, v in
               (("ratio", ratio), ("low", low), ("high", high))}  # fmt: skip
    errors = {"output.max_abs_err": 1e-7, "output.tolerance": 1e-6, "grad[x].max_abs_err": 3e-7,
              "grad[x].tolerance": 1e-6}  # fmt: skip
    gates = [gate("unit", unit, reason, cases=[case("rms_norm/r4-h8/normal", errors, unit == "pass")])]
    if unit == "pass":
        text = case("integration/text", {"val_loss_delta": loss_delta, "recall_delta": 0.0})
        large = {"roofline_pct": 12.5, "candidate_peak_bytes": 4096.0, "memory_ratio": 0.5}
        perf = [case("perf/forward/rms_norm/r64-h1024", {**large, "memory_ratio": 9.0}),
                case("perf/forward/rms_norm/r1024-h4096", large)]  # fmt: skip
        gates += [gate("integration", cases=[text, case("integration/mqar", {"recall_delta": -0.01})]),
                  gate("perf", summary=summary, cases=perf)]  # fmt: skip
    verdict = "pass" if unit == "pass" else unit
    return {"name": name, "kind": "norm", "variants": ["rms_norm"], "exact": exact, "bound": None,
            "source": f"modules/norm/{name}.py", "verdict": verdict, "reason": reason, "gates": gates,
            "seconds": 3.0}  # fmt: skip


def only_board(lb: Leaderboard) -> Board:
    assert [b.slug for b in lb.boards] == ["norm-rms_norm-cpu-float32"]
    return lb.boards[0]


def labels(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["module"], frame["rank_label"], strict=True))


# ---------------------------------------------------------------------------------------------------------------
# Ranking


def test_overlapping_intervals_share_a_rank_and_a_clearly_faster_module_ranks_alone(tmp_path: Path) -> None:
    doc = document(
        module("fast", 0.50, 0.48, 0.52),
        module("middling_a", 0.90, 0.85, 0.95),
        module("middling_b", 0.93, 0.88, 0.98),
    )
    ranked = only_board(build_leaderboard(make_store(tmp_path / "s.db", doc))).ranked
    assert labels(ranked) == {"fast": "1", "middling_a": "=2", "middling_b": "=2"}
    assert ranked["module"].tolist() == ["fast", "middling_a", "middling_b"]  # rank, then ratio
    row = ranked.iloc[0]
    assert (row["ratio"], row["ratio_low"], row["ratio_high"]) == (0.50, 0.48, 0.52)
    assert (row["roofline_pct"], row["peak_bytes"], row["memory_ratio"]) == (12.5, 4096.0, 0.5)  # last forward case
    assert (row["recall_delta"], row["worst_error"]) == (-0.01, pytest.approx(0.3))  # mqar; grad[x] 3e-7 / 1e-6


def test_rank_rule_combines_intervals_in_log_space() -> None:
    # Each interval is [r / w, r * w]. Intervals that overlap slightly are still told apart, since the combined
    # log half-width is sqrt(a^2 + b^2) < a + b; closer ratios share a rank.
    w = 1.0526
    assert 1.09 / w < 1.0 * w  # the intervals of 1.0 and 1.09 overlap
    assert rank_entries([1.0, 1.09], [1.0 / w, 1.09 / w], [1.0 * w, 1.09 * w]) == [1, 2]
    assert rank_entries([1.0, 1.05], [1.0 / w, 1.05 / w], [1.0 * w, 1.05 * w]) == [1, 1]
    assert rank_entries([1.05, 1.0, 1.09], [1.05 / w, 1.0 / w, 1.09 / w], [1.05 * w, 1.0 * w, 1.09 * w]) == [1, 1, 2]
    se = math.log(1.1) / Z99  # a symmetric log interval [r / 1.1, r * 1.1]
    both = compare(Speed(0.5, 0.5 / 1.1, 0.55), Speed(1.0, 1 / 1.1, 1.1))
    assert both.ratio == pytest.approx(0.5)
    assert both.high == pytest.approx(0.5 * math.exp(Z99 * math.sqrt(2) * se))
    assert both.low == pytest.approx(0.5 * math.exp(-Z99 * math.sqrt(2) * se))


def test_a_module_that_failed_a_gate_is_listed_apart_and_never_ranked(tmp_path: Path) -> None:
    broken = module("broken", 0.1, 0.09, 0.11, unit="fail", reason="1 of 1 cases failed; first: max abs error")
    doc = document(module("honest", 0.9, 0.85, 0.95), broken)
    board = only_board(build_leaderboard(make_store(tmp_path / "s.db", doc)))
    assert board.ranked["module"].tolist() == ["honest"]
    failed = board.failed.iloc[0]
    assert (failed["module"], failed["gate"], failed["verdict"]) == ("broken", "unit", "fail")
    assert failed["reason"].startswith("1 of 1 cases failed")
    assert "broken" not in set(board.approximate["module"])


def test_a_module_that_failed_before_declaring_a_variant_is_listed_on_its_kinds_boards(tmp_path: Path) -> None:
    unloadable = module("unloadable", 1, 1, 1, unit="error", reason="could not load norm/unloadable.py")
    unloadable.update(variants=[], exact=None)
    kindless = {**copy.deepcopy(unloadable), "name": "kindless", "kind": None}
    doc = document(module("honest", 0.9, 0.85, 0.95), unloadable, kindless)
    lb = build_leaderboard(make_store(tmp_path / "s.db", doc))
    assert only_board(lb).failed[["module", "gate", "verdict"]].values.tolist() == [["unloadable", "unit", "error"]]
    assert lb.notes == ["kindless (error) is on no board: it failed before declaring its kind"]


def test_a_failed_perf_gate_keeps_a_passing_looking_module_off_the_ranking(tmp_path: Path) -> None:
    tampered = module("tamperer", 0.2, 0.19, 0.21)
    tampered["gates"][2]["verdict"], tampered["gates"][2]["reason"] = "tampered", "patched the clock"
    board = only_board(build_leaderboard(make_store(tmp_path / "s.db", document(tampered))))
    assert board.ranked.empty
    assert board.failed[["module", "gate", "verdict"]].values.tolist() == [["tamperer", "perf", "tampered"]]


def test_approximate_modules_get_pareto_layers_and_never_mix_with_exact_ones(tmp_path: Path) -> None:
    doc = document(
        module("exact_one", 0.9, 0.85, 0.95),
        module("fast_lossy", 0.3, 0.29, 0.31, exact=False, loss_delta=0.05),
        module("slow_clean", 0.8, 0.79, 0.81, exact=False, loss_delta=0.0),
        module("dominated", 0.85, 0.84, 0.86, exact=False, loss_delta=0.06),
    )
    board = only_board(build_leaderboard(make_store(tmp_path / "s.db", doc)))
    assert board.ranked["module"].tolist() == ["exact_one"]
    assert labels(board.approximate) == {"fast_lossy": "1", "slow_clean": "1", "dominated": "2"}
    assert pareto_layers([math.nan, 0.1], [1.0, 1.0]) == [1, 2]  # no quality figure counts as no loss


def test_each_module_shows_its_latest_run_and_its_history(tmp_path: Path) -> None:
    old = document(module("norm_a", 2.0, 1.9, 2.1), date="2026-11-01T00:00:00+00:00")
    new = document(module("norm_a", 0.7, 0.69, 0.71), date="2026-12-01T00:00:00+00:00")
    lb = build_leaderboard(make_store(tmp_path / "s.db", new, old))  # ingested out of order: run 2 is older
    assert only_board(lb).ranked["ratio"].tolist() == [0.7]
    assert only_board(lb).provenance.runs == 1
    page = next(p for p in lb.modules if p.name == "norm_a")
    assert page.history["ratio"].tolist() == [2.0, 0.7]
    assert page.history["date"].str[:7].tolist() == ["2026-11", "2026-12"]
    assert page.provenance.runs == 2


def test_a_run_that_is_not_authoritative_is_marked_and_never_displaces_the_ranking(tmp_path: Path) -> None:
    """A pull request that changed the harness: its results are shown as not authoritative, never ranked."""
    main = document(module("norm_a", 2.0, 1.9, 2.1), date="2026-11-01T00:00:00+00:00")
    pr = document(module("norm_a", 0.1, 0.09, 0.11), module("norm_new", 0.2, 0.19, 0.21))
    pr["config"] |= {"authoritative": False, "authority_note": "not authoritative: the change edits the harness"}
    lb = build_leaderboard(make_store(tmp_path / "s.db", main, pr))
    assert only_board(lb).ranked["module"].tolist() == ["norm_a"]
    assert only_board(lb).ranked["ratio"].tolist() == [2.0]  # the authoritative run, not the pull request's 0.1
    assert sorted(n for n in lb.notes if "not authoritative" in n) == [
        "norm_a on cpu: run 2 (commit 0123456789ab) is not authoritative: the change edits the harness; "
        "boards show its last authoritative run",
        "norm_new on cpu: run 2 (commit 0123456789ab) is not authoritative: the change edits the harness; "
        "it is not ranked",
    ]
    page = next(p for p in lb.modules if p.name == "norm_a")
    assert page.authority == "not authoritative: the change edits the harness"
    assert page.history["verdict"].tolist() == ["pass", "pass (not authoritative)"]
    assert next(p for p in lb.modules if p.name == "norm_new").authority.startswith("not authoritative")


# ---------------------------------------------------------------------------------------------------------------
# The shipped modules' real results (tests/fixtures/results/README.md)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Leaderboard:
    doc = json.loads(SHIPPED.read_text())
    return build_leaderboard(make_store(tmp_path_factory.mktemp("store") / "s.db", doc))


def test_the_shipped_modules_are_ranked_on_their_boards(shipped: Leaderboard) -> None:
    boards = {b.slug: b for b in shipped.boards}
    rms = boards["norm-rms_norm-cpu-float32"]
    assert sorted(rms.ranked["module"]) == ["rms_norm_fused", "rms_norm_torch"]
    assert rms.ranked["rank"].min() == 1 and rms.failed.empty
    assert (rms.provenance.device, rms.provenance.torch_versions, rms.provenance.runs) == ("cpu", ("2.13.0+cpu",), 1)
    causal = boards["attention-causal-cpu-float32"]
    assert causal.approximate["module"].tolist() == ["topk_sparse_attention"]
    assert "topk_sparse_attention" not in set(causal.ranked["module"])
    assert shipped.policies is not None
    policy = shipped.policies.table.iloc[0]
    assert (policy["policy"], policy["bits"]) == ("fp8_body_int4_head", "4b x1 8b x14")
    assert not any(b.kind == "quantization" and b.variant == "mixed_precision" for b in shipped.boards)
    pages = {p.name: p for p in shipped.modules}
    assert len(pages) == 15 and pages["rms_norm_fused"].gates["gate"].tolist() == ["unit", "integration", "perf"]


def test_markdown_escapes_a_hostile_module_name(shipped: Leaderboard) -> None:
    board = next(b for b in shipped.boards if b.slug == "norm-rms_norm-cpu-float32")
    hostile = board.ranked.copy()
    hostile.loc[0, "module"] = "evil | injected\n## Heading @org/team <img src=x>"
    forged = Board(board.kind, board.variant, board.device, board.dtype, hostile, board.approximate, board.failed,
                   board.provenance)  # fmt: skip
    text = to_markdown(Leaderboard([forged], None, [], shipped.generated, shipped.store))
    row = next(line for line in text.splitlines() if "evil" in line)
    assert "evil \\| injected #&#8203;#&#8203; Heading @&#8203;org/team \\<img src=x\\>" in row
    assert row.count(" | ") == 9  # ten cells: the name's "|" did not open an eleventh
    assert "\n## Heading" not in text


def test_markdown_lists_failures_with_capped_reasons(tmp_path: Path) -> None:
    broken = module("broken", 0.1, 0.09, 0.11, unit="crash", reason="killed by SIGSEGV " + "x" * 1000)
    lb = build_leaderboard(make_store(tmp_path / "s.db", document(module("honest", 0.9, 0.85, 0.95), broken)))
    text = to_markdown(lb)
    assert "### Not ranked (failed a gate)" in text
    row = next(line for line in text.splitlines() if line.startswith("| broken"))
    assert "| unit | crash | killed by SIGSEGV x" in row and row.endswith("… | 0123456789ab | 2026-12-02 00:00 |")
    assert len(row) < 400
    assert "| 1 | honest | 0.900 [0.850, 0.950] |" in text
    assert "Provenance: cpu, float32; torch 2.13.0+cpu; harness 0.1.0; commit 0123456789ab;" in text


def test_csv_and_json_hold_every_board_row_with_its_board(tmp_path: Path) -> None:
    broken = module("=cmd", 0.1, 0.09, 0.11, unit="fail", reason="-1 cases")
    lb = build_leaderboard(make_store(tmp_path / "s.db", document(module("honest", 0.9, 0.85, 0.95), broken)))
    records = json.loads(to_json(lb))
    assert [(r["module"], r["section"], r["kind"], r["variant"]) for r in records] == [
        ("honest", "ranked", "norm", "rms_norm"),
        ("=cmd", "failed", "norm", "rms_norm"),
    ]
    assert records[0]["ratio_low"] == 0.85 and records[1]["ratio"] is None
    table = pd.read_csv(io.StringIO(to_csv(lb)))
    assert table["module"].tolist() == ["honest", "'=cmd"]  # a spreadsheet would run "=cmd"
    assert table["reason"].tolist()[1] == "'-1 cases"


def test_a_store_that_does_not_exist_is_named_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"missing\.db: no store here"):
        build_leaderboard(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_the_store_ingest_and_this_loader_give_the_same_boards(tmp_path: Path, shipped: Leaderboard) -> None:
    ingest([SHIPPED], tmp_path / "ingested.db")
    ingested = build_leaderboard(tmp_path / "ingested.db")
    assert [b.slug for b in ingested.boards] == [b.slug for b in shipped.boards]
    for ours, theirs in zip(shipped.boards, ingested.boards, strict=True):
        pd.testing.assert_frame_equal(ours.ranked, theirs.ranked)
        pd.testing.assert_frame_equal(ours.approximate, theirs.approximate)
