"""Mixed-precision quantization policies: which quantization module each linear layer of the model gets.

A policy is configured in pyproject.toml and judged like a module (integration gate only: its modules are each
judged on their own). Rules map layer-name patterns (fnmatch, matched against names such as
"layers.0.attn.wq", "layers.1.mlp.down", "lm_head") to registered quantization modules; the first matching rule
wins, and a layer no rule matches stays in float32:

    [tool.harness.mixed_precision.fp8_body_int4_head]
    "lm_head" = "int4_group"
    "layers.*" = "fp8_e4m3"
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TABLE = "tool.harness.mixed_precision"
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class PolicyError(ValueError):
    """A policy table that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class MixedPrecisionPolicy:
    """A named per-layer assignment of quantization modules."""

    name: str  # results name, like a module's
    rules: tuple[tuple[str, str], ...]  # (layer pattern, quantization module name) in the order written
    source: str  # where it is configured, e.g. "pyproject.toml [tool.harness.mixed_precision.fp8_body_int4_head]"

    @property
    def modules(self) -> list[str]:
        """The quantization modules the policy uses, in first-use order."""
        return list(dict.fromkeys(module for _, module in self.rules))

    def assign(self, layers: Iterable[str]) -> dict[str, str]:
        """Layer name -> module name by the first matching rule; layers no rule matches are left out."""
        plan = {}
        for layer in layers:
            for pattern, module in self.rules:
                if fnmatch.fnmatchcase(layer, pattern):
                    plan[layer] = module
                    break
        return plan


def load_policies(pyproject: Path) -> list[MixedPrecisionPolicy]:
    """Every policy in `pyproject`'s [tool.harness.mixed_precision] table; none when the file or table is absent."""
    if not pyproject.is_file():
        return []
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{pyproject}: not valid TOML ({exc}). Fix the file's syntax.") from None
    table: object = data
    for key in TABLE.split("."):
        table = table.get(key, {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise PolicyError(f"{pyproject}: [{TABLE}] must be a table of policies, found {type(table).__name__}.")
    policies = []
    for name, rules in table.items():
        where = f"{pyproject} [{TABLE}.{name}]"
        if not NAME.match(name):
            raise PolicyError(
                f"{where}: policy names are lower_snake_case like module names, found {name!r}. Fix: rename the table."
            )
        if not isinstance(rules, dict) or not rules:
            raise PolicyError(
                f'{where}: expected a table of "layer pattern" = "quantization module" entries, '
                f'found {rules!r}. Fix: add at least one rule, e.g. "layers.*" = "int8_channel".'
            )
        bad = [f"{k!r} = {v!r}" for k, v in rules.items() if not isinstance(v, str) or not NAME.match(v)]
        if bad:
            raise PolicyError(
                f"{where}: each rule's value is a quantization module name, found {', '.join(bad)}. "
                "Fix: use a name `harness list` shows."
            )
        policies.append(MixedPrecisionPolicy(name, tuple(rules.items()), f"{pyproject.name} [{TABLE}.{name}]"))
    return policies
