"""Contestant process entry point: `python -m harness.worker --in-fd R --out-fd W --memory-mb M`.

Started by the judge (harness.judge.sandbox) in its own session with a scrubbed environment: forked from the
zygote (harness.worker.zygote, an interpreter that has imported torch and nothing untrusted), or, where no zygote
runs, in a fresh interpreter. Either way `main` applies the same limits and confinement before anything untrusted
is imported. It imports the untrusted module, runs the requests the judge sends (handlers.py), and answers on
a private pipe; the module's own prints go to a log the judge reads only for error messages.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import sys
from typing import BinaryIO

PRELOADS = ("torch._dynamo",)  # the only modules the judge may ask a contestant to import ahead


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent (the judge, or the zygote that forked it) dies (Linux
    PR_SET_PDEATHSIG); exit now if `parent` is no longer the parent (it died before the request took effect, and
    this process was re-parented to a subreaper or init)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space so a runaway allocation fails fast inside the child."""
    cap = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _confine(plan: str | None) -> None:
    """Apply the judge's restrictions before anything untrusted is imported; exit when one cannot be applied."""
    if plan is None:
        return
    from harness.core.isolation import Confinement
    from harness.worker.confine import ConfinementFailed, confine

    try:
        confine(Confinement.from_json(plan))
    except ConfinementFailed as exc:
        print(f"harness worker: {exc}", file=sys.stderr, flush=True)
        os._exit(3)


def serve(inbox: BinaryIO, outbox: BinaryIO, device: str) -> None:
    """Answer the judge's requests one at a time until it says exit or closes the pipe."""
    from harness.protocol.frames import read_frame, write_frame
    from harness.protocol.messages import Exit, request_from_frame
    from harness.worker.handlers import Worker, failure

    worker = Worker(device)
    while True:
        frame = read_frame(inbox)
        if frame is None or frame.get("op") == Exit.op:
            return
        try:
            reply = worker.handle(request_from_frame(frame))
        except Exception as exc:
            reply = failure(exc)
        write_frame(outbox, reply.to_frame())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.worker")
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--confine", default=None, help="the Confinement the judge decided, as JSON")
    parser.add_argument(
        "--preload", action="append", default=[], choices=PRELOADS, help="a torch module to import before answering"
    )
    args = parser.parse_args(argv)
    parent = os.getppid()
    if args.device == "cpu":
        # CUDA contexts reserve far more address space than they use, so the cap applies on CPU only;
        # the judge's resident-memory watchdog covers both.
        _limit_memory(args.memory_mb)
    _confine(args.confine)
    die_with_parent(parent)  # after the confinement: a change of user clears the parent-death signal
    import torch

    torch.set_num_threads(args.threads)
    for name in args.preload:  # trusted torch code, before anything untrusted is imported
        importlib.import_module(name)
    inbox = os.fdopen(args.in_fd, "rb")
    outbox = os.fdopen(args.out_fd, "wb")
    serve(inbox, outbox, args.device)
    outbox.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
