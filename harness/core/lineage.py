"""Which of a call's inputs a returned tensor was computed from, read from its autograd graph.

A module that replays an output it cached (keyed by address, object id or shape), or returns a tensor it found
elsewhere in the process, hands back a tensor whose graph leads to another call's inputs, or no graph at all.
Both sides use this: the unit gate's contestant (harness/worker/execute.py) and the integration model's slots
(harness/integration/slots.py). Only the graph's structure is read; nothing is computed or freed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import torch

# What an output whose graph misses an input it was given is, in every message that reports one.
NOT_COMPUTED = "a cached or replayed output, or a tensor found elsewhere, not one computed from this call's inputs"


def _is_input(node: Any, nr: int, tensor: torch.Tensor) -> bool:
    """Whether the graph edge (node, nr) is where `tensor` enters: its grad_fn output, or its leaf accumulator."""
    if tensor.grad_fn is not None:
        return node is tensor.grad_fn and nr == tensor.output_nr
    return getattr(node, "variable", None) is tensor


def unreached(out: torch.Tensor, inputs: Mapping[str, Any]) -> list[str]:
    """Names of the tensors in `inputs` that require grad and that `out`'s autograd graph never reaches.

    Empty when nothing requires grad (no graph to read, e.g. under torch.no_grad). An output with no graph while
    some input requires grad reaches none of them. The search stops as soon as every input is found, so for an
    honest output it reads only the module's own few nodes.
    """
    wanted = {n: t for n, t in inputs.items() if isinstance(t, torch.Tensor) and t.requires_grad}
    if not wanted:
        return []
    if out.grad_fn is None:
        # A leaf: reached only when it is one of the inputs themselves (aliasing is reported elsewhere).
        return sorted(n for n, t in wanted.items() if t is not out)
    pending = dict(wanted)
    queue: deque[tuple[Any, int]] = deque([(out.grad_fn, out.output_nr)])
    expanded: list[Any] = []  # visited nodes, kept alive so that their ids stay unique during the search
    seen: set[int] = set()
    while queue and pending:
        node, nr = queue.popleft()
        for name in [n for n, t in pending.items() if _is_input(node, nr, t)]:
            del pending[name]
        if id(node) in seen:
            continue
        seen.add(id(node))
        expanded.append(node)
        queue.extend((fn, i) for fn, i in node.next_functions if fn is not None)
    return sorted(pending)
