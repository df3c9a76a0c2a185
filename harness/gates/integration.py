"""Integration gate: the module swapped into a small transformer, trained and evaluated beside the reference.

The reference configuration is trained by the judge itself, once per run and configuration, and shared by
every candidate. The candidate configuration is trained from the same seed on the same batches inside the
contestant. The judge sends evaluation inputs only and scores the logits that come back, so the contestant
never scores itself. Tolerances come from the reference's own seed-to-seed spread, measured by the harness
and cached on disk per configuration (see `Spread`).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import harness
from harness.contract import ModuleSpec
from harness.gates.compare import compare_exact
from harness.gates.unit import CaseResult
from harness.integration.model import Transformer
from harness.integration.runs import RunOutput, TaskSetup, init_pass, make_task, run_setup
from harness.integration.setups import DEFAULT_SETUPS, SLIDING_WINDOW, SPREAD_SEEDS, TRAIN_SEED
from harness.integration.slots import ACTIVATION_VARIANTS, MODEL_ATTENTION_VARIANTS, NORM_VARIANTS, reference_slots
from harness.integration.tasks import batches
from harness.integration.train import lm_loss, recall_accuracy
from harness.kinds.base import TolerancePolicy, case_seed

K_SIGMA = 3.0  # a candidate may differ from the reference by this many seed-to-seed standard deviations
LOSS_FLOOR = 0.02  # nats: smallest validation-loss tolerance, for configurations whose spread is ~0
RECALL_FLOOR = 0.03  # smallest recall-accuracy tolerance
# Logits and gradients at init: 10x the fp32 reference's own error against the fp64 model, plus 64 eps of
# max|oracle| (a different summation order in a slot changes every downstream rounding).
INIT_POLICY = TolerancePolicy(multiplier=10.0, floor_eps=64.0)
CACHE_DIR = Path.home() / ".cache" / "module-harness"

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


def _slots(variants: Variants) -> Any:
    attention, norm, activation = variants
    return reference_slots(norm_variant=norm, activation_variant=activation, attention_variant=attention)


def _setup_for(setup: TaskSetup, variants: Variants) -> TaskSetup:
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
                model = Transformer(_setup_for(setup, variants).model, _slots(variants), TRAIN_SEED).double()
                self._oracles[key] = init_pass(model, *ev.init_batch)
            return self._oracles[key]

    def run(self, setup: TaskSetup, variants: Variants, seed: int = TRAIN_SEED) -> RunOutput:
        """Trained once per key; a module judged in parallel that needs the same run waits for it."""
        key = (setup.task, variants, seed)
        ev = self.eval(setup)
        with self._lock(key):
            if key not in self._runs:
                slots = _slots(variants)
                self._runs[key] = run_setup(_setup_for(setup, variants), slots, seed, ev.init_batch, ev.inputs)
            return self._runs[key]


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
    parts = [json.dumps(setup.as_dict(), sort_keys=True), "/".join(variants), str(SPREAD_SEEDS),
             torch.__version__, harness.__version__, getattr(task, "sha256", "")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def measure_spread(refs: References, setup: TaskSetup, variants: Variants) -> Spread:
    """Spread of `setup` under `variants`, from the disk cache (CACHE_DIR) or measured now and cached."""
    path = CACHE_DIR / f"spread-{setup.task}-{spread_key(setup, variants)}.json"
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


def _decreased(losses: list[float]) -> bool:
    """Mean loss over the last tenth of training below the mean over the first tenth."""
    n = max(1, len(losses) // 10)
    return statistics.fmean(losses[-n:]) < statistics.fmean(losses[:n])


def score_task(
    spec: ModuleSpec, setup: TaskSetup, refs: References, variants: Variants, got: dict[str, Any]
) -> dict[str, Any]:
    """Judge one task: finite losses, training progress, metrics within the spread, init match for exact modules."""
    ev = refs.eval(setup)
    ref = refs.run(setup, variants)
    dense = refs.run(setup, BASE)
    spread = measure_spread(refs, setup, variants)
    failures: list[str] = []
    losses = [float(x) for x in got["losses"]]
    logits = list(got["eval_logits"])
    if len(logits) != len(ev.targets) or any(type(t) is not torch.Tensor or t.shape[:-1] != y.shape
                                             for t, y in zip(logits, ev.targets, strict=False)):
        return _case(setup, False, ["evaluation logits missing or of the wrong shape"], {})
    steps = setup.train.steps
    if not all(math.isfinite(x) for x in losses):
        step = next(i for i, x in enumerate(losses) if not math.isfinite(x))
        last = f"; last finite loss {losses[step - 1]:.4f}" if step else ""
        failures.append(f"training loss became non-finite at step {step + 1} of {steps}{last} "
                        "(the reference trains finitely on the same batches)")
        return _case(setup, False, failures, {"train_loss_first": losses[0], "nonfinite_step": float(step + 1)})
    if len(losses) != steps:
        return _case(setup, False, [f"{len(losses)} training losses returned, expected {steps}"], {})
    if not all(bool(torch.isfinite(t).all()) for t in logits):
        return _case(setup, False, ["non-finite evaluation logits after finite training"], {})
    if not _decreased(losses):
        failures.append(f"training loss did not decrease ({losses[0]:.3f} at the start, {losses[-1]:.3f} at the end)")
    metrics = _metrics(spec, setup, logits, ref, dense, ev, spread)
    failures += _quality_failures(setup.task, metrics, spread)
    if spec.exact:
        failures += _init_failures(ref, got, refs.oracle_init(setup, variants))
    metrics.update({"train_loss_first": losses[0], "train_loss_last": losses[-1], "seconds": float(got["seconds"]),
                    "ref_seconds": ref.seconds})
    return _case(setup, not failures, failures, metrics)


def _metrics(spec: ModuleSpec, setup: TaskSetup, logits: list[torch.Tensor], ref: RunOutput, dense: RunOutput,
             ev: EvalData, spread: Spread) -> dict[str, float]:
    """Candidate and reference metrics, their deltas, and the tolerances: the spread's, or a declared bound."""
    loss, ref_loss = lm_loss(logits, ev.targets), lm_loss(ref.eval_logits, ev.targets)
    recall, ref_recall = recall_accuracy(logits, ev.targets), recall_accuracy(ref.eval_logits, ev.targets)
    loss_noise = max(K_SIGMA * spread.loss_sd, LOSS_FLOOR)
    recall_noise = max(K_SIGMA * spread.recall_sd, RECALL_FLOOR)
    metrics = {
        "val_loss": loss, "ref_val_loss": ref_loss, "val_loss_delta": loss - ref_loss,
        "val_loss_noise": loss_noise, "val_loss_tolerance": loss_noise,
        "perplexity": math.exp(loss), "ref_perplexity": math.exp(ref_loss),
        "recall": recall, "ref_recall": ref_recall, "recall_delta": recall - ref_recall,
        "recall_noise": recall_noise, "recall_tolerance": recall_noise,
        "dense_recall": recall_accuracy(dense.eval_logits, ev.targets),
        "dense_val_loss": lm_loss(dense.eval_logits, ev.targets),
        "spread_seeds": float(spread.seeds),
    }
    bound = spec.bound if not spec.exact else None
    if bound is not None and bound.max_val_loss_increase is not None:
        metrics["declared_val_loss_increase"] = bound.max_val_loss_increase
        metrics["val_loss_tolerance"] = max(loss_noise, bound.max_val_loss_increase)
    if bound is not None and bound.max_recall_drop is not None:
        metrics["declared_recall_drop"] = bound.max_recall_drop
        metrics["recall_tolerance"] = max(recall_noise, bound.max_recall_drop)
    return metrics


