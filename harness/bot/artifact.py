"""Unpacks a results artifact downloaded from a pull request's workflow run: untrusted bytes, so every member is
checked (name, type, size, layout) and every document validated before the results directory appears.

Allowed layouts (every other name is rejected):

- `results.json`, `changes.json`, `modules/<name>.json`: the merged gate results of pr-gates (`gate-results`);
- `gpu/results.json`, `gpu/modules/<name>.json`: one GPU run of gpu-gates (`gpu-results`);
- `shard-<n>/results.json`, `shard-<n>/modules/<name>.json`: one shard of pr-gates (`shard-<n>`), for inspection;
- directory entries for the folders above. `<name>` is a module name (a lower-case identifier), `<n>` 1 to 999.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from harness.bot.artifact_documents import MODULE_NAME, DocumentProblem, check_document

_NAME = MODULE_NAME.pattern
_FOLDER = r"gpu/|shard-[1-9][0-9]{0,2}/"
FILE_LAYOUT = re.compile(rf"changes\.json|(?:{_FOLDER})?(?:results\.json|modules/{_NAME}\.json)")
DIR_LAYOUT = re.compile(rf"(?:{_FOLDER})?modules/|{_FOLDER}")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 16
_OVERHEAD_PER_MEMBER = 1024  # local header, central directory entry and name: what a stored member adds to the ZIP
_UNTRUSTED = (
    "Nothing was unpacked. The artifact is untrusted input: the harness's workflows never write such an archive, "
    "so check whether the pull request changes .github/ or the harness, and re-run pr-gates from the base branch."
)


class ArtifactRejected(Exception):
    """The archive is not one the harness's workflows write; the message names the archive, member and problem."""


def _printable(text: str) -> str:
    """Untrusted text for a log line: control characters escaped, so no line can start a workflow command."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _reject(archive: Path, member: str | None, problem: str) -> ArtifactRejected:
    where = f"artifact {archive.name}" if member is None else f"artifact {archive.name}, member {member!r}"
    return ArtifactRejected(_printable(f"{where}: {problem}. {_UNTRUSTED}"))


def _name_problem(name: str) -> str | None:
    """What is wrong with a member's name, or None when it is one of the allowed layouts."""
    if "\\" in name:
        return "the name contains a backslash (a Windows path separator)"
    if _DRIVE.match(name):
        return "the name starts with a drive letter"
    if name.startswith("/"):
        return "the name is an absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "the name has a '..' component, which would write outside the results directory"
    if any(p in ("", ".") for p in name.rstrip("/").split("/")):
        return "the name has an empty or '.' component"
    layout = DIR_LAYOUT if name.endswith("/") else FILE_LAYOUT
    if not layout.fullmatch(name):
        return "the name is not an allowed layout (results.json, changes.json, modules/<name>.json, gpu/, shard-<n>/)"
    return None


def _type_problem(info: zipfile.ZipInfo) -> str | None:
    """What is wrong with a member's type: only regular files and plain directory entries are allowed."""
    if info.flag_bits & 0x1:
        return "the member is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compression method {info.compress_type} is not allowed (only stored and deflated)"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "the member is a symbolic link"
    kind = stat.S_IFMT(mode)
    if info.is_dir():
        return None if kind in (0, stat.S_IFDIR) else "the member is not a regular file or directory"
    if kind not in (0, stat.S_IFREG) or info.external_attr & 0x10:
        return "the member is not a regular file"
    return None


def _check_members(archive: Path, infos: list[zipfile.ZipInfo], max_bytes: int, max_files: int) -> None:
    """Every check that the central directory alone allows, before a byte is written."""
    if len(infos) > max_files:
        raise _reject(archive, None, f"it has {len(infos)} members, more than the limit of {max_files}")
    seen: set[str] = set()
    for info in infos:
        problem = _name_problem(info.filename) or _type_problem(info)
        if problem is None and info.filename in seen:
            problem = "the name appears twice in the archive"
        if problem is None and info.file_size > max_bytes:
            problem = f"it declares {info.file_size} bytes, more than the limit of {max_bytes}"
        if problem is not None:
            raise _reject(archive, info.filename, problem)
        seen.add(info.filename)
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise _reject(archive, None, f"its members declare {total} bytes in all, more than the limit of {max_bytes}")


def _extract(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Copy one member, counting bytes: a member holding more than it declares (a zip bomb) is rejected."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zf.open(info) as source, target.open("xb") as sink:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise _reject(archive, info.filename, f"it holds more than the {info.file_size} bytes it declares")
                sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        problem = f"its content does not match what it declares ({exc}): a damaged archive or a zip bomb"
        raise _reject(archive, info.filename, problem) from None
    if written != info.file_size:
        raise _reject(archive, info.filename, f"it holds {written} bytes, not the {info.file_size} it declares")


def _open(archive: Path, max_bytes: int, max_files: int) -> zipfile.ZipFile:
    if not archive.is_file():
        raise ArtifactRejected(f"artifact {archive}: no such file. Download the artifact first, then unpack it.")
    size = archive.stat().st_size
    if size > max_bytes + max_files * _OVERHEAD_PER_MEMBER:
        raise _reject(archive, None, f"the archive is {size} bytes, more than its members could be under the limits")
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _reject(archive, None, f"it is not a ZIP archive ({exc})") from None


def _fresh(into: Path) -> None:
    if into.is_symlink() or (into.exists() and (not into.is_dir() or any(into.iterdir()))):
        raise ArtifactRejected(f"{into} exists and is not an empty directory. Unpack into a new directory.")


def unpack(archive: Path, into: Path, *, max_bytes: int, max_files: int) -> list[Path]:
    """Check `archive`, extract it into the new directory `into` and validate its documents; on any rejection
    nothing is left behind. Returns the files written, in archive order."""
    _fresh(into)
    made = [d for d in (into.parent, *into.parent.parents) if not d.exists()]
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}.unpack-", dir=into.parent))
    try:
        with _open(archive, max_bytes, max_files) as zf:
            infos = zf.infolist()
            _check_members(archive, infos, max_bytes, max_files)
            files = [info for info in infos if not info.is_dir()]
            for info in files:
                _extract(archive, zf, info, staging / info.filename)
        for info in files:
            try:
                check_document(info.filename, (staging / info.filename).read_bytes())
            except DocumentProblem as exc:
                raise _reject(archive, info.filename, str(exc)) from None
        if into.exists():
            into.rmdir()
        staging.rename(into)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # the folders made for `into`, deepest first
            folder.rmdir()
        raise
    return [into / info.filename for info in files]
