"""The pull-request bot's pure half: from a results directory to a `BotPlan` (comment, labels, status, annotations),
and the dry-run files. Results directories are built in tmp_path from the real shipped-modules results document,
changed where a test needs a failure, a regression, hostile text or a harness change."""

from __future__ import annotations

import copy
import functools
import html
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.bot.comment import DASH
from harness.bot.dry_run import annotation_line, write_actions_outputs, write_dry_run
from harness.bot.escape import html as html_text
from harness.bot.escape import md
from harness.bot.labels import CATALOGUE
from harness.bot.plan import COMMENT_LIMIT, MARKER, Annotation, RenderContext, StatusState, bot_owned
from harness.bot.render import ResultsUnusable, plan_from_results
from harness.store import ingest
from tests.conftest import FIXTURES

SHIPPED = FIXTURES / "results" / "shipped-modules.json"
HOSTILE = "x|<img src=x onerror=alert(1)>@maintainer #1 [a](javascript:x)"
SHA = "0123456789abcdef0123456789abcdef01234567"
RUN = "https://github.com/octo/harness/actions/runs/42"
CONTEXT = RenderContext(head_sha=SHA, run_url=RUN, repository="octo/harness")
KINDS = ["kind/activation", "kind/attention", "kind/norm", "kind/quantization"]


@functools.cache
def _shipped_text() -> str:
    return SHIPPED.read_text()


def shipped() -> dict[str, Any]:
    """A fresh copy of the real results document of the shipped modules (every module passes)."""
    document: dict[str, Any] = json.loads(_shipped_text())
    return document


def module(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in doc["modules"] if m["name"] == name)
    return found


def gate(mod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in mod["gates"] if g["gate"] == name)
    return found


def results_dir(
    tmp_path: Path, doc: dict[str, Any], changes: dict[str, Any] | None = None, gpu: dict[str, Any] | None = None
) -> Path:
    folder = tmp_path / "results"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc))
    if changes is not None:
        (folder / "changes.json").write_text(json.dumps(changes))
    if gpu is not None:
        (folder / "gpu").mkdir()
        (folder / "gpu" / "results.json").write_text(json.dumps(gpu))
    return folder


def changes(
    added: Sequence[tuple[str, str]] = (), modified: Sequence[tuple[str, str]] = (), harness: bool = False
) -> dict[str, Any]:
    """changes.json as `harness changed --json` writes it."""

    def entry(name: str, kind: str) -> dict[str, str]:
        return {"name": name, "kind": kind, "path": f"modules/{kind}/{name}.py"}

    return {
        "base": "main",
        "head": "HEAD",
        "merge_base": SHA,
        "added": [entry(*a) for a in added],
        "modified": [entry(*m) for m in modified],
        "removed": [],
        "support": [],
        "harness_changed": harness,
        "harness": ["harness/core/tolerance.py"] if harness else [],
        "judge": [],
    }


def fail_unit(
    doc: dict[str, Any], name: str, message: str = "output: max abs error 0.5 exceeds tolerance 0.01"
) -> None:
    """Make `name` fail its unit gate on its first case, with a message and the metrics of a worst element."""
    mod = module(doc, name)
    unit = gate(mod, "unit")
    case = unit["cases"][0]
    case.update(passed=False, failures=[message])
    case["metrics"].update({"output.max_abs_err": 0.5, "output.tolerance": 0.01})
    unit.update(verdict="fail", reason="1 of 24 cases failed", cases_failed=1)
    mod.update(verdict="fail", reason=f"unit: {unit['reason']}")


def perf_against_base(doc: dict[str, Any], name: str, verdict: str, low: float, ratio: float, high: float) -> None:
    """Make `name`'s perf gate a comparison with its base version with the given outcome and interval."""
    mod = module(doc, name)
    perf = gate(mod, "perf")
    perf["summary"].update({"all.low": low, "all.ratio": ratio, "all.high": high, "threshold": 0.1})
    perf.update(verdict=verdict, reason=f"vs base: time {100 * (ratio - 1):+.1f}%")
    if verdict != "pass":
        mod.update(verdict=verdict, reason=f"perf: {perf['reason']}")


def visible(markdown: str) -> str:
    """The text GitHub shows, near enough for the checks here: entities decoded, zero-width spaces kept."""
    return html.unescape(markdown)


