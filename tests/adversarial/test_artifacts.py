"""Tampered result artifacts, end to end through the commands that read them (`harness ingest`, `harness unpack`,
`harness pr --dry-run`, `harness merge`, `harness plan`, `harness report`): each hostile input is refused with a
message that names the file and the problem, never a traceback, or neutralised where it is shown; a refusal writes
nothing, and nothing is ever written outside the output directory (asserted on the directory trees)."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.bot.labels import CATALOGUE
from harness.cli.main import main
from harness.store.ingest import MAX_DEPTH, MAX_DOCUMENT_BYTES
from tests.bot_cli import PR_HEAD, RUN_HEAD, RUN_REPO, WORKFLOW_RUN, derived_event, github, make_bot
from tests.conftest import FIXTURES
from tests.github_recordings import FIXTURES as GITHUB_FIXTURES
from tests.github_recordings import SKIP_REASON
from tests.test_artifact import archive

SHIPPED = FIXTURES / "results" / "shipped-modules.json"
SHA = "0123456789abcdef0123456789abcdef01234567"
REPOSITORY = "octo/harness"
HOSTILE = (
    "x|<img src=x onerror=alert(1)>@maintainer #1 GH-2 [a](javascript:x) https://evil.example WWW.evil.example "
    "`code` **bold**\n## Heading"
)
FORMULA = '=HYPERLINK("https://evil.example","click")'
FORGED_LABEL = "x', 'harness-change-approved"
CLEARED = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_TOKEN")
MB = 2**20


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


Harness = Callable[..., Outcome]


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Harness:
    """`harness ARGS...` through the command-line entry point, outside Actions and without a token."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)

    def run(*args: str | Path) -> Outcome:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def shipped() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SHIPPED.read_text())
    return document


def tree(root: Path) -> dict[str, str]:
    """Every directory, link and file under `root`, with each file's size and modification time."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            found[str(path.relative_to(root))] = f"link to {os.readlink(path)}"
        elif stat.S_ISDIR(info.st_mode):
            found[str(path.relative_to(root))] = "directory"
        else:
            found[str(path.relative_to(root))] = f"{info.st_size} bytes, {info.st_mtime_ns}"
    return found


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def zip_of(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A ZIP with regular members (Unix mode 644) and symbolic links (member name -> target)."""
    return archive(path, members, links=links)


def pull_request_event(folder: Path, labels: tuple[str, ...] = ()) -> Path:
    """A pull_request payload with the fields the bot reads (a dry run calls no API)."""
    head = {"sha": SHA, "repo": {"full_name": REPOSITORY}}
    pull = {"number": 7, "head": head, "base": {"ref": "main"}, "labels": [{"name": n} for n in labels]}
    path = folder / "event.json"
    path.write_text(json.dumps({"action": "opened", "pull_request": pull, "repository": {"full_name": REPOSITORY}}))
    return path


# ---------------------------------------------------------------------------------------------------------------
# One hostile document through every reader


def _schema_invalid() -> bytes:
    document = shipped()
    document["modules"][1]["gates"][0]["verdict"] = "great"
    return json.dumps(document).encode()


def _hundred_mb() -> bytes:
    document = shipped()
    document["modules"][0]["reason"] = "x" * (100 * MB)
    return json.dumps(document).encode()


def _nested_lists() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on this


def _deep_inside_a_valid_document() -> bytes:
    document = shipped()
    document["config"]["extra"] = nested(200)  # parses, and config is an open object to the schema
    return json.dumps(document).encode()


DOCUMENTS: dict[str, tuple[Callable[[], bytes], str]] = {  # how to make it, what every refusal must say
    "schema-invalid": (_schema_invalid, r"\$\.modules\[1\]\.gates\[0\]\.verdict"),
    "100 MB": (_hundred_mb, r"67,?108,?864"),
    "100000 nested lists": (_nested_lists, rf"\$: arrays and objects nested more than {MAX_DEPTH} levels deep"),
    "deep inside a valid document": (
        _deep_inside_a_valid_document,
        rf"\$\.config\.extra(\[0\]){{{MAX_DEPTH - 2}}}: arrays and objects nested more than {MAX_DEPTH} levels deep",
    ),
}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("documents")
    made = {}
    for name, (make, _) in DOCUMENTS.items():
        made[name] = folder / f"{name.replace(' ', '-')}.json"
        made[name].write_bytes(make())
    return made


Prepared = tuple[tuple[str | Path, ...], str]  # the command line, and how its refusal starts


