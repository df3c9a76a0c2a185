"""The contestant's side of the registry: the `register` decorator, validation at registration, and `load`.

`load` imports a contributed module file (or entry point), which runs untrusted code: only the contestant
process (harness.worker) calls it. The judge plans from file and entry-point names alone (registry/sources.py).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from harness.core.contract import ErrorBound, ModuleSource, ModuleSpec
from harness.kinds import KINDS
from harness.registry.sources import ENTRY_POINT_GROUP, camel_case, duplicate_message

T = TypeVar("T", bound=type)


class RegistrationError(Exception):
    """A module does not meet its kind's contract; the message names the file and the fix."""


class Registry:
    """Registered module classes by name; a second registration of a name is an error, never an overwrite."""

    def __init__(self) -> None:
        self._specs: dict[str, ModuleSpec] = {}
        self._classes: dict[str, type] = {}

    def add(self, spec: ModuleSpec, cls: type) -> None:
        if spec.name in self._specs:
            wheres = [self._specs[spec.name].source, spec.source]
            raise RegistrationError(f"{spec.source}: {duplicate_message(spec.name, wheres)}")
        self._specs[spec.name] = spec
        self._classes[spec.name] = cls

    def spec(self, name: str) -> ModuleSpec:
        return self._specs[name]

    def cls(self, name: str) -> type:
        return self._classes[name]

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ModuleSpec]:
        return iter(self._specs[name] for name in self.names())


REGISTRY = Registry()
_active: list[Registry] = [REGISTRY]  # the registry @register writes to; load() can point it elsewhere
# Every class @register accepted in this process, in order. A Python module is imported once per process, so an
# entry point whose module a sibling entry point already imported finds its class here, not in a registry.
_registered: list[tuple[ModuleSpec, type]] = []
_MISSING = object()  # an entry point's attribute its Python module does not have


def register(
    *,
    kind: str,
    variant: str | tuple[str, ...],
    exact: bool,
    bound: ErrorBound | None = None,
    name: str | None = None,
) -> Callable[[T], T]:
    """Register the decorated class as a module of `kind` implementing `variant` (one name or a tuple).

    `exact=True` modules are held to the kind's tolerance policy against the float64 oracle.
    `exact=False` modules are approximate and are judged by `bound`, merged with the kind's error floor.
    `name` defaults to the file stem; the class name must be the CamelCase form of the name.
    """

    def decorate(cls: T) -> T:
        source = _source_of(cls)
        spec = validate(cls, kind=kind, variant=variant, exact=exact, bound=bound, name=name, source=source)
        _active[-1].add(spec, cls)
        _registered.append((spec, cls))
        return cls

    return decorate


def _source_of(cls: type) -> str:
    try:
        return inspect.getsourcefile(cls) or "<unknown file>"
    except TypeError:
        return getattr(sys.modules.get(cls.__module__), "__file__", None) or "<unknown file>"


def validate(
    cls: type,
    *,
    kind: str,
    variant: str | tuple[str, ...],
    exact: bool,
    bound: ErrorBound | None,
    name: str | None,
    source: str,
) -> ModuleSpec:
    """Check a class against its kind's contract and return its spec; raise RegistrationError otherwise."""
    where = f"{source}: class {cls.__name__}"
    if not inspect.isclass(cls):
        raise RegistrationError(f"{source}: @register decorates a class, found {type(cls).__name__}.")
    if kind not in KINDS:
        raise RegistrationError(
            f"{where}: unknown kind {kind!r}. Expected one of {sorted(KINDS)}. Fix: pass kind=<one of those>."
        )
    contract = KINDS[kind]
    variants = (variant,) if isinstance(variant, str) else tuple(variant)
    unknown = [v for v in variants if v not in contract.variants]
    if not variants or unknown:
        raise RegistrationError(
            f"{where}: kind {kind!r} defines variants {sorted(contract.variants)}, found {list(variants)}. "
            "Fix: declare variant=<one of those> (or a tuple of several)."
        )
    if not isinstance(exact, bool):
        raise RegistrationError(
            f"{where}: exact must be True or False, found {exact!r}. "
            "Fix: declare exact=True, or exact=False with bound=ErrorBound(...) if the module approximates."
        )
    merged = _check_bound(where, contract.name, contract.error_floor, exact, bound)
    registry_name = name or Path(source).stem
    _check_name(where, registry_name, cls.__name__)
    _check_methods(where, cls, contract.methods)
    return ModuleSpec(
        name=registry_name,
        kind=kind,
        variants=variants,
        exact=exact,
        bound=merged,
        class_name=cls.__name__,
        source=source,
    )


