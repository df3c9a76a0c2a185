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
    PerfCase,
    Salt,
    Trained,
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


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ({"ns": {"candidate": [1, "2"]}, "hooks": []}, "BlockTimes.ns['candidate'][1]: expected an int, found str"),
        ({"ns": {"candidate": [1]}}, "BlockTimes: field 'hooks' is missing"),
        ({"ns": [1, 2], "hooks": []}, "BlockTimes.ns: expected a dict, found list"),
        ({"ns": {"candidate": [True]}, "hooks": []}, "expected an int, found bool"),
    ],
)
def test_malformed_replies_are_refused_naming_the_field(frame: dict[str, object], needle: str) -> None:
    with pytest.raises(ProtocolError) as info:
        BlockTimes.from_frame({"v": PROTOCOL_VERSION, "op": BlockTimes.op, **frame})
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
