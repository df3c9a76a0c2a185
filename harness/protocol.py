"""Messages between judge and contestant: length-prefixed frames of `torch.save` data.

Frames carry only tensors, numbers, strings, lists and dicts. The judge decodes with
`torch.load(weights_only=True)`, so a hostile contestant cannot make the judge run code by sending a
crafted pickle, and every tensor arrives as a private copy (no shared memory the child could rewrite).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import torch

HEADER = struct.Struct("<Q")
MAX_FRAME = 4 << 30  # a reply larger than this is a protocol violation, not an answer


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame."""


def encode(message: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    return HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> dict[str, Any]:
    try:
        message = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise ProtocolError(f"undecodable frame ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a dict frame, found {type(message).__name__}")
    return message


def write_frame(stream: BinaryIO, message: dict[str, Any]) -> None:
    stream.write(encode(message))
    stream.flush()


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """Blocking read of one frame; None at end of stream (used by the worker, which trusts the judge)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return decode(payload)


@dataclass(frozen=True)
class Call:
    """One request: `method(**args)` on the module, then backward with `grad_out` through `grad_inputs`."""

    method: str
    args: dict[str, Any]
    grad_inputs: tuple[str, ...] = ()
    grad_out: torch.Tensor | None = None
    repeat: bool = True  # call a second time (no backward) so the judge can check determinism

    def message(self) -> dict[str, Any]:
        return {
            "op": "call",
            "method": self.method,
            "args": self.args,
            "grad_inputs": list(self.grad_inputs),
            "grad_out": self.grad_out,
            "repeat": self.repeat,
        }


@dataclass
class Reply:
    """What the contestant returned for one Call, after the judge checked the frame's layout."""

    out: Any  # a tensor for function-like kinds, a dict of tensors for quantize
    out_repeat: Any  # the second call's result (None when repeat=False)
    grads: dict[str, Any] = field(default_factory=dict)  # grad of each grad_input (None if it got none)
    inputs_after: dict[str, Any] = field(default_factory=dict)  # tensor arguments as they were after the call
    aliased: list[str] = field(default_factory=list)  # inputs whose storage the output shares

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Reply:
        try:
            return cls(
                out=message["out"],
                out_repeat=message.get("out_repeat"),
                grads=dict(message.get("grads") or {}),
                inputs_after=dict(message.get("inputs_after") or {}),
                aliased=[str(n) for n in message.get("aliased") or []],
            )
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed reply: {exc}") from None


class CandidateRaised(Exception):
    """The module raised an exception while handling one call; the case fails, the gate goes on."""


class ContestantDied(Exception):
    """The contestant process hung, crashed, ran out of memory or broke the protocol; the module stops."""

    def __init__(self, verdict: str, reason: str) -> None:
        super().__init__(f"{verdict}: {reason}")
        self.verdict = verdict  # timeout | crash | oom | error
        self.reason = reason