def _check_bound(where: str, kind: str, floor: ErrorBound, exact: bool, bound: ErrorBound | None) -> ErrorBound | None:
    if exact:
        if bound is not None:
            raise RegistrationError(
                f"{where}: exact=True modules are judged by the {kind} tolerance policy, found bound={bound}. "
                "Fix: drop bound=..., or declare exact=False if the module approximates."
            )
        return None
    if bound is not None and not isinstance(bound, ErrorBound):
        raise RegistrationError(
            f"{where}: bound must be a harness.ErrorBound, found {type(bound).__name__}. "
            "Fix: pass bound=ErrorBound(...), imported with `from harness import ErrorBound`."
        )
    looser = (bound or ErrorBound()).looser_than(floor)
    if looser:
        raise RegistrationError(
            f"{where}: declared error bound is looser than the {kind} floor: {', '.join(looser)}. "
            f"Expected at least {floor.as_dict()}. Fix: tighten the bound or improve the approximation."
        )
    return (bound or ErrorBound()).merged_with(floor)


def _check_name(where: str, name: str, class_name: str) -> None:
    if not name.isidentifier() or name != name.lower():
        raise RegistrationError(
            f"{where}: module name {name!r} must be a lower_snake_case identifier. Fix: rename the file."
        )
    if class_name != camel_case(name):
        raise RegistrationError(
            f"{where}: registry name, file name and class name must agree; name {name!r} expects class "
            f"{camel_case(name)!r}, found {class_name!r}. Fix: rename the class to {camel_case(name)}."
        )


def _check_methods(where: str, cls: type, methods: Mapping[str, tuple[str, ...]]) -> None:
    try:
        inspect.signature(cls).bind()
    except (TypeError, ValueError) as exc:
        raise RegistrationError(
            f"{where}: the harness builds modules with no arguments, but {cls.__name__}() fails: {exc}. "
            "Fix: give every __init__ parameter a default."
        ) from None
    for method, params in methods.items():
        func = inspect.getattr_static(cls, method, None)
        if func is None or not callable(getattr(cls, method, None)):
            raise RegistrationError(
                f"{where}: missing method {method}({', '.join(params)}). "
                f"Fix: define def {method}(self, {', '.join(params)}) -> torch.Tensor."
            )
        try:
            inspect.signature(getattr(cls, method)).bind(None, **{p: None for p in params})
        except (TypeError, ValueError) as exc:
            found = inspect.signature(getattr(cls, method))
            raise RegistrationError(
                f"{where}: {method}{found} cannot be called with keywords ({', '.join(params)}): {exc}. "
                f"Fix: define def {method}(self, {', '.join(params)})."
            ) from None


def load(source: ModuleSource, registry: Registry = REGISTRY) -> tuple[ModuleSpec, type]:
    """Import one module (contestant side only) and return what it registered, checked against its source."""
    if source.path is not None:
        spec, cls = _load_file(source, registry)
    else:
        spec, cls = _load_entry_point(source, registry)
    if spec.name != source.name:
        raise RegistrationError(
            f"{source.where}: registered name {spec.name!r} does not match {source.name!r}. "
            "Fix: make the file name (or entry-point name), registry name and class name agree."
        )
    if source.kind is not None and spec.kind != source.kind:
        raise RegistrationError(
            f"{source.where}: declares kind {spec.kind!r} but sits in the {source.kind!r} directory. "
            f"Fix: move the file to modules/{spec.kind}/ or declare kind={source.kind!r}."
        )
    if source.distribution is not None:
        spec = replace(spec, source=f"dist:{source.distribution}")
    return spec, cls


def _load_file(source: ModuleSource, registry: Registry) -> tuple[ModuleSpec, type]:
    """An in-tree (or fixture) module file: one file, one registered class."""
    before = set(registry.names())
    _active.append(registry)
    try:
        _import_file(source)
    finally:
        _active.pop()
    added = [name for name in registry.names() if name not in before]
    if len(added) != 1:
        raise RegistrationError(
            f"{source.where}: expected exactly one @register-ed class, found {len(added)} ({added}). "
            "Fix: one contribution per file, registered once with @harness.register(...)."
        )
    return registry.spec(added[0]), registry.cls(added[0])