# ---------------------------------------------------------------------------------------------------------------
# The plan from a results directory


def test_every_module_passed_gives_passing_labels_status_and_headline(tmp_path: Path) -> None:
    plan = plan_from_results(results_dir(tmp_path, shipped()), CONTEXT)
    assert plan.body.startswith(MARKER + "\n## ✅ Module harness: every module passed (15 judged)")
    assert plan.label_names() == ["gates/passed", *KINDS, "perf/neutral"]
    assert plan.status.as_dict() == {
        "state": "success",
        "description": "All 15 modules passed every gate",
        "context": "module-harness/gates",
        "target_url": RUN,
    }
    assert plan.annotations == () and not plan.truncated and not plan.auto_merge_eligible
    assert "torch 2.13.0+cpu" in plan.body and "AMD EPYC" in plan.body  # provenance
    link = f"(https://github.com/octo/harness/blob/{SHA}/modules/norm/rms_norm_fused.py)"
    assert f"[rms\\_norm\\_fused]{link}" in plan.body
    assert f"[the workflow run]({RUN})" in plan.body


def test_auto_merge_needs_the_setting_and_passing_authoritative_results(tmp_path: Path) -> None:
    on = RenderContext(head_sha=SHA, auto_merge_setting=True)
    assert plan_from_results(results_dir(tmp_path, shipped()), on).auto_merge_eligible
    doc = shipped()
    fail_unit(doc, "silu")
    assert not plan_from_results(results_dir(tmp_path / "failing", doc), on).auto_merge_eligible


def test_a_failing_module_fails_the_gates_and_is_detailed(tmp_path: Path) -> None:
    doc = shipped()
    fail_unit(doc, "rms_norm_fused", "output: max abs error 0.5 exceeds tolerance 0.01; worst element [3, 7]")
    plan = plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    assert plan.label_names() == ["gates/failed", *KINDS, "perf/neutral"]
    assert plan.status.state is StatusState.FAILURE
    assert plan.status.description == "1 of 15 modules failed: rms_norm_fused (fail)"
    assert "## ❌ Module harness: 1 of 15 modules failed" in plan.body
    details = plan.body[plan.body.index("<details>") :]
    assert "<summary>❌ rms&#95;norm&#95;fused: unit: 1 of 24 cases failed</summary>" in details
    assert "worst element \\[3, 7\\]" in details
    assert "worst: output: max abs error 0.5, 50x its tolerance 0.01" in details
    (annotation,) = plan.annotations
    assert annotation.path == "modules/norm/rms_norm_fused.py"
    assert annotation.title == "rms_norm_fused (cpu): fail"
    assert annotation.message.startswith("unit: 1 of 24 cases failed. First failing case rms_norm/")


def test_regressions_come_first_then_failures(tmp_path: Path) -> None:
    doc = shipped()
    fail_unit(doc, "gelu_exact")
    perf_against_base(doc, "silu", "fail", 1.12, 1.15, 1.18)
    plan = plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    assert "perf/regression" in plan.label_names() and "gates/failed" in plan.label_names()
    body = plan.body
    assert body.index("### Regressions") < body.index("### Failures") < body.index("| module |")
    rows = [line for line in body.splitlines() if line.startswith("| [")]
    assert [r.split("]")[0] for r in rows[:3]] == ["| [silu", "| [gelu\\_exact", "| [eager\\_attention"]
    assert "1.150 [1.120, 1.180] vs base" in rows[0]
    assert body.index("<summary>❌ silu") < body.index("<summary>❌ gelu&#95;exact")
    assert plan.status.description == "2 of 15 modules failed: silu (fail), gelu_exact (fail)"


@pytest.mark.parametrize(
    ("verdict", "interval", "label"),
    [
        ("fail", (1.12, 1.15, 1.18), "perf/regression"),
        ("suspect", (1.01, 1.04, 1.07), "perf/suspect"),
        ("pass", (0.85, 0.9, 0.94), "perf/faster"),  # below 1 / 1.05 = 0.952: faster by a clear margin
        ("pass", (0.93, 0.95, 0.97), "perf/neutral"),  # the interval reaches past 1 / 1.05
    ],
)
def test_the_perf_label_follows_the_comparison_with_the_base(
    tmp_path: Path, verdict: str, interval: tuple[float, float, float], label: str
) -> None:
    doc = shipped()
    perf_against_base(doc, "rms_norm_torch", verdict, *interval)
    labels = plan_from_results(results_dir(tmp_path, doc), CONTEXT).label_names()
    assert [name for name in labels if name.startswith("perf/")] == [label]
    assert ("gates/passed" in labels) == (verdict != "fail")


