"""Breaking the process: each module gets its exact verdict and reason, and the run survives all of them."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.judge.isolation import decide
from harness.judge.sandbox import KEEP_ENV, WORKER_ENV
from harness.results.document import validate
from tests.adversarial.conftest import FAKE_SECRETS, MEMORY_MB, SEED, TIMEOUT_S, corpus_module
from tests.conftest import CORPUS, REPO, worker_processes

module = corpus_module


def failures(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["case"], c["dtype"], f) for g in result["gates"] for c in g["cases"] for f in c["failures"]]


def test_run_exits_1_and_writes_valid_results(corpus_run: dict[str, Any]) -> None:
    assert corpus_run["proc"].returncode == 1, corpus_run["proc"].stderr
    validate(corpus_run["doc"])
    assert corpus_run["doc"]["environment"]["seed"] == SEED
    per_module = sorted(p.stem for p in (corpus_run["out"] / "modules").glob("*.json"))
    assert "hangs" in per_module and "segfaults" in per_module


def test_no_contestant_process_outlives_the_run(corpus_run: dict[str, Any]) -> None:
    assert corpus_run["leftover"] == set()
    assert module(corpus_run, "leaves_a_daemon")["verdict"] == "pass"


@pytest.mark.parametrize(
    ("name", "verdict", "reason"),
    [
        ("hangs", "timeout", f"no answer within the {TIMEOUT_S:g} s limit"),
        ("segfaults", "crash", "killed by SIGSEGV before answering"),
        ("aborts", "crash", "killed by SIGABRT before answering"),
        ("exits_early", "crash", "exited with code 0 before answering"),
        ("calls_sys_exit", "crash", "exited with code 3 before answering"),
        ("allocates_too_much", "oom", f"at the {MEMORY_MB} MiB memory cap"),
        ("raises_at_import", "error", "ImportError: fused_kernels extension is not built"),
        ("spins_in_a_matmul", "timeout", f"no answer within the {TIMEOUT_S:g} s limit"),
        (
            "raises_system_exit",
            "crash",
            "exited with code 1 before answering; last output: raises_system_exit: stopping the judge from inside "
            "forward",
        ),
        ("raises_keyboard_interrupt", "crash", "killed by SIGINT before answering; last output: "),
        ("overflows_the_c_stack", "crash", "killed by SIGSEGV before answering"),
        ("floods_its_output", "crash", "exited with code 9 before answering; last output: floods_its_output: xxxxxxxx"),
    ],
)
def test_process_level_verdicts(corpus_run: dict[str, Any], name: str, verdict: str, reason: str) -> None:
    result = module(corpus_run, name)
    assert result["verdict"] == verdict, result["reason"]
    assert reason in result["reason"]


@pytest.mark.parametrize("name", ["hangs", "spins_in_a_matmul"])
def test_timeout_ends_at_the_limit(corpus_run: dict[str, Any], name: str) -> None:
    """Sleeping in Python or spinning inside one long torch call (where no Python signal handler runs): the same."""
    gate = module(corpus_run, name)["gates"][0]
    assert TIMEOUT_S <= gate["seconds"] < TIMEOUT_S + 10


def test_import_error_names_the_file(corpus_run: dict[str, Any]) -> None:
    assert str(CORPUS / "norm" / "raises_at_import.py") in module(corpus_run, "raises_at_import")["reason"]


def test_duplicate_names_are_rejected_naming_both_files(corpus_run: dict[str, Any]) -> None:
    twins = [m for m in corpus_run["doc"]["modules"] if m["name"] == "twin"]
    assert [t["verdict"] for t in twins] == ["error", "error"]
    for twin in twins:
        assert "registered more than once" in twin["reason"]
        assert str(CORPUS / "norm" / "twin.py") in twin["reason"]
        assert str(CORPUS / "activation" / "twin.py") in twin["reason"]


def test_crash_keeps_the_reason_and_output(corpus_run: dict[str, Any]) -> None:
    reason = module(corpus_run, "segfaults")["reason"]
    assert "while running case rms_norm/" in reason


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("nan_output", "non-finite values where the oracle is finite"),
        ("wrong_shape", "output: expected shape"),
        ("mutates_input", "input 'x' was modified in place"),
        ("returns_input", "output shares memory with input 'x'"),
    ],
)
def test_wrong_results_fail_every_case_with_the_reason(corpus_run: dict[str, Any], name: str, needle: str) -> None:
    result = module(corpus_run, name)
    assert result["verdict"] == "fail"
    cases = result["gates"][0]["cases"]
    assert cases and all(not c["passed"] for c in cases)
    assert all(any(needle in f for f in c["failures"]) for c in cases), failures(result)[:3]


def test_wrong_only_on_odd_shapes(corpus_run: dict[str, Any]) -> None:
    result = module(corpus_run, "wrong_on_odd_shapes")
    assert result["verdict"] == "fail"
    for case in result["gates"][0]["cases"]:
        hidden = case["sizes"]["hidden"]
        odd = hidden % 2 == 1
        assert case["passed"] != odd, case
        if odd:
            assert "exceeds tolerance" in case["failures"][0] and "worst element" in case["failures"][0]


def test_silent_bf16_downcast_fails_float32_only(corpus_run: dict[str, Any]) -> None:
    result = module(corpus_run, "bf16_inside")
    assert result["verdict"] == "fail"
    cases = result["gates"][0]["cases"]
    fp32 = [c for c in cases if c["dtype"] == "float32"]
    bf16 = [c for c in cases if c["dtype"] == "bfloat16"]
    assert fp32 and all(not c["passed"] for c in fp32)
    assert bf16 and all(c["passed"] for c in bf16)
    assert all("exceeds tolerance" in c["failures"][0] for c in fp32)


def test_contestants_die_with_a_killed_judge(tmp_path: Path) -> None:
    """Even when the judge itself is SIGKILLed mid-run (a cancelled CI job), its contestant does not survive."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    judge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "check",
            "hangs",
            "--modules-dir",
            str(CORPUS),
            "--no-entry-points",
            "--gates",
            "unit",
            "--timeout",
            "120",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not worker_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_processes(tmp_path), "the contestant never started"
    judge.send_signal(signal.SIGKILL)
    judge.wait()
    deadline = time.monotonic() + 10
    while worker_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_processes(tmp_path) == []


