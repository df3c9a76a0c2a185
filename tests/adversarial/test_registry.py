"""Breaking the registry: a file that cannot be registered is an `error` naming the file, what was expected, what
was found, and the fix; the run goes on. Every corpus file is imported (in its contestant) by the corpus run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from harness.core.contract import ModuleSource
from harness.registry.loader import RegistrationError, Registry, load
from tests.adversarial.conftest import corpus_module
from tests.conftest import CORPUS

KINDS = "['activation', 'attention', 'norm', 'quantization']"


@pytest.mark.parametrize(
    ("kind", "name", "needles"),
    [
        (
            "activation",
            "unknown_kind",
            [
                "class UnknownKind: unknown kind 'nonlinearity'",
                f"Expected one of {KINDS}",
                "Fix: pass kind=<one of those>",
            ],
        ),
        (
            "attention",
            "unknown_variant",
            [
                "class UnknownVariant: kind 'attention' defines variants ['causal', 'gqa', 'key_padding', "
                "'non_causal', 'sliding_window'], found ['flash']",
                "Fix: declare variant=<one of those>",
            ],
        ),
        (
            "attention",
            "imports_missing_package",
            [
                "imports 'flash_attn_interface_v9', which is not installed where modules are judged",
                "Expected imports from the standard library, torch and the harness's public face",
                "Fix: drop the import",
            ],
        ),
        (
            "norm",
            "merge_conflict",
            [
                "merge_conflict.py:11: not valid Python",
                "found '<<<<<<< HEAD'",
                "Expected a module file Python can import",
                "Fix: correct line 11",
            ],
        ),
        (
            "quantization",
            "wrong_signature",
            [
                "class WrongSignature: quantize(self, weight) cannot be called with keywords (weight, group_size)",
                "Fix: define def quantize(self, weight, group_size)",
            ],
        ),
    ],
)
def test_unregistrable_file_is_an_error_that_says_why(
    corpus_run: dict[str, Any], kind: str, name: str, needles: list[str]
) -> None:
    result = corpus_module(corpus_run, name)
    assert result["verdict"] == "error", result["reason"]
    reason = result["reason"]
    assert f"could not load {CORPUS / kind / (name + '.py')}: RegistrationError: " in reason, reason
    for needle in needles:
        assert needle in reason, reason
    (gate,) = result["gates"]
    assert gate["verdict"] == "error" and gate["cases"] == []


def test_missing_package_of_a_dependency_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    """Only the file's own import of a missing package gets the registry's message; a package that is installed but
    breaks on a missing dependency of its own keeps Python's message (no module file is judged here)."""
    (tmp_path / "half_installed.py").write_text("import its_missing_dependency_v9\n")
    module = tmp_path / "norm" / "uses_half_installed.py"
    module.parent.mkdir()
    module.write_text("import half_installed\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ModuleNotFoundError, match="its_missing_dependency_v9"):
            load(ModuleSource(name=module.stem, kind="norm", path=module), Registry())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("half_installed", None)
    module.write_text("import its_missing_dependency_v9\n")
    with pytest.raises(RegistrationError, match="imports 'its_missing_dependency_v9', which is not installed"):
        load(ModuleSource(name=module.stem, kind="norm", path=module), Registry())
