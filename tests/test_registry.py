"""Registration: every contract violation fails at import with an error naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.contract import ErrorBound, ModuleSource
from harness.registry.loader import RegistrationError, Registry, load, validate
from harness.registry.sources import duplicate_names, module_sources

SOURCE = "/somewhere/modules/norm/my_norm.py"


class MyNorm:
    def forward(self, x, weight, bias, eps):
        return x


def check(cls: type, **overrides: object) -> object:
    options: dict[str, object] = {
        "kind": "norm",
        "variant": "rms_norm",
        "exact": True,
        "bound": None,
        "name": None,
        "source": SOURCE,
    }
    options.update(overrides)
    return validate(cls, **options)  # type: ignore[arg-type]


def test_valid_module_gives_its_spec() -> None:
    spec = check(MyNorm)
    assert spec.name == "my_norm" and spec.kind == "norm" and spec.variants == ("rms_norm",)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "needle", "fix"),
    [
        ({"kind": "normalization"}, "unknown kind 'normalization'", "pass kind=<one of those>."),
        (
            {"variant": "batch_norm"},
            "defines variants ['layer_norm', 'rms_norm'], found ['batch_norm']",
            "declare variant=<one of those> (or a tuple of several).",
        ),
        (
            {"exact": "yes"},
            "exact must be True or False, found 'yes'.",
            "declare exact=True, or exact=False with bound=ErrorBound(...) if the module approximates.",
        ),
        (
            {"exact": False, "bound": {"max_abs": 1.0}},
            "bound must be a harness.ErrorBound, found dict.",
            "pass bound=ErrorBound(...), imported with `from harness import ErrorBound`.",
        ),
        (
            {"bound": ErrorBound(min_sqnr_db=40)},
            "exact=True modules are judged by the norm tolerance policy",
            "drop bound=..., or declare exact=False if the module approximates.",
        ),
        (
            {"exact": False, "bound": ErrorBound(min_sqnr_db=5.0)},
            "looser than the norm floor",
            "tighten the bound or improve the approximation.",
        ),
        ({"name": "MyNorm"}, "must be a lower_snake_case identifier", "rename the file."),
        (
            {"source": "/x/modules/norm/other_norm.py"},
            "name 'other_norm' expects class 'OtherNorm', found 'MyNorm'",
            "rename the class to OtherNorm.",
        ),
    ],
)
def test_contract_violations_name_the_file_and_fix(overrides: dict[str, object], needle: str, fix: str) -> None:
    with pytest.raises(RegistrationError) as info:
        check(MyNorm, **overrides)
    message = str(info.value)
    assert message.startswith(f"{overrides.get('source', SOURCE)}: class MyNorm: "), message
    problem, _, given_fix = message.partition(" Fix: ")
    assert needle in problem, message
    assert given_fix == fix, message  # every registration error ends with its whole fix, exactly
    assert "Fix:" not in problem, message


def test_approximate_bound_is_merged_with_the_floor() -> None:
    spec = check(MyNorm, exact=False, bound=ErrorBound(min_cosine=0.9999))
    assert spec.bound.min_cosine == 0.9999  # type: ignore[attr-defined]
    assert spec.bound.min_sqnr_db is not None  # type: ignore[attr-defined]  # taken from the floor


def test_missing_method_and_wrong_signature() -> None:
    class MyNormA:
        pass

    class MyNormB:
        def forward(self, x):
            return x

    with pytest.raises(RegistrationError, match=r"missing method forward\(x, weight, bias, eps\)"):
        check(MyNormA, name="my_norm_a")
    with pytest.raises(RegistrationError, match="cannot be called with keywords"):
        check(MyNormB, name="my_norm_b")


def test_constructor_must_take_no_arguments() -> None:
    class MyNormC(MyNorm):
        def __init__(self, width: int) -> None:
            self.width = width

    with pytest.raises(RegistrationError, match="give every __init__ parameter a default"):
        check(MyNormC, name="my_norm_c")


def test_registry_rejects_duplicates_naming_both_sources() -> None:
    registry = Registry()
    registry.add(check(MyNorm), MyNorm)  # type: ignore[arg-type]
    other = check(MyNorm, source="/other/place/my_norm.py")
    with pytest.raises(RegistrationError) as info:
        registry.add(other, MyNorm)  # type: ignore[arg-type]
    assert "/other/place/my_norm.py" in str(info.value) and SOURCE in str(info.value)


def test_sources_are_found_without_importing(tmp_path: Path) -> None:
    (tmp_path / "norm").mkdir()
    (tmp_path / "activation").mkdir()
    (tmp_path / "norm" / "same.py").write_text("raise SystemExit('imported!')\n")
    (tmp_path / "activation" / "same.py").write_text("raise SystemExit('imported!')\n")
    (tmp_path / "norm" / "_helpers.py").write_text("")
    sources = module_sources(tmp_path, entry_points=False)
    assert sorted(s.kind or "" for s in sources) == ["activation", "norm"]
    assert list(duplicate_names(sources)) == ["same"]


def test_load_checks_directory_and_file_name(tmp_path: Path) -> None:
    (tmp_path / "activation").mkdir()
    path = tmp_path / "activation" / "misplaced_norm.py"
    path.write_text(
        "from harness import register\n"
        "@register(kind='norm', variant='rms_norm', exact=True)\n"
        "class MisplacedNorm:\n"
        "    def forward(self, x, weight, bias, eps):\n"
        "        return x\n"
    )
    with pytest.raises(RegistrationError, match="sits in the 'activation' directory"):
        load(ModuleSource(name="misplaced_norm", kind="activation", path=path), Registry())
