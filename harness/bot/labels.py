"""Every label the bot may apply, and the rules that pick them from the results.

A label name is never built from untrusted text: `kind/<kind>` exists only for the four kinds in `KINDS`, and every
other label is a constant of the catalogue. Labels in the bot's namespaces (`harness.bot.plan.bot_owned`) that the
rules do not pick are removed by the API side; every other label is a human's and left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from harness.bot.plan import LabelSpec
from harness.results.records import PASSING, Verdict

KINDS = ("attention", "norm", "quantization", "activation")  # the fixed set of `kind/<kind>` labels
DEFAULT_THRESHOLD = 0.10  # the perf gate's slowdown threshold when a summary does not record one

_KIND_COLORS = {"attention": "1d76db", "norm": "0e8a16", "quantization": "5319e7", "activation": "fbca04"}
KIND_LABELS = {
    kind: LabelSpec(f"kind/{kind}", _KIND_COLORS[kind], f"Adds or changes a {kind} module") for kind in KINDS
}
NEW_MODULE = LabelSpec("new-module", "0e8a16", "Adds a module under modules/")
MODULE_UPDATE = LabelSpec("module-update", "c5def5", "Modifies or removes a module under modules/")
HARNESS_CHANGE = LabelSpec(
    "harness-change", "d93f0b", "Changes the harness itself: results are not authoritative until a maintainer approves"
)
GATES_PASSED = LabelSpec("gates/passed", "0e8a16", "Every judged module passed every gate")
GATES_FAILED = LabelSpec("gates/failed", "b60205", "At least one judged module failed a gate")
PERF_FASTER = LabelSpec("perf/faster", "0e8a16", "Faster than the base branch's version, by a clear margin")
PERF_REGRESSION = LabelSpec("perf/regression", "b60205", "Slower than the base branch's version: the perf gate failed")
PERF_SUSPECT = LabelSpec("perf/suspect", "fbca04", "Slower than the base branch's version by less than the threshold")
PERF_NEUTRAL = LabelSpec("perf/neutral", "ededed", "No speed change the perf gate can tell from noise")
NEEDS_GPU_RUN = LabelSpec("needs-gpu-run", "f9d0c4", "The change adds or modifies a module; its GPU gates have not run")

CATALOGUE: dict[str, LabelSpec] = {
    spec.name: spec
    for spec in (
        *KIND_LABELS.values(),
        NEW_MODULE,
        MODULE_UPDATE,
        HARNESS_CHANGE,
        GATES_PASSED,
        GATES_FAILED,
        PERF_FASTER,
        PERF_REGRESSION,
        PERF_SUSPECT,
        PERF_NEUTRAL,
        NEEDS_GPU_RUN,
    )
}


class PerfOutcome(StrEnum):
    """What one module's perf gate says about speed, most important first."""

    REGRESSION = "regression"
    SUSPECT = "suspect"
    FASTER = "faster"
    NEUTRAL = "neutral"


PERF_LABELS = {
    PerfOutcome.REGRESSION: PERF_REGRESSION,
    PerfOutcome.SUSPECT: PERF_SUSPECT,
    PerfOutcome.FASTER: PERF_FASTER,
    PerfOutcome.NEUTRAL: PERF_NEUTRAL,
}


@dataclass(frozen=True)
class ChangeKinds:
    """What changes.json says, reduced to what the labels need."""

    added: bool  # some module file added
    updated: bool  # some module file modified or removed
    harness_changed: bool  # the change touches the harness itself
    kinds: frozenset[str]  # kinds of the modules added, modified or removed (any string; filtered here)


def against_base(gate: Mapping[str, object]) -> bool:
    """True when the perf gate compared the module with its base branch's version (its reason says "vs base:")."""
    return str(gate.get("reason", "")).startswith("vs base:")


def perf_outcome(gate: Mapping[str, object] | None) -> PerfOutcome:
    """One module's perf outcome from its perf gate record (None: the gate did not run).

    The speed ratio is candidate time / baseline time, with a 99% interval `all.low`..`all.high` in the gate's
    summary, and T is the summary's `threshold` (default 10%). Only a comparison with the base branch's version says
    anything about the change; a ratio against the kind's reference is information, never a label:

    - regression: the gate failed for slowness: verdict `fail` against the base, with the whole interval beyond
      1 + T/2 (a perf failure for a wrong or impossible output is a failure, not a regression);
    - suspect: the gate's verdict is `suspect` (slower than the base, by less than the threshold);
    - faster: against the base, the whole interval lies below 1 / (1 + T/2) (the gate's own "faster" rule);
    - neutral: anything else, including no perf gate, a skipped one, and every comparison with the reference.
    """
    if gate is None or not against_base(gate):
        return PerfOutcome.NEUTRAL
    summary = gate.get("summary")
    figures = summary if isinstance(summary, Mapping) else {}
    threshold = _number(figures.get("threshold"), DEFAULT_THRESHOLD)
    low, high = _number(figures.get("all.low"), math.nan), _number(figures.get("all.high"), math.nan)
    verdict = gate.get("verdict")
    if verdict == Verdict.FAIL and low > 1 + threshold / 2:
        return PerfOutcome.REGRESSION
    if verdict == Verdict.SUSPECT:
        return PerfOutcome.SUSPECT
    if verdict == Verdict.PASS and high < 1 / (1 + threshold / 2):
        return PerfOutcome.FASTER
    return PerfOutcome.NEUTRAL


def _number(value: object, default: float) -> float:
    """A summary figure as a float (the schema allows "inf"/"nan" strings); `default` when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return float(value)
    except ValueError:
        return default


def perf_label(outcomes: Iterable[PerfOutcome]) -> LabelSpec:
    """The one perf label: the most important outcome of any module (regression, suspect, faster), else neutral."""
    seen = set(outcomes)
    return next((PERF_LABELS[o] for o in PerfOutcome if o in seen), PERF_NEUTRAL)


def gates_label(verdicts: Iterable[str]) -> LabelSpec:
    """gates/passed when every module's verdict is in PASSING (pass, suspect), else gates/failed."""
    passing = {str(v) for v in PASSING}
    return GATES_PASSED if all(v in passing for v in verdicts) else GATES_FAILED


def kind_labels(kinds: Iterable[str | None]) -> list[LabelSpec]:
    """`kind/<kind>` for each kind in the fixed set; any other string (untrusted) gives no label."""
    return [KIND_LABELS[k] for k in sorted({k for k in kinds if k in KIND_LABELS})]


def change_labels(change: ChangeKinds | None) -> list[LabelSpec]:
    """new-module, module-update and harness-change as changes.json says; none without changes.json."""
    if change is None:
        return []
    picked = [(change.added, NEW_MODULE), (change.updated, MODULE_UPDATE), (change.harness_changed, HARNESS_CHANGE)]
    return [spec for wanted, spec in picked if wanted]


def choose_labels(
    verdicts: Iterable[str],
    outcomes: Iterable[PerfOutcome],
    kinds: Iterable[str | None],
    change: ChangeKinds | None,
    gpu_pending: bool,
) -> tuple[LabelSpec, ...]:
    """Every label the pull request should carry, sorted by name."""
    chosen = [*kind_labels(kinds), *change_labels(change), gates_label(verdicts), perf_label(outcomes)]
    if gpu_pending:
        chosen.append(NEEDS_GPU_RUN)
    return tuple(sorted(chosen, key=lambda spec: spec.name))