def _import_file(source: ModuleSource) -> None:
    assert source.path is not None
    module_name = f"_harness_candidate.{source.kind}.{source.name}"
    spec = importlib.util.spec_from_file_location(module_name, source.path)
    if spec is None or spec.loader is None:
        raise RegistrationError(f"{source.path}: cannot be imported as a Python module. Fix: check the file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        raise RegistrationError(
            f"{source.path}:{exc.lineno}: not valid Python: {exc.msg}"
            + (f", found {line[:120]!r}" if line else "")
            + ". Expected a module file Python can import (a leftover merge-conflict marker or a half-finished "
            f"edit is the usual cause). Fix: correct line {exc.lineno} until `python -m py_compile "
            f"{Path(source.path).name}` passes."
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name is None or not _raised_by(exc, source.path):
            raise
        raise RegistrationError(
            f"{source.path}: imports {exc.name!r}, which is not installed where modules are judged. Expected "
            "imports from the standard library, torch and the harness's public face (`from harness import "
            "register, ErrorBound`). Fix: drop the import (vendor the code into the file if it is small), or "
            "propose the package as a harness dependency in a separate pull request."
        ) from None


def _raised_by(exc: BaseException, path: Path) -> bool:
    """Whether `path` itself executed the failing import (not a package it imported, whose own import broke)."""
    frames = traceback.extract_tb(exc.__traceback__)
    files = [f.filename for f in frames if not f.filename.startswith("<frozen")]
    return bool(files) and Path(files[-1]).resolve() == Path(path).resolve()


def _load_entry_point(source: ModuleSource, registry: Registry) -> tuple[ModuleSpec, type]:
    """An outside package's entry point `name = "pkg.mod:Class"`: exactly that class, however many pkg.mod registers.

    The Python module's registrations go to a scratch registry (the first entry point to import it triggers them
    all); only the class the entry point names is added to `registry`.
    """
    installed = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == source.name]
    if not installed:
        raise RegistrationError(f"{source.where}: entry point {source.name!r} is no longer installed.")
    entry = installed[0]
    _active.append(Registry())
    try:
        module = importlib.import_module(entry.module)
    finally:
        _active.pop()
    in_module = [(spec, cls) for spec, cls in _registered if _defined_in(cls, module)]
    target: object = module
    for part in entry.attr.split(".") if entry.attr else ():
        target = getattr(target, part, _MISSING)
    chosen = [(spec, cls) for spec, cls in in_module if cls is target] if entry.attr else in_module
    if len(chosen) != 1:
        raise RegistrationError(_entry_point_mismatch(source, entry, target, in_module))
    spec, cls = chosen[0]
    if spec.name not in registry or registry.cls(spec.name) is not cls:
        registry.add(spec, cls)  # a different class under this name is refused as a duplicate
    return spec, cls


def _defined_in(cls: type, module: ModuleType) -> bool:
    """Whether the module holds this very class under its name (what an entry point can name; a class object left
    from an earlier import of a module of that name, now replaced, does not count)."""
    return vars(module).get(cls.__name__) is cls


def _entry_point_mismatch(
    source: ModuleSource, entry: importlib.metadata.EntryPoint, target: object, in_module: list[tuple[ModuleSpec, type]]
) -> str:
    """Why an entry point names no single registered class: what was expected, what its module registers, the fix."""
    found = ", ".join(f"{cls.__name__} (name {spec.name!r})" for spec, cls in in_module) or "no class"
    same_name = [cls.__name__ for spec, cls in in_module if spec.name == source.name]
    fix = f"`{source.name} = {entry.module}:{same_name[0] if same_name else camel_case(source.name)}`"
    if not entry.attr:
        return (
            f"{source.where}: expected `{source.name} = {entry.module}:ClassName` (or a Python module registering "
            f"exactly one class); found no class named, and {entry.module} registers {found}. Fix: name the class, "
            f"e.g. {fix}."
        )
    if target is _MISSING:
        problem = f"{entry.module} has no attribute {entry.attr!r}"
    else:
        problem = f"{entry.module}.{entry.attr} is not registered"
    if same_name:
        todo = f"point the entry point at the class registered as {source.name!r}: {fix}"
    else:
        todo = f"register the class with @harness.register(..., name={source.name!r}) and name it: {fix}"
    return (
        f"{source.where}: expected class {entry.attr} in {entry.module}, registered with "
        f"@harness.register(..., name={source.name!r}); found: {problem}, and {entry.module} registers {found}. "
        f"Fix: {todo}."
    )
