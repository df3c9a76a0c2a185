"""Two offline, deterministic tasks: byte-level LM on standard-library source, and multi-query recall (MQAR)."""

from __future__ import annotations

import functools
import hashlib
import math
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import torch

IGNORE_INDEX = -100  # targets with this value take no part in the loss (torch.nn.functional.cross_entropy's default)
SPLITS = ("train", "validation")
Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), both int64 (batch, seq_len)

# Standard-library modules present (and plain Python source) in CPython 3.11 through 3.14, sorted. Their
# content changes between Python releases, so TextCorpus.sha256 is recorded with every result.
STDLIB_FILES = (
    "argparse.py",
    "calendar.py",
    "dataclasses.py",
    "fractions.py",
    "functools.py",
    "heapq.py",
    "os.py",
    "random.py",
    "shutil.py",
    "textwrap.py",
)
TEXT_MAX_BYTES = 400_000  # corpus cap: ~400 KB keeps loading and hashing well under a second
TEXT_VALIDATION_FRACTION = 0.1  # the last 10% of the corpus is the validation split


class Task(Protocol):
    """A next-token task: sequences of token ids and targets, IGNORE_INDEX where nothing is scored."""

    @property
    def name(self) -> str: ...  # stable identifier; seeds the task's batch streams

    @property
    def vocab_size(self) -> int: ...  # token ids lie in [0, vocab_size)

    def sample(self, split: str, count: int, seq_len: int, gen: torch.Generator) -> Batch: ...


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@dataclass(frozen=True, eq=False)
class TextCorpus:
    """Byte-level language modelling (vocab 256) on a fixed list of standard-library source files."""

    files: tuple[str, ...]  # file names under the stdlib directory, in concatenation order
    sha256: str  # hex digest of the concatenated, capped bytes: a changed corpus shows up here
    train: torch.Tensor = field(repr=False)  # uint8 bytes of the first 90%
    validation: torch.Tensor = field(repr=False)  # uint8 bytes of the last 10%
    name: ClassVar[str] = "text"
    vocab_size: ClassVar[int] = 256

    def sample(self, split: str, count: int, seq_len: int, gen: torch.Generator) -> Batch:
        """`count` windows of seq_len + 1 bytes at random offsets; targets are the inputs shifted by one."""
        _check_split(split)
        data = self.train if split == "train" else self.validation
        if data.numel() < seq_len + 2:
            raise ValueError(f"the {split} split has {data.numel()} bytes, too few for seq_len={seq_len}")
        starts = torch.randint(0, data.numel() - seq_len, (count,), generator=gen)  # window end <= numel
        windows = data[starts.unsqueeze(1) + torch.arange(seq_len + 1)].long()
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def unigram_entropy(self) -> float:
        """Entropy (nats) of the training bytes' frequencies: the loss of a model that ignores context."""
        counts = torch.bincount(self.train.long(), minlength=self.vocab_size).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())


@functools.cache
def load_text_corpus(files: tuple[str, ...] = STDLIB_FILES, max_bytes: int = TEXT_MAX_BYTES) -> TextCorpus:
    """Read `files` from this interpreter's stdlib, join them with newlines, cap at max_bytes and split."""
    root = Path(sysconfig.get_paths()["stdlib"])
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"standard-library files {missing} not found under {root}; the text task needs them")
    raw = b"".join((root / name).read_bytes() + b"\n" for name in files)[:max_bytes]
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    cut = len(raw) - math.ceil(len(raw) * TEXT_VALIDATION_FRACTION)
    return TextCorpus(
        files=files, sha256=hashlib.sha256(raw).hexdigest(), train=data[:cut].clone(), validation=data[cut:].clone()
    )


