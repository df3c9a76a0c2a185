"""The results store: validated ingest in one transaction, history kept, concurrent writers, crash safety."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.results.document import ResultsDocument
from harness.results.records import CaseResult, GateName, GateResult, ModuleResult, Verdict
from harness.store import SCHEMA_VERSION, DocumentRejected, StoreError, connect, ingest
from tests.conftest import REPO

ENVIRONMENT = {
    "harness_version": "0.1.0",
    "git_commit": "a" * 40,
    "git_dirty": False,
    "torch_version": "2.13.0+cpu",
    "python_version": "3.11.7",
    "platform": "Linux",
    "device": "cpu",
    "cpu_model": "test cpu",
    "cpu_count": 2,
    "threads": 1,
    "dtypes": ["float32"],
    "seed": 1,
    "seed_policy": "fixed",
    "date": "2026-12-01T00:00:00+00:00",
}
CONFIG = {"gates": ["unit", "perf"], "timeout_s": 180.0, "memory_mb": 4096, "device": "cpu"}


def document(seed: int = 1, modules: int = 3, cases: int = 4) -> dict[str, Any]:
    """A valid results document built from the harness's own records: `modules` norm modules, `cases` each."""
    results = []
    for m in range(modules):
        unit = GateResult(
            GateName.UNIT,
            Verdict.PASS,
            f"{cases} cases passed",
            [
                CaseResult(f"rms_norm/r{i}/normal", "float32", True, [], {"rows": i}, {"output.max_abs_err": 1e-7})
                for i in range(cases)
            ],
        )
        perf = GateResult(GateName.PERF, Verdict.PASS, "vs reference: time -1.0%", summary={"all.ratio": 0.99})
        results.append(
            ModuleResult(
                f"norm_{m}",
                f"/m/norm/norm_{m}.py",
                "norm",
                ["rms_norm"],
                True,
                None,
                Verdict.PASS,
                "",
                [unit, perf],
                1.0,
            )
        )
    doc = ResultsDocument({**ENVIRONMENT, "seed": seed}, CONFIG, None)
    for r in results:
        doc.add(r)
    return doc.as_dict()


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def counts(store: Path) -> dict[str, int]:
    conn = sqlite3.connect(store)
    try:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in ("runs", "modules", "cases")}
    finally:
        conn.close()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file in the store's folder with the sha256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_ingest_keeps_history_and_is_idempotent(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    first = ingest([write(tmp_path / "a.json", document(1))], store)
    second = ingest([write(tmp_path / "b.json", document(2)), tmp_path / "a.json"], store)
    assert [r.already_stored for r in first + second] == [False, False, True]
    assert second[1].run_id == first[0].run_id
    assert counts(store) == {"runs": 2, "modules": 6, "cases": 24}
    conn = connect(store, readonly=True)
    row = conn.execute("SELECT git_commit, torch_version, harness_version, machine, date FROM runs").fetchone()
    assert row[:3] == ("a" * 40, "2.13.0+cpu", "0.1.0") and len(row[3]) == 16 and row[4].startswith("2026-12-01")
    assert int(conn.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _bad_verdict(doc: dict[str, Any]) -> None:
    doc["modules"][1]["gates"][0]["verdict"] = "great"


def _wrong_major(doc: dict[str, Any]) -> None:
    doc["schema_version"] = "2.0.0"


def _newer_minor(doc: dict[str, Any]) -> None:
    doc["schema_version"] = "1.9.0"


def _missing_environment(doc: dict[str, Any]) -> None:
    del doc["environment"]["torch_version"]


def _limited_to_cases(doc: dict[str, Any]) -> None:
    doc["config"]["cases"] = {"cases": ["rms_norm/r64-h3/normal"], "dtypes": ["float32"]}


@pytest.mark.parametrize(
    ("break_it", "path", "problem"),
    [
        (_bad_verdict, "$.modules[1].gates[0].verdict", "is not valid"),
        (_wrong_major, "$.schema_version", "this harness reads 1.0 to"),
        (_newer_minor, "$.schema_version", "this harness reads 1.0 to"),
        (_missing_environment, "$.environment", "'torch_version' is a required property"),
        (_limited_to_cases, "$.config.cases", "not the modules' verdicts"),
    ],
)
def test_invalid_documents_are_rejected_naming_file_and_path(
    tmp_path: Path, break_it: Any, path: str, problem: str
) -> None:
    store = tmp_path / "store" / "store.sqlite"
    ingest([write(tmp_path / "good.json", document(1))], store)
    before = snapshot(store.parent)
    bad = copy.deepcopy(document(2))
    break_it(bad)
    target = write(tmp_path / "bad.json", bad)
    with pytest.raises(DocumentRejected) as info:
        ingest([write(tmp_path / "also-good.json", document(3)), target], store)
    message = str(info.value)
    assert message.startswith(f"{target}: {path}"), message
    assert problem in message, message
    assert snapshot(store.parent) == before  # byte-identical: not even the valid document in the batch was written


def test_truncated_file_is_rejected_and_the_store_untouched(tmp_path: Path) -> None:
    store = tmp_path / "store" / "store.sqlite"
    ingest([write(tmp_path / "good.json", document(1))], store)
    before = snapshot(store.parent)
    text = json.dumps(document(2))
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "ingest", str(truncated), "--store", str(store)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"{truncated}: $: not valid JSON" in proc.stderr and "truncated" in proc.stderr, proc.stderr
    assert "the store is unchanged" in proc.stderr
    assert snapshot(store.parent) == before


def test_a_store_from_a_newer_harness_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    ingest([write(tmp_path / "a.json", document(1))], store)
    conn = sqlite3.connect(store)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade the harness"):
        connect(store)


def _ingest_process(doc: Path, store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "ingest", str(doc), "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def test_four_processes_ingesting_at_once_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"  # created by whichever process gets there first
    docs = [write(tmp_path / f"{i}.json", document(10 + i, modules=8, cases=200)) for i in range(4)]
    procs = [_ingest_process(doc, store) for doc in docs]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert counts(store) == {"runs": 4, "modules": 32, "cases": 4 * 8 * 200}
    conn = connect(store, readonly=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_process_killed_mid_ingest_leaves_the_store_consistent(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    ingest([write(tmp_path / "small.json", document(1))], store)
    big = write(tmp_path / "big.json", document(2, modules=40, cases=2500))
    wal = Path(f"{store}-wal")
    proc = _ingest_process(big, store)
    deadline = time.monotonic() + 120
    # The writer is inside its transaction once the WAL grows past the first pages; kill it there.
    while (not wal.exists() or wal.stat().st_size < 1 << 20) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the ingest finished before it could be killed; make the document larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert counts(store) == {"runs": 1, "modules": 3, "cases": 12}  # the killed run left no row at all
    ingest([big], store)  # and the store takes the same document afterwards
    assert counts(store)["runs"] == 2