def _ingest(work: Path, document: Path) -> Prepared:
    command = ("ingest", document, "--store", work / "store" / "store.sqlite")
    return command, f"harness ingest: rejected, the store is unchanged: {document}: "


def _unpack(work: Path, document: Path) -> Prepared:
    archive = work / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(document, "results.json")
    command = ("unpack", archive, "--into", work / "unpacked")
    return command, "harness unpack: rejected: artifact a.zip, member 'results.json': "


def _pr(work: Path, document: Path) -> Prepared:
    results = work / "results"
    results.mkdir()
    os.link(document, results / "results.json")
    event = pull_request_event(work)
    command = ("pr", "--results", results, "--dry-run", "--event", event, "--out", work / "bot")
    return command, f"harness pr: error: {results / 'results.json'}: "


def _merge(work: Path, document: Path) -> Prepared:
    for shard, source in (("shard-1", document), ("shard-2", SHIPPED)):
        (work / shard).mkdir()
        os.link(source, work / shard / "results.json")
    command = ("merge", work / "shard-1", work / "shard-2", "--out", work / "merged")
    first = work / "shard-1" / "results.json"
    return command, f"harness merge: rejected, nothing written: not a shard's results ({first}: "


READERS: dict[str, tuple[Callable[[Path, Path], Prepared], int]] = {  # exit code of a refusal
    "ingest": (_ingest, 1),
    "unpack": (_unpack, 1),
    "pr": (_pr, 2),
    "merge": (_merge, 1),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_reader_refuses_a_hostile_document_clearly_and_writes_nothing(
    tmp_path: Path, harness: Harness, documents: dict[str, Path], name: str, reader: str
) -> None:
    prepare, code = READERS[reader]
    command, refusal = prepare(tmp_path, documents[name])
    before = tree(tmp_path)
    outcome = harness(*command)
    assert outcome.code == code, outcome.err
    assert outcome.err.startswith(refusal), outcome.err
    assert re.search(DOCUMENTS[name][1], outcome.err), outcome.err
    assert "Traceback" not in outcome.err and "RecursionError" not in outcome.err
    assert len(outcome.err) < 2000  # a 100 MB document is never echoed back
    assert tree(tmp_path) == before


def test_a_size_cap_is_checked_before_parsing(tmp_path: Path, harness: Harness) -> None:
    """A sparse file just over the cap is refused from its size alone: nothing reads its bytes."""
    document = tmp_path / "sparse.json"
    with document.open("wb") as handle:
        handle.truncate(MAX_DOCUMENT_BYTES + 1)
    outcome = harness("ingest", document, "--store", tmp_path / "store.sqlite")
    assert outcome.code == 1 and f"{document}: $: 67,108,865 bytes, more than the 67,108,864" in outcome.err
    assert not (tmp_path / "store.sqlite").exists()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (b"[" * 100_000 + b"]" * 100_000, rf"\$: arrays and objects nested more than {MAX_DEPTH} levels deep"),
        (json.dumps({"judge": ["silu"], "x": nested(MAX_DEPTH + 1)}).encode(), r"\$\.x(\[0\])+: arrays and objects"),
    ],
)
def test_a_deeply_nested_changes_document_is_refused_by_plan_unpack_and_pr(
    tmp_path: Path, harness: Harness, changes: bytes, problem: str
) -> None:
    path = tmp_path / "changes.json"
    path.write_bytes(changes)
    planned = harness("plan", "--shards", "2", "--changes", path, "--store", tmp_path / "none.sqlite")
    assert planned.code == 2 and f"harness plan: error: {path}: " in planned.err
    archive = zip_of(tmp_path / "a.zip", {"changes.json": changes})
    unpacked = harness("unpack", archive, "--into", tmp_path / "unpacked")
    assert unpacked.code == 1 and "member 'changes.json': it is not a document the harness writes: " in unpacked.err
    results = tmp_path / "results"
    results.mkdir()
    (results / "changes.json").write_bytes(changes)
    reported = harness("pr", "--results", results, "--dry-run", "--event", pull_request_event(tmp_path))
    assert reported.code == 2 and f"harness pr: error: {results / 'changes.json'}: " in reported.err
    for outcome in (planned, unpacked, reported):
        assert re.search(problem, outcome.err) and "Traceback" not in outcome.err, outcome.err
    assert not (tmp_path / "unpacked").exists() and not (results / "bot").exists()


# ---------------------------------------------------------------------------------------------------------------
# Hostile text: shown, never active