def _quality_failures(task: str, m: dict[str, float], spread: Spread) -> list[str]:
    """Worse than the tolerance allows, or better than any faithful implementation of the slot can be.

    Both directions: a module computing what the slot's reference computes matches it within seed-to-seed
    noise. Doing clearly better means computing something else, e.g. a causal attention that lets positions
    see later tokens (lower text loss) or a sliding window that reaches past its window (higher recall).
    """
    noise_loss = f"{K_SIGMA:g} x seed-to-seed sd {spread.loss_sd:.4f}"
    noise_recall = f"{K_SIGMA:g} x seed-to-seed sd {spread.recall_sd:.4f}"
    failures = []
    if task == "text":
        source = f"declared bound {m['declared_val_loss_increase']:g}" if m["val_loss_tolerance"] > m[
            "val_loss_noise"] else noise_loss
        if m["val_loss_delta"] > m["val_loss_tolerance"]:
            failures.append(f"validation loss {m['val_loss']:.4f} is {m['val_loss_delta']:+.4f} nats from the "
                            f"reference ({m['ref_val_loss']:.4f}); tolerance {m['val_loss_tolerance']:.4f} ({source})")
        elif m["val_loss_delta"] < -m["val_loss_noise"]:
            failures.append(f"validation loss {m['val_loss']:.4f} is {m['val_loss_delta']:+.4f} nats below the "
                            f"reference ({m['ref_val_loss']:.4f}), beyond {m['val_loss_noise']:.4f} ({noise_loss}): "
                            "better than any faithful implementation of this slot; does it read later positions?")
    if task == "mqar":
        source = f"declared bound {m['declared_recall_drop']:g}" if m["recall_tolerance"] > m[
            "recall_noise"] else noise_recall
        if m["recall_delta"] < -m["recall_tolerance"]:
            failures.append(f"recall accuracy {m['recall']:.3f} is {m['recall_delta']:+.3f} from the reference "
                            f"({m['ref_recall']:.3f}); tolerance {m['recall_tolerance']:.3f} ({source})")
        elif m["recall_delta"] > m["recall_noise"]:
            failures.append(f"recall accuracy {m['recall']:.3f} is {m['recall_delta']:+.3f} above the reference "
                            f"({m['ref_recall']:.3f}), beyond {m['recall_noise']:.3f} ({noise_recall}): better than "
                            "any faithful implementation of this slot; does it see keys its mask excludes?")
    return failures


