"""`harness unpack`: every archive the pull-request bot must refuse is refused with a message naming the archive, the
member and the problem, and leaves nothing behind; the archive the workflows write unpacks."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness.bot.artifact import ArtifactRejected, unpack
from harness.cli.main import main
from tests.conftest import FIXTURES

RESULTS = (FIXTURES / "results" / "shipped-modules.json").read_bytes()
MODULE = json.loads(RESULTS)["modules"][0]  # gelu_exact
CHANGES: dict[str, Any] = {
    "base": "a" * 40,
    "head": "b" * 40,
    "merge_base": "a" * 40,
    "added": [{"name": "gelu_exact", "kind": "activation", "path": "modules/activation/gelu_exact.py"}],
    "modified": [],
    "removed": [],
    "support": [],
    "harness_changed": False,
    "harness": [],
    "judge": ["gelu_exact"],
}
UNTRUSTED = (
    "Nothing was unpacked. The artifact is untrusted input: the harness's workflows never write such an archive, "
    "so check whether the pull request changes .github/ or the harness, and re-run pr-gates from the base branch."
)
MB = 1024 * 1024


def good_members() -> dict[str, bytes]:
    return {
        "results.json": RESULTS,
        "changes.json": json.dumps(CHANGES).encode(),
        "modules/gelu_exact.json": json.dumps(MODULE).encode(),
        "gpu/results.json": RESULTS,
    }


def archive(
    path: Path, members: dict[str, bytes], *, mode: int = stat.S_IFREG | 0o644, links: dict[str, str] | None = None
) -> Path:
    """A ZIP of `members` with Unix `mode`, plus symbolic-link members (name -> target)."""
    entries = [(name, data, mode) for name, data in members.items()]
    entries += [(name, target.encode(), stat.S_IFLNK | 0o777) for name, target in (links or {}).items()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 12, 2, 0, 0, 0))
            info.create_system = 3  # Unix: the mode lives in the high 16 bits of external_attr
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def expected(member: str | None, problem: str, name: str = "a.zip") -> str:
    where = f"artifact {name}" if member is None else f"artifact {name}, member {member!r}"
    return f"{where}: {problem}. {UNTRUSTED}"


def rejected(tmp_path: Path, zpath: Path, *, max_bytes: int = 16 * MB, max_files: int = 100) -> str:
    """Unpack must fail, and leave the parent folder as it was: no `into`, no staging directory."""
    before = sorted(p.name for p in tmp_path.iterdir())
    into = tmp_path / "results"
    with pytest.raises(ArtifactRejected) as info:
        unpack(zpath, into, max_bytes=max_bytes, max_files=max_files)
    assert not into.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return str(info.value)


def test_the_workflows_archive_unpacks(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", good_members())
    with zipfile.ZipFile(zpath, "a") as zf:
        zf.writestr(zipfile.ZipInfo("modules/"), b"")  # a directory entry, as some ZIP writers add
    files = unpack(zpath, tmp_path / "results", max_bytes=16 * MB, max_files=100)
    assert [f.relative_to(tmp_path / "results").as_posix() for f in files] == list(good_members())
    for name, data in good_members().items():
        assert (tmp_path / "results" / name).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "results"]


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../x", "the name has a '..' component, which would write outside the results directory"),
        ("modules/../../x.json", "the name has a '..' component, which would write outside the results directory"),
        ("/etc/x", "the name is an absolute path"),
        ("modules\\gelu_exact.json", "the name contains a backslash (a Windows path separator)"),
        ("C:/results.json", "the name starts with a drive letter"),
        ("./results.json", "the name has an empty or '.' component"),
        (
            "run.sh",
            "the name is not an allowed layout (results.json, changes.json, modules/<name>.json, gpu/, shard-<n>/)",
        ),
        (
            "modules/Gelu.json",
            "the name is not an allowed layout (results.json, changes.json, modules/<name>.json, gpu/, shard-<n>/)",
        ),
    ],
)
def test_names_outside_the_results_directory_are_rejected(tmp_path: Path, member: str, problem: str) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": RESULTS, member: b"{}"})
    assert rejected(tmp_path, zpath) == expected(member, problem)


def test_the_full_message_says_what_to_do(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"../x": b"{}"})
    assert rejected(tmp_path, zpath) == (
        "artifact a.zip, member '../x': the name has a '..' component, which would write outside the results "
        "directory. Nothing was unpacked. The artifact is untrusted input: the harness's workflows never write such "
        "an archive, so check whether the pull request changes .github/ or the harness, and re-run pr-gates from the "
        "base branch."
    )


def test_a_symlink_member_is_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": b"/etc/passwd"}, mode=stat.S_IFLNK | 0o777)
    assert rejected(tmp_path, zpath) == expected("results.json", "the member is a symbolic link")


def test_a_fifo_member_is_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": b""}, mode=stat.S_IFIFO | 0o644)
    assert rejected(tmp_path, zpath) == expected("results.json", "the member is not a regular file")


def test_a_duplicate_name_is_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": RESULTS})
    with pytest.warns(UserWarning), zipfile.ZipFile(zpath, "a") as zf:
        zf.writestr("results.json", RESULTS)
    assert rejected(tmp_path, zpath) == expected("results.json", "the name appears twice in the archive")


def test_too_many_members_are_rejected(tmp_path: Path) -> None:
    members = {f"modules/m{i}.json": b"{}" for i in range(4)}
    zpath = archive(tmp_path / "a.zip", members)
    assert rejected(tmp_path, zpath, max_files=3) == expected(None, "it has 4 members, more than the limit of 3")


def test_declared_sizes_over_the_limit_are_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": b" " * 2000})
    problem = "it declares 2000 bytes, more than the limit of 1000"
    assert rejected(tmp_path, zpath, max_bytes=1000) == expected("results.json", problem)
    zpath = archive(tmp_path / "a.zip", {"results.json": b" " * 600, "changes.json": b" " * 600})
    problem = "its members declare 1200 bytes in all, more than the limit of 1000"
    assert rejected(tmp_path, zpath, max_bytes=1000) == expected(None, problem)


def lie_about_size(path: Path, declared: int) -> None:
    """Rewrite the one member's uncompressed size in its local header and central directory entry."""
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = declared.to_bytes(4, "little")
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_a_zip_bomb_whose_declared_size_lies_is_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": b"0" * (64 * MB)})  # about 64 kB compressed
    lie_about_size(zpath, 100)
    problem = (
        "its content does not match what it declares (Bad CRC-32 for file 'results.json'): a damaged archive or a "
        "zip bomb"
    )
    assert rejected(tmp_path, zpath, max_bytes=MB) == expected("results.json", problem)