def test_a_regression_outranks_a_faster_module_and_the_reference_never_labels(tmp_path: Path) -> None:
    doc = shipped()  # every shipped module is timed against the reference: 0.21x is information, not "faster"
    perf_against_base(doc, "silu", "pass", 0.5, 0.55, 0.6)
    perf_against_base(doc, "gelu_tanh", "fail", 1.2, 1.3, 1.4)
    labels = plan_from_results(results_dir(tmp_path, doc), CONTEXT).label_names()
    assert [name for name in labels if name.startswith("perf/")] == ["perf/regression"]


def test_a_perf_failure_for_a_wrong_output_is_not_a_regression(tmp_path: Path) -> None:
    doc = shipped()
    mod = module(doc, "silu")
    gate(mod, "perf").update(verdict="fail", reason="fresh inputs after timing: output differs")
    mod.update(verdict="fail", reason="perf: fresh inputs after timing: output differs")
    labels = plan_from_results(results_dir(tmp_path, doc), CONTEXT).label_names()
    assert "perf/neutral" in labels and "gates/failed" in labels


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    doc = shipped()
    fail_unit(doc, "silu", HOSTILE)
    mod = module(doc, "silu")
    mod["reason"] = HOSTILE
    mod["variants"] = [HOSTILE]
    gate(mod, "unit")["cases"][0]["case"] = HOSTILE
    hostile_changes = changes(added=[("silu", "activation")])
    hostile_changes["modified"] = [{"name": HOSTILE, "kind": HOSTILE, "path": "../../etc/passwd"}]
    plan = plan_from_results(results_dir(tmp_path, doc, hostile_changes), CONTEXT)
    shown = visible(plan.body)
    assert plan.body.count("<img") == 0 and "@maintainer" not in shown and "#1 " not in shown
    assert "](javascript" not in plan.body and "[a](" not in plan.body
    assert plan.body.count(HOSTILE) == 0 and plan.body.count("x\\|&lt;img src=x onerror=alert\\(1\\)&gt;@&#8203;") >= 3
    summary = "<summary>❌ silu: x&#124;&lt;img src=x onerror=alert&#40;1&#41;&gt;@&#8203;maintainer #&#8203;1 "
    assert summary + "&#91;a&#93;&#40;javascript:x&#41;</summary>" in plan.body
    assert all(name == "kind/activation" or not name.startswith("kind/") for name in plan.label_names())
    assert all(bot_owned(name) and name in CATALOGUE for name in plan.label_names())
    (annotation,) = plan.annotations
    assert annotation.path == "modules/activation/silu.py"  # from changes.json's entry for silu


def test_a_hostile_module_name_is_rejected_by_the_schema(tmp_path: Path) -> None:
    doc = shipped()
    doc["modules"][0]["name"] = HOSTILE
    with pytest.raises(ResultsUnusable) as caught:
        plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    message = str(caught.value)
    assert str(tmp_path / "results" / "results.json") in message and "$.modules[0].name" in message
    assert "results.schema.json" in message and "Fix:" in message


def test_a_harness_change_is_not_authoritative_until_approved(tmp_path: Path) -> None:
    folder = results_dir(tmp_path, shipped(), changes(modified=[("silu", "activation")], harness=True))
    context = RenderContext(head_sha=SHA, run_url=RUN, auto_merge_setting=True)
    plan = plan_from_results(folder, context)
    assert plan.label_names() == [
        "gates/passed",
        "harness-change",
        "kind/activation",
        "module-update",
        "needs-gpu-run",
        "perf/neutral",
    ]
    assert "(not authoritative)" in plan.body.splitlines()[1]
    assert "**These results are NOT authoritative.**" in plan.body and "base branch's harness" in plan.body
    assert plan.status.state is StatusState.PENDING and plan.status.description.startswith("Not authoritative")
    assert not plan.auto_merge_eligible and plan.notes
    approved = plan_from_results(folder, RenderContext(head_sha=SHA, harness_change_approved=True))
    assert "NOT authoritative" not in approved.body and approved.status.state is StatusState.SUCCESS
    assert approved.status.description == "All 15 modules passed every gate; GPU run pending"


