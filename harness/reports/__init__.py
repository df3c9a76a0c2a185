"""Leaderboards from the results store: boards built with pandas (`boards.py`), exported as Markdown, CSV and JSON
(`exports.py`), rendered as a site (`site.py`). Reports read the store; they never import modules or run gates."""

from harness.reports.boards import build_leaderboard
from harness.reports.exports import to_csv, to_json, to_markdown
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
from harness.reports.ranking import Speed, compare, rank_entries

__all__ = [
    "BOARD_COLUMNS",
    "CASE_COLUMNS",
    "FAILED_COLUMNS",
    "GATE_COLUMNS",
    "HISTORY_COLUMNS",
    "POLICY_COLUMNS",
    "Board",
    "Leaderboard",
    "ModulePage",
    "PolicyBoard",
    "Provenance",
    "Speed",
    "build_leaderboard",
    "compare",
    "rank_entries",
    "to_csv",
    "to_json",
    "to_markdown",
]
