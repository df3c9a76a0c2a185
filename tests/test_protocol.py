"""The judge decodes contestant frames without running code and without sharing memory."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from harness.protocol import ProtocolError, decode, encode


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, ("/tmp/harness-protocol-exploit",))


def test_round_trip_copies_tensors() -> None:
    x = torch.arange(6.0).reshape(2, 3)
    frame = encode({"out": x, "n": 3, "names": ["a"]})
    message = decode(frame[8:])
    assert torch.equal(message["out"], x)
    message["out"].add_(1)
    assert x[0, 0] == 0  # the decoded tensor is a private copy


def test_crafted_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = Path("/tmp/harness-protocol-exploit")
    marker.unlink(missing_ok=True)
    buffer = io.BytesIO()
    torch.save({"out": torch.zeros(1)}, buffer)
    # rewrite the archive's data.pkl with a pickle whose loading would create a file
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    patched = io.BytesIO()
    with zipfile.ZipFile(patched, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps({"out": Exploit()}, protocol=2)
            target.writestr(item, data)
    with pytest.raises(ProtocolError):
        decode(patched.getvalue())
    assert not marker.exists()


def test_non_dict_frame_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="expected a dict frame"):
        decode(encode([1, 2, 3])[8:])  # type: ignore[arg-type]


# --- typed messages ------------------------------------------------------------------------------------------

from harness.core.contract import ErrorBound, ModuleSource, ModuleSpec  # noqa: E402
from harness.protocol import (  # noqa: E402
    PROTOCOL_VERSION,
    BlockTimes,
    Call,
    CallReply,
    Loaded,
    Message,
    PerfBlock,
    PerfCase,
    Salt,
    Trained,
    WarmedUp,
    request_from_frame,
)


def _through_the_wire(frame: dict[str, object]) -> dict[str, object]:
    return decode(encode(frame)[8:])


def test_every_message_survives_the_wire_with_its_types() -> None:
    spec = ModuleSpec("my_norm", "norm", ("rms_norm",), False, ErrorBound(max_abs=0.1), "MyNorm", "/m/norm/my_norm.py")
    loaded = Loaded.from_frame(_through_the_wire(Loaded(spec=spec).to_frame()))
    assert loaded.spec == spec  # nested dataclasses, tuples and the bound come back as they were
    case = PerfCase(
        sides=("candidate", "baseline"),
        pools={"A": [{"x": torch.ones(2), "eps": 1e-5}]},
        backward=True,
        grad_out=torch.zeros(2),
        grad_names=("x",),
        salts={"A": Salt("x", (1,))},
    )
    back = request_from_frame(_through_the_wire(case.to_frame()))
    assert isinstance(back, PerfCase) and back.salts == {"A": Salt("x", (1,))} and back.sides == case.sides
    call = Call("forward", {"x": torch.ones(3)}, ("x",), torch.ones(3))
    assert request_from_frame(_through_the_wire(call.to_frame())).grad_inputs == ("x",)  # type: ignore[attr-defined]
    source = ModuleSource("silu", "activation", Path("/m/activation/silu.py"))
    from harness.protocol import Load

    assert Load.from_frame(_through_the_wire(Load(source=source).to_frame())).source == source


def test_a_block_travels_as_tensors_and_keeps_its_call_order() -> None:
    order = [["candidate", "baseline"], ["baseline", "candidate"], ["candidate", "baseline"]]
    block = PerfBlock.of(order, pools={"candidate": "A", "baseline": "B"}, salt_values={"A": torch.ones(3)})
    back = request_from_frame(_through_the_wire(block.to_frame()))
    assert isinstance(back, PerfBlock) and back.order.dtype == torch.int8
    assert back.calls() == [(r, side) for r, sides in enumerate(order) for side in sides]
    times = BlockTimes(ns={"candidate": torch.arange(3)}, hooks=[], stamps=torch.arange(6))
    again = BlockTimes.from_frame(_through_the_wire(times.to_frame()))
    assert again.ns["candidate"].tolist() == [0, 1, 2] and again.stamps.tolist() == list(range(6))


_STAMPS = torch.zeros(2, dtype=torch.int64)


@pytest.mark.parametrize(
    ("message", "frame", "needle"),
    [
        (
            WarmedUp,
            {"rounds": 3, "ns": {"candidate": [1, "2"]}},
            "WarmedUp.ns['candidate'][1]: expected an int, found str",
        ),
        (WarmedUp, {"rounds": 3, "ns": {"candidate": [True]}}, "expected an int, found bool"),
        (WarmedUp, {"rounds": 3, "ns": [1, 2]}, "WarmedUp.ns: expected a dict, found list"),
        (
            BlockTimes,
            {"ns": {"candidate": torch.ones(1, dtype=torch.int64)}, "stamps": _STAMPS},
            "BlockTimes: field 'hooks' is missing",
        ),
        (
            BlockTimes,
            {"ns": {"candidate": [1]}, "hooks": [], "stamps": _STAMPS},
            "BlockTimes.ns['candidate']: expected a tensor, found list",
        ),
        (
            BlockTimes,
            {"ns": {"candidate": torch.ones(1)}, "hooks": [], "stamps": _STAMPS},
            "BlockTimes.ns['candidate']: expected a 1-d torch.int64 tensor, found a 1-d torch.float32 one",
        ),
        (
            BlockTimes,
            {"ns": {}, "hooks": [], "stamps": _STAMPS.reshape(1, 2)},
            "BlockTimes.stamps: expected a 1-d torch.int64 tensor, found a 2-d torch.int64 one",
        ),
    ],
)
def test_malformed_replies_are_refused_naming_the_field(
    message: type[Message], frame: dict[str, object], needle: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        message.from_frame({"v": PROTOCOL_VERSION, "op": message.op, **frame})
    assert needle in str(info.value)


def test_wrong_version_op_or_tensor_is_refused() -> None:
    good = Trained(torch.zeros(1), {}, [1.0], [torch.zeros(1)], 0.5).to_frame()
    assert Trained.from_frame(_through_the_wire(good)).losses == [1.0]
    with pytest.raises(ProtocolError, match="protocol version"):
        Trained.from_frame({**good, "v": PROTOCOL_VERSION + 1})
    with pytest.raises(ProtocolError, match=r"expected a 'trained' message, found 'call_reply'"):
        Trained.from_frame({**good, "op": CallReply.op})
    with pytest.raises(ProtocolError, match=r"Trained\.init_logits: expected a tensor, found list"):
        Trained.from_frame({**good, "init_logits": [0.0]})
    with pytest.raises(ProtocolError, match="unknown request 'rm_rf'"):
        request_from_frame({"v": PROTOCOL_VERSION, "op": "rm_rf"})