@dataclass(frozen=True)
class MQAR:
    """Multi-query associative recall (Zoology, Arora et al. 2023, https://arxiv.org/abs/2312.04927).

    A sequence states n_pairs key-value pairs (distinct keys), then filler tokens, then n_queries of those
    keys again, each followed by its value. The target at a queried key is its value; nothing else is scored.
    The filler gap puts every query at least `min_distance` tokens after the key it asks for (and min_distance - 1
    after the value). L layers of a sliding window w carry information at most L * (w - 1) tokens back, so they
    cannot recall when L * (w - 1) < min_distance - 1: the default 33 defeats windows up to 16 in 2 layers.
    Token ids: [0, n_filler) filler, then n_keys keys, then n_values values.
    """

    n_pairs: int = 8  # key-value pairs stated at the start of each sequence
    n_queries: int = 8  # keys asked again at the end (distinct, a random subset of the pairs), <= n_pairs
    # Key vocabulary, >= n_pairs. With n_keys = n_pairs every key occurs in every sequence, in a random order.
    # Measured with the default model and TrainConfig: the recall circuit appears within ~200 steps; with 16 keys
    # it had not appeared after 600 steps, nor after 2000 in a gap-free variant.
    n_keys: int = 8
    n_values: int = 16  # value vocabulary; values are drawn with replacement
    n_filler: int = 8  # filler vocabulary of the gap between pairs and queries
    min_distance: int = 33  # smallest (query position - position of its key) any sequence may have
    name: ClassVar[str] = "mqar"

    def __post_init__(self) -> None:
        if not 1 <= self.n_queries <= self.n_pairs <= self.n_keys or min(self.n_values, self.n_filler) < 1:
            raise ValueError(f"MQAR needs 1 <= n_queries <= n_pairs <= n_keys and n_values, n_filler >= 1: {self}")

    @property
    def vocab_size(self) -> int:
        return self.n_filler + self.n_keys + self.n_values

    def gap(self, seq_len: int) -> int:
        """Filler tokens between pairs and queries; the sequence has seq_len + 1 tokens (inputs + last target)."""
        gap = seq_len + 1 - 2 * self.n_pairs - 2 * self.n_queries
        # the closest query: the last stated pair (key at 2 * n_pairs - 2) asked first (at 2 * n_pairs + gap)
        if gap + 2 < self.min_distance:
            shortest = 2 * (self.n_pairs + self.n_queries) + self.min_distance - 3
            raise ValueError(f"MQAR {self} needs seq_len >= {shortest} to keep min_distance, got {seq_len}")
        return gap

    def query_positions(self, seq_len: int) -> torch.Tensor:
        """Input positions of the queried keys, where targets hold values: (n_queries,) int64."""
        return 2 * self.n_pairs + self.gap(seq_len) + 2 * torch.arange(self.n_queries)

    def sample(self, split: str, count: int, seq_len: int, gen: torch.Generator) -> Batch:
        """`count` sequences; both splits share the distribution and differ only in the generator's stream."""
        _check_split(split)
        gap, n, q = self.gap(seq_len), self.n_pairs, self.n_queries
        keys = torch.rand((count, self.n_keys), generator=gen).argsort(dim=1)[:, :n] + self.n_filler
        values = torch.randint(0, self.n_values, (count, n), generator=gen) + self.n_filler + self.n_keys
        asked = torch.rand((count, n), generator=gen).argsort(dim=1)[:, :q]
        filler = torch.randint(0, self.n_filler, (count, gap), generator=gen)
        pairs = torch.stack((keys, values), dim=2).reshape(count, 2 * n)
        queries = torch.stack((keys.gather(1, asked), values.gather(1, asked)), dim=2).reshape(count, 2 * q)
        tokens = torch.cat((pairs, filler, queries), dim=1)  # (count, seq_len + 1)
        inputs, targets = tokens[:, :-1].contiguous(), torch.full((count, seq_len), IGNORE_INDEX, dtype=torch.long)
        at = self.query_positions(seq_len)
        targets[:, at] = tokens[:, at + 1]
        return inputs, targets


def _stream_seed(task: Task, split: str, seed: int) -> int:
    """A seed per (task, split, seed), so train and validation never share a random stream."""
    digest = hashlib.sha256(f"{task.name}|{split}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def batches(task: Task, split: str, n_batches: int, batch_size: int, seq_len: int, seed: int) -> list[Batch]:
    """`n_batches` (inputs, targets) pairs of shape (batch_size, seq_len), the same for the same arguments."""
    gen = torch.Generator(device="cpu").manual_seed(_stream_seed(task, split, seed))
    return [task.sample(split, batch_size, seq_len, gen) for _ in range(n_batches)]
