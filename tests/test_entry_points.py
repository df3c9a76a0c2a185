"""Outside packages register modules through the `harness.modules` entry-point group."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.core.contract import ModuleSource
from harness.registry.loader import RegistrationError, Registry, load
from harness.registry.sources import module_sources
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


# One Python module of an outside package keeping two modules; a third class is left unregistered.
ACTIVATIONS = """
import torch
import torch.nn.functional as F
from harness import register


@register(kind="activation", variant="gelu", exact=True, name="multi_gelu")
class MultiGelu:
    def forward(self, x, gate, up):
        return F.gelu(x, approximate="none")


@register(kind="activation", variant="silu", exact=True, name="multi_silu")
class MultiSilu:
    def forward(self, x, gate, up):
        return F.silu(x)


class MultiRelu:
    def forward(self, x, gate, up):
        return torch.relu(x)
"""
MULTI_ENTRY_POINTS = {
    "multi_gelu": "harness_multi_demo.activations:MultiGelu",
    "multi_silu": "harness_multi_demo.activations:MultiSilu",
    "multi_typo": "harness_multi_demo.activations:MultiGeluu",  # no such class
    "multi_relu": "harness_multi_demo.activations:MultiRelu",  # a class, but not registered
}


@pytest.fixture()
def multi_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution `harness-multi-demo` whose one Python module holds several modules.

    Its directory is also on this process's sys.path (undone after the test), so `load` finds the entry points here.
    """
    package = tmp_path / "harness_multi_demo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "activations.py").write_text(ACTIVATIONS)
    info = tmp_path / "harness_multi_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-multi-demo\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in MULTI_ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[harness.modules]\n{lines}")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("harness_multi_demo")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    return tmp_path


def multi_sources() -> dict[str, ModuleSource]:
    return {s.name: s for s in module_sources(REPO / "modules") if s.name.startswith("multi_")}


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


def test_entry_points_load_their_own_class_from_one_python_module(multi_site: Path) -> None:
    sources = multi_sources()
    registry = Registry()  # one registry for both, as `harness list` loads every module in one contestant
    gelu, gelu_cls = load(sources["multi_gelu"], registry)
    silu, silu_cls = load(sources["multi_silu"], registry)  # its Python module is already imported by now
    assert (gelu.name, gelu.variants, gelu_cls.__name__) == ("multi_gelu", ("gelu",), "MultiGelu")
    assert (silu.name, silu.variants, silu_cls.__name__) == ("multi_silu", ("silu",), "MultiSilu")
    assert gelu.source == silu.source == "dist:harness-multi-demo"
    assert registry.names() == ["multi_gelu", "multi_silu"]  # only the classes asked for, each once
    assert load(sources["multi_silu"], Registry())[1] is silu_cls  # a fresh registry gets the same class


def test_entry_point_naming_a_missing_class_says_what_the_module_registers(multi_site: Path) -> None:
    with pytest.raises(RegistrationError) as info:
        load(multi_sources()["multi_typo"], Registry())
    assert str(info.value) == (
        "entry point multi_typo = harness_multi_demo.activations:MultiGeluu (harness-multi-demo): expected class "
        "MultiGeluu in harness_multi_demo.activations, registered with @harness.register(..., name='multi_typo'); "
        "found: harness_multi_demo.activations has no attribute 'MultiGeluu', and harness_multi_demo.activations "
        "registers MultiGelu (name 'multi_gelu'), MultiSilu (name 'multi_silu'). Fix: register the class with "
        "@harness.register(..., name='multi_typo') and name it: "
        "`multi_typo = harness_multi_demo.activations:MultiTypo`."
    )


def test_entry_point_naming_an_unregistered_class_says_so(multi_site: Path) -> None:
    with pytest.raises(RegistrationError) as info:
        load(multi_sources()["multi_relu"], Registry())
    message = str(info.value)
    assert message.startswith("entry point multi_relu = harness_multi_demo.activations:MultiRelu (harness-multi-demo)")
    assert (
        "found: harness_multi_demo.activations.MultiRelu is not registered, and harness_multi_demo.activations "
        "registers MultiGelu (name 'multi_gelu'), MultiSilu (name 'multi_silu')."
    ) in message
    assert message.endswith("name it: `multi_relu = harness_multi_demo.activations:MultiRelu`.")


def test_two_modules_of_one_python_module_are_judged(multi_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = harness_with(multi_site, "check", "multi_gelu", "multi_silu", "--gates", "unit", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = json.loads((out / "results.json").read_text())["modules"]
    assert {(m["name"], m["source"], m["verdict"]) for m in modules} == {
        ("multi_gelu", "dist:harness-multi-demo", "pass"),
        ("multi_silu", "dist:harness-multi-demo", "pass"),
    }


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_check_on_cuda(tmp_path: Path) -> None:
    proc = harness_with(
        tmp_path, "check", "silu", "rms_norm_torch", "--device", "cuda", "--gates", "unit", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "results.json").read_text())["environment"]["device"].startswith("cuda")
