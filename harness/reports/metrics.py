"""One module's board row, read from its stored gates and cases: speed from the perf gate's summary, memory and
roofline from its large forward case, quality from the integration cases, worst error from the unit gate."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.reports.ranking import Speed
from harness.results.records import PASSING, QUANTIZED_CASE, Verdict

DEFAULT_DTYPE = "float32"  # what the perf gate times; a board says so even for a module that never reached it
PASSING_VERDICTS = frozenset(str(v) for v in PASSING)
FAILING_GATE = frozenset(str(v) for v in Verdict) - PASSING_VERDICTS - {str(Verdict.SKIPPED)}
SUFFIXES = ("ratio", "low", "high")  # perf summary keys are "<prefix>.<suffix>"
SUMMARY_COLUMNS = {  # perf summary key prefix -> board column names for (ratio, low, high)
    "all": ("ratio", "ratio_low", "ratio_high"),
    "forward": ("fwd_ratio", "fwd_low", "fwd_high"),
    "forward_backward": ("fwdbwd_ratio", "fwdbwd_low", "fwdbwd_high"),
}
CASE_METRICS = {  # integration case -> {metric: board column}
    "integration/text": {"val_loss_delta": "loss_delta"},
    "integration/mqar": {"recall_delta": "recall_delta"},
    QUANTIZED_CASE: {"perplexity_increase": "perplexity_change", "quantized_model_bytes": "quantized_bytes"},
}
LARGE_FORWARD = {"roofline_pct": "roofline_pct", "candidate_peak_bytes": "peak_bytes", "memory_ratio": "memory_ratio"}
BoardKey = tuple[str, str, str, str]  # kind, variant, device, dtype


@dataclass(frozen=True)
class Entry:
    """One module's latest run on a device, ready for a board."""

    name: str
    kind: str | None
    device: str
    run_id: int
    verdict: str
    exact: bool  # False for approximate modules (and the rare passing module whose exactness is unknown)
    board: BoardKey | None  # None: it failed before declaring a variant
    failure: tuple[str, str, str] | None  # (gate, verdict, reason) of the first failing gate
    row: dict[str, Any]  # BOARD_COLUMNS except rank and rank_label

    def failed_row(self) -> dict[str, Any]:
        gate, verdict, reason = self.failure or ("", self.verdict, "")
        keep = {k: self.row[k] for k in ("module", "commit", "date", "run_id")}
        return {**keep, "gate": gate, "verdict": verdict, "reason": reason}


def entry_of(module: Mapping[str, Any], gates: list[dict[str, Any]], cases: list[dict[str, Any]]) -> Entry:
    """`module`: a modules row with its run's device, date and git_commit; `gates` in gate order; `cases` by ordinal."""
    variants = json.loads(module["variants"])
    perf_cases = [c for c in cases if c["gate"] == "perf"]
    dtype = str(perf_cases[0]["dtype"]) if perf_cases else DEFAULT_DTYPE
    kind = module["kind"] if isinstance(module["kind"], str) else None
    exact = module["exact"] == 1
    perf = next((g for g in gates if g["gate"] == "perf"), None)
    row = {
        "module": module["name"],
        "exact": exact,
        **speed_columns(json.loads(perf["summary"]) if perf else {}),
        **_large_forward(perf_cases),
        **_integration(cases),
        "worst_error": _worst_error([c for c in cases if c["gate"] == "unit"]) if exact else math.nan,
        "commit": module["git_commit"],
        "date": module["date"],
        "run_id": int(module["run_id"]),
    }
    return Entry(
        name=module["name"],
        kind=kind,
        device=module["device"],
        run_id=int(module["run_id"]),
        verdict=module["verdict"],
        exact=exact,
        board=(kind, str(variants[0]), module["device"], dtype) if kind and variants else None,
        failure=_failure(module, gates),
        row=row,
    )


def speed_of(row: Mapping[str, Any]) -> Speed | None:
    """The row's overall time ratio with its interval, or None when it has none (or an impossible one)."""
    try:
        return Speed(float(row["ratio"]), float(row["ratio_low"]), float(row["ratio_high"]))
    except (KeyError, TypeError, ValueError):
        return None


def number(value: Any) -> float:
    """A stored figure as a float: numbers as is, "inf"/"-inf"/"nan" strings parsed, anything else NaN."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _failure(module: Mapping[str, Any], gates: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    for gate in gates:
        if gate["verdict"] in FAILING_GATE:
            return str(gate["gate"]), str(gate["verdict"]), str(gate["reason"])
    if module["verdict"] not in PASSING_VERDICTS:
        return "", str(module["verdict"]), str(module["reason"])
    return None


def speed_columns(summary: Mapping[str, Any]) -> dict[str, float]:
    """The perf summary's ratios with their intervals as board columns (NaN where absent)."""
    columns: dict[str, float] = {}
    for prefix, names in SUMMARY_COLUMNS.items():
        for suffix, name in zip(SUFFIXES, names, strict=True):
            columns[name] = number(summary.get(f"{prefix}.{suffix}"))
    return columns


def _large_forward(perf_cases: list[dict[str, Any]]) -> dict[str, float]:
    """Memory and roofline of the gate's last forward case, its largest shape."""
    forward = [c for c in perf_cases if str(c["case"]).startswith("perf/forward/")]
    metrics = json.loads(forward[-1]["metrics"]) if forward else {}
    return {column: number(metrics.get(metric)) for metric, column in LARGE_FORWARD.items()}


def _integration(cases: list[dict[str, Any]]) -> dict[str, float]:
    columns = {column: math.nan for wanted in CASE_METRICS.values() for column in wanted.values()}
    for case in cases:
        wanted = CASE_METRICS.get(case["case"]) if case["gate"] == "integration" else None
        if wanted:
            metrics = json.loads(case["metrics"])
            columns.update({column: number(metrics.get(metric)) for metric, column in wanted.items()})
    return columns


def _worst_error(unit_cases: list[dict[str, Any]]) -> float:
    """The largest max-abs error in units of its tolerance over every tensor of every case ("<t>.max_abs_err" over
    "<t>.tolerance"); NaN when no case reports both."""
    worst = math.nan
    for case in unit_cases:
        metrics = json.loads(case["metrics"])
        for name, value in metrics.items():
            if name.endswith(".max_abs_err") and (tol := name.removesuffix(".max_abs_err") + ".tolerance") in metrics:
                share = _share(number(value), number(metrics[tol]))
                worst = share if math.isnan(worst) or share > worst else worst
    return worst


def _share(error: float, tolerance: float) -> float:
    if tolerance > 0:
        return error / tolerance
    return 0.0 if error == 0 else math.inf
