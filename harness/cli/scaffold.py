"""`harness new KIND NAME`: a module file, rendered from a per-kind template, that passes `harness check`."""

from __future__ import annotations

from pathlib import Path

import jinja2

from harness.kinds import KINDS
from harness.registry.sources import camel_case


class ScaffoldError(Exception):
    """The requested module cannot be created; the message says why and what to do."""


def render(kind: str, name: str, variant: str) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.cli", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template(f"{kind}.py.j2")
    return template.render(name=name, class_name=camel_case(name), kind=kind, variant=variant)


def scaffold(kind: str, name: str, variant: str | None, modules_dir: Path) -> Path:
    """Write modules_dir/<kind>/<name>.py and return its path; never overwrites."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    if not name.isidentifier() or name != name.lower() or name.startswith("_"):
        raise ScaffoldError(f"module name {name!r} must be a lower_snake_case identifier, e.g. my_rms_norm")
    variants = list(KINDS[kind].variants)
    chosen = variant or variants[0]
    if chosen not in variants:
        raise ScaffoldError(f"kind {kind!r} defines variants {variants}, not {chosen!r}")
    clash = [p for p in modules_dir.glob(f"*/{name}.py")]
    if clash:
        raise ScaffoldError(f"{clash[0]} already exists; module names are unique across kinds. Pick another name.")
    path = modules_dir / kind / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(kind, name, chosen))
    return path
