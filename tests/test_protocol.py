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