def _init_failures(
    ref: RunOutput, got: dict[str, Any], wide: tuple[torch.Tensor, dict[str, torch.Tensor]]
) -> list[str]:
    """Exact modules reproduce the reference model's logits and gradients at init (float64 model as oracle)."""
    oracle_logits, oracle_grads = wide
    failures = []
    pairs = [("init logits", got["init_logits"], ref.init_logits, oracle_logits)]
    pairs += [(f"init grad[{n}]", got["init_grads"].get(n), ref.init_grads[n], oracle_grads[n]) for n in ref.init_grads]
    for name, cand, reference, oracle in pairs:
        if type(cand) is not torch.Tensor or cand.shape != reference.shape:
            failures.append(f"{name}: missing or of the wrong shape")
            continue
        verdict = compare_exact(name, cand, reference, oracle, torch.float32, INIT_POLICY)
        if not verdict.passed:
            failures.append(verdict.message)
    return failures


def _case(setup: TaskSetup, passed: bool, failures: list[str], metrics: dict[str, float]) -> dict[str, Any]:
    """One task's verdict in the same record shape as a unit-gate case."""
    seconds = float(metrics.get("seconds", 0.0))
    return CaseResult(f"integration/{setup.task}", "float32", passed, failures, metrics=metrics,
                      seconds=seconds).as_dict()


def raised_case(setup: TaskSetup, message: str) -> dict[str, Any]:
    """The record of a task during which the module raised."""
    return _case(setup, False, [f"module raised: {message}"], {})


def request(spec: ModuleSpec, setup: TaskSetup, refs: References, variants: Variants) -> dict[str, Any]:
    """The contestant message for one task: the setup, the seed, and the evaluation inputs without targets."""
    ev = refs.eval(setup)
    return {
        "op": "integrate",
        "kind": spec.kind,
        "variants": list(variants),
        "setup": _setup_for(setup, variants).as_dict(),
        "seed": TRAIN_SEED,
        "init_inputs": ev.init_batch[0],
        "init_targets": ev.init_batch[1],
        "eval_inputs": ev.inputs,
    }


# Largest validation-perplexity increase a quantization module may cause in the trained reference model, by code
# width. Measured on this model: int8 per channel +0.01%, int4 group 32 +1.5%; the limits leave room for honest
# new schemes while rejecting a quantizer that wrecks the model.
MAX_PERPLEXITY_INCREASE = {8: 0.02, 4: 0.10}


