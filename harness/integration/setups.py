"""The integration gate's fixed configuration: one model and training recipe per task, seeds, window."""

from __future__ import annotations

from harness.integration.model import ModelConfig
from harness.integration.runs import TaskSetup
from harness.integration.tasks import MQAR
from harness.integration.train import TrainConfig

TRAIN_SEED = 0  # weights and batch order of the reference and of every candidate
SPREAD_SEEDS = (0, 1, 2)  # reference retrained with these seeds to measure the seed-to-seed spread
# Window of the sliding_window configuration: narrower than MQAR's recall distance (MQAR.min_distance),
# so a windowed model cannot see the key a query asks for.
SLIDING_WINDOW = 8

DEFAULT_SETUPS: tuple[TaskSetup, ...] = (
    TaskSetup("text", ModelConfig(vocab_size=256), TrainConfig()),
    TaskSetup("mqar", ModelConfig(vocab_size=MQAR().vocab_size), TrainConfig()),
)
