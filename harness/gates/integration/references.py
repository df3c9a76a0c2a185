"""The judge's side of the integration gate: evaluation batches, reference runs and the seed-to-seed spread.

The reference configuration is trained by the judge itself, once per run and configuration, and shared by every
candidate. Tolerances come from the reference's own seed-to-seed spread, measured by the harness and cached on
disk per configuration (see `Spread`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import statistics
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from harness.core import paths
from harness.core.contract import ModuleSpec
from harness.core.seeding import case_seed
from harness.core.version import __version__
from harness.integration.model import Transformer
from harness.integration.runs import RunOutput, TaskSetup, Trained, init_pass, make_task, run_setup, train_reference
from harness.integration.setups import DEFAULT_SETUPS, SLIDING_WINDOW, SPREAD_SEEDS, TRAIN_SEED
from harness.integration.slots import ACTIVATION_VARIANTS, MODEL_ATTENTION_VARIANTS, NORM_VARIANTS, reference_slots
from harness.integration.tasks import batches
from harness.integration.train import lm_loss, recall_accuracy

# What a reference run depends on besides its set-up: the kinds' contracts (the reference implementations in the
# model's slots) and the integration model, its tasks and its training. A change to any of them retrains.
CONTRACT_SOURCES = ("kinds", "integration", "core")

Variants = tuple[str, str, str]  # (attention, norm, activation) variants the model's slots are used as
BASE: Variants = ("causal", "rms_norm", "swiglu")


def slot_variants(spec: ModuleSpec) -> Variants | None:
    """The model configuration that exercises `spec`, or None when no variant of it fits a causal decoder."""
    attention, norm, activation = BASE
    allowed = {"attention": MODEL_ATTENTION_VARIANTS, "norm": NORM_VARIANTS, "activation": ACTIVATION_VARIANTS}
    usable = [v for v in allowed.get(spec.kind, ()) if v in spec.variants]
    if not usable:
        return None
    if spec.kind == "attention":
        attention = usable[0]
    elif spec.kind == "norm":
        norm = usable[0]
    else:
        activation = "swiglu" if "swiglu" in usable else usable[0]
    return attention, norm, activation


def model_slots(variants: Variants) -> Any:
    attention, norm, activation = variants
    return reference_slots(norm_variant=norm, activation_variant=activation, attention_variant=attention)


def setup_for(setup: TaskSetup, variants: Variants) -> TaskSetup:
    """The task's setup with the model's GQA heads or window matching the attention variant."""
    model = setup.model
    if variants[0] == "gqa":
        model = replace(model, n_kv_heads=1)
    if variants[0] == "sliding_window":
        model = replace(model, window=SLIDING_WINDOW)
    return TaskSetup(setup.task, model, setup.train)


@dataclass(frozen=True)
class EvalData:
    """The evaluation batches of one task: the judge keeps the targets."""

    init_batch: tuple[torch.Tensor, torch.Tensor]
    inputs: list[torch.Tensor]
    targets: list[torch.Tensor]


def eval_data(setup: TaskSetup, run_seed: int) -> EvalData:
    """Validation batches drawn from the run's secret seed, plus one batch for the init comparison."""
    task = make_task(setup.task)
    cfg = setup.train
    seed = case_seed(run_seed, f"integration/{setup.task}", torch.float32)
    data = batches(task, "validation", cfg.eval_batches + 1, cfg.batch_size, cfg.seq_len, seed)
    return EvalData(data[0], [x for x, _ in data[1:]], [y for _, y in data[1:]])


