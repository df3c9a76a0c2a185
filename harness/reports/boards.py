"""Leaderboards from the results store, built with pandas: one board per kind x variant x device x dtype, the
mixed-precision policies, and one page per module. The store is opened read-only; nothing here runs a gate.

On a board each module name shows its latest run on the board's device (by the run's date, then run_id). Exact
modules that passed every gate are ranked by time ratio (`harness/reports/ranking.py`); approximate ones are placed on
Pareto layers of quality cost against time; modules that failed a gate are listed apart with the reason, never ranked.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.reports.metrics import (
    DEFAULT_DTYPE,
    PASSING_VERDICTS,
    SUMMARY_COLUMNS,
    Entry,
    entry_of,
    number,
    speed_columns,
    speed_of,
)
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
from harness.reports.ranking import compare, pareto_layers, rank_entries, rank_labels
from harness.results.records import QUANTIZED_CASE, GateName
from harness.store import connect

__all__ = ["build_leaderboard", "compare", "rank_entries"]

POLICY_SOURCE = "pyproject.toml [tool.harness.mixed_precision"  # how a mixed-precision policy's source begins
GATE_ORDER = {str(g): i for i, g in enumerate(GateName)}


@dataclass(frozen=True)
class _Store:
    """The store's tables as frames: modules carry their run's date, device and commit; `order` sorts by date, then
    run_id. Cases are read only for the runs a board or page shows."""

    runs: pd.DataFrame
    modules: pd.DataFrame
    gates: pd.DataFrame
    cases: pd.DataFrame


def build_leaderboard(store_path: Path) -> Leaderboard:
    """Every board, the policies and every module page, from the store at `store_path` (opened read-only; a missing
    store raises `harness.store.StoreError`)."""
    store = _read(store_path)
    notes: list[str] = []
    modules = store.modules
    policy = (modules["kind"] == "quantization") & modules["source"].str.startswith(POLICY_SOURCE)
    on_boards = _latest(modules[~policy & modules["authoritative"]], by=["name", "device"])
    notes += _not_authoritative(modules[~policy], on_boards)
    entries = [entry_of(row, _gates_of(store, row), _cases_of(store, row)) for row in _records(on_boards)]
    return Leaderboard(
        boards=_boards(entries, store.runs, notes),
        policies=_policies(store, _latest(modules[policy], by=["name"]), notes),
        modules=[_page(store, row) for row in _records(_latest(modules, by=["name"], one=True))],
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        store=str(store_path),
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------------------------
# Reading the store


def _read(path: Path) -> _Store:
    with closing(connect(path, readonly=True)) as conn:  # StoreError names a missing or too new store
        runs = pd.read_sql_query(
            "SELECT run_id, date, device, git_commit, torch_version, harness_version, config FROM runs", conn
        )
        runs = runs.assign(authority=[_authority(c) for c in runs["config"]]).drop(columns="config")
        runs = runs.assign(authoritative=runs["authority"] == "")
        stamp = pd.to_datetime(runs["date"], utc=True, format="ISO8601", errors="coerce")
        runs = runs.assign(stamp=stamp).sort_values(["stamp", "run_id"], na_position="first")
        runs = runs.assign(order=range(len(runs))).drop(columns="stamp")
        modules = pd.read_sql_query("SELECT * FROM modules", conn).merge(
            runs[["run_id", "date", "device", "git_commit", "order", "authority", "authoritative"]], on="run_id"
        )
        gates = _in_gate_order(pd.read_sql_query("SELECT * FROM gates", conn))
        shown = set(_latest(modules, by=["name", "device"])["run_id"]) | set(_latest(modules, by=["name"])["run_id"])
        cases = _read_cases(conn, sorted(shown))
    return _Store(runs, modules, gates, cases)


def _authority(config: str) -> str:
    """ "" when a run's verdicts count; else why not (a change to the harness itself no maintainer approved)."""
    settings = json.loads(config)
    if settings.get("authoritative", True):
        return ""
    return str(settings.get("authority_note") or "not authoritative: the run judged a change to the harness itself")


def _not_authoritative(modules: pd.DataFrame, on_boards: pd.DataFrame) -> list[str]:
    """A note for each module whose latest run does not count: boards keep its last authoritative result."""
    latest = _latest(modules, by=["name", "device"], one=True)
    ranked = {(r["name"], r["device"]) for r in _records(on_boards)}
    return [
        f"{r['name']} on {r['device']}: run {r['run_id']} (commit {str(r['git_commit'])[:12]}) is {r['authority']}; "
        + ("boards show its last authoritative run" if (r["name"], r["device"]) in ranked else "it is not ranked")
        for r in _records(latest[~latest["authoritative"]])
    ]


