"""The adversarial corpus: hostile and broken contributions under tests/adversarial/modules/, one file each.

Two ways to judge them:
- `corpus_run`: one `harness run` over the whole corpus (unit gate), as a contributor's CI would, with the state of
  the checkout and the hashes of the harness taken before and after. Every module's import-time trick happens
  here, and every process-level verdict (crash, timeout, oom, error) is read from its results.
- `judge(names, gates, ...)`: the named modules in this process through the given gates (performance gate with
  short measurements), for tricks that only show in the integration or performance gate.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from harness.judge.integrity import Integrity
from harness.judge.isolation import decide
from harness.judge.runner import RunOptions, judge_all
from harness.judge.sandbox import Limits
from harness.kinds.norm import NormKind
from harness.perf.config import PerfSettings
from harness.registry.sources import module_sources
from harness.results.document import ResultsDocument
from harness.results.records import GateName, ModuleResult
from tests.conftest import CORPUS, REPO, run_harness, worker_processes

# allocates_too_much needs 9-16 s on this shared machine to fault in the 3 GiB that hit its cap (the kernel zeroes
# every page), so the limit leaves room above that: a slow machine must not turn its `oom` into a `timeout`.
TIMEOUT_S = 30.0
MEMORY_MB = 3072
SEED = 7
# Short measurements: the tests check verdicts, not figures (benchmarks/fidelity.py measures those).
# Credentials the judge of the corpus run holds, as a CI job's would: no contestant may see them (hunts_for_tokens).
FAKE_SECRETS = {
    "GITHUB_TOKEN": "ghp_adversarialFakeToken0123456789abcdefAB",
    "AWS_SECRET_ACCESS_KEY": "adversarialFakeSecretKey/0123456789abcdefghij",
}
FAST = PerfSettings(
    warmup_s=0.05, block_s=0.03, min_blocks=4, max_blocks=12, budget_s=0.4, samples=2, pool_bytes=4 * 2**20
)


def git_status() -> str:
    """`git status --porcelain` of the checkout, untracked files included; '' when it is not a git checkout."""
    proc = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else ""


@pytest.fixture(scope="session")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `harness run` over the whole corpus (unit gate), with the checkout and the harness checked around it."""
    isolation = decide()
    if not isolation.landlock_abi and isolation.user is None:
        pytest.skip(
            "this machine offers no way to stop a contestant writing the judge's files (no Landlock, judge not root): "
            "the hostile corpus would edit this checkout's harness; tests/adversarial/test_isolation.py shows the "
            "integrity check still catches such an edit"
        )
    out = tmp_path_factory.mktemp("corpus")
    sandbox = tmp_path_factory.mktemp("contestants")
    store = tmp_path_factory.mktemp("store") / "store.sqlite"
    status_before, hashes_before = git_status(), Integrity.take()
    proc = run_harness(
        "run",
        "--store",
        str(store),
        "--modules-dir",
        str(CORPUS),
        "--no-entry-points",
        "--out",
        str(out),
        "--timeout",
        str(TIMEOUT_S),
        "--memory-mb",
        str(MEMORY_MB),
        "--seed",
        str(SEED),
        "--gates",
        "unit",
        tmpdir=sandbox,
        env=FAKE_SECRETS,
    )
    document = json.loads((out / "results.json").read_text())
    return {
        "proc": proc,
        "out": out,
        "store": store,
        "doc": document,
        "leftover": set(worker_processes(sandbox)),
        "status": (status_before, git_status()),
        "hashes": (hashes_before, Integrity.take()),
    }


def corpus_module(run: dict[str, Any], name: str) -> dict[str, Any]:
    """The one result of `name` in the corpus run."""
    matches = [m for m in run["doc"]["modules"] if m["name"] == name]
    assert len(matches) == 1, f"expected one result for {name}, found {len(matches)}"
    return matches[0]


@pytest.fixture
def small_cases_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Norm perf cases reduced to the small one, so a measurement takes about a second."""
    original = NormKind.perf_cases
    monkeypatch.setattr(NormKind, "perf_cases", lambda self, variant: original(self, variant)[:1])
    yield


def judge(names: list[str], gates: tuple[str, ...], timeout_s: float = 120.0) -> dict[str, ModuleResult]:
    """The named corpus modules through `gates` in this process (short performance measurements)."""
    by_name = {s.name: s for s in module_sources(CORPUS, entry_points=False)}
    sources = [by_name[n] for n in names]
    gate_names = tuple(GateName(g) for g in gates)
    options = RunOptions(gates=gate_names, limits=Limits(timeout_s=timeout_s), seed=SEED, perf=FAST)
    results = judge_all(sources, options, ResultsDocument({}, {}, None).add)
    return {r.name: r for r in results}


def reasons(result: ModuleResult) -> str:
    """Every reason and case failure of a result, joined: what a trick's test searches for its name."""
    parts = [result.reason, *(g.reason for g in result.gates)]
    parts += [f for g in result.gates for c in g.cases for f in c.failures]
    return " | ".join(parts)


__all__ = ["CORPUS", "FAST", "corpus_module", "judge", "reasons"]
