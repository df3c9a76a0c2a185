"""Scoring one integration task: finite training, progress, quality within the spread, init match for exact modules.

The judge scores logits the contestant returns against targets it never sent; the contestant never scores
itself.
"""

from __future__ import annotations

import math
import statistics

import torch

from harness.core.compare import compare_exact
from harness.core.contract import ModuleSpec
from harness.core.tolerance import TolerancePolicy
from harness.gates.integration.references import (
    BASE,
    EvalData,
    References,
    Spread,
    Variants,
    measure_spread,
    setup_for,
)
from harness.integration.runs import RunOutput, TaskSetup
from harness.integration.setups import TRAIN_SEED
from harness.integration.slots import OutputNotFromInputs
from harness.integration.train import lm_loss, recall_accuracy
from harness.protocol.messages import Integrate, Trained
from harness.results.records import CaseResult

K_SIGMA = 3.0  # a candidate may differ from the reference by this many seed-to-seed standard deviations
LOSS_FLOOR = 0.02  # nats: smallest validation-loss tolerance, for configurations whose spread is ~0
RECALL_FLOOR = 0.03  # smallest recall-accuracy tolerance
# Logits and gradients at init: 10x the fp32 reference's own error against the fp64 model, plus 64 eps of
# max|oracle| (a different summation order in a slot changes every downstream rounding).
INIT_POLICY = TolerancePolicy(multiplier=10.0, floor_eps=64.0)