def _read_cases(conn: sqlite3.Connection, run_ids: Sequence[int]) -> pd.DataFrame:
    frames = []
    for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = [int(r) for r in run_ids[start : start + 500]]
        marks = ", ".join("?" * len(chunk))
        frames.append(pd.read_sql_query(f"SELECT * FROM cases WHERE run_id IN ({marks})", conn, params=chunk))
    cases = pd.concat(frames, ignore_index=True) if frames else pd.read_sql_query("SELECT * FROM cases LIMIT 0", conn)
    return _in_gate_order(cases)


def _latest(modules: pd.DataFrame, by: list[str], one: bool = False) -> pd.DataFrame:
    """Each group's rows from its latest run (a run may hold two sources of one name: both are kept unless `one`)."""
    if modules.empty:
        return modules
    last = modules.groupby(by)["order"].transform("max")
    rows = modules[modules["order"] == last].sort_values([*by, "source"])
    return rows.drop_duplicates(by) if one else rows


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(r) for r in frame.to_dict(orient="records")]


def _key(row: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    name = frame["module"] if "module" in frame.columns else frame["name"]
    mask = (frame["run_id"] == row["run_id"]) & (name == row["name"]) & (frame["source"] == row["source"])
    return frame[mask]


def _in_gate_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by run, module, gate (unit, integration, perf) and, for cases, position in the gate."""
    position = frame["gate"].map(GATE_ORDER).fillna(len(GATE_ORDER))
    ordinal = ["ordinal"] if "ordinal" in frame.columns else []
    keys = ["run_id", "module", "source", "position", *ordinal]
    return frame.assign(position=position).sort_values(keys, ignore_index=True).drop(columns="position")


def _gates_of(store: _Store, row: dict[str, Any]) -> list[dict[str, Any]]:
    return _records(_key(row, store.gates))


def _cases_of(store: _Store, row: dict[str, Any]) -> list[dict[str, Any]]:
    return _records(_key(row, store.cases))


# ---------------------------------------------------------------------------------------------------------------
# Boards


def _boards(entries: list[Entry], runs: pd.DataFrame, notes: list[str]) -> list[Board]:
    keys = sorted({e.board for e in entries if e.board is not None})
    unplaced = [e for e in entries if e.board is None]  # failed before declaring a variant (or a kind)
    for e in unplaced:
        if e.kind is None:
            notes.append(f"{e.name} ({e.verdict}) is on no board: it failed before declaring its kind")
        elif not any(k[0] == e.kind and k[2] == e.device for k in keys):
            notes.append(f"{e.name} ({e.verdict}) is on no board: it declared no variant, and no {e.kind} board exists")
    return [
        _board(key, [e for e in entries if e.board == key] + _same_kind(unplaced, key), runs, notes) for key in keys
    ]


def _same_kind(unplaced: list[Entry], key: tuple[str, str, str, str]) -> list[Entry]:
    return [e for e in unplaced if e.kind == key[0] and e.device == key[2]]


def _board(key: tuple[str, str, str, str], entries: list[Entry], runs: pd.DataFrame, notes: list[str]) -> Board:
    kind, variant, device, dtype = key
    failed = [e for e in entries if e.failure is not None]
    timed = []
    for e in entries:
        if e.failure is None and speed_of(e.row) is None:
            notes.append(f"{e.name} on {'/'.join(key)} passed but has no valid time ratio; not ranked")
        elif e.failure is None:
            timed.append(e)
    return Board(
        kind=kind,
        variant=variant,
        device=device,
        dtype=dtype,
        ranked=_ranked([e for e in timed if e.exact]),
        approximate=_pareto([e for e in timed if not e.exact]),
        failed=_frame([e.failed_row() for e in failed], FAILED_COLUMNS).sort_values("module", ignore_index=True),
        provenance=_provenance(runs, (e.run_id for e in entries), device, dtype),
    )


def _ranked(entries: list[Entry]) -> pd.DataFrame:
    rows = _frame([e.row for e in entries], BOARD_COLUMNS)
    if rows.empty:
        return rows
    ranks = rank_entries(rows["ratio"].tolist(), rows["ratio_low"].tolist(), rows["ratio_high"].tolist())
    rows = rows.assign(rank=ranks, rank_label=rank_labels(ranks))
    return rows.sort_values(["rank", "ratio", "module"], ignore_index=True)


def _pareto(entries: list[Entry]) -> pd.DataFrame:
    """Approximate modules: Pareto layer on (quality cost, time ratio). The quality cost is the validation-loss
    change; a quantizer has none and uses its perplexity change (a fraction, close to the loss change in nats)."""
    rows = _frame([e.row for e in entries], BOARD_COLUMNS)
    if rows.empty:
        return rows
    cost = rows["loss_delta"].fillna(rows["perplexity_change"])
    layers = pareto_layers(cost.tolist(), rows["ratio"].tolist())
    rows = rows.assign(rank=layers, rank_label=[str(layer) for layer in layers])
    return rows.sort_values(["rank", "ratio", "module"], ignore_index=True)


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def _provenance(runs: pd.DataFrame, run_ids: Iterable[int], device: str, dtype: str) -> Provenance:
    used = runs[runs["run_id"].isin(set(run_ids))]  # runs is sorted by date, then run_id

    def distinct(column: str) -> tuple[str, ...]:
        return tuple(sorted({str(v) for v in used[column]}))

    dates = used["date"].tolist()
    return Provenance(
        device=device,
        dtype=dtype,
        torch_versions=distinct("torch_version"),
        harness_versions=distinct("harness_version"),
        commits=distinct("git_commit"),
        first_date=str(dates[0]) if dates else "",
        last_date=str(dates[-1]) if dates else "",
        runs=len(used),
    )


# ---------------------------------------------------------------------------------------------------------------
# Policies and module pages


def _policies(store: _Store, latest: pd.DataFrame, notes: list[str]) -> PolicyBoard | None:
    rows = []
    for row in _records(latest):
        if row["verdict"] not in PASSING_VERDICTS:
            notes.append(f"mixed-precision policy {row['name']} did not pass ({row['verdict']}): {row['reason']}")
            continue
        case = next((c for c in _cases_of(store, row) if c["case"] == QUANTIZED_CASE), None)
        metrics = json.loads(case["metrics"]) if case else {}
        rows.append(_policy_row(row, metrics))
    if latest.empty:
        return None
    table = _frame(rows, POLICY_COLUMNS).sort_values(["quantized_bytes", "policy"], ignore_index=True)
    devices = ", ".join(sorted(set(latest["device"])))
    return PolicyBoard(table, _provenance(store.runs, latest["run_id"], devices, DEFAULT_DTYPE))


def _policy_row(row: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "policy": row["name"],
        "perplexity": number(metrics.get("perplexity")),
        "perplexity_change": number(metrics.get("perplexity_increase")),
        "limit": number(metrics.get("perplexity_increase_limit")),
        "model_bytes": number(metrics.get("model_bytes")),
        "quantized_bytes": number(metrics.get("quantized_model_bytes")),
        "bits": _bits(metrics),
        "commit": row["git_commit"],
        "date": row["date"],
        "run_id": row["run_id"],
    }


def _bits(metrics: dict[str, Any]) -> str:
    """Layers per bit width, narrowest first: "4b x1 8b x14"."""
    widths: dict[float, int] = {}
    for name, value in metrics.items():
        if name.startswith("bits[") and isinstance(value, int | float):
            widths[float(value)] = widths.get(float(value), 0) + 1
    return " ".join(f"{width:g}b x{count}" for width, count in sorted(widths.items()))


def _page(store: _Store, row: dict[str, Any]) -> ModulePage:
    variants = tuple(json.loads(row["variants"]))
    exact = None if pd.isna(row["exact"]) else bool(row["exact"])
    gates = _gates_of(store, row)
    cases = _cases_of(store, row)
    history = _history(store, row["name"])
    dtype = next((str(c["dtype"]) for c in cases if c["gate"] == "perf"), DEFAULT_DTYPE)
    return ModulePage(
        name=row["name"],
        kind=row["kind"],
        variants=variants,
        exact=exact,
        source=row["source"],
        verdict=row["verdict"],
        reason=row["reason"],
        authority=str(row["authority"]),
        gates=_frame(gates, GATE_COLUMNS),
        cases=_frame([_case_row(c) for c in cases], CASE_COLUMNS),
        history=history,
        provenance=_provenance(store.runs, history["run_id"], ", ".join(sorted(set(history["device"]))), dtype),
    )


def _case_row(case: dict[str, Any]) -> dict[str, Any]:
    failures = json.loads(case["failures"])
    return {**case, "passed": bool(case["passed"]), "failure": str(failures[0]) if failures else ""}


def _history(store: _Store, name: str) -> pd.DataFrame:
    runs = store.modules[store.modules["name"] == name].sort_values(["order", "source"])
    perf = store.gates[(store.gates["module"] == name) & (store.gates["gate"] == "perf")]
    summaries = {(r["run_id"], r["source"]): json.loads(r["summary"]) for r in _records(perf)}
    rows = []
    for row in _records(runs):
        summary = summaries.get((row["run_id"], row["source"]), {})
        speed = speed_columns(summary)
        rows.append(
            {
                "commit": row["git_commit"],
                "date": row["date"],
                "run_id": row["run_id"],
                "verdict": row["verdict"] if row["authoritative"] else f"{row['verdict']} (not authoritative)",
                **{column: speed[column] for column in SUMMARY_COLUMNS["all"]},
                "device": row["device"],
            }
        )
    return _frame(rows, HISTORY_COLUMNS)
