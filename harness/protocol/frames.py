"""Frames between judge and contestant: length-prefixed `torch.save` data.

Frames carry only tensors, numbers, strings, lists and dicts. The judge decodes with
`torch.load(weights_only=True)`, so a hostile contestant cannot make the judge run code by sending a
crafted pickle, and every tensor arrives as a private copy (no shared memory the child could rewrite).
"""

from __future__ import annotations

import io
import struct
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
