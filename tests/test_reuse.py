"""Incremental re-judging: an unchanged module gets its stored verdict back (marked, dated); any change is judged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.judge.integrity import PACKAGE, Integrity
from harness.judge.reuse import Provenance, Settings, VerdictCache, harness_digest, reusable
from harness.judge.sandbox import Limits
from harness.results.document import validate
from harness.results.records import CaseResult, GateName, GateResult, ModuleResult, Verdict
from tests.conftest import REPO, run_harness

MODULE = REPO / "modules" / "activation" / "gelu_exact.py"


def _check(modules: Path, out: Path, verdicts: Path, *extra: str) -> tuple[dict[str, object], str]:
    proc = run_harness(
        "check",
        "gelu_exact",
        "--modules-dir",
        str(modules),
        "--no-entry-points",
        "--gates",
        "unit",
        "--out",
        str(out),
        *extra,
        env={"HARNESS_VERDICTS": str(verdicts)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    module = json.loads((out / "results.json").read_text())["modules"][0]
    return module, proc.stdout


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    root = tmp_path / "modules"
    (root / "activation").mkdir(parents=True)
    shutil.copy(MODULE, root / "activation" / MODULE.name)
    return root


def test_an_unchanged_module_is_reused_and_any_change_is_judged(modules: Path, tmp_path: Path) -> None:
    verdicts = tmp_path / "verdicts"
    first, _ = _check(modules, tmp_path / "r1", verdicts)
    assert "reused" not in first and first["verdict"] == "pass"
    assert len(list(verdicts.glob("*.json"))) == 1

    second, out = _check(modules, tmp_path / "r2", verdicts)
    document = json.loads((tmp_path / "r2" / "results.json").read_text())
    validate(document)
    reused = second["reused"]
    assert isinstance(reused, dict)
    first_date = json.loads((tmp_path / "r1" / "results.json").read_text())["environment"]["date"]
    assert reused["date"] == first_date  # from when: the run that judged it
    assert second["gates"] == first["gates"]  # the verdict and every figure, as judged then
    assert "gelu_exact pass reused (judged" in out and "1 verdict reused" in out

    fresh, out = _check(modules, tmp_path / "r3", verdicts, "--fresh")
    assert "reused" not in fresh and "reused" not in out

    # a different setting is another key: a fixed seed
    seeded, _ = _check(modules, tmp_path / "r4", verdicts, "--seed", "7")
    assert "reused" not in seeded

    # the module's file changes (a comment is enough): judged again
    path = modules / "activation" / MODULE.name
    path.write_text(path.read_text() + "\n# changed\n")
    edited, _ = _check(modules, tmp_path / "r5", verdicts)
    assert "reused" not in edited


def _result(verdict: Verdict, gate_verdict: Verdict) -> ModuleResult:
    case = CaseResult("unit/x", "float32", gate_verdict is Verdict.PASS, metrics={"max_abs": float("nan")})
    gate = GateResult(GateName.UNIT, gate_verdict, "why", [case], 1.5, {"all.ratio": float("inf")})
    return ModuleResult("m", "/x/m.py", "norm", ["rms_norm"], True, None, verdict, "r", [gate], 2.0)


@pytest.mark.parametrize(
    ("verdict", "kept"),
    [
        (Verdict.PASS, True),
        (Verdict.FAIL, True),  # a wrong module stays wrong until its file changes
        (Verdict.SUSPECT, True),
        (Verdict.TIMEOUT, False),  # the machine may have been busy: judged again
        (Verdict.CRASH, False),
        (Verdict.OOM, False),
        (Verdict.ERROR, False),
        (Verdict.TAMPERED, False),
    ],
)
def test_only_verdicts_about_the_module_are_stored(tmp_path: Path, verdict: Verdict, kept: bool) -> None:
    cache = _cache(tmp_path)
    result = _result(verdict, verdict)
    assert reusable(result) is kept
    cache.save("a" * 64, result, Provenance("2026-12-01T00:00:00+00:00", "c" * 40, "1"))
    loaded = cache.load("a" * 64)
    assert (loaded is not None) is kept
    if loaded is not None:
        assert loaded.gates[0].cases[0].metrics["max_abs"] != loaded.gates[0].cases[0].metrics["max_abs"]  # NaN back
        assert loaded.gates[0].summary == {"all.ratio": float("inf")}
        assert loaded.reused == {"date": "2026-12-01T00:00:00+00:00", "commit": "c" * 40, "seed": "1", "key": "a" * 64}


def test_unreadable_or_mismatched_entries_are_judged_again(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.save("b" * 64, _result(Verdict.PASS, Verdict.PASS), Provenance("d", "c", "1"))
    entry = tmp_path / ("b" * 64 + ".json")
    (tmp_path / ("e" * 64 + ".json")).write_bytes(entry.read_bytes())  # an entry under another key's name
    assert cache.load("e" * 64) is None
    entry.write_text("{not json")
    assert cache.load("b" * 64) is None
    assert cache.load("f" * 64) is None  # none stored


def test_the_key_covers_the_harness_and_the_settings(tmp_path: Path) -> None:
    integrity = Integrity({str(PACKAGE / "kinds" / "norm.py"): "1", str(PACKAGE / "__pycache__" / "x.pyc"): "2"})
    changed_contract = Integrity({**integrity.hashes, str(PACKAGE / "kinds" / "norm.py"): "3"})
    new_bytecode = Integrity({**integrity.hashes, str(PACKAGE / "__pycache__" / "x.pyc"): "4"})
    assert harness_digest(integrity) != harness_digest(changed_contract)  # a kind's contract changed
    assert harness_digest(integrity) == harness_digest(new_bytecode)  # bytecode is not the harness's source

    from harness.core.contract import ModuleSource

    source = ModuleSource("gelu_exact", "activation", MODULE)
    base = _cache(tmp_path).module_key(source, None)
    assert base is not None and base == _cache(tmp_path).module_key(source, None)
    others = [
        _cache(tmp_path, gates=(GateName.UNIT, GateName.INTEGRATION)).module_key(source, None),
        _cache(tmp_path, limits=Limits(timeout_s=5)).module_key(source, None),
        _cache(tmp_path, thresholds={"activation": 0.2}).module_key(source, None),
        _cache(tmp_path, fixed_seed=3).module_key(source, None),
        _cache(tmp_path, harness="other").module_key(source, None),
        _cache(tmp_path).module_key(
            source, ModuleSource("gelu_exact", "activation", REPO / "modules" / "norm" / "rms_norm_torch.py")
        ),
    ]
    assert len({base, *others}) == len(others) + 1
    assert _cache(tmp_path).module_key(ModuleSource("ep", None, None, "pkg.mod:Cls", "pkg"), None) is None


def _cache(
    directory: Path,
    gates: tuple[GateName, ...] = (GateName.UNIT,),
    limits: Limits | None = None,
    thresholds: dict[str, float] | None = None,
    fixed_seed: int | None = None,
    harness: str = "h",
) -> VerdictCache:
    settings = Settings(gates, limits or Limits(), {"threshold": 0.1}, thresholds or {}, [], fixed_seed)
    return VerdictCache(settings, harness, directory)
