"""What a long run shows while it works: one plain line per finished gate (CI logs, pipes), a live display on a
terminal (rich), JSON lines for scripts, or nothing with --quiet. The first line comes before any contestant starts."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from harness.perf.timer import seconds
from harness.results.records import GateResult, ModuleResult, Verdict

MODES = ("auto", "plain", "live", "json", "quiet")


class Progress:
    """Counts finished gates of `total` and says what finished; subclasses choose how."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stdout
        self.done = 0
        self.started = seconds()
        self.running: dict[tuple[str, str], GateResult] = {}
        self.lock = threading.Lock()

    def begin(self, headline: str) -> None:
        """The first line: what is about to be judged."""

    def __call__(self, name: str, record: GateResult, finished: bool) -> None:
        with self.lock:
            key = (name, str(record.gate))
            if not finished:
                self.running[key] = record
                return
            self.running.pop(key, None)
            self.done += 1
            self.finished(name, record)

    def finished(self, name: str, record: GateResult) -> None:
        """One gate of one module is done (called under the lock)."""

    def reused(self, result: ModuleResult) -> None:
        """A module's stored verdict was reused: all its gates count as done."""
        with self.lock:
            self.done += len(result.gates)
            self.reused_line(result)

    def reused_line(self, result: ModuleResult) -> None:
        """Say that `result` was reused (called under the lock)."""

    def end(self) -> None:
        """The run is over; the verdict table follows."""

    def remaining_s(self) -> float | None:
        """Estimated seconds left, from the mean time per finished gate so far."""
        if not self.done:
            return None
        return (seconds() - self.started) / self.done * (self.total - self.done)


def cases(record: GateResult) -> str:
    return f"{sum(1 for c in record.cases if c.passed)}/{len(record.cases)}" if record.cases else "-"


class PlainProgress(Progress):
    """`[3/15] gelu_exact unit pass 21/21 7.7 s` per finished gate."""

    def begin(self, headline: str) -> None:
        print(headline, file=self.stream, flush=True)

    def finished(self, name: str, record: GateResult) -> None:
        verdict = record.verdict if record.verdict is not Verdict.SKIPPED else f"skipped ({record.reason[:80]})"
        line = f"[{self.done}/{self.total}] {name} {record.gate} {verdict} {cases(record)} {record.seconds:.1f} s"
        print(line, file=self.stream, flush=True)

    def reused_line(self, result: ModuleResult) -> None:
        print(
            f"[{self.done}/{self.total}] {result.name} {result.verdict} {reused_note(result)}",
            file=self.stream,
            flush=True,
        )


def reused_note(result: ModuleResult) -> str:
    """`reused (judged 2026-12-02T06:24:34+00:00 at da10684)`; empty for a verdict judged in this run."""
    if result.reused is None:
        return ""
    return f"reused (judged {result.reused['date']} at {result.reused['commit'][:7]}; --fresh judges it again)"


class JsonProgress(Progress):
    """One JSON object per finished gate, for scripts."""

    def begin(self, headline: str) -> None:
        self._emit({"event": "start", "message": headline, "gates": self.total})

    def finished(self, name: str, record: GateResult) -> None:
        self._emit(
            {
                "event": "gate",
                "done": self.done,
                "of": self.total,
                "module": name,
                "gate": str(record.gate),
                "verdict": str(record.verdict),
                "cases_passed": sum(1 for c in record.cases if c.passed),
                "cases": len(record.cases),
                "seconds": round(record.seconds, 3),
            }
        )

    def reused_line(self, result: ModuleResult) -> None:
        self._emit(
            {
                "event": "reused",
                "done": self.done,
                "of": self.total,
                "module": result.name,
                "verdict": str(result.verdict),
                "judged": result.reused,
            }
        )

    def _emit(self, event: dict[str, Any]) -> None:
        print(json.dumps(event), file=self.stream, flush=True)


class LiveProgress(Progress):
    """A live table on a terminal: what runs now (module, gate, case), what finished, elapsed and time left."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        super().__init__(total, stream)
        self.recent: list[tuple[str, GateResult]] = []
        self.console = Console(file=self.stream)
        self.live = Live(console=self.console, refresh_per_second=4, get_renderable=self._render, transient=True)

    def begin(self, headline: str) -> None:
        self.console.print(headline, highlight=False)
        self.live.start()

    def finished(self, name: str, record: GateResult) -> None:
        self.recent = [*self.recent[-7:], (name, record)]

    def reused_line(self, result: ModuleResult) -> None:
        self.console.print(f"{result.name}: {result.verdict}, {reused_note(result)}", highlight=False)

    def end(self) -> None:
        self.live.stop()

    def _render(self) -> Table:
        left = self.remaining_s()
        eta = "estimating" if left is None else f"about {left:.0f} s left"
        table = Table(title=f"{self.done}/{self.total} gates, {seconds() - self.started:.0f} s, {eta}", expand=False)
        for column in ("module", "gate", "now", "cases"):
            table.add_column(column)
        with self.lock:
            running = list(self.running.items())
            recent = list(self.recent)
        for name, record in recent:
            table.add_row(name, str(record.gate), f"{record.verdict} in {record.seconds:.1f} s", cases(record))
        for (name, gate), record in running:
            table.add_row(name, gate, f"[bold]{record.reason or 'starting'}[/bold]", cases(record))
        return table


def progress_for(mode: str, total: int, stream: TextIO | None = None) -> Progress:
    """The display for a --progress mode; "auto" is live on a terminal and plain lines elsewhere."""
    out = stream or sys.stdout
    if mode == "auto":
        mode = "live" if out.isatty() else "plain"
    kinds: dict[str, type[Progress]] = {
        "plain": PlainProgress,
        "live": LiveProgress,
        "json": JsonProgress,
        "quiet": Progress,
    }
    return kinds[mode](total, out)
