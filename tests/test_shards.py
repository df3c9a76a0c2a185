"""`harness plan` and `harness merge`: modules spread over shards by estimated cost, and shard results merged into
the document a single run writes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import main
from harness.judge.shards import (
    DEFAULT_SECONDS,
    LATEST_RUNS,
    MergeError,
    PlanError,
    check_names,
    merge,
    names_from_changes,
    plan,
    spread,
)
from harness.results.document import ResultsDocument, validate
from harness.results.records import CaseResult, GateName, GateResult, ModuleResult, Verdict
from harness.store import ingest
from tests.conftest import FIXTURES
from tests.test_store import ENVIRONMENT as STORE_ENVIRONMENT

SHIPPED = FIXTURES / "results" / "shipped-modules.json"
ENVIRONMENT: dict[str, Any] = {**STORE_ENVIRONMENT, "seed_policy": "fixed by --seed"}
CONFIG: dict[str, Any] = {"gates": ["unit", "perf"], "timeout_s": 180.0, "memory_mb": 4096, "device": "cpu"}


def result(name: str, unit_s: float = 1.0, kind: str = "norm") -> ModuleResult:
    """A passing module with one unit case and a perf gate."""
    case = CaseResult("rms_norm/r1/normal", "float32", True, [], {"rows": 1}, {"output.max_abs_err": 1e-7})
    unit = GateResult(GateName.UNIT, Verdict.PASS, "1 case passed", [case], seconds=unit_s)
    perf = GateResult(GateName.PERF, Verdict.PASS, "vs reference: time -1.0%", summary={"all.ratio": 0.99})
    gates = [unit, perf]
    return ModuleResult(name, f"/m/{kind}/{name}.py", kind, ["rms_norm"], True, None, Verdict.PASS, "", gates, unit_s)


def shard(folder: Path, names: list[str], **environment: Any) -> Path:
    """A shard's --out directory holding results.json for `names`."""
    document = ResultsDocument({**ENVIRONMENT, **environment}, CONFIG, folder)
    for name in names:
        document.add(result(name))
    return folder


# ---------------------------------------------------------------------------------------------------------------
# plan


def test_lpt_gives_each_module_costliest_first_to_the_least_loaded_shard() -> None:
    shards = spread({"a": 7.0, "b": 5.0, "c": 4.0, "d": 3.0, "e": 1.0}, 2)
    assert [(s.modules, s.estimated_s) for s in shards] == [(("a", "d"), 10.0), (("b", "c", "e"), 10.0)]
    assert [(s.index, s.of) for s in shards] == [(1, 2), (2, 2)]


def test_plan_is_deterministic_and_breaks_ties_by_name() -> None:
    costs = {"x": 1.0, "w": 1.0, "z": 1.0, "y": 1.0}
    assert [s.modules for s in spread(costs, 2)] == [("w", "y"), ("x", "z")]
    assert spread(dict(reversed(list(costs.items()))), 2) == spread(costs, 2)


def test_never_more_shards_than_modules_and_none_for_no_modules() -> None:
    assert [(s.index, s.of, s.modules) for s in spread({"a": 1.0, "b": 2.0}, 5)] == [(1, 2, ("b",)), (2, 2, ("a",))]
    assert spread({}, 3) == []
    assert plan([], 3, kinds={}, gates=["unit"]).matrix() == {"include": []}
    for wrong in (0, -1, 257):
        with pytest.raises(PlanError, match="expected 1 to 256 shards"):
            spread({"a": 1.0}, wrong)


def test_zero_modules_to_judge_print_an_empty_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps({"judge": [], "harness_changed": False}))
    assert main(["plan", "--shards", "3", "--changes", str(changes), "--json"]) == 0
    assert capsys.readouterr().out == '{"include":[]}\n'


@pytest.mark.parametrize("bad", ["../etc/passwd", "RmsNorm", "1abc", "a-b", "", "a" * 101, "x;rm -rf ~", "naïve", 5])
def test_names_that_are_not_lower_snake_identifiers_are_rejected(bad: Any) -> None:
    with pytest.raises(PlanError, match="is not a module name") as raised:
        check_names(["silu", bad], "changes.json (judge list)")
    assert repr(bad)[:20] in str(raised.value) and "changes.json" in str(raised.value)