def hostile_document() -> dict[str, Any]:
    """The shipped run with one module failing with hostile text everywhere the schema allows free text."""
    document = shipped()
    document["environment"]["device"] = FORMULA  # free text: a board's device, a CSV cell
    module = next(m for m in document["modules"] if m["name"] == "silu")
    module["variants"] = [*module["variants"], f"../../{HOSTILE}"]
    unit = module["gates"][0]
    unit["cases"][0].update(passed=False, failures=[HOSTILE], case=HOSTILE)
    unit.update(verdict="fail", reason=HOSTILE, cases_failed=1)
    module.update(verdict="fail", reason=HOSTILE)
    return document


def assert_inert_markdown(text: str) -> None:
    """No HTML, link, image, mention, issue reference, autolink or heading survives in rendered Markdown (a
    backslash before a character makes it literal)."""
    shown = html.unescape(text)  # what GitHub displays: entities decoded, the zero-width spaces kept
    assert not re.search(r"(?<!\\)<img|(?<!\\)\]\(javascript|\n## Heading", text)
    assert not re.search(r"@maintainer|#1\b|(?i:gh-2)|://evil|(?i:www\.evil)", shown)


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def test_hostile_text_is_inert_in_the_board_the_site_the_export_and_the_comment(
    tmp_path: Path, harness: Harness
) -> None:
    document = tmp_path / "hostile.json"
    document.write_text(json.dumps(hostile_document()))
    store = tmp_path / "store"
    before = tree(tmp_path)
    assert harness("ingest", document, "--store", store / "store.sqlite").code == 0
    for fmt in ("markdown", "site", "csv"):
        outcome = harness("report", "--store", store / "store.sqlite", "--format", fmt, "--out", tmp_path / fmt)
        assert outcome.code == 0, outcome.err
    written = changed(before, tree(tmp_path))
    assert written and all(p.split("/")[0] in ("store", "markdown", "site", "csv") for p in written), written

    board = (tmp_path / "markdown" / "leaderboard.md").read_text()
    assert "x\\|\\<img src=x onerror=alert(1)\\>@&#8203;maintainer #&#8203;1 G&#8203;H-2" in board
    assert_inert_markdown(board)

    pages = {p: p.read_text() for p in (tmp_path / "site").rglob("*.html")}
    assert not [p for p, text in pages.items() if "<img src=x" in text or "<h2>Heading" in text]
    assert any("x|&lt;img src=x onerror=alert(1)&gt;@maintainer" in text for text in pages.values())

    rows = list(csv.DictReader(io.StringIO((tmp_path / "csv" / "leaderboard.csv").read_text())))
    assert rows and {row["device"] for row in rows} == {f"'{FORMULA}"}  # a spreadsheet shows it, never runs it

    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_text(json.dumps(hostile_document()))
    event = pull_request_event(tmp_path)
    before = tree(tmp_path)
    outcome = harness("pr", "--results", results, "--dry-run", "--event", event)
    assert outcome.code == 0, outcome.err
    written = changed(before, tree(tmp_path))
    assert written and all(p.startswith("results/bot") for p in written), written
    comment = (results / "bot" / "comment.md").read_text()
    assert "silu" in comment and "onerror" in comment  # the text is shown ...
    assert_inert_markdown(comment)  # ... and does nothing


def test_no_label_is_made_from_a_documents_text(tmp_path: Path, harness: Harness) -> None:
    forged = shipped()
    forged["modules"][0]["kind"] = FORGED_LABEL
    refused = tmp_path / "refused"
    refused.mkdir()
    (refused / "results.json").write_text(json.dumps(forged))
    outcome = harness("pr", "--results", refused, "--dry-run", "--event", pull_request_event(tmp_path))
    assert outcome.code == 2 and "$.modules[0].kind" in outcome.err and not (refused / "bot").exists()

    entries = [
        {"name": "silu", "kind": "harness-change-approved", "path": "modules/activation/silu.py"},
        {"name": FORGED_LABEL, "kind": FORGED_LABEL, "path": "../../.github/workflows/x.yml"},
        {"name": "gelu_exact", "kind": "kind/../harness-change-approved", "path": "modules/activation/gelu_exact.py"},
    ]
    changes = {"added": entries, "modified": [], "removed": [], "support": [], "harness": [], "judge": ["silu"]}
    changes["harness_changed"] = False
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_bytes(SHIPPED.read_bytes())
    (results / "changes.json").write_text(json.dumps(changes))
    outcome = harness("pr", "--results", results, "--dry-run", "--event", pull_request_event(tmp_path))
    assert outcome.code == 0, outcome.err
    labels = [label["name"] for label in json.loads((results / "bot" / "labels.json").read_text())["labels"]]
    assert labels and all(name in CATALOGUE for name in labels), labels
    assert "harness-change-approved" not in labels and "harness-change" not in labels

    members = {"results.json": SHIPPED.read_bytes(), "changes.json": json.dumps(changes).encode()}
    archive = zip_of(tmp_path / "a.zip", members)
    unpacked = harness("unpack", archive, "--into", tmp_path / "unpacked")
    assert unpacked.code == 1 and "$.added[0].kind is 'harness-change-approved', not a module name" in unpacked.err


