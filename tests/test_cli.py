"""The command line: usage errors exit 2, scaffolds pass as generated, results validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.cli.scaffold import scaffold
from harness.kinds import KINDS
from harness.results.document import validate
from tests.conftest import run_harness


def test_unknown_module_is_a_usage_error() -> None:
    proc = run_harness("check", "no_such_module")
    assert proc.returncode == 2
    assert "no module or policy named no_such_module" in proc.stderr


def test_unknown_gate_is_a_usage_error() -> None:
    proc = run_harness("check", "silu", "--gates", "vibes")
    assert proc.returncode == 2 and "unknown gate" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device, so --device cuda is valid here")
def test_cuda_without_gpu_is_a_usage_error() -> None:
    proc = run_harness("check", "silu", "--device", "cuda")
    assert proc.returncode == 2 and "CUDA" in proc.stderr


def test_new_refuses_bad_names_and_clashes(tmp_path: Path) -> None:
    assert run_harness("new", "norm", "BadName", "--modules-dir", str(tmp_path)).returncode == 2
    assert run_harness("new", "norm", "fine_name", "--modules-dir", str(tmp_path)).returncode == 0
    clash = run_harness("new", "activation", "fine_name", "--modules-dir", str(tmp_path))
    assert clash.returncode == 2 and "already exists" in clash.stderr


def test_scaffolds_pass_check_for_every_variant(tmp_path: Path) -> None:
    # The command writes the first file (its exit code and output are tested above); the scaffolder it calls writes
    # the rest in this process, the same function without one interpreter start per variant.
    names = []
    for kind in KINDS.values():
        for variant in kind.variants:
            name = f"my_{kind.name}_{variant}"
            if not names:
                proc = run_harness("new", kind.name, name, "--variant", variant, "--modules-dir", str(tmp_path))
                assert proc.returncode == 0, proc.stderr
            else:
                scaffold(kind.name, name, variant, tmp_path)
            names.append(name)
    out = tmp_path / "out"
    proc = run_harness(
        "check", *names, "--modules-dir", str(tmp_path), "--no-entry-points", "--out", str(out), "--gates", "unit"
    )
    document = json.loads((out / "results.json").read_text())
    validate(document)
    failed = {m["name"]: m["reason"] for m in document["modules"] if m["verdict"] != "pass"}
    assert proc.returncode == 0 and not failed, failed
    assert document["summary"]["pass"] == len(names)
