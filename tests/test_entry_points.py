"""Outside packages register modules through the `harness.modules` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

MODULE = '''
import torch
from harness import register


@register(kind="activation", variant="silu", exact=True, name="ext_silu")
class ExtSilu:
    """SiLU shipped by an outside distribution."""

    def forward(self, x, gate, up):
        return x * torch.sigmoid(x)
'''


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """A directory holding an installed distribution `harness-ext-demo` with one entry point."""
    (tmp_path / "harness_ext_demo").mkdir()
    (tmp_path / "harness_ext_demo" / "__init__.py").write_text(MODULE)
    info = tmp_path / "harness_ext_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-ext-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.modules]\next_silu = harness_ext_demo:ExtSilu\n")
    return tmp_path


def harness_with(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )


def test_entry_point_module_is_listed_with_its_distribution(site: Path) -> None:
    proc = harness_with(site, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    entry = next(e for e in json.loads(proc.stdout) if e["name"] == "ext_silu")
    assert entry["kind"] == "activation" and entry["variant"] == ["silu"]
    assert entry["source"] == "dist:harness-ext-demo" and entry["exact"] is True


def test_entry_point_module_is_judged(site: Path, tmp_path: Path) -> None:
    proc = harness_with(site, "check", "ext_silu", "--gates", "unit", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["modules"][0]["source"] == "dist:harness-ext-demo"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_check_on_cuda(tmp_path: Path) -> None:
    proc = harness_with(
        tmp_path, "check", "silu", "rms_norm_torch", "--device", "cuda", "--gates", "unit", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "results.json").read_text())["environment"]["device"].startswith("cuda")
