"""Contestant side of one Call: run the module's method, backward, and report what happened."""

from __future__ import annotations

from typing import Any

import torch

from harness.core.lineage import unreached
from harness.protocol.messages import Call, CallReply


def _private(value: Any, device: str = "cpu") -> Any:
    """A copy of an argument on `device` (recursing into dicts, e.g. a packed quantized weight)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device, copy=True)
    if isinstance(value, dict):
        return {k: _private(v, device) for k, v in value.items()}
    return value


def _storages(value: Any) -> list[tuple[int, int]]:
    """(start, end) byte ranges of the storages behind a tensor or a dict/list of tensors."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        return [(storage.data_ptr(), storage.data_ptr() + storage.nbytes())] if storage.nbytes() else []
    if isinstance(value, dict):
        return [r for v in value.values() for r in _storages(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _storages(v)]
    return []


def _detached(value: Any) -> Any:
    """A private copy of the output for sending: plain tensors, plain dicts and lists, nothing else."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True) if type(value) is torch.Tensor else _typename(value)
    if isinstance(value, dict):
        return {str(k): _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_detached(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return _typename(value)


def _typename(value: Any) -> str:
    what = "torch.Tensor subclass " if isinstance(value, torch.Tensor) else ""
    return f"<unsendable {what}{type(value).__module__}.{type(value).__qualname__}>"


def _with_mutations(exc: Exception, originals: dict[str, torch.Tensor], args: dict[str, Any]) -> Exception:
    """The module's exception, with a note naming any input it had modified in place before failing."""
    for name, sent in originals.items():
        value = args.get(name)
        if isinstance(value, torch.Tensor) and not torch.equal(value.detach().to("cpu"), sent.to("cpu")):
            exc.add_note(f"input {name!r} was modified in place by the call")
    return exc


def execute(instance: object, call: Call, device: str = "cpu") -> CallReply:
    """Run one Call on `instance` and build the reply."""
    method = getattr(instance, call.method)
    grad_inputs = list(call.grad_inputs)
    originals = {name: v for name, v in call.args.items() if isinstance(v, torch.Tensor)}
    # Gradients are read from leaves; the module gets a non-leaf copy so that an in-place write to an
    # input is recorded (and reported as a mutation) instead of raising inside autograd.
    leaves = {name: _private(originals[name], device).requires_grad_(True) for name in grad_inputs}
    with torch.enable_grad():
        args = {
            name: leaves[name].clone() if name in leaves else _private(value, device)
            for name, value in call.args.items()
        }
        try:
            out = method(**args)
        except Exception as exc:
            raise _with_mutations(exc, originals, args) from None
        grads: dict[str, Any] = {}
        grad_out = call.grad_out
        # An output not computed from these inputs (a replayed or found tensor) is reported, and not backpropagated:
        # its graph, if any, belongs to another call and may already be freed.
        missing = unreached(out, {n: args[n] for n in grad_inputs}) if type(out) is torch.Tensor else []
        if grad_out is not None and grad_inputs and not missing:
            if isinstance(out, torch.Tensor) and out.requires_grad and out.shape == grad_out.shape:
                try:
                    out.backward(grad_out.to(device=out.device, dtype=out.dtype))  # type: ignore[no-untyped-call]
                except Exception as exc:
                    raise _with_mutations(exc, originals, args) from None
            grads = {name: None if leaf.grad is None else _detached(leaf.grad) for name, leaf in leaves.items()}
    inputs_ranges = {name: _storages(args[name]) for name in originals}
    out_ranges = _storages(out)
    aliased = [
        name
        for name, ranges in inputs_ranges.items()
        if any(a0 < b1 and b0 < a1 for a0, a1 in ranges for b0, b1 in out_ranges)
    ]
    inputs_after = {name: _detached(args[name]) for name in originals}
    repeat = None
    if call.repeat:
        again = {name: _private(value, device) for name, value in call.args.items()}
        with torch.no_grad():
            repeat = _detached(method(**again))
    return CallReply(
        out=_detached(out),
        out_repeat=repeat,
        grads=grads,
        inputs_after=inputs_after,
        aliased=aliased,
        unreached=missing,
    )
