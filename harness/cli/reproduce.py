"""The command that reproduces one failure of a results document: same module, gate, case, dtype and seed.

Computed from the document when it is shown, never stored in it, so every results document (older ones too) has
them. The inputs of a case derive from the run's seed, the case id and the dtype alone (`case_seed` in
harness/core/seeding.py), so `harness check NAME --case ID --dtype D --seed S` regenerates exactly the inputs the
case failed on. A document is untrusted text once it leaves the judge: every argument is shell-quoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.judge.sandbox import Limits
from harness.results.records import GateName, Verdict

Record = Mapping[str, Any]  # a module, gate or case of a results document, as JSON data
SHOWN = 5  # reproduce commands the verdict output shows per module; `harness explain` shows all
CLEARED = (Verdict.PASS, Verdict.SKIPPED, Verdict.SUSPECT)  # gate verdicts with nothing to reproduce


@dataclass(frozen=True)
class RunFacts:
    """What a reproduce command takes from the run besides the module: its seed, where its files were, its limits."""

    environment: Mapping[str, Any]  # the document's "environment" (seed, isolation)
    config: Mapping[str, Any]  # the document's "config" (modules directory, device, limits, base, shards)
    default_modules_dir: Path  # where `harness check` looks without --modules-dir

    def seed(self, module: Record) -> str:
        """The seed the module's inputs came from: its reused verdict's, its shard's, else the run's."""
        reused = module.get("reused")
        if reused:
            return str(reused["seed"])
        for shard in self.config.get("shards", {}).get("runs", []):
            if module["name"] in shard["modules"]:
                return str(shard["seed"])
        return str(self.environment["seed"])

    def modules(self) -> list[str]:
        """--modules-from or --modules-dir, when the run did not use the default modules directory."""
        if self.config.get("modules_from"):
            return ["--modules-from", str(self.config["modules_from"])]
        where = self.config.get("modules_dir")
        if where and Path(where).resolve() != self.default_modules_dir.resolve():
            return ["--modules-dir", str(where)]
        return []

    def limits(self, gate: str) -> list[str]:
        """Options that change what a case sees, when the run set them: device, limits, isolation, base, the
        settings file, and whether installed packages' modules were left out."""
        config, args = self.config, []
        if config.get("device", "cpu") != "cpu":
            args += ["--device", str(config["device"])]
        if config.get("timeout_s", Limits.timeout_s) != Limits.timeout_s:
            args += ["--timeout", f"{config['timeout_s']:g}"]
        if config.get("memory_mb", Limits.memory_mb) != Limits.memory_mb:
            args += ["--memory-mb", str(config["memory_mb"])]
        if self.environment.get("isolation", {}).get("mode") == "off":
            args += ["--isolation", "off"]
        if gate == GateName.PERF and config.get("base_ref"):
            args += ["--base", str(config["base_ref"])]
        if config.get("config_file"):  # policies, and perf thresholds the verdict was decided with
            args += ["--config", str(config["config_file"])]
        if config.get("entry_points") is False:
            args += ["--no-entry-points"]
        return args


def command(facts: RunFacts, module: Record, gate: str, case: Record | None) -> str:
    """`harness check NAME --case ID [--dtype D] --gates G --seed S ...` for one case; for the whole gate when `case`
    is None. Perf cases are timed together and decided on their geometric mean, so a perf failure is the gate's."""
    args = ["harness", "check", str(module["name"])]
    if case is not None and gate != GateName.PERF:
        args += ["--case", str(case["case"])]
        if gate == GateName.UNIT:
            args += ["--dtype", str(case["dtype"])]
    args += ["--gates", gate, "--seed", facts.seed(module), *facts.modules(), *facts.limits(gate)]
    return shlex.join(args)


@dataclass(frozen=True)
class Failure:
    """One thing to reproduce: a failing case, or a gate that did not pass as a whole (crash, timeout, decision)."""

    gate: Record
    case: Record | None
    command: str


def failures(facts: RunFacts, module: Record) -> list[Failure]:
    """Every failing case of a module with its command, in run order; a gate that did not pass for a reason of its
    own (a crash, a timeout, an interval, no failing case) first with the gate's command."""
    found = []
    for gate in module["gates"]:
        if gate["verdict"] in CLEARED:
            continue
        failed = [c for c in gate["cases"] if not c["passed"]]
        if gate["verdict"] != Verdict.FAIL or not failed:
            found.append(Failure(gate, None, command(facts, module, gate["gate"], None)))
        found += [Failure(gate, c, command(facts, module, gate["gate"], c)) for c in failed]
    return found


def commands_shown(facts: RunFacts, module: Record, results: Path | None) -> list[str]:
    """The distinct reproduce commands of a failing module, at most SHOWN, then where to find the rest."""
    unique = list(dict.fromkeys(f.command for f in failures(facts, module)))
    lines = unique[:SHOWN]
    if len(unique) > SHOWN:
        name = str(module["name"])
        where = (
            shlex.join(["harness", "explain", str(results), name])
            if results is not None
            else f"run with --out DIR, then harness explain DIR {name}"
        )
        lines.append(f"... and {len(unique) - SHOWN} more: {where}")
    return lines


def reproduce_section(facts: RunFacts, modules: Sequence[Record], results: Path | None) -> list[str]:
    """The verdict output's reproduce block: under each failing module, one command per failing case."""
    lines = []
    for module in modules:
        shown = commands_shown(facts, module, results) if module["verdict"] not in CLEARED else []
        if shown:
            lines.append(f"  {module['name']}")
            lines += [f"    {line}" for line in shown]
    if not lines:
        return []
    return ["reproduce (the run's seed regenerates the same inputs; one command per failing case):", *lines]
