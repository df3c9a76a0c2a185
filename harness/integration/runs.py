"""One training run of the integration model on one task, as both sides of the integration gate perform it.

The judge runs the reference configuration itself (no candidate code in its process); the contestant runs
the same function with the candidate in one slot. Both return raw logits: scores are computed by the judge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from harness.integration.model import ModelConfig, Transformer
from harness.integration.slots import Slots
from harness.integration.tasks import IGNORE_INDEX, MQAR, Task, load_text_corpus
from harness.integration.train import TrainConfig, logits_for, one_thread, train
from harness.perf.timer import seconds


@dataclass(frozen=True)
class TaskSetup:
    """A task with the model and training configuration the integration gate uses for it."""

    task: str  # "text" or "mqar"
    model: ModelConfig
    train: TrainConfig

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "model": asdict(self.model), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSetup:
        return cls(str(data["task"]), ModelConfig(**data["model"]), TrainConfig(**data["train"]))


def make_task(name: str) -> Task:
    if name == "text":
        return load_text_corpus()
    if name == "mqar":
        return MQAR()
    raise ValueError(f"unknown integration task {name!r}; expected 'text' or 'mqar'")


@dataclass
class RunOutput:
    """What one run hands back: raw logits and the training log, no scores."""

    init_logits: torch.Tensor  # logits of the untrained model on the init batch
    init_grads: dict[str, torch.Tensor]  # gradient of every parameter at init, for the init batch's loss
    losses: list[float]  # training loss per step
    eval_logits: list[torch.Tensor]  # logits for each evaluation batch, after training
    state: dict[str, torch.Tensor]  # trained weights (the reference's feed the quantization step)
    seconds: float


def init_pass(
    model: Transformer, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and parameter gradients of the untrained model on one batch."""
    with one_thread(), torch.enable_grad():
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        grads = torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=True)
    named = {
        name: (g if g is not None else torch.zeros_like(p)).detach().clone()
        for (name, p), g in zip(model.named_parameters(), grads, strict=True)
    }
    return logits.detach(), named


@dataclass
class Trained:
    """What training produced: the weights and the loss per step. Training depends on the set-up, the slots and
    the seed only (never on a run's secret evaluation batches), so the judge may train a reference once per
    machine and reuse it."""

    state: dict[str, torch.Tensor]
    losses: list[float]


def train_reference(setup: TaskSetup, slots: Slots, seed: int) -> Trained:
    """Build the model from `seed` and train it on the task."""
    model = Transformer(setup.model, slots, seed)
    log = train(model, make_task(setup.task), setup.train)
    return Trained({k: v.detach().clone() for k, v in model.state_dict().items()}, list(log.losses))


def run_setup(
    setup: TaskSetup,
    slots: Slots,
    seed: int,
    init_batch: tuple[torch.Tensor, torch.Tensor],
    eval_inputs: list[torch.Tensor],
    trained: Trained | None = None,
) -> RunOutput:
    """Build the model from `seed`, take the init pass, train on the task (or take `trained`, the same training
    done earlier), and return logits for `eval_inputs`."""

    start = seconds()
    model = Transformer(setup.model, slots, seed)
    init_logits, init_grads = init_pass(model, *init_batch)
    if trained is None:
        losses = list(train(model, make_task(setup.task), setup.train).losses)
    else:
        model.load_state_dict(trained.state)
        losses = list(trained.losses)
    logits = logits_for(model, [(x, x) for x in eval_inputs])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return RunOutput(init_logits, init_grads, losses, logits, state, seconds() - start)
