"""Isolation of the contestant: it cannot change the judge's files, read or trace the judge's memory, signal it, or
reach the network; and where a write does get through (isolation switched off), the integrity check catches it,
gives the module `tampered` and stops the run."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import harness
from harness.judge.integrity import Integrity
from harness.judge.isolation import decide
from tests.adversarial.conftest import corpus_module
from tests.conftest import CORPUS, REPO

ISOLATION = decide()
LANDLOCK = pytest.mark.skipif(
    ISOLATION.landlock_abi == 0, reason="the kernel offers no Landlock: file, TCP and signal barriers are not in use"
)
SCOPED = pytest.mark.skipif(ISOLATION.landlock_abi < 6, reason="signal scoping needs Landlock ABI 6 (Linux 6.12)")
NETWORK = pytest.mark.skipif(ISOLATION.landlock_abi < 4, reason="TCP rules need Landlock ABI 4 (Linux 6.7)")


def test_the_isolation_in_use_is_recorded_in_the_results(corpus_run: dict[str, Any]) -> None:
    recorded = corpus_run["doc"]["environment"]["isolation"]
    assert recorded == ISOLATION.as_dict() | {"mode": "auto"}
    assert "integrity-hashes" in recorded["mechanisms"] and "judge-not-dumpable" in recorded["mechanisms"]


@LANDLOCK
def test_a_write_to_the_harness_source_is_refused(corpus_run: dict[str, Any]) -> None:
    result = corpus_module(corpus_run, "edits_harness_source")
    timer = Path(harness.__file__).resolve().parent / "perf" / "timer.py"
    assert result["verdict"] == "error"
    assert f"PermissionError: [Errno 13] Permission denied: '{timer}'" in result["reason"]
    assert "edited by a contestant" not in timer.read_text()


@LANDLOCK
def test_a_startup_hook_planted_in_site_packages_is_refused(corpus_run: dict[str, Any]) -> None:
    result = corpus_module(corpus_run, "edits_startup_hook")
    hook = Path(site.getsitepackages()[0]) / "zz_contestant_hook.pth"
    assert result["verdict"] == "error"
    assert f"Permission denied: '{hook}'" in result["reason"]
    assert not hook.exists()


@pytest.mark.skipif(os.geteuid() != 0 and not ISOLATION.landlock_abi, reason="no isolation mechanism to test here")
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("reads_judge_memory", "reading the judge's memory: Permission denied; 0 other processes read"),
        ("traces_the_judge", "tracing the judge: Operation not permitted; 0 other processes attached"),
    ],
)
def test_the_judges_memory_cannot_be_read_or_traced(corpus_run: dict[str, Any], name: str, reason: str) -> None:
    result = corpus_module(corpus_run, name)
    assert result["verdict"] == "error"
    assert f"RuntimeError: {reason}" in result["reason"]


@SCOPED
def test_the_judge_cannot_be_signalled(corpus_run: dict[str, Any]) -> None:
    result = corpus_module(corpus_run, "signals_the_judge")
    assert result["verdict"] == "error"
    assert "RuntimeError: signalling the judge: Operation not permitted; 0 other processes allowed" in result["reason"]


@NETWORK
def test_no_tcp_connection_can_be_opened(corpus_run: dict[str, Any]) -> None:
    result = corpus_module(corpus_run, "opens_a_connection")
    assert result["verdict"] == "error"
    assert "RuntimeError: opening a TCP connection: Permission denied" in result["reason"]


def test_the_corpus_leaves_the_checkout_and_the_harness_as_they_were(corpus_run: dict[str, Any]) -> None:
    before, after = corpus_run["status"]
    assert after == before, "the corpus run changed the checkout"
    hashes_before, hashes_after = corpus_run["hashes"]
    assert hashes_before.changes(hashes_after) == []


# ---------------------------------------------------------------------------------------------------------------
# With isolation switched off, on a copy of the harness: the write goes through, and the integrity check stops it


@pytest.fixture(scope="module")
def unprotected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`harness run --isolation off` from a copy of the harness over the harness editor and two honest modules."""
    tree = tmp_path_factory.mktemp("copy")
    shutil.copytree(REPO / "harness", tree / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    modules = tree / "corpus" / "norm"
    modules.mkdir(parents=True)
    shutil.copy(CORPUS / "norm" / "edits_harness_source.py", modules)
    for honest in ("rms_norm_torch", "rms_norm_fused"):
        shutil.copy(REPO / "modules" / "norm" / f"{honest}.py", modules)
    out = tree / "out"
    cmd = [sys.executable, "-m", "harness", "run", "--isolation", "off", "--no-publish", "--modules-dir"]
    cmd += [str(tree / "corpus"), "--no-entry-points", "--gates", "unit", "--jobs", "1", "--seed", "3"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = Integrity.take()
    proc = subprocess.run(
        [*cmd, "--out", str(out)], cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    document = json.loads((out / "results.json").read_text())
    return {"proc": proc, "doc": document, "tree": tree, "ours": before.changes(Integrity.take())}


def test_without_isolation_the_edit_lands_in_the_copy_only(unprotected: dict[str, Any]) -> None:
    timer = unprotected["tree"] / "harness" / "perf" / "timer.py"
    assert timer.read_text().endswith("# edited by a contestant\n")  # the attack works when nothing stops it
    assert unprotected["ours"] == []  # ... and this checkout's harness was never the one it reached
    assert unprotected["doc"]["environment"]["isolation"]["mode"] == "off"


def test_without_isolation_the_change_is_tampered_and_stops_the_run(unprotected: dict[str, Any]) -> None:
    proc = unprotected["proc"]
    by_name = {m["name"]: m for m in unprotected["doc"]["modules"]}
    editor = by_name["edits_harness_source"]
    assert proc.returncode == 1
    assert editor["verdict"] == "tampered"
    assert "the judge's own files changed while contestant 'edits_harness_source' ran" in editor["reason"]
    assert f"changed {unprotected['tree'] / 'harness' / 'perf' / 'timer.py'}" in editor["reason"]
    assert "the run stopped" in proc.stderr and "git checkout -- harness/" in proc.stderr
    # The modules after it were not judged on modified code: each says so instead of getting a verdict.
    for honest in ("rms_norm_fused", "rms_norm_torch"):
        assert by_name[honest]["verdict"] == "error"
        assert by_name[honest]["reason"].startswith("not judged: the judge's own files changed")