class References:
    """Reference runs per (task, configuration, seed), trained by the judge once and shared by all modules."""

    def __init__(self, run_seed: int, setups: tuple[TaskSetup, ...] = DEFAULT_SETUPS) -> None:
        self.run_seed = run_seed
        self.setups = setups
        self._runs: dict[tuple[str, Variants, int], RunOutput] = {}
        self._eval: dict[str, EvalData] = {}
        self._oracles: dict[object, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
        self._guard = threading.Lock()
        self._locks: dict[object, threading.Lock] = {}

    def _lock(self, key: object) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def eval(self, setup: TaskSetup) -> EvalData:
        with self._lock(("eval", setup.task)):
            if setup.task not in self._eval:
                self._eval[setup.task] = eval_data(setup, self.run_seed)
            return self._eval[setup.task]

    def oracle_init(self, setup: TaskSetup, variants: Variants) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The reference model at init in float64 on the init batch: the oracle for the init comparison."""
        key = ("oracle", setup.task, variants)
        ev = self.eval(setup)
        with self._lock(key):
            if key not in self._oracles:
                model = Transformer(setup_for(setup, variants).model, model_slots(variants), TRAIN_SEED).double()
                self._oracles[key] = init_pass(model, *ev.init_batch)
            return self._oracles[key]

    def run(self, setup: TaskSetup, variants: Variants, seed: int = TRAIN_SEED) -> RunOutput:
        """Evaluated once per key and run; a module judged in parallel that needs the same run waits for it. The
        training itself does not depend on the run's secret seed: it is done once per machine and cached
        (`trained_reference`), and every run evaluates the trained weights on its own secret batches."""
        key = (setup.task, variants, seed)
        ev = self.eval(setup)
        with self._lock(key):
            if key not in self._runs:
                slots = model_slots(variants)
                full = setup_for(setup, variants)
                trained = trained_reference(full, variants, seed)
                self._runs[key] = run_setup(full, slots, seed, ev.init_batch, ev.inputs, trained)
            return self._runs[key]


def reference_path(setup: TaskSetup, variants: Variants, seed: int) -> Path:
    """Where the trained reference of (set-up, configuration, seed) is cached on this machine."""
    task = make_task(setup.task)
    parts = [
        json.dumps(setup.as_dict(), sort_keys=True),
        "/".join(variants),
        str(seed),
        torch.__version__,
        getattr(task, "sha256", ""),
        paths.sources_digest(*CONTRACT_SOURCES),
    ]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]
    return paths.CACHE_DIR / f"reference-{setup.task}-{'-'.join(variants)}-{seed}-{key}.pt"


def trained_reference(setup: TaskSetup, variants: Variants, seed: int) -> Trained:
    """The reference configuration trained from `seed`: from the machine's cache, or trained now and cached. Read
    with torch.load(weights_only=True): tensors and plain numbers only, never code."""
    path = reference_path(setup, variants, seed)
    try:
        data = torch.load(path, weights_only=True)
        return Trained(dict(data["state"]), [float(x) for x in data["losses"]])
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, pickle.UnpicklingError):
        pass  # not cached yet, or unreadable: train
    trained = train_reference(setup, model_slots(variants), seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    torch.save({"state": trained.state, "losses": trained.losses}, tmp)
    os.replace(tmp, path)
    return trained


@dataclass(frozen=True)
class Spread:
    """Seed-to-seed standard deviation of the reference's validation metrics for one configuration.

    Measured by training the reference configuration with SPREAD_SEEDS (fresh weights and batch order each)
    and scoring all on the same validation batches; cached in ~/.cache/module-harness keyed by everything
    that changes it (setup, variants, seeds, torch and harness versions, corpus hash).
    """

    loss_sd: float
    recall_sd: float
    seeds: int


def spread_key(setup: TaskSetup, variants: Variants) -> str:
    task = make_task(setup.task)
    parts = [
        json.dumps(setup.as_dict(), sort_keys=True),
        "/".join(variants),
        str(SPREAD_SEEDS),
        torch.__version__,
        __version__,
        getattr(task, "sha256", ""),
        paths.sources_digest(*CONTRACT_SOURCES),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def measure_spread(refs: References, setup: TaskSetup, variants: Variants) -> Spread:
    """Spread of `setup` under `variants`, from the disk cache (CACHE_DIR) or measured now and cached."""
    path = paths.CACHE_DIR / f"spread-{setup.task}-{spread_key(setup, variants)}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return Spread(data["loss_sd"], data["recall_sd"], data["seeds"])
    ev = refs.eval(setup)
    losses, recalls = [], []
    for seed in SPREAD_SEEDS:
        out = refs.run(setup, variants, seed)
        losses.append(lm_loss(out.eval_logits, ev.targets))
        recalls.append(recall_accuracy(out.eval_logits, ev.targets))
    spread = Spread(statistics.stdev(losses), statistics.stdev(recalls), len(SPREAD_SEEDS))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**spread.__dict__, "losses": losses, "recalls": recalls}))
    return spread
