"""Errors that reproduce: each failing case prints the command that regenerates its inputs and fails the same way,
and `harness explain` shows a module's failing cases, their figures and those commands."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import main
from harness.cli.reproduce import SHOWN, RunFacts, failures
from harness.results.document import validate
from tests.conftest import run_harness

NAME = "my_rms_norm"
COMMAND = re.compile(r"^ *(?:reproduce: )?(harness check .*)$", re.MULTILINE)
GENERATED_END = "        return y.to(x.dtype)\n"
# Wrong for odd hidden sizes only, by 1% of each element: the worst element then depends on the inputs, so the same
# worst element and figures on a second run mean the same inputs.
BROKEN_END = "        if x.shape[-1] % 2:\n            y = y * 1.01\n" + GENERATED_END


@dataclass(frozen=True)
class Runs:
    modules: Path  # --modules-dir holding the scaffolded module
    passed: Path  # --out of the check of the module as generated
    failed: Path  # --out of the check of the broken module
    passing: subprocess.CompletedProcess[str]
    failing: subprocess.CompletedProcess[str]

    def failed_cases(self) -> list[dict[str, Any]]:
        document = json.loads((self.failed / "results.json").read_text())
        (unit,) = document["modules"][0]["gates"]
        return [c for c in unit["cases"] if not c["passed"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """`harness new` as a contributor runs it, the unit gate on the module as generated, then on it broken."""
    root = tmp_path_factory.mktemp("explain")
    modules = root / "modules"
    created = run_harness("new", "norm", NAME, "--variant", "rms_norm", "--modules-dir", str(modules))
    assert created.returncode == 0, created.stderr
    unit = ("--modules-dir", str(modules), "--no-entry-points", "--gates", "unit")
    passing = run_harness("check", NAME, *unit, "--out", str(root / "passed"))
    source = modules / "norm" / f"{NAME}.py"
    text = source.read_text()
    assert text.count(GENERATED_END) == 1
    source.write_text(text.replace(GENERATED_END, BROKEN_END))
    failing = run_harness("check", NAME, *unit, "--out", str(root / "failed"))
    return Runs(modules, root / "passed", root / "failed", passing, failing)


def test_generated_module_passes_with_nothing_to_reproduce(runs: Runs) -> None:
    assert runs.passing.returncode == 0, runs.passing.stdout + runs.passing.stderr
    assert not COMMAND.findall(runs.passing.stdout)


def test_failing_run_prints_one_command_per_case_then_where_the_rest_are(runs: Runs) -> None:
    assert runs.failing.returncode == 1, runs.failing.stderr
    failed = runs.failed_cases()
    assert len(failed) > SHOWN  # odd hidden sizes in every dtype where 1% exceeds the tolerance
    document = json.loads((runs.failed / "results.json").read_text())
    validate(document)
    seed, where = str(document["environment"]["seed"]), str(runs.modules)
    assert (
        COMMAND.findall(runs.failing.stdout)
        == [
            shlex.join(
                [
                    "harness",
                    "check",
                    NAME,
                    "--case",
                    c["case"],
                    "--dtype",
                    c["dtype"],
                    "--gates",
                    "unit",
                    "--seed",
                    seed,
                ]
            )
            + f" --modules-dir {shlex.quote(where)} --no-entry-points"  # as the run was made
            for c in failed[:SHOWN]
        ]
    )
    explain = shlex.join(["harness", "explain", str(runs.failed / "results.json"), NAME])
    assert f"... and {len(failed) - SHOWN} more: {explain}" in runs.failing.stdout


def test_printed_command_fails_again_on_that_case_with_the_same_message(runs: Runs, tmp_path: Path) -> None:
    command = COMMAND.findall(runs.failing.stdout)[-1]
    args = shlex.split(command)
    assert args[:3] == ["harness", "check", NAME]
    # The printed command as is, plus --out to read the case back.
    again = run_harness(*args[1:], "--out", str(tmp_path))
    assert again.returncode == 1, again.stderr
    assert COMMAND.findall(again.stdout) == [command]  # its only failure, reproduced by the same command
    document = json.loads((tmp_path / "results.json").read_text())
    validate(document)
    (unit,) = document["modules"][0]["gates"]
    (case,) = unit["cases"]
    assert (case["case"], case["dtype"]) == (args[args.index("--case") + 1], args[args.index("--dtype") + 1])
    original = next(c for c in runs.failed_cases() if (c["case"], c["dtype"]) == (case["case"], case["dtype"]))
    assert not case["passed"]
    assert "worst element" in case["failures"][0]
    assert case["failures"] == original["failures"]  # same worst elements, expected and found values
    assert case["metrics"] == original["metrics"]


def test_unknown_case_is_a_usage_error_naming_the_closest(runs: Runs) -> None:
    proc = run_harness("check", NAME, "--modules-dir", str(runs.modules), "--case", "rms_norm/r1-h37/larg")
    assert proc.returncode == 2
    assert "no case 'rms_norm/r1-h37/larg' for my_rms_norm" in proc.stderr
    assert "closest rms_norm/r1-h37/large" in proc.stderr
    assert "integration: integration/mqar integration/text" in proc.stderr


def test_explain_shows_every_failing_case_its_figures_and_command(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["explain", str(runs.failed / "results.json"), NAME])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"{NAME}: FAIL\n")
    failed = runs.failed_cases()
    commands = COMMAND.findall(out)
    assert len(commands) == len(failed)
    for case, command in zip(failed, commands, strict=True):
        assert f"  {case['case']} [{case['dtype']}]" in out
        assert all(f"    failed: {message}\n" in out for message in case["failures"])
        assert f"--case {case['case']} --dtype {case['dtype']} " in command
    assert f"    metrics output: max_abs_err {failed[0]['metrics']['output.max_abs_err']:.5g}, tolerance " in out


def test_explain_of_a_passing_module_exits_0(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(runs.passed), NAME]) == 0  # the --out directory stands for its results.json
    out = capsys.readouterr().out
    assert out.startswith(f"{NAME}: PASS\n") and f"{NAME} passed: nothing to reproduce." in out
    assert not COMMAND.findall(out)


def test_explain_of_a_missing_name_or_file_exits_2_naming_the_file(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = runs.failed / "results.json"
    assert main(["explain", str(results), "no_such_module"]) == 2
    err = capsys.readouterr().err
    assert f"{results} has no module named 'no_such_module'; it has: {NAME}." in err
    assert main(["explain", str(tmp_path / "absent.json"), NAME]) == 2
    assert f"{tmp_path / 'absent.json'}: cannot be read" in capsys.readouterr().err
    truncated = tmp_path / "results.json"
    truncated.write_text(results.read_text()[:200])
    assert main(["explain", str(tmp_path), NAME]) == 2
    assert f"{truncated}: $: not valid JSON" in capsys.readouterr().err


def _module(gates: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "m", "verdict": "crash", "gates": gates, **extra}


def _gate(gate: str, verdict: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {"gate": gate, "verdict": verdict, "reason": "", "cases": cases}


def _case(case: str, passed: bool) -> dict[str, Any]:
    return {"case": case, "dtype": "float32", "passed": passed}


def test_commands_follow_the_seed_the_module_was_judged_with_and_the_run_settings(tmp_path: Path) -> None:
    """A gate that failed as a whole is reproduced by the gate, a perf case by the perf gate (its verdict is over all
    cases), a reused verdict by its own run's seed, a shard's module by its shard's seed; other settings follow."""
    env = {"seed": 7, "isolation": {"mode": "off"}}
    config = {"device": "cuda", "timeout_s": 30.0, "memory_mb": 4096, "modules_from": "/pr head", "base_ref": "main"}
    facts = RunFacts(env, config, tmp_path)
    crashed = _gate("unit", "crash", [_case("silu/n5/normal", False)])
    slow = _gate("perf", "fail", [_case("perf/forward/silu/n5/normal", False)])
    found = [f.command for f in failures(facts, _module([crashed, slow]))]
    common = "--seed 7 --modules-from '/pr head' --device cuda --timeout 30 --isolation off"
    assert found == [
        f"harness check m --gates unit {common}",
        f"harness check m --case silu/n5/normal --dtype float32 --gates unit {common}",
        f"harness check m --gates perf {common} --base main",
    ]
    reused = _module([crashed], reused={"seed": "11"})
    assert all("--seed 11 " in f.command for f in failures(facts, reused))
    shards = {"runs": [{"seed": 3, "modules": ["a"]}, {"seed": 5, "modules": ["m"]}]}
    sharded = RunFacts(env, {"shards": shards}, tmp_path)
    assert failures(sharded, _module([crashed]))[0].command == "harness check m --gates unit --seed 5 --isolation off"
    in_tree = RunFacts({"seed": 1}, {"modules_dir": str(tmp_path)}, tmp_path)
    assert failures(in_tree, _module([crashed]))[0].command == "harness check m --gates unit --seed 1"


def test_commands_carry_the_settings_file_and_left_out_packages(tmp_path: Path) -> None:
    """A run read with --config (policies, perf thresholds) or --no-entry-points is reproduced with the same."""
    crashed = _gate("unit", "crash", [_case("silu/n5/normal", False)])
    config = {"modules_dir": str(tmp_path), "config_file": "/etc/my settings.toml", "entry_points": False}
    (found, _) = failures(RunFacts({"seed": 1}, config, tmp_path), _module([crashed]))
    assert found.command == "harness check m --gates unit --seed 1 --config '/etc/my settings.toml' --no-entry-points"
    plain = {"modules_dir": str(tmp_path), "config_file": None, "entry_points": True}
    assert failures(RunFacts({"seed": 1}, plain, tmp_path), _module([crashed]))[0].command == (
        "harness check m --gates unit --seed 1"
    )