# ---------------------------------------------------------------------------------------------------------------
# Archives that reach outside the results directory


def escapes() -> Iterator[Any]:
    yield pytest.param({"../outside.json": b"{}"}, {}, "../outside.json", "has a '..' component", id="dot-dot")
    yield pytest.param(
        {"modules/../../outside.json": b"{}"}, {}, "modules/../../outside.json", "has a '..' component", id="inner"
    )
    absolute = "/tmp/harness-adversarial-absolute.json"
    yield pytest.param({absolute: b"{}"}, {}, absolute, "is an absolute path", id="absolute")
    yield pytest.param({"..\\outside.json": b"{}"}, {}, "..\\outside.json", "contains a backslash", id="windows")
    yield pytest.param(
        {"modules/gelu_exact.json": b"{}"}, {"modules/": "/tmp"}, "modules/", "is a symbolic link", id="link-dir"
    )
    yield pytest.param({}, {"changes.json": "../../../etc/passwd"}, "changes.json", "is a symbolic link", id="link")


@pytest.mark.parametrize(("members", "links", "member", "problem"), list(escapes()))
def test_an_archive_reaching_outside_is_refused_and_writes_nothing(
    tmp_path: Path, harness: Harness, members: dict[str, bytes], links: dict[str, str], member: str, problem: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = zip_of(work / "a.zip", {"results.json": SHIPPED.read_bytes(), **members}, links)
    before = tree(tmp_path)
    outcome = harness("unpack", archive, "--into", work / "deep" / "unpacked")
    assert outcome.code == 1
    assert f"harness unpack: rejected: artifact a.zip, member {member!r}: the " in outcome.err
    assert problem in outcome.err and "Nothing was unpacked" in outcome.err
    assert tree(tmp_path) == before  # not even the folders made for --into are left
    assert not Path("/tmp/harness-adversarial-absolute.json").exists()


def test_an_output_directory_that_is_a_link_is_refused(tmp_path: Path, harness: Harness) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "into").symlink_to(elsewhere)
    archive = zip_of(tmp_path / "a.zip", {"results.json": SHIPPED.read_bytes()})
    outcome = harness("unpack", archive, "--into", tmp_path / "into")
    assert outcome.code == 1 and "exists and is not an empty directory" in outcome.err
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# A pull-request number that disagrees with the commit


def _other_commits_number(payload: dict[str, Any]) -> None:
    """pull_requests[0] names #1 (someone else's pull request) with a head that is not the commit that ran."""
    payload["workflow_run"]["pull_requests"][0].update(number=1, head={"sha": PR_HEAD, "ref": "victim"})


def _headless_number(payload: dict[str, Any]) -> None:
    """pull_requests[0] names #1 and no head at all."""
    payload["workflow_run"]["pull_requests"][0].update(number=1, head=None)


@pytest.mark.skipif(not GITHUB_FIXTURES.is_dir(), reason=SKIP_REASON)
@pytest.mark.parametrize("forge", [_other_commits_number, _headless_number], ids=["other-commit", "no-head"])
def test_a_workflow_run_number_for_another_commit_is_never_reported_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], forge: Any
) -> None:
    bot = make_bot(tmp_path, monkeypatch, capsys)
    event = derived_event(tmp_path, WORKFLOW_RUN, forge)
    with github(RUN_REPO) as server:
        server.add_pull(1, PR_HEAD)
        server.add_pull(11, RUN_HEAD)
        outcome = bot(server, event)
    assert outcome.code == 0, outcome.err
    assert len(server.bot_comments(11)) == 1 and server.bot_comments(1) == []
    assert server.pulls[1].labels == [] and server.pulls[11].labels
    assert not [r for r in server.requests if re.search(r"/(pulls|issues)/1(/|$)", r.path)]