def _decreased(losses: list[float]) -> bool:
    """Mean loss over the last tenth of training below the mean over the first tenth."""
    n = max(1, len(losses) // 10)
    return statistics.fmean(losses[-n:]) < statistics.fmean(losses[:n])


def score_task(spec: ModuleSpec, setup: TaskSetup, refs: References, variants: Variants, got: Trained) -> CaseResult:
    """Judge one task: finite losses, training progress, metrics within the spread, init match for exact modules."""
    ev = refs.eval(setup)
    ref = refs.run(setup, variants)
    dense = refs.run(setup, BASE)
    spread = measure_spread(refs, setup, variants)
    failures: list[str] = []
    losses = list(got.losses)
    logits = list(got.eval_logits)
    if len(logits) != len(ev.targets) or any(
        type(t) is not torch.Tensor or t.shape[:-1] != y.shape for t, y in zip(logits, ev.targets, strict=False)
    ):
        return task_case(setup, False, ["evaluation logits missing or of the wrong shape"], {})
    steps = setup.train.steps
    if not all(math.isfinite(x) for x in losses):
        step = next(i for i, x in enumerate(losses) if not math.isfinite(x))
        last = f"; last finite loss {losses[step - 1]:.4f}" if step else ""
        failures.append(
            f"training loss became non-finite at step {step + 1} of {steps}{last} "
            "(the reference trains finitely on the same batches)"
        )
        return task_case(setup, False, failures, {"train_loss_first": losses[0], "nonfinite_step": float(step + 1)})
    if len(losses) != steps:
        return task_case(setup, False, [f"{len(losses)} training losses returned, expected {steps}"], {})
    if not all(bool(torch.isfinite(t).all()) for t in logits):
        return task_case(setup, False, ["non-finite evaluation logits after finite training"], {})
    if not _decreased(losses):
        failures.append(f"training loss did not decrease ({losses[0]:.3f} at the start, {losses[-1]:.3f} at the end)")
    metrics = task_metrics(spec, setup, logits, ref, dense, ev, spread)
    failures += quality_failures(setup.task, metrics, spread)
    if spec.exact:
        failures += _init_failures(ref, got, refs.oracle_init(setup, variants))
    metrics.update(
        {
            "train_loss_first": losses[0],
            "train_loss_last": losses[-1],
            "seconds": got.seconds,
            "ref_seconds": ref.seconds,
        }
    )
    return task_case(setup, not failures, failures, metrics)


def task_metrics(
    spec: ModuleSpec,
    setup: TaskSetup,
    logits: list[torch.Tensor],
    ref: RunOutput,
    dense: RunOutput,
    ev: EvalData,
    spread: Spread,
) -> dict[str, float]:
    """Candidate, reference and dense-attention metrics on the task's evaluation batches, with the tolerances."""
    metrics = quality_metrics(
        spec,
        lm_loss(logits, ev.targets),
        lm_loss(ref.eval_logits, ev.targets),
        recall_accuracy(logits, ev.targets),
        recall_accuracy(ref.eval_logits, ev.targets),
        spread,
    )
    metrics["dense_recall"] = recall_accuracy(dense.eval_logits, ev.targets)
    metrics["dense_val_loss"] = lm_loss(dense.eval_logits, ev.targets)
    metrics["spread_seeds"] = float(spread.seeds)
    return metrics


def quality_metrics(
    spec: ModuleSpec, loss: float, ref_loss: float, recall: float, ref_recall: float, spread: Spread
) -> dict[str, float]:
    """Metrics, their deltas to the reference, and the tolerances: K_SIGMA x the spread (never below the floors),
    widened to a declared bound for approximate modules that declare one."""
    loss_noise = max(K_SIGMA * spread.loss_sd, LOSS_FLOOR)
    recall_noise = max(K_SIGMA * spread.recall_sd, RECALL_FLOOR)
    metrics = {
        "val_loss": loss,
        "ref_val_loss": ref_loss,
        "val_loss_delta": loss - ref_loss,
        "val_loss_noise": loss_noise,
        "val_loss_tolerance": loss_noise,
        "perplexity": math.exp(loss),
        "ref_perplexity": math.exp(ref_loss),
        "recall": recall,
        "ref_recall": ref_recall,
        "recall_delta": recall - ref_recall,
        "recall_noise": recall_noise,
        "recall_tolerance": recall_noise,
    }
    bound = spec.bound if not spec.exact else None
    if bound is not None and bound.max_val_loss_increase is not None:
        metrics["declared_val_loss_increase"] = bound.max_val_loss_increase
        metrics["val_loss_tolerance"] = max(loss_noise, bound.max_val_loss_increase)
    if bound is not None and bound.max_recall_drop is not None:
        metrics["declared_recall_drop"] = bound.max_recall_drop
        metrics["recall_tolerance"] = max(recall_noise, bound.max_recall_drop)
    return metrics


def quality_failures(task: str, m: dict[str, float], spread: Spread) -> list[str]:
    """Worse than the tolerance allows, or better than any faithful implementation of the slot can be.

    Both directions: a module computing what the slot's reference computes matches it within seed-to-seed
    noise. Doing clearly better means computing something else, e.g. a causal attention that lets positions
    see later tokens (lower text loss) or a sliding window that reaches past its window (higher recall).
    """
    if task == "text":
        return _loss_failures(m, f"{K_SIGMA:g} x seed-to-seed sd {spread.loss_sd:.4f}")
    if task == "mqar":
        return _recall_failures(m, f"{K_SIGMA:g} x seed-to-seed sd {spread.recall_sd:.4f}")
    return []


def _loss_failures(m: dict[str, float], noise: str) -> list[str]:
    declared = m["val_loss_tolerance"] > m["val_loss_noise"]
    source = f"declared bound {m['declared_val_loss_increase']:g}" if declared else noise
    if m["val_loss_delta"] > m["val_loss_tolerance"]:
        return [
            f"validation loss {m['val_loss']:.4f} is {m['val_loss_delta']:+.4f} nats from the reference "
            f"({m['ref_val_loss']:.4f}); tolerance {m['val_loss_tolerance']:.4f} ({source})"
        ]
    if m["val_loss_delta"] < -m["val_loss_noise"]:
        return [
            f"validation loss {m['val_loss']:.4f} is {m['val_loss_delta']:+.4f} nats below the reference "
            f"({m['ref_val_loss']:.4f}), beyond {m['val_loss_noise']:.4f} ({noise}): better than any faithful "
            "implementation of this slot; does it read later positions?"
        ]
    return []


def _recall_failures(m: dict[str, float], noise: str) -> list[str]:
    declared = m["recall_tolerance"] > m["recall_noise"]
    source = f"declared bound {m['declared_recall_drop']:g}" if declared else noise
    if m["recall_delta"] < -m["recall_tolerance"]:
        return [
            f"recall accuracy {m['recall']:.3f} is {m['recall_delta']:+.3f} from the reference "
            f"({m['ref_recall']:.3f}); tolerance {m['recall_tolerance']:.3f} ({source})"
        ]
    if m["recall_delta"] > m["recall_noise"]:
        return [
            f"recall accuracy {m['recall']:.3f} is {m['recall_delta']:+.3f} above the reference "
            f"({m['ref_recall']:.3f}), beyond {m['recall_noise']:.3f} ({noise}): better than any faithful "
            "implementation of this slot; does it see keys its mask excludes?"
        ]
    return []


def _init_failures(ref: RunOutput, got: Trained, wide: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> list[str]:
    """Exact modules reproduce the reference model's logits and gradients at init (float64 model as oracle)."""
    oracle_logits, oracle_grads = wide
    failures = []
    pairs: list[tuple[str, torch.Tensor | None, torch.Tensor, torch.Tensor]] = [
        ("init logits", got.init_logits, ref.init_logits, oracle_logits)
    ]
    pairs += [(f"init grad[{n}]", got.init_grads.get(n), ref.init_grads[n], oracle_grads[n]) for n in ref.init_grads]
    for name, cand, reference, oracle in pairs:
        if cand is None or type(cand) is not torch.Tensor or cand.shape != reference.shape:
            failures.append(f"{name}: missing or of the wrong shape")
            continue
        comparison = compare_exact(name, cand, reference, oracle, torch.float32, INIT_POLICY)
        if not comparison.passed:
            failures.append(comparison.message)
    return failures


def case_id(setup: TaskSetup) -> str:
    """The id results.json records for a task's case (and `harness check --case` selects)."""
    return f"integration/{setup.task}"


def task_case(setup: TaskSetup, passed: bool, failures: list[str], metrics: dict[str, float]) -> CaseResult:
    """One task's verdict in the same record shape as a unit-gate case."""
    seconds = float(metrics.get("seconds", 0.0))
    return CaseResult(case_id(setup), "float32", passed, failures, metrics=metrics, seconds=seconds)


def raised_case(setup: TaskSetup, message: str) -> CaseResult:
    """The record of a task during which the module raised, or the harness stopped training because of it."""
    stopped = f"{OutputNotFromInputs.__name__}: "
    if message.startswith(stopped):
        # The slot's check (integration/slots.py), not the module, raised: its message says why; where in the
        # harness it raised says nothing about the module.
        text = message[len(stopped) :].rpartition(" (at ")[0] or message[len(stopped) :]
        return task_case(setup, False, [f"training stopped: {text}"], {})
    return task_case(setup, False, [f"module raised: {message}"], {})


def request(spec: ModuleSpec, setup: TaskSetup, refs: References, variants: Variants) -> Integrate:
    """The contestant message for one task: the setup, the seed, and the evaluation inputs without targets."""
    ev = refs.eval(setup)
    return Integrate(
        kind=spec.kind,
        variants=variants,
        setup=setup_for(setup, variants).as_dict(),
        seed=TRAIN_SEED,
        init_inputs=ev.init_batch[0],
        init_targets=ev.init_batch[1],
        eval_inputs=ev.inputs,
    )