LayerPlan = dict[str, tuple[str, str]]  # layer name -> (quantization module name, variant it is used as)


def reference_layers(refs: References) -> list[str]:
    """Names of the linear layers of the reference text model, in model order."""
    from harness.integration.quantize import linear_layers

    setup = next(s for s in refs.setups if s.task == "text")
    return list(linear_layers(Transformer(setup.model, _slots(BASE), TRAIN_SEED)))


def module_plan(spec: ModuleSpec, refs: References) -> LayerPlan:
    """Every linear layer quantized by `spec` as its first declared variant."""
    return {layer: (spec.name, spec.variants[0]) for layer in reference_layers(refs)}


def quantization_request(plan: LayerPlan, refs: References) -> tuple[TaskSetup, dict[str, Any]]:
    """The trained reference text model, sent for quantization by `plan` with the evaluation inputs (no targets)."""
    setup = next(s for s in refs.setups if s.task == "text")
    ref = refs.run(setup, BASE)
    message = {"op": "quantize_model", "setup": setup.as_dict(), "state": ref.state,
               "plan": {layer: list(assignment) for layer, assignment in plan.items()},
               "eval_inputs": refs.eval(setup).inputs}
    return setup, message


def score_quantization(setup: TaskSetup, refs: References, plan: LayerPlan, got: dict[str, Any]) -> dict[str, Any]:
    """Perplexity change, per-layer SQNR, code bits and bytes of the quantized reference model, judged by the judge.

    The perplexity limit is that of the narrowest code width the plan uses.
    """
    from harness.gates.compare import sqnr_db
    from harness.kinds.quantization_schemes import CODE_BITS, packed_bytes

    ev, ref = refs.eval(setup), refs.run(setup, BASE)
    logits, packed, dequantized = list(got["eval_logits"]), dict(got["packed"]), dict(got["dequantized"])
    if len(logits) != len(ev.targets) or not all(type(t) is torch.Tensor and bool(torch.isfinite(t).all())
                                                 for t in logits):
        return _case(setup, False, ["evaluation logits of the quantized model are missing or not finite"], {})
    if set(packed) != set(plan) or set(dequantized) != set(plan):
        return _case(setup, False, [f"quantized layers {sorted(packed)} differ from the plan's {sorted(plan)}"], {})
    loss, ref_loss = lm_loss(logits, ev.targets), lm_loss(ref.eval_logits, ev.targets)
    increase = math.exp(loss - ref_loss) - 1.0
    bits = min((CODE_BITS[variant] for _, variant in plan.values()), default=32)
    limit = MAX_PERPLEXITY_INCREASE.get(bits, 0.0)
    fp32_linear = sum(ref.state[f"{name}.weight"].numel() * 4 for name in packed)
    fp32_model = sum(t.numel() * 4 for t in ref.state.values())
    stored = sum(packed_bytes(p) for p in packed.values())
    metrics: dict[str, float] = {
        "perplexity": math.exp(loss), "ref_perplexity": math.exp(ref_loss), "perplexity_increase": increase,
        "perplexity_increase_limit": limit, "model_bytes": float(fp32_model),
        "quantized_model_bytes": float(fp32_model - fp32_linear + stored),
        "linear_bytes": float(fp32_linear), "quantized_linear_bytes": float(stored),
    }
    for name, weight in dequantized.items():
        metrics[f"sqnr_db[{name}]"] = sqnr_db(ref.state[f"{name}.weight"], weight)
    for layer in reference_layers(refs):
        metrics[f"bits[{layer}]"] = float(CODE_BITS[plan[layer][1]]) if layer in plan else 32.0
    failures = []
    if increase > limit:
        failures.append(f"validation perplexity {math.exp(loss):.4f} is {100 * increase:+.2f}% from the unquantized "
                        f"model ({math.exp(ref_loss):.4f}); limit {100 * limit:g}% for {bits}-bit codes")
    case = _case(setup, not failures, failures, metrics)
    case["case"] = "integration/quantized-text"
    return case