def test_an_invalid_results_document_is_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": json.dumps({"schema_version": "1.2.0"}).encode()})
    problem = "it does not match the results schema at $: 'environment' is a required property"
    assert rejected(tmp_path, zpath) == expected("results.json", problem)


def test_an_invalid_gpu_results_document_is_rejected(tmp_path: Path) -> None:
    doc = json.loads(RESULTS)
    doc["modules"][1]["verdict"] = "great"
    zpath = archive(tmp_path / "a.zip", {"gpu/results.json": json.dumps(doc).encode()})
    problem = (
        "it does not match the results schema at $.modules[1].verdict: 'great' is not one of "
        "['pass', 'fail', 'error', 'timeout', 'crash', 'oom', 'tampered', 'suspect']"
    )
    assert rejected(tmp_path, zpath) == expected("gpu/results.json", problem)


def test_not_json_and_nan_are_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"results.json": b'{"x": NaN}'})
    problem = "it is not strict JSON: NaN is not a number JSON allows"
    assert rejected(tmp_path, zpath) == expected("results.json", problem)


def test_a_module_document_for_another_module_is_rejected(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"modules/silu.json": json.dumps(MODULE).encode()})
    problem = "it holds the result of module 'gelu_exact', not of 'silu'"
    assert rejected(tmp_path, zpath) == expected("modules/silu.json", problem)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"judge": ["gelu_exact", "../../etc"]},
            "$.judge[1] is '../../etc', not a module name (a lower-case identifier)",
        ),
        ({"harness_changed": "no"}, "$.harness_changed is str, expected bool"),
        ({"added": [{"name": "x", "kind": "norm"}]}, "$.added[0].path is NoneType, expected str"),
    ],
)
def test_a_malformed_changes_document_is_rejected(tmp_path: Path, change: dict[str, Any], problem: str) -> None:
    zpath = archive(tmp_path / "a.zip", {"changes.json": json.dumps({**CHANGES, **change}).encode()})
    assert rejected(tmp_path, zpath) == expected("changes.json", problem)
    missing = {k: v for k, v in CHANGES.items() if k != "judge"}
    zpath = archive(tmp_path / "a.zip", {"changes.json": json.dumps(missing).encode()})
    assert rejected(tmp_path, zpath) == expected("changes.json", "$.judge is missing")


def test_control_characters_in_a_name_cannot_start_a_log_line(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"x\n::error::forged": b"{}"})
    message = rejected(tmp_path, zpath)
    assert "\n" not in message and "member 'x\\n::error::forged'" in message


def test_a_file_that_is_not_a_zip_is_rejected(tmp_path: Path) -> None:
    zpath = tmp_path / "a.zip"
    zpath.write_bytes(b"not a zip")
    assert rejected(tmp_path, zpath) == expected(None, "it is not a ZIP archive (File is not a zip file)")


def test_folders_made_for_the_results_directory_are_removed_on_rejection(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", {"../x": b"{}"})
    with pytest.raises(ArtifactRejected):
        unpack(zpath, tmp_path / "new" / "deeper" / "results", max_bytes=MB, max_files=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_a_directory_that_holds_files_is_never_written_into(tmp_path: Path) -> None:
    zpath = archive(tmp_path / "a.zip", good_members())
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactRejected, match="exists and is not an empty directory"):
        unpack(zpath, tmp_path / "results", max_bytes=16 * MB, max_files=100)
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["keep.txt"]


def test_the_command_exits_1_on_a_rejection_and_0_on_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = archive(tmp_path / "bad.zip", {"/etc/x": b"{}"})
    assert main(["unpack", str(bad), "--into", str(tmp_path / "out")]) == 1
    assert (
        capsys.readouterr().err
        == "harness unpack: rejected: " + expected("/etc/x", "the name is an absolute path", "bad.zip") + "\n"
    )
    good = archive(tmp_path / "good.zip", good_members())
    assert main(["unpack", str(good), "--into", str(tmp_path / "out"), "--max-mb", "8"]) == 0
    assert capsys.readouterr().out.endswith(f"unpacked 4 files into {tmp_path / 'out'}\n")
    assert json.loads((tmp_path / "out" / "changes.json").read_text()) == CHANGES