def test_a_changes_file_with_a_bad_name_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps({"judge": ["silu", "../../tmp/evil"]}))
    assert main(["plan", "--shards", "2", "--changes", str(changes), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'../../tmp/evil' is not a module name" in captured.err and str(changes) in captured.err


def test_changes_files_that_are_not_changes_documents_are_named(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot be read"):
        names_from_changes(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text('["silu"]')
    with pytest.raises(PlanError, match=r"list\.json: expected a JSON object with a \"judge\" list"):
        names_from_changes(tmp_path / "list.json")
    (tmp_path / "cut.json").write_text('{"judge": ["si')
    with pytest.raises(PlanError, match=r"cut\.json: not valid JSON"):
        names_from_changes(tmp_path / "cut.json")
    (tmp_path / "ok.json").write_text('{"judge": ["silu", "rms_norm_torch", "silu"]}')
    assert names_from_changes(tmp_path / "ok.json") == ["silu", "rms_norm_torch"]


def test_default_costs_are_the_shipped_per_kind_medians() -> None:
    modules = [m for m in json.loads(SHIPPED.read_text())["modules"] if m["source"].endswith(".py")]
    for kind, table in DEFAULT_SECONDS.items():
        of_kind = [m for m in modules if kind in ("*", m["kind"])]
        for gate, seconds in table.items():
            figures = [g["seconds"] for m in of_kind for g in m["gates"] if g["gate"] == gate]
            assert seconds == pytest.approx(statistics.median(figures), abs=0.05), (kind, gate)


def test_costs_come_from_the_latest_stored_runs_on_the_device(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    history = [1000.0, 10.0, 20.0, 30.0, 40.0, 90.0]  # oldest first; only the latest LATEST_RUNS count
    assert len(history) == LATEST_RUNS + 1
    for day, seconds in enumerate(history, start=1):
        folder = tmp_path / f"run-{day}"
        document = ResultsDocument({**ENVIRONMENT, "date": f"2026-11-{day:02d}T00:00:00+00:00"}, CONFIG, folder)
        document.add(result("silu", unit_s=seconds, kind="activation"))
        ingest([folder / "results.json"], store)
    gpu = ResultsDocument({**ENVIRONMENT, "device": "cuda:Test GPU", "date": "2026-11-30T00:00:00+00:00"}, CONFIG, None)
    gpu.add(result("silu", unit_s=5000.0, kind="activation"))
    (tmp_path / "gpu.json").write_text(json.dumps(gpu.as_dict()))
    ingest([tmp_path / "gpu.json"], store)

    kinds: dict[str, str | None] = {"silu": "activation", "gelu_tanh": "activation"}
    planned = plan(["silu", "gelu_tanh"], 2, kinds=kinds, gates=["unit"], store=store)
    assert planned.costs == {"silu": 30.0, "gelu_tanh": DEFAULT_SECONDS["activation"]["unit"]}
    assert planned.from_store == {"silu"}
    both = plan(["silu"], 1, kinds=kinds, gates=["unit", "integration"], store=store)  # none stored: the default
    assert both.costs["silu"] == pytest.approx(30.0 + DEFAULT_SECONDS["activation"]["integration"], abs=0.05)
    assert plan(["silu"], 1, kinds=kinds, gates=["unit"], store=store, device="cuda").costs["silu"] == 5000.0
    assert plan(["silu"], 1, kinds=kinds, gates=["unit"], store=tmp_path / "none.sqlite").costs["silu"] == 3.1


def test_plan_json_is_one_line_github_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["silu", "rms_norm_torch", "eager_attention", "int8_channel"]
    assert main(["plan", "--shards", "3", "--modules", *names, "--store", str(tmp_path / "no.sqlite"), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    include = json.loads(out)["include"]
    assert [(e["shard"], e["of"]) for e in include] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(n for e in include for n in e["modules"].split()) == sorted(names)
    assert all(isinstance(e["estimated_s"], float) and e["estimated_s"] > 0 for e in include)


# ---------------------------------------------------------------------------------------------------------------
# merge


def test_a_module_in_two_shards_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = shard(tmp_path / "s1", ["a_norm", "b_norm"]), shard(tmp_path / "s2", ["b_norm", "c_norm"])
    with pytest.raises(MergeError, match=r"module 'b_norm' is in two shards: .*s1/results\.json and .*s2/results"):
        merge([one, two], tmp_path / "out")
    assert main(["merge", str(one), str(two), "--out", str(tmp_path / "out")]) == 1
    assert "is in two shards" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("torch_version", "2.12.0+cpu", "environment.torch_version"),
        ("harness_version", "0.2.0", "environment.harness_version"),
        ("git_commit", "b" * 40, "environment.git_commit"),
        ("seed_policy", "secret", "environment.seed_policy"),
    ],
)
def test_shards_of_different_harnesses_are_rejected_naming_the_field(
    tmp_path: Path, field: str, value: str, where: str
) -> None:
    one, two = shard(tmp_path / "s1", ["a_norm"]), shard(tmp_path / "s2", ["b_norm"], **{field: value})
    with pytest.raises(MergeError, match=rf"{where} differs: .* in .*s1/results\.json, .* in .*s2/results\.json"):
        merge([one, two], tmp_path / "out")


def test_shards_with_other_options_are_rejected(tmp_path: Path) -> None:
    one, two = shard(tmp_path / "s1", ["a_norm"]), shard(tmp_path / "s2", ["b_norm"])
    document = json.loads((two / "results.json").read_text())
    document["config"]["gates"] = ["unit"]
    (two / "results.json").write_text(json.dumps(document))
    with pytest.raises(MergeError, match=r'config\.gates differs: \["unit", "perf"\] in .*, \["unit"\] in .*s2'):
        merge([one, two], tmp_path / "out")


def test_missing_or_invalid_shard_results_are_named(tmp_path: Path) -> None:
    one = shard(tmp_path / "s1", ["a_norm"])
    with pytest.raises(MergeError, match=r"s2/results\.json: cannot be read"):
        merge([one, tmp_path / "s2"], tmp_path / "out")
    bad = shard(tmp_path / "s3", ["b_norm"])
    document = json.loads((bad / "results.json").read_text())
    document["modules"][0]["verdict"] = "great"
    (bad / "results.json").write_text(json.dumps(document))
    with pytest.raises(MergeError, match=r"s3/results\.json: \$\.modules\[0\]\.verdict: 'great'"):
        merge([one, bad], tmp_path / "out")


def test_each_machine_keeps_its_own_date_cpu_and_seed(tmp_path: Path) -> None:
    one = shard(tmp_path / "s1", ["b_norm"], date="2026-12-02T10:00:00+00:00", seed=5)
    two = shard(tmp_path / "s2", ["a_norm"], cpu_model="other cpu", git_dirty=True, seed=6)
    merged = merge([one, two], tmp_path / "out")
    validate(merged)
    assert [m["name"] for m in merged["modules"]] == ["a_norm", "b_norm"]
    env = merged["environment"]
    assert env["date"] == ENVIRONMENT["date"] and env["git_dirty"] and env["seed"] == 5
    assert env["seed_policy"].startswith("fixed by --seed; the seed differs by shard")
    runs = merged["config"]["shards"]["runs"]
    assert merged["config"]["shards"]["count"] == 2
    assert [(r["cpu_model"], r["seed"], r["modules"]) for r in runs] == [
        ("test cpu", 5, ["b_norm"]),
        ("other cpu", 6, ["a_norm"]),
    ]
    with pytest.raises(MergeError, match="already a merge"):
        merge([tmp_path / "out", shard(tmp_path / "s3", ["c_norm"])], tmp_path / "out2")


def test_shipped_run_split_in_three_merges_back(tmp_path: Path) -> None:
    shipped = json.loads(SHIPPED.read_text())
    dirs = []
    for i in range(3):
        part = {**shipped, "modules": shipped["modules"][i::3]}
        (tmp_path / f"s{i}").mkdir()
        (tmp_path / f"s{i}" / "results.json").write_text(json.dumps(part))
        dirs.append(tmp_path / f"s{i}")
    merged = merge(dirs, tmp_path / "out")
    by_name = {m["name"]: m for m in shipped["modules"]}
    assert {m["name"]: m for m in merged["modules"]} == by_name
    assert merged["summary"] == shipped["summary"]
    assert json.loads((tmp_path / "out" / "modules" / "silu.json").read_text()) == by_name["silu"]
    assert ingest([tmp_path / "out" / "results.json"], tmp_path / "store.sqlite")[0].modules == len(by_name)


# ---------------------------------------------------------------------------------------------------------------
# round trip: plan, judge each shard, merge == one run


def _gate(gate: dict[str, Any]) -> tuple[Any, ...]:
    cases = [(c["case"], c["dtype"], c["passed"], c["failures"]) for c in gate["cases"]]
    return (gate["gate"], gate["verdict"], gate["reason"], gate["cases_total"], gate["cases_failed"], cases)


def _judged(document: dict[str, Any]) -> list[Any]:
    """Every verdict a run reaches, in order: per module, per gate, per case."""
    return [
        (m["name"], m["kind"], m["verdict"], m["reason"], [_gate(g) for g in m["gates"]]) for m in document["modules"]
    ]


def test_three_shards_merged_equal_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["silu", "swiglu_fused", "layer_norm_torch", "rms_norm_torch"]
    judge = ["--gates", "unit", "--seed", "7", "--jobs", "1"]
    assert main(["plan", "--shards", "3", "--modules", *names, "--store", str(tmp_path / "no.sqlite"), "--json"]) == 0
    include = json.loads(capsys.readouterr().out)["include"]
    assert len(include) == 3
    dirs = []
    for entry in include:
        dirs.append(tmp_path / f"shard-{entry['shard']}")
        assert main(["check", *entry["modules"].split(), *judge, "--out", str(dirs[-1])]) == 0
    assert main(["check", *names, *judge, "--out", str(tmp_path / "single")]) == 0
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "merged")]) == 0

    single = json.loads((tmp_path / "single" / "results.json").read_text())
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    validate(merged)
    assert _judged(merged) == _judged(single)
    assert [m["name"] for m in merged["modules"]] == [m["name"] for m in single["modules"]]
    assert merged["summary"] == single["summary"] == {**single["summary"], "total": 4, "pass": 4}
    assert merged["config"]["gates"] == ["unit"] and merged["environment"]["seed"] == 7
    assert merged["config"]["shards"]["count"] == 3
    for name in names:
        module = json.loads((tmp_path / "merged" / "modules" / f"{name}.json").read_text())
        assert module == next(m for m in merged["modules"] if m["name"] == name)
    (stored,) = ingest([tmp_path / "merged" / "results.json"], tmp_path / "store.sqlite")
    assert stored.modules == 4 and stored.cases == sum(g["cases_total"] for m in single["modules"] for g in m["gates"])
