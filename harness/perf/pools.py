"""Input pools for timing: secret-seeded, separate per side, with one element salted before every call.

Candidate and baseline each get their own pool of input sets, so nothing the baseline computed can serve as
the candidate's answer. Calls cycle through the pool; before each call one element of the salted tensor (at a
position fixed per pool entry, drawn by the judge) is overwritten with a fresh value, so no two calls see the
same input and a module that memoizes results by tensor identity or a cheap fingerprint returns a stale,
wrong answer, which the judge's output checks catch. The judge rebuilds any call's exact input from the pool,
the entry's position and that call's value (`salted_entry`).
"""

from __future__ import annotations

import torch

from harness.core.seeding import generator
from harness.kinds.base import CallArgs
from harness.protocol.messages import Salt


def salt_for(pool: list[CallArgs], name: str, seed: int) -> Salt:
    """A random position per entry of `pool` in tensor argument `name`."""
    gen = generator(seed)
    numel = pool[0][name].numel()
    return Salt(name, tuple(int(torch.randint(0, numel, (1,), generator=gen)) for _ in pool))


def salt_values(seed: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    """`count` fresh values, one per call, standard normal rounded to the salted tensor's dtype."""
    return torch.randn(count, generator=generator(seed), dtype=torch.float64).to(dtype)


def apply_salt(entry: CallArgs, salt: Salt, index: int, value: torch.Tensor) -> None:
    """Write `value` into pool entry `index` at its salted position (in place, outside any timed region)."""
    tensor: torch.Tensor = entry[salt.name]
    tensor.view(-1)[salt.positions[index]] = value


def salted_entry(entry: CallArgs, salt: Salt, index: int, value: torch.Tensor) -> CallArgs:
    """A copy of pool entry `index` exactly as one call saw it (judge side)."""
    copy = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
    apply_salt(copy, salt, index, value)
    return copy
