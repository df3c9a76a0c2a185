"""What a contributed module declares about itself (kind, variants, exactness, error bound) and where it comes from."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

# Largest quality loss in the trained integration model an approximate module may declare: beyond these it no
# longer stands in for the kind, whatever it saves.
MAX_DECLARED_LOSS_INCREASE = 0.10  # nats of validation loss on the text task
MAX_DECLARED_RECALL_DROP = 0.10  # recall accuracy on the associative-recall task


@dataclass(frozen=True)
class ErrorBound:
    """Accuracy an approximate module promises; unset fields are not promised.

    The first four fields bound each call's result against the float64 oracle (unit gate). A kind publishes a
    floor (the loosest bound it accepts) and a module's declared bound is merged with it, so declaring
    "approximate" can tighten the check but never switch it off. The last two bound the quality of the trained
    integration model against the reference configuration (integration gate); undeclared, the tolerance is
    the reference's own seed-to-seed spread, and a declared value never goes below that spread.
    """

    max_abs: float | None = None  # largest |candidate - oracle| over all elements
    mean_abs: float | None = None  # mean |candidate - oracle|
    min_cosine: float | None = None  # cosine similarity of flattened candidate and oracle, in [-1, 1]
    min_sqnr_db: float | None = None  # 10*log10(|oracle|^2 / |candidate - oracle|^2)
    max_val_loss_increase: float | None = None  # nats the text validation loss may rise over the reference
    max_recall_drop: float | None = None  # recall accuracy the associative-recall task may lose

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"ErrorBound.{f.name} must be a finite number, got {value!r}")
        for name in ("max_abs", "mean_abs"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"ErrorBound.{name} must be >= 0, got {value!r}")
        for name, cap in (
            ("max_val_loss_increase", MAX_DECLARED_LOSS_INCREASE),
            ("max_recall_drop", MAX_DECLARED_RECALL_DROP),
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= cap:
                raise ValueError(f"ErrorBound.{name} must lie in [0, {cap}], got {value!r}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ValueError(f"ErrorBound.min_cosine must lie in [-1, 1], got {self.min_cosine!r}")

    def looser_than(self, floor: ErrorBound) -> list[str]:
        """Fields where this bound accepts more error than `floor` does (empty when it is at least as strict)."""
        looser = []
        for name in ("max_abs", "mean_abs"):
            mine, theirs = getattr(self, name), getattr(floor, name)
            if mine is not None and theirs is not None and mine > theirs:
                looser.append(f"{name}={mine} (floor {theirs})")
        for name in ("min_cosine", "min_sqnr_db"):
            mine, theirs = getattr(self, name), getattr(floor, name)
            if mine is not None and theirs is not None and mine < theirs:
                looser.append(f"{name}={mine} (floor {theirs})")
        return looser

    def merged_with(self, floor: ErrorBound) -> ErrorBound:
        """This bound with every field it leaves unset taken from `floor`."""
        return ErrorBound(
            **{
                f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(floor, f.name)
                for f in fields(self)
            }
        )

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ModuleSpec:
    """A registered module as the harness sees it: plain data, safe to send between processes."""

    name: str  # registry key; equals the file stem for in-tree modules
    kind: str  # attention | norm | quantization | activation
    variants: tuple[str, ...]  # variants of the kind this module implements
    exact: bool  # True: judged against the reference with the kind's tolerance policy
    bound: ErrorBound | None  # approximate modules only: the declared bound, already merged with the floor
    class_name: str  # the decorated class
    source: str  # file path for in-tree and fixture modules, "dist:<distribution>" for entry points


@dataclass(frozen=True)
class ModuleSource:
    """Where a module comes from, known without importing it: plain data the judge plans with."""

    name: str  # registry name: the file stem, or the entry-point name
    kind: str | None  # the kind directory the file sits in; None for entry points
    path: Path | None  # the module file, for in-tree and fixture modules
    entry_point: str | None = None  # "package.module:Class" for modules from installed distributions
    distribution: str | None = None  # the distribution that declares the entry point

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"entry point {self.name} = {self.entry_point} ({self.distribution})"