def test_a_run_that_says_it_is_not_authoritative_is_shown_so(tmp_path: Path) -> None:
    doc = shipped()
    doc["config"].update(authoritative=False, authority_note=HOSTILE, modules_from="/tmp/after-tree")
    plan = plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    assert "**These results are NOT authoritative.**" in plan.body and plan.status.state is StatusState.PENDING
    assert "> Note from the run: x\\|&lt;img" in plan.body and "<img" not in plan.body


def test_missing_optional_files_give_no_change_labels(tmp_path: Path) -> None:
    labels = plan_from_results(results_dir(tmp_path, shipped()), CONTEXT).label_names()
    assert not {"new-module", "module-update", "harness-change", "needs-gpu-run"} & set(labels)


def test_needs_gpu_run_until_a_gpu_document_covers_the_changed_modules(tmp_path: Path) -> None:
    change = changes(added=[("silu", "activation")], modified=[("rms_norm_torch", "norm")])
    plan = plan_from_results(results_dir(tmp_path / "a", shipped(), change), CONTEXT)
    assert plan.label_names() == ["gates/passed", "kind/activation", "kind/norm", "module-update", "needs-gpu-run",
                                  "new-module", "perf/neutral"]  # fmt: skip
    assert "The GPU gates have not run" in plan.body
    gpu = shipped()
    gpu["config"]["device"] = "cuda"
    covered = plan_from_results(results_dir(tmp_path / "b", shipped(), change, gpu), CONTEXT)
    assert "needs-gpu-run" not in covered.label_names()
    assert "Judged on **cuda**" in covered.body and "| [silu](" in covered.body and "| [silu (cuda)](" in covered.body
    fail_unit(gpu, "silu")
    failing = plan_from_results(results_dir(tmp_path / "c", shipped(), change, gpu), CONTEXT)
    assert "gates/failed" in failing.label_names() and "<summary>❌ silu (cuda)" in failing.body
    cpu = shipped()
    with pytest.raises(ResultsUnusable, match=r"gpu/results.json: \$.config.device: expected 'cuda'"):
        plan_from_results(results_dir(tmp_path / "d", shipped(), change, cpu), CONTEXT)


def test_no_module_changed(tmp_path: Path) -> None:
    doc = shipped()
    doc["modules"] = []
    plan = plan_from_results(results_dir(tmp_path, doc, changes()), CONTEXT)
    assert "## 💤 Module harness: no module changed" in plan.body and "| module |" not in plan.body
    assert plan.status.description == "No module changed: nothing to judge" and plan.status.state is StatusState.SUCCESS
    assert plan.label_names() == ["gates/passed", "perf/neutral"]
    setting = RenderContext(SHA, auto_merge_setting=True)
    assert not plan_from_results(results_dir(tmp_path / "m", doc), setting).auto_merge_eligible  # nothing judged


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("config"), "$: 'config' is a required property"),
        (lambda d: d["modules"][1]["gates"][0].update(verdict="great"), "$.modules[1].gates[0].verdict"),
        (lambda d: d["modules"][0].update(kind=HOSTILE), "$.modules[0].kind"),
    ],
)
def test_an_invalid_results_document_is_refused_clearly(tmp_path: Path, change: Any, expected: str) -> None:
    doc = shipped()
    change(doc)
    with pytest.raises(ResultsUnusable) as caught:
        plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    assert expected in str(caught.value) and "results.json" in str(caught.value) and "Fix:" in str(caught.value)


def test_unreadable_files_are_refused_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ResultsUnusable, match=r"results.json: not found"):
        plan_from_results(tmp_path, CONTEXT)
    (tmp_path / "results.json").write_text('{"schema_version": "1.2.0", "modules": [')
    with pytest.raises(ResultsUnusable, match=r"results.json: \$: not valid JSON"):
        plan_from_results(tmp_path, CONTEXT)
    folder = results_dir(tmp_path / "c", shipped(), {"added": [{"name": "x"}]})
    with pytest.raises(ResultsUnusable, match=r"changes.json: \$.added\[0\]: expected an object with string name"):
        plan_from_results(folder, CONTEXT)


