"""Facts that show the candidate did not slow or alter the baseline inside the contestant process.

Interleaving candidate and baseline in one process is what makes the ratio precise, and what gives the
candidate a chance to cheat: patch a torch function the baseline calls, re-register a kernel under it,
install a torch function or dispatch mode, a trace or profile hook, an interval timer, or a busy thread.
These are checked as facts, not statistics:

- `Snapshot`: the identity of every public callable in the torch namespaces the references use, in the clocks and
  the collector the timer reads and pauses (`time`, `gc`), of every attribute of the harness modules the timing
  loop runs, of the baseline's code objects, and the dispatch table of every operator the baseline reached
  (recorded by running it once before the candidate is imported). Taken before the candidate is imported and
  compared after import and after timing.
- `active_hooks`: modes, trace/profile hooks, interval timers and thread settings, checked around every
  timed block.
Threads and child processes are checked by the judge from /proc, where the candidate cannot forge them.
"""

from __future__ import annotations

import gc
import math
import operator
import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

NAMESPACES: dict[str, Any] = {
    "torch": torch,
    "torch.nn.functional": F,
    "torch.Tensor": torch.Tensor,
    "torch.linalg": torch.linalg,
    "torch.special": torch.special,
    "torch._C._VariableFunctions": torch._C._VariableFunctions,
    "torch._C._nn": torch._C._nn,
    "torch.autograd": torch.autograd,
    "math": math,
    "operator": operator,
    "time": time,  # the timer's clock (time.perf_counter_ns) and every other clock a timer could read
    "gc": gc,  # the collector the timing loop pauses
}
# The harness modules whose functions and methods the timing loop runs in the contestant.
HARNESS_PREFIXES = ("harness.core", "harness.kinds", "harness.perf", "harness.worker", "harness.protocol")


class _OpRecorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Records the aten operators a call reaches."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops: set[str] = set()

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # By default torch wraps a mode's __torch_dispatch__ in dynamo's disable(), which imports torch._dynamo
        # on first use: 1.4 s in every timing contestant. Nothing here is ever compiled, so no wrapper is needed.
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.add(str(func._schema.name) + ("." + func._overloadname if func._overloadname != "default" else ""))
        return func(*args, **(kwargs or {}))


def ops_reached(call: Callable[[], object]) -> set[str]:
    """Operator names ("aten::mul.Tensor") reached by `call`, forward and backward."""
    recorder = _OpRecorder()
    with recorder:
        call()
    return recorder.ops


def _identities(namespace: Any, prefix: str) -> dict[str, int]:
    out = {}
    for name in dir(namespace):
        if name.startswith("__"):
            continue
        try:
            value = getattr(namespace, name)
        except Exception:  # lazily imported or deprecated attributes may raise
            continue
        if callable(value) or isinstance(value, types.ModuleType):
            out[f"{prefix}.{name}"] = id(value)
    return out


@dataclass(frozen=True)
class Snapshot:
    """Identities and dispatch tables the baseline depends on."""

    identities: dict[str, int]
    dispatch: dict[str, str]

    @classmethod
    def take(cls, ops: set[str], code: list[types.CodeType]) -> Snapshot:
        identities: dict[str, int] = {}
        for prefix, namespace in NAMESPACES.items():
            identities.update(_identities(namespace, prefix))
        for name, module in list(sys.modules.items()):
            if name.startswith(HARNESS_PREFIXES) and module is not None:
                for k, v in list(vars(module).items()):
                    if k.startswith("__") or not (callable(v) or isinstance(v, types.ModuleType)):
                        continue
                    identities[f"{name}.{k}"] = id(v)
                    if isinstance(v, type) and v.__module__ == name:  # methods of the harness's own classes
                        identities.update({f"{name}.{k}.{a}": id(f) for a, f in vars(v).items() if callable(f)})
        for i, c in enumerate(code):
            identities[f"baseline code {i} ({c.co_qualname})"] = id(c)
        dispatch = {op: torch._C._dispatch_dump_table(op) for op in sorted(ops)}
        return cls(identities, dispatch)

    def changes(self, later: Snapshot) -> list[str]:
        """What differs in `later`: replaced or removed objects, re-registered kernels."""
        changed = [name for name, ident in self.identities.items() if later.identities.get(name) != ident]
        changed += [f"dispatch table of {op}" for op, table in self.dispatch.items() if later.dispatch.get(op) != table]
        return changed


def active_hooks(threads: int) -> list[str]:
    """Everything active now that could run code during a timed call or change its speed; empty when clean."""
    found = []
    if torch._C._len_torch_function_stack():
        found.append("a torch function mode is active")
    if torch._C._len_torch_dispatch_stack():
        found.append("a torch dispatch mode is active")
    for hook, label in (
        (sys.gettrace(), "a Python trace hook (sys.settrace) is set"),
        (sys.getprofile(), "a Python profile hook (sys.setprofile) is set"),
        (threading.gettrace(), "a trace hook for new threads (threading.settrace) is set"),
        (threading.getprofile(), "a profile hook for new threads (threading.setprofile) is set"),
    ):
        if hook is not None:
            found.append(label)
    for which, label in (
        (signal.ITIMER_REAL, "real"),
        (signal.ITIMER_VIRTUAL, "virtual"),
        (signal.ITIMER_PROF, "profiling"),
    ):
        if signal.getitimer(which) != (0.0, 0.0):
            found.append(f"a {label} interval timer is armed")
    if torch.get_num_threads() != threads:
        found.append(f"torch uses {torch.get_num_threads()} threads, expected {threads}")
    if gc.callbacks:
        found.append(f"{len(gc.callbacks)} garbage-collector callbacks (gc.callbacks) are installed")
    return found


def code_objects(fn: Callable[..., object]) -> list[types.CodeType]:
    """The code objects of a function or of a bound method's function."""
    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    return [code] if isinstance(code, types.CodeType) else []
