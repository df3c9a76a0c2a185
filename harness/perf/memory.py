"""Peak tensor memory of one call on CPU, the counterpart of CUDA's max_memory_allocated.

Resident-set size cannot measure one call here: the pinned allocator keeps freed memory (by design, see
judge/sandbox.py), so a repeated call reuses pages and its peak shows as zero. Instead every tensor storage
created during the call is counted while alive, through a dispatch mode; the peak of the live total is the
call's working memory beyond its inputs. Memory allocated outside torch (numpy, C extensions) is not seen.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _StorageTracker(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Live bytes of storages created under the mode, and their peak."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.live = 0
        self.peak = 0
        self._refs: dict[int, int] = {}  # storage data_ptr -> tensors alive that use it
        self._sizes: dict[int, int] = {}

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no dynamo wrapper, so no torch._dynamo import (1.4 s) in the contestant: see integrity.py

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        ptr, size = storage.data_ptr(), storage.nbytes()
        if ptr == 0 or size == 0:
            return
        if ptr not in self._refs:
            self._refs[ptr], self._sizes[ptr] = 0, size
            self.live += size
            self.peak = max(self.peak, self.live)
        self._refs[ptr] += 1
        weakref.finalize(tensor, self._release, ptr)

    def _release(self, ptr: int) -> None:
        self._refs[ptr] -= 1
        if self._refs[ptr] == 0:
            self.live -= self._sizes.pop(ptr)
            del self._refs[ptr]


def peak_bytes(call: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes allocated by `call` beyond what existed before it (CUDA: the allocator's own peak)."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    tracker = _StorageTracker()
    with tracker:
        call()
    return tracker.peak