def test_annotations_never_carry_an_unsafe_path(tmp_path: Path) -> None:
    doc = shipped()
    for name in ("silu", "gelu_exact", "gelu_tanh"):
        fail_unit(doc, name)
    module(doc, "silu")["source"] = "/tmp/after-tree/modules/../../../etc/passwd.py"
    module(doc, "gelu_exact")["source"] = "/elsewhere/modules/activation/gelu_exact.py"
    plan = plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    assert [a.path for a in plan.annotations] == ["modules/activation/gelu_tanh.py"]


def test_would_rank_places_the_module_on_its_board_in_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    ingest([SHIPPED], store)
    context = RenderContext(head_sha=SHA, store=str(store))
    plan = plan_from_results(results_dir(tmp_path, shipped()), context)
    rows = {line.split(" | ")[0]: line for line in plan.body.splitlines() if line.startswith("| ")}
    assert rows["| rms\\_norm\\_fused"].endswith("| 1 of 2 |") and rows["| rms\\_norm\\_torch"].endswith("| 2 of 2 |")
    assert rows["| topk\\_sparse\\_attention"].endswith(f"| {DASH} |")  # approximate: on Pareto layers, not ranked
    no_store = RenderContext(SHA, store=str(tmp_path / "absent.sqlite"))
    missing = plan_from_results(results_dir(tmp_path / "n", shipped()), no_store)
    rows = {line.split(" | ")[0]: line for line in missing.body.splitlines() if line.startswith("| ")}
    assert rows["| rms\\_norm\\_fused"].endswith(f"| {DASH} |")


def test_a_huge_hostile_document_is_cut_under_the_limit(tmp_path: Path) -> None:
    doc = shipped()
    template = module(doc, "rms_norm_fused")
    doc["modules"] = []
    for i in range(500):
        mod = copy.deepcopy(template)
        mod["name"] = f"module_{i:03d}"
        for g in mod["gates"]:
            g["cases"] = g["cases"][:3]
            for case in g["cases"]:
                case.update(passed=False, failures=[(HOSTILE + " ") * 10] * 2, case=HOSTILE * 3)
            g.update(verdict="fail", reason=HOSTILE * 10, cases_failed=len(g["cases"]))
        mod.update(verdict="fail", reason=HOSTILE * 10)
        doc["modules"].append(mod)
    plan = plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    assert len(plan.body) <= COMMENT_LIMIT and plan.truncated
    assert plan.body.startswith(MARKER + "\n## ❌ Module harness: 500 of 500 modules failed")
    assert "This comment was cut" in plan.body.splitlines()[-1] and RUN in plan.body.splitlines()[-1]
    assert "<img" not in plan.body and "@maintainer" not in visible(plan.body)
    assert plan.body.count("<details>") == plan.body.count("</details>")
    assert len(plan.status.description) <= 140 and plan.status.description.startswith("500 of 500 modules failed")


# ---------------------------------------------------------------------------------------------------------------
# Dry run and Actions outputs


def test_dry_run_writes_the_plan_as_files(tmp_path: Path) -> None:
    doc = shipped()
    fail_unit(doc, "silu")
    plan = plan_from_results(results_dir(tmp_path, doc, changes(added=[("silu", "activation")])), CONTEXT)
    written = write_dry_run(plan, tmp_path / "out")
    assert [p.name for p in written] == ["comment.md", "labels.json", "status.json"]
    assert (tmp_path / "out" / "comment.md").read_text() == plan.body
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())["labels"]
    assert [label["name"] for label in labels] == plan.label_names()
    assert labels[0] == {
        "name": "gates/failed",
        "color": "b60205",
        "description": CATALOGUE["gates/failed"].description,
    }
    assert json.loads((tmp_path / "out" / "status.json").read_text()) == plan.status.as_dict()


