"""What a leaderboard shows, as plain records: built from the store by boards.py, rendered by site.py and
exports.py. Reports read validated results from the store; they never import modules or run gates.

Every frame's columns are listed here, so the builder and the renderers agree on one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Ranked and approximate boards: one row per module, its latest run on the board's device.
BOARD_COLUMNS = (
    "rank",  # int: 1 + the number of entries significantly faster (ties share a rank); approximate: Pareto layer
    "rank_label",  # "1", "=2" (shared with another entry), ...
    "module",
    "exact",  # bool
    "ratio",
    "ratio_low",
    "ratio_high",  # time / the kind's reference, geometric mean over cases and modes, 99%
    "fwd_ratio",
    "fwd_low",
    "fwd_high",  # forward only
    "fwdbwd_ratio",
    "fwdbwd_low",
    "fwdbwd_high",  # forward + backward
    "roofline_pct",  # share of this machine's bound reached on the large forward case
    "peak_bytes",
    "memory_ratio",  # peak memory of one large forward call, and its ratio to the reference's
    "loss_delta",
    "recall_delta",  # integration: validation loss (nats) and recall change vs the reference
    "perplexity_change",
    "quantized_bytes",  # quantization: perplexity change (fraction), model bytes after
    "worst_error",  # unit gate: worst max-abs error in units of its tolerance (<= 1 passes)
    "commit",
    "date",
    "run_id",  # the run the row comes from
)
FAILED_COLUMNS = ("module", "gate", "verdict", "reason", "commit", "date", "run_id")
POLICY_COLUMNS = (
    "policy",
    "perplexity",
    "perplexity_change",
    "limit",
    "model_bytes",
    "quantized_bytes",
    "bits",
    "commit",
    "date",
    "run_id",
)
HISTORY_COLUMNS = (
    "commit",
    "date",
    "run_id",
    "verdict",
    "ratio",
    "ratio_low",
    "ratio_high",
    "device",
)  # a page spans devices: each ratio is relative on its own device
GATE_COLUMNS = ("gate", "verdict", "reason", "seconds", "cases_total", "cases_failed")
CASE_COLUMNS = ("gate", "case", "dtype", "passed", "failure", "seconds")


@dataclass(frozen=True)
class Provenance:
    """Where a page's figures come from: every page states these."""

    device: str
    dtype: str
    torch_versions: tuple[str, ...]
    harness_versions: tuple[str, ...]
    commits: tuple[str, ...]
    first_date: str
    last_date: str
    runs: int  # runs the page draws on


@dataclass(frozen=True)
class Board:
    """One kind x variant x device x dtype: exact modules ranked, approximate ones on their Pareto front,
    failed ones apart with the reason."""

    kind: str
    variant: str
    device: str
    dtype: str
    ranked: pd.DataFrame  # BOARD_COLUMNS; exact modules that passed every gate, by rank
    approximate: pd.DataFrame  # BOARD_COLUMNS; approximate modules that passed every gate, rank = Pareto layer
    failed: pd.DataFrame  # FAILED_COLUMNS; never ranked
    provenance: Provenance

    @property
    def slug(self) -> str:
        """A file-name-safe identifier, e.g. "norm-rms_norm-cpu-float32"."""
        return "-".join(_safe(p) for p in (self.kind, self.variant, self.device, self.dtype))

    @property
    def title(self) -> str:
        return f"{self.kind} / {self.variant} on {self.device}, {self.dtype}"


@dataclass(frozen=True)
class PolicyBoard:
    """Mixed-precision policies: bytes against perplexity."""

    table: pd.DataFrame  # POLICY_COLUMNS
    provenance: Provenance


@dataclass(frozen=True)
class ModulePage:
    """One module: its latest gates and cases, and its history over commits."""

    name: str
    kind: str | None
    variants: tuple[str, ...]
    exact: bool | None
    source: str
    verdict: str
    reason: str
    authority: str  # "" when the latest run counts; else why it does not (an unapproved change to the harness)
    gates: pd.DataFrame  # GATE_COLUMNS, latest run
    cases: pd.DataFrame  # CASE_COLUMNS, latest run
    history: pd.DataFrame  # HISTORY_COLUMNS, oldest first
    provenance: Provenance

    @property
    def slug(self) -> str:
        return _safe(self.name)


@dataclass(frozen=True)
class Leaderboard:
    """Everything a report renders."""

    boards: list[Board]
    policies: PolicyBoard | None
    modules: list[ModulePage]
    generated: str  # ISO 8601 UTC time of rendering
    store: str  # the store it was built from
    notes: list[str] = field(default_factory=list)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in text)
