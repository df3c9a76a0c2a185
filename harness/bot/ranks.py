""" "Would rank N of M": where a judged module's speed would land on its board in the results store.

The board is the module's kind x variant x device x float32 (what the perf gate times), built by
`harness.reports.build_leaderboard`; the module's own earlier entry is left out, so it is compared with the others.
Only exact modules that passed every gate with a valid time ratio are placed, as on the board itself; approximate
modules sit on Pareto layers there, which one ratio cannot place.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.bot.facts import ModuleFacts
from harness.reports import Board, build_leaderboard
from harness.reports.metrics import DEFAULT_DTYPE
from harness.reports.ranking import Speed, would_rank
from harness.store import StoreError

Key = tuple[str, str]  # (module name, device)


def board_ranks(store: str | None, modules: Iterable[ModuleFacts], notes: list[str]) -> dict[Key, str]:
    """ "N of M" per (module, device) that has a board in `store`; nothing when there is no store (a note says why
    when one was named but could not be read)."""
    if store is None or not Path(store).is_file():
        return {}
    try:
        boards = build_leaderboard(Path(store)).boards
    except (StoreError, sqlite3.DatabaseError) as exc:
        notes.append(f"no ranks: the results store {store} could not be read ({exc})")
        return {}
    ranks: dict[Key, str] = {}
    for module in modules:
        board = _board_of(boards, module)
        place = _place(board, module) if board is not None else None
        if place is not None:
            ranks[(module.name, module.device)] = place
    return ranks


def _board_of(boards: list[Board], module: ModuleFacts) -> Board | None:
    key = (module.kind, module.variant, module.device, DEFAULT_DTYPE)
    return next((b for b in boards if (b.kind, b.variant, b.device, b.dtype) == key), None)


def _place(board: Board, module: ModuleFacts) -> str | None:
    if module.speed is None or module.exact is not True or not module.passing:
        return None
    others = [_speed(row) for row in board.ranked.to_dict(orient="records") if row["module"] != module.name]
    speeds = [s for s in others if s is not None]
    return f"{would_rank(Speed(*module.speed), speeds)} of {len(speeds) + 1}"


def _speed(row: dict[Any, Any]) -> Speed | None:
    """A board row's time ratio and interval; None for a missing or impossible one."""
    try:
        values = [float(row[key]) for key in ("ratio", "ratio_low", "ratio_high")]
        return Speed(*values) if all(math.isfinite(v) for v in values) else None
    except (KeyError, TypeError, ValueError):
        return None