def test_actions_outputs_append_the_summary_and_print_encoded_errors(tmp_path: Path) -> None:
    doc = shipped()
    fail_unit(doc, "silu", "50%, a:b\nsecond line")
    plan = plan_from_results(results_dir(tmp_path, doc), CONTEXT)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    out = io.StringIO()
    write_actions_outputs(plan, {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"}, out)
    assert summary.read_text().startswith("earlier step\n## ❌ Module harness")
    (line,) = out.getvalue().splitlines()
    command = "::error file=modules/activation/silu.py,title=silu (cpu)%3A fail::"
    assert line.startswith(command + "unit: 1 of 24 cases failed.")
    assert "50%25, a:b second line" in line  # the message keeps ':' and ','; the plan flattened the newline
    quiet = io.StringIO()
    write_actions_outputs(plan, {}, quiet)
    assert quiet.getvalue() == ""


# ---------------------------------------------------------------------------------------------------------------
# Escaping against a hostile corpus

CORPUS = [
    HOSTILE,
    "<script>alert(1)</script>",
    "</summary></details><details open><summary>fake",
    "![pixel](https://evil.example/p.png)",
    "@org/team and @maintainer, cc @@twice",
    "closes #123, GH-45 and owner/repo#7",
    "https://evil.example www.evil.example HTTP://X.Y mailto:a@b.c",
    "```\ncode\n```",
    "line1\n\n# Heading\n> quote\n- item\n1. item",
    "**bold** _em_ ~~strike~~ $x^2$ `code`",
    "&lt;img&gt; &#64;maintainer &amp;",
    "\u202eevil\u200b@\u200dmaintainer\u2066",
    "| a | b |\n|---|---|",
    "\\|\\<img>",
    "- starts like a list",
    "12. starts like an ordered list",
    "=====",
    "x" * 10_000,
]


@pytest.mark.parametrize("text", CORPUS)
def test_markdown_escaping_leaves_nothing_active(text: str) -> None:
    out = md(text, 300)
    shown = visible(out)
    assert "\n" not in out and "<" not in out and ">" not in out
    assert not re.search(r"@\w|#\d|://|(?i:www\.)|(?i:gh-\d)", shown.replace("\\", ""))
    assert not re.search(r"(?<!\\)[|\[\]()`*_~!$]", out.replace("\\\\", ""))
    assert not re.match(r"[-+=]|\d+\.", out)
    assert len(shown.replace("\\", "").replace("\u200b", "")) <= 300


@pytest.mark.parametrize("text", CORPUS)
def test_html_escaping_leaves_nothing_active(text: str) -> None:
    out = html_text(text, 300)
    shown = visible(out)
    assert "\n" not in out and "<" not in out and ">" not in out and '"' not in out
    assert not re.search(r"@\w|#\d|://|(?i:www\.)", shown)


def test_workflow_commands_cannot_be_broken_out_of() -> None:
    line = annotation_line(Annotation("modules/a,b:c.py", "t::x,y%\n", "m%\r\n::error::forged"))
    assert line == "::error file=modules/a%2Cb%3Ac.py,title=t%3A%3Ax%2Cy%25%0A::m%25%0D%0A::error::forged"
    assert "\n" not in line


def test_the_label_catalogue_fits_githubs_limits() -> None:
    for spec in CATALOGUE.values():
        assert re.fullmatch(r"[0-9a-f]{6}", spec.color) and 0 < len(spec.description) <= 100
        assert bot_owned(spec.name)


def test_a_change_that_judges_no_module_needs_no_results_document(tmp_path: Path) -> None:
    """pr-gates uploads only changes.json when nothing needed judging: the bot still reports, and says why."""
    changes = {"added": [], "modified": [], "removed": [], "harness_changed": False, "judge": []}
    (tmp_path / "changes.json").write_text(json.dumps(changes))
    plan = plan_from_results(tmp_path, RenderContext(head_sha="a" * 40))
    assert "no module changed, nothing was judged" in plan.body
    assert plan.status.state == StatusState.SUCCESS and not plan.auto_merge_eligible
    changes["judge"] = ["gelu_exact"]  # something should have been judged: a missing document is an error
    (tmp_path / "changes.json").write_text(json.dumps(changes))
    with pytest.raises(ResultsUnusable, match=r"results\.json: not found"):
        plan_from_results(tmp_path, RenderContext(head_sha="a" * 40))