def test_run_publishes_to_the_store_and_renders_the_leaderboard(corpus_run: dict[str, Any]) -> None:
    """`harness run --out DIR` leaves the run in the store, a site and a Markdown board, and says where."""
    import sqlite3

    out: Path = corpus_run["out"]
    stdout = corpus_run["proc"].stdout
    assert f"leaderboard: {out / 'site' / 'index.html'}" in stdout and f"store: {corpus_run['store']}" in stdout
    conn = sqlite3.connect(corpus_run["store"])
    (runs,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    verdicts = dict(conn.execute("SELECT name || ' ' || source, verdict FROM modules").fetchall())
    conn.close()
    assert runs == 1
    assert verdicts == {f"{m['name']} {m['source']}": m["verdict"] for m in corpus_run["doc"]["modules"]}
    board = (out / "leaderboard.md").read_text()
    assert "Not ranked" in board and "segfaults" in board  # broken modules are listed apart, never ranked
    assert (out / "site" / "index.html").is_file() and list((out / "site" / "boards").glob("norm-*.html"))


# ---------------------------------------------------------------------------------------------------------------
# Exceptions that are not errors, recursion, output floods


def test_keyboard_interrupt_stops_the_contestant_not_the_judge(corpus_run: dict[str, Any]) -> None:
    result = module(corpus_run, "raises_keyboard_interrupt")
    assert "KeyboardInterrupt" in result["reason"]
    judged = {m["name"]: m["verdict"] for m in corpus_run["doc"]["modules"]}
    later = ("raises_system_exit", "recurses_forever", "segfaults", "wrong_on_odd_shapes", "wrong_shape")
    assert [judged.get(name) for name in later] == ["crash", "fail", "crash", "fail", "fail"]  # the run went on
    assert corpus_run["proc"].returncode == 1  # not 130: the judge itself was never interrupted


def test_infinite_recursion_fails_every_case_naming_it(corpus_run: dict[str, Any]) -> None:
    result = module(corpus_run, "recurses_forever")
    assert result["verdict"] == "fail"
    cases = result["gates"][0]["cases"]
    assert cases and all(not c["passed"] for c in cases)
    needle = "module raised: RecursionError: maximum recursion depth exceeded"
    assert all(any(needle in f for f in c["failures"]) for c in cases), failures(result)[:3]


def test_an_output_flood_is_capped_and_only_its_tail_is_read(corpus_run: dict[str, Any]) -> None:
    """128 MiB of lines on stdout and stderr: the log stops at the file-size cap, and the reason quotes a few lines."""
    reason = module(corpus_run, "floods_its_output")["reason"]
    last = reason.split("last output: ", 1)[1]
    assert 5 <= last.count("floods_its_output: ") <= 12 and len(reason) < 16 * 1024


# ---------------------------------------------------------------------------------------------------------------
# Grandchildren


@pytest.mark.parametrize("name", ["leaves_a_child", "leaves_a_session", "leaves_an_orphan", "leaves_a_daemon"])
def test_no_grandchild_outlives_the_run(corpus_run: dict[str, Any], name: str) -> None:
    """A plain child, one in its own session that became `sleep` elsewhere, a double-forked orphan, a daemon: each
    module passes, and none of their processes is left once the run is over."""
    assert module(corpus_run, name)["verdict"] == "pass"
    assert corpus_run["leftover"] == set()
    assert survivors(corpus_run["out"].parent) == []


def survivors(base: Path) -> list[int]:
    """Live processes started by this session's corpus run (their $HOME lies under `base`) that a contestant
    turned into `sleep 86402.25` (leaves_a_session), or that still run the worker."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = any(v.startswith(b"HOME=" + str(base).encode()) for v in environ)
        if ours and state != "Z" and (b"86402.25" in cmdline or b"harness.worker" in cmdline):
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Reaching outside: files, credentials, the run's results


LANDLOCK = pytest.mark.skipif(
    decide().landlock_abi == 0, reason="the kernel offers no Landlock: files and other processes are not fenced off"
)
OUTSIDE = "adversarial-writes-outside-its-directory"


@LANDLOCK
def test_writes_outside_its_directory_are_refused(corpus_run: dict[str, Any]) -> None:
    home = Path(pwd.getpwuid(REPO.stat().st_uid).pw_dir)  # the checkout owner's, as the module finds it
    targets = {"checkout": REPO / OUTSIDE, "home": home / OUTSIDE, "/tmp": Path("/tmp") / OUTSIDE}
    try:
        result = module(corpus_run, "writes_outside_its_directory")
        assert result["verdict"] == "error"
        for where, path in targets.items():
            assert f"{where}: Permission denied ({path})" in result["reason"], result["reason"]
        assert [p for p in targets.values() if p.exists()] == []
    finally:
        for path in targets.values():
            path.unlink(missing_ok=True)


@LANDLOCK
def test_credentials_of_the_judge_cannot_be_found(corpus_run: dict[str, Any]) -> None:
    """The judge holds a GITHUB_TOKEN and an AWS key, as a CI job does: the contestant's environment is scrubbed,
    and neither the judge's environment nor that of any other process (its ancestors included) can be read."""
    result = module(corpus_run, "hunts_for_tokens")
    reason = result["reason"]
    assert result["verdict"] == "error"
    own = set(reason.split("own environment ", 1)[1].split(";", 1)[0].split(", "))
    assert own <= {*KEEP_ENV, *WORKER_ENV, "HOME", "TMPDIR", "LC_CTYPE"}, own
    assert "; secrets in it: none; " in reason
    assert re.search(r"; judge \d+: Permission denied; 0 readable, [1-9]\d* refused of pids 1 to \d+", reason), reason
    assert not [value for value in FAKE_SECRETS.values() if value in reason]


@LANDLOCK
def test_the_results_and_the_store_of_the_run_cannot_be_read(corpus_run: dict[str, Any]) -> None:
    result = module(corpus_run, "reads_the_results")
    reason = result["reason"]
    assert result["verdict"] == "error"
    assert "the judge's command line: Permission denied" in reason, reason
    assert f"results {corpus_run['out']}: Permission denied" in reason, reason
    assert f"store {corpus_run['store'].parent}: Permission denied" in reason, reason
    assert "$HARNESS_STORE: not in its environment" in reason


def test_a_log_replaced_by_a_link_does_not_leak_the_judges_environment(corpus_run: dict[str, Any]) -> None:
    result = module(corpus_run, "swaps_its_log_for_a_link")
    assert result["verdict"] == "crash"
    assert "exited with code 5 before answering" in result["reason"]
    assert not [value for value in FAKE_SECRETS.values() if value in result["reason"]]
    assert "GITHUB_TOKEN" not in result["reason"]
