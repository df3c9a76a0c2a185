"""Progress while a run works: one plain line per finished gate off a terminal, JSON lines with --json, a live
table on a terminal, nothing but the summary with --quiet; the first line comes before any contestant starts."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from harness.cli.main import main
from harness.cli.progress import JsonProgress, LiveProgress, PlainProgress, progress_for
from harness.results.records import CaseResult, GateName, GateResult, Verdict


def record(gate: GateName, verdict: Verdict, passed: int, failed: int, seconds: float = 7.74) -> GateResult:
    cases = [CaseResult(f"c{i}", "float32", True) for i in range(passed)]
    cases += [CaseResult(f"f{i}", "float32", False) for i in range(failed)]
    return GateResult(gate=gate, verdict=verdict, cases=cases, seconds=seconds)


def test_plain_lines_count_finished_gates_only() -> None:
    out = io.StringIO()
    progress = PlainProgress(15, out)
    progress.begin("judging 5 modules")
    running = record(GateName.UNIT, Verdict.ERROR, 0, 0)
    progress("gelu_exact", running, False)  # started: nothing printed yet
    progress("silu", record(GateName.UNIT, Verdict.PASS, 21, 0, 3.0), True)
    progress("gelu_exact", record(GateName.UNIT, Verdict.FAIL, 19, 2), True)
    skipped = GateResult(gate=GateName.PERF, verdict=Verdict.SKIPPED, reason="the unit gate failed")
    progress("gelu_exact", skipped, True)
    assert out.getvalue().splitlines() == [
        "judging 5 modules",
        "[1/15] silu unit pass 21/21 3.0 s",
        "[2/15] gelu_exact unit fail 19/21 7.7 s",
        "[3/15] gelu_exact perf skipped (the unit gate failed) - 0.0 s",
    ]


def test_json_lines_are_one_object_per_event() -> None:
    out = io.StringIO()
    progress = JsonProgress(2, out)
    progress.begin("judging 1 module")
    progress("silu", record(GateName.INTEGRATION, Verdict.PASS, 2, 0, 1.23456), True)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events == [
        {"event": "start", "message": "judging 1 module", "gates": 2},
        {
            "event": "gate",
            "done": 1,
            "of": 2,
            "module": "silu",
            "gate": "integration",
            "verdict": "pass",
            "cases_passed": 2,
            "cases": 2,
            "seconds": 1.235,
        },
    ]


def test_the_live_table_shows_what_runs_now_and_the_time_left() -> None:
    progress = LiveProgress(4, io.StringIO())
    progress.console = Console(file=io.StringIO(), width=160, force_terminal=False)
    running = record(GateName.UNIT, Verdict.ERROR, 3, 0)
    running.reason = "while running case gelu/n4097/large in float16"
    progress("gelu_exact", running, False)
    progress("silu", record(GateName.UNIT, Verdict.PASS, 21, 0), True)
    progress.console.print(progress._render())
    shown = progress.console.file.getvalue()  # type: ignore[attr-defined]
    assert "1/4 gates" in shown and "s left" in shown
    assert "while running case gelu/n4097/large in float16" in shown and "gelu_exact" in shown
    assert "pass in 7.7 s" in shown and "21/21" in shown


def test_auto_is_plain_off_a_terminal() -> None:
    assert type(progress_for("auto", 3, io.StringIO())) is PlainProgress


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_a_run_for_scripts(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "rms_norm_torch", "--gates", "unit", "--seed", "1", "--no-entry-points", flag])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    if flag == "--quiet":
        assert len(lines) == 1 and lines[0].startswith("1/1 modules passed in ")
        return
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["start", "gate", "end"]
    assert events[0]["message"].startswith("judging 1 module through unit on cpu")
    assert (events[1]["module"], events[1]["verdict"], events[1]["cases_passed"]) == ("rms_norm_torch", "pass", 24)
    assert events[2] == {"event": "end", "passed": 1, "total": 1, "verdicts": {"rms_norm_torch": "pass"}}
