"""Deterministic training and evaluation of the integration model, and judge-side scores from logits alone."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.integration.tasks import IGNORE_INDEX, Batch, Task, batches
from harness.perf.timer import seconds


@dataclass(frozen=True)
class TrainConfig:
    """One training run: AdamW, warmup, constant lr, then a linear decay, on batches fixed by `seed`.

    The defaults serve both tasks (one torch thread, ~20-25 ms a step on the 2-core build machine): MQAR's
    recall circuit appears abruptly at a constant lr of 2e-3, by step 200 in each of 8 seeds tried and in every
    norm/activation/gqa variant tried (a cosine decay from step 0, or lr 3e-3, delayed it past 300 steps in
    some seeds); the decay at the end settles the text loss.
    """

    steps: int = 250  # optimizer steps, one fresh batch each
    batch_size: int = 16  # sequences per batch
    seq_len: int = 64  # tokens per sequence; MQAR's default layout fills exactly 64 (see MQAR.gap)
    lr: float = 2e-3  # peak AdamW learning rate, held from the end of warmup to the start of the decay
    warmup: int = 20  # steps of linear warmup from lr / warmup
    decay: int = 50  # last steps, over which lr falls linearly to lr * min_lr_ratio
    min_lr_ratio: float = 0.1  # lr at the last step, relative to `lr`
    weight_decay: float = 0.01  # AdamW decoupled decay, on matrices and embeddings only (not norm weights)
    grad_clip: float = 1.0  # max global gradient L2 norm; <= 0 disables clipping
    seed: int = 0  # seeds the training batches; validation batches use their own stream of the same seed
    eval_batches: int = 8  # validation batches (of batch_size sequences) for the metrics

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.seq_len, self.eval_batches) < 1 or min(self.warmup, self.decay) < 0:
            raise ValueError(
                f"TrainConfig needs steps, batch_size, seq_len, eval_batches >= 1 and warmup, decay >= 0: {self}"
            )
        if not (self.lr > 0 and 0 <= self.min_lr_ratio <= 1 and self.weight_decay >= 0):
            raise ValueError(f"TrainConfig needs lr > 0, 0 <= min_lr_ratio <= 1, weight_decay >= 0: {self}")

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based `step`."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        decay_start = self.steps - self.decay
        if step < decay_start:
            return self.lr
        progress = (step - decay_start + 1) / self.decay  # in (0, 1]: the last step reaches lr * min_lr_ratio
        return self.lr * (1.0 - (1.0 - self.min_lr_ratio) * progress)


@dataclass(frozen=True)
class TrainLog:
    """What a training run leaves behind besides the trained weights."""

    losses: tuple[float, ...]  # training loss of every step, before that step's update
    seconds: float  # wall clock of the whole run (batch generation included), monotonic clock


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on a single intra-op thread (bit-reproducible CPU reductions), restoring the count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # foreach=False: the per-parameter loop, whose arithmetic does not depend on how tensors are grouped
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), foreach=False)


def train(model: nn.Module, task: Task, cfg: TrainConfig) -> TrainLog:
    """Train `model` in place on `cfg.steps` batches of `task` drawn from `cfg.seed`; same seed, same losses."""
    start = seconds()
    with one_thread():
        data = batches(task, "train", cfg.steps, cfg.batch_size, cfg.seq_len, cfg.seed)
        optimizer = _optimizer(model, cfg)
        model.train()
        losses = []
        for step, (inputs, targets) in enumerate(data):
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(step)
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=False)
            optimizer.step()
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                break  # nothing after a non-finite loss is worth the time; the log shows where it happened
    return TrainLog(losses=tuple(losses), seconds=seconds() - start)


def validation_batches(task: Task, cfg: TrainConfig) -> list[Batch]:
    """The `cfg.eval_batches` validation batches of `task` for `cfg.seed`."""
    return batches(task, "validation", cfg.eval_batches, cfg.batch_size, cfg.seq_len, cfg.seed)


def logits_for(model: nn.Module, data: Sequence[Batch]) -> list[torch.Tensor]:
    """Logits (batch, seq_len, vocab) for each batch's inputs, in eval mode without autograd."""
    was_training = model.training
    model.eval()
    try:
        with one_thread(), torch.no_grad():
            return [model(inputs) for inputs, _ in data]
    finally:
        model.train(was_training)


def _pairs(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Scored positions only: (N, vocab) float64 logits and (N,) targets, over all batches."""
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} logits tensors for {len(targets)} targets tensors")
    flat_logits, flat_targets = [], []
    for lg, tg in zip(logits, targets, strict=True):
        if lg.shape[:-1] != tg.shape:
            raise ValueError(f"logits {tuple(lg.shape)} do not match targets {tuple(tg.shape)} (expected (..., vocab))")
        keep = tg != IGNORE_INDEX
        flat_logits.append(lg[keep].double())
        flat_targets.append(tg[keep])
    out_logits, out_targets = torch.cat(flat_logits), torch.cat(flat_targets)
    if out_targets.numel() == 0:
        raise ValueError("no scored positions: every target is IGNORE_INDEX")
    return out_logits, out_targets


def lm_loss(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> float:
    """Mean cross-entropy (nats, float64) over every non-ignored position of every batch."""
    lg, tg = _pairs(logits, targets)
    return float(F.cross_entropy(lg, tg))


def perplexity(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> float:
    """exp of `lm_loss`."""
    return math.exp(lm_loss(logits, targets))


def recall_accuracy(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> float:
    """Fraction of non-ignored positions whose arg-max token is the target (MQAR: the recalled value)."""
    lg, tg = _pairs(logits, targets)
    return float((lg.argmax(dim=-1) == tg).double().mean())
