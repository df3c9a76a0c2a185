"""Typed messages to and from frame dicts, checked field by field against their annotations on receipt.

A frame is `{"v": PROTOCOL_VERSION, "op": <message name>, <field>: <value>, ...}`. Frames carry only what
`torch.load(weights_only=True)` accepts, so dataclasses travel as dicts, tuples and paths as lists and strings,
enums as their values; `from_frame` turns them back and rejects anything that does not match the annotation,
naming the message and the field. The judge therefore never works on a reply whose layout it has not checked.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

import torch

from harness.protocol.frames import ProtocolError

PROTOCOL_VERSION = 4  # bumped whenever a message's fields change; both sides come from the same harness


@dataclasses.dataclass(frozen=True)
class TensorShape:
    """What a tensor field must be, beyond a tensor: `Annotated[torch.Tensor, TensorShape(torch.int64, 1)]`.

    Many numbers travel as one tensor (a block's per-call times and clock readings): a list of thousands of ints
    costs tens of milliseconds to pickle, unpickle with weights_only and check item by item; a tensor costs its bytes.
    """

    dtype: torch.dtype
    dim: int

    def check(self, value: torch.Tensor, where: str) -> torch.Tensor:
        if value.dtype != self.dtype or value.dim() != self.dim:
            raise ProtocolError(
                f"{where}: expected a {self.dim}-d {self.dtype} tensor, found a {value.dim()}-d {value.dtype} one"
            )
        return value


Int64s = Annotated[torch.Tensor, TensorShape(torch.int64, 1)]  # a vector of int64 (times, clock readings)


@dataclasses.dataclass(frozen=True)
class Message:
    """A frozen dataclass sent between judge and contestant; `op` names it on the wire."""

    op: ClassVar[str]

    def to_frame(self) -> dict[str, Any]:
        frame = {"v": PROTOCOL_VERSION, "op": self.op}
        frame.update({f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)})
        return frame

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Self:
        """The message in `frame`, every field checked against its annotation; ProtocolError otherwise."""
        if frame.get("v") != PROTOCOL_VERSION:
            raise ProtocolError(f"{cls.__name__}: protocol version {frame.get('v')!r}, expected {PROTOCOL_VERSION}")
        if frame.get("op") != cls.op:
            raise ProtocolError(f"expected a {cls.op!r} message, found {str(frame.get('op'))[:80]!r}")
        hints = _hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in frame:
                raise ProtocolError(f"{cls.__name__}: field {f.name!r} is missing")
            values[f.name] = _typed(frame[f.name], hints[f.name], f"{cls.__name__}.{f.name}")
        return cls(**values)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a message or record class, computed once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _plain(value: Any) -> Any:
    """`value` as frame data: dataclasses as dicts, tuples as lists, paths as strings, enums as values."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fail(where: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(f"{where}: expected {expected}, found {type(value).__name__}")


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` converted to `hint`, or ProtocolError naming `where`."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        value = _typed(value, base, where)
        for extra in extras:
            if isinstance(extra, TensorShape):
                value = extra.check(value, where)
        return value
    if origin in (typing.Union, types.UnionType):
        return _union(value, typing.get_args(hint), where)
    if origin is list:
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        (item,) = typing.get_args(hint)
        return [_typed(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return _tuple(value, typing.get_args(hint), where)
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, "a dict", value)
        key, item = typing.get_args(hint)
        return {_typed(k, key, f"{where} key"): _typed(v, item, f"{where}[{k!r}]") for k, v in value.items()}
    return _scalar(value, hint, where)


def _union(value: Any, options: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _typed(value, option, where)
        except ProtocolError as exc:
            errors.append(str(exc))
    raise ProtocolError(errors[0] if len(errors) == 1 else f"{where}: no alternative matches ({'; '.join(errors)})")


def _tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise _fail(where, "a list", value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ProtocolError(f"{where}: expected {len(args)} items, found {len(value)}")
    return tuple(_typed(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))


def _scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise _fail(where, "a tensor", value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(where, "a bool", value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, "an int", value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, "a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise _fail(where, "a path string", value)
        return Path(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ProtocolError(f"{where}: {str(value)[:80]!r} is not a {hint.__name__}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(value, hint, where)
    raise TypeError(f"{where}: annotation {hint!r} cannot travel in a frame")


def _dataclass(value: Any, cls: type, where: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, f"a {cls.__name__} as a dict", value)
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    unknown = set(value) - {f.name for f in fields}
    if unknown:
        raise ProtocolError(f"{where}: unexpected fields {sorted(map(str, unknown))[:5]}")
    values = {}
    for f in fields:
        if f.name in value:
            values[f.name] = _typed(value[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{where}: field {f.name!r} is missing")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{where}: {exc}") from None
