"""Contestant process entry point: `python -m harness.worker --in-fd R --out-fd W --memory-mb M`.

Started by the judge (harness.judge.sandbox) in a fresh interpreter, its own session and a scrubbed
environment. It imports the untrusted module, runs the calls the judge sends, and answers on a private
pipe; the module's own prints go to a log the judge reads only for error messages.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import traceback
from typing import Any, BinaryIO

MEMORY_ERRORS = ("not enough memory", "can't allocate memory", "cannot allocate memory", "out of memory")


def _die_with_judge() -> None:
    """Ask the kernel to SIGKILL this process when the judge that spawned it dies (Linux PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the judge died before the request took effect
        os._exit(1)


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space so a runaway allocation fails fast inside the child."""
    cap = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in MEMORY_ERRORS)


def _failure(exc: BaseException) -> dict[str, Any]:
    lines = traceback.format_exception(exc)
    notes = "".join(f" [{note}]" for note in getattr(exc, "__notes__", []))
    return {
        "status": "oom" if _is_oom(exc) else "raised",
        "message": f"{type(exc).__name__}: {str(exc)[:2000]}{notes}",
        "traceback": "".join(lines[-6:])[-4000:],
    }


class Worker:
    """Holds the loaded module and answers the judge's requests one at a time."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.instance: object | None = None  # the module the calls go to: the last one loaded
        self.instances: dict[str, object] = {}  # every module loaded, by name (a mixed-precision plan uses several)
        self.bench: Any = None  # the performance gate's PerfBench, created by perf_baseline

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "load":
            return self._load(message)
        if op == "call":
            if self.instance is None:
                return {"status": "raised", "message": "no module loaded"}
            from harness.worker.execute import execute

            return execute(self.instance, message, device=self.device)
        if op in ("integrate", "quantize_model"):
            if self.instance is None:
                return {"status": "raised", "message": "no module loaded"}
            return self._integrate(message) if op == "integrate" else self._quantize_model(message)
        if isinstance(op, str) and op.startswith("perf_"):
            return self._perf(op, message)
        return {"status": "raised", "message": f"unknown op {op!r}"}

    def _perf(self, op: str, message: dict[str, Any]) -> dict[str, Any]:
        from harness.worker.perf import PerfBench

        if op == "perf_baseline":
            if self.instance is not None:
                return {"status": "raised", "message": "the baseline must be prepared before any module is loaded"}
            self.bench = PerfBench(self.device)
            return self.bench.prepare_baseline(message, self._load_isolated)  # type: ignore[no-any-return]
        if self.bench is None:
            return {"status": "raised", "message": "perf_baseline first"}
        if op == "perf_case":
            return self.bench.setup_case(message, self.instance)  # type: ignore[no-any-return]
        bench = self.bench
        handlers = {
            "perf_integrity": lambda: bench.integrity(), "perf_warmup": lambda: bench.warmup(message),
            "perf_block": lambda: bench.block(message), "perf_outputs": lambda: bench.outputs(message),
            "perf_memory": lambda: bench.memory(), "perf_fresh": lambda: bench.fresh(message),
        }
        if op not in handlers:
            return {"status": "raised", "message": f"unknown op {op!r}"}
        return handlers[op]()  # type: ignore[no-any-return]

    def _load_isolated(self, src: dict[str, Any]) -> object:
        """A module (the base branch's version of the candidate) loaded into its own registry, instantiated."""
        from harness.registry import Registry, load

        _, cls = load(_source(src), Registry())
        return cls()

    def _integrate(self, message: dict[str, Any]) -> dict[str, Any]:
        """Train the integration model with the loaded module in its slot; return raw logits, never scores."""
        from harness.integration.runs import TaskSetup, run_setup
        from harness.integration.slots import slots_from_modules

        attention, norm, activation = message["variants"]
        slots = slots_from_modules(
            **{message["kind"]: self.instance},
            attention_variant=attention, norm_variant=norm, activation_variant=activation,
        )
        setup = TaskSetup.from_dict(message["setup"])
        init_batch = (message["init_inputs"], message["init_targets"])
        out = run_setup(setup, slots, int(message["seed"]), init_batch, list(message["eval_inputs"]))
        return {"status": "ok", **out.message()}

    def _quantize_model(self, message: dict[str, Any]) -> dict[str, Any]:
        """Quantize the trained reference model's layers by the plan; return packed weights and raw logits."""
        from harness.integration.model import Transformer
        from harness.integration.quantize import quant_plan, quantize_linears
        from harness.integration.runs import TaskSetup
        from harness.integration.slots import reference_slots
        from harness.integration.train import logits_for

        setup = TaskSetup.from_dict(message["setup"])
        model = Transformer(setup.model, reference_slots(), 0)
        model.load_state_dict(message["state"])
        plan = {}
        for layer, (name, variant) in message["plan"].items():
            if name not in self.instances:
                return {"status": "raised", "message": f"module {name!r} is not loaded"}
            plan.update(quant_plan(model, self.instances[name], variant, names=[layer]))
        layers = quantize_linears(model, plan)
        logits = logits_for(model, [(x, x) for x in message["eval_inputs"]])
        return {
            "status": "ok",
            "eval_logits": logits,
            "packed": {name: model.get_submodule(name).packed for name in layers},
            "dequantized": {name: layer.dequantized for name, layer in layers.items()},
        }

    def _load(self, message: dict[str, Any]) -> dict[str, Any]:
        from harness.registry import load

        spec, cls = load(_source(message["source"]))
        if message.get("instantiate", True):
            self.instance = self.instances[spec.name] = cls()
        return {"status": "ok", "spec": spec.as_dict()}


def _source(src: dict[str, Any]) -> Any:
    from pathlib import Path

    from harness.registry import ModuleSource

    return ModuleSource(
        name=src["name"],
        kind=src.get("kind"),
        path=Path(src["path"]) if src.get("path") else None,
        entry_point=src.get("entry_point"),
        distribution=src.get("distribution"),
    )


def serve(inbox: BinaryIO, outbox: BinaryIO, device: str) -> None:
    from harness.protocol import read_frame, write_frame

    worker = Worker(device)
    while True:
        message = read_frame(inbox)
        if message is None or message.get("op") == "exit":
            return
        try:
            reply = worker.handle(message)
        except Exception as exc:
            reply = _failure(exc)
        write_frame(outbox, reply)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.worker")
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    _die_with_judge()
    if args.device == "cpu":
        # CUDA contexts reserve far more address space than they use, so the cap applies on CPU only;
        # the judge's resident-memory watchdog covers both.
        _limit_memory(args.memory_mb)
    import torch

    torch.set_num_threads(args.threads)
    inbox = os.fdopen(args.in_fd, "rb")
    outbox = os.fdopen(args.out_fd, "wb")
    serve(inbox, outbox, args.device)
    outbox.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
