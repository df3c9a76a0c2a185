"""Repository-relative paths and links built only from checked parts, never from raw untrusted text.

A module file's path comes from changes.json or from the results document's `source` made relative to the tree
the modules came from; either way it is accepted only when it is a plain relative path (no '..', no absolute path,
no character outside a small set), so it can go into an annotation or a link without escaping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from harness.bot.inputs import ChangeSet

_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
_SAFE_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+=?&-]*)?")
_REPOSITORY = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
DEFAULT_SERVER = "https://github.com"


def safe_relative(path: str) -> str | None:
    """`path` when it is a plain relative path to a .py file inside the repository, else None."""
    parts = PurePosixPath(path).parts
    if not _SAFE_PATH.fullmatch(path) or not path.endswith(".py") or any(p in (".", "..") for p in parts):
        return None
    return path


def relative_source(source: str, config: Mapping[str, Any]) -> str | None:
    """A module's `source` relative to the tree it came from (config.modules_from, else modules_dir's parent)."""
    root = config.get("modules_from") or (
        str(PurePosixPath(config["modules_dir"]).parent) if isinstance(config.get("modules_dir"), str) else None
    )
    if not isinstance(root, str) or not PurePosixPath(source).is_absolute():
        return None
    try:
        relative = PurePosixPath(source).relative_to(PurePosixPath(root))
    except ValueError:
        return None
    return safe_relative(str(relative))


def module_paths(document: Mapping[str, Any], changes: ChangeSet | None) -> dict[str, str]:
    """Module name -> repository-relative path of its file, for every module whose path is safely known."""
    listed = {f.name: f.path for f in (changes.added + changes.modified if changes else ())}
    paths: dict[str, str] = {}
    for module in document["modules"]:
        from_changes = listed.get(module["name"])
        path = safe_relative(from_changes) if from_changes else None
        path = path or relative_source(module["source"], document["config"])
        if path is not None:
            paths[module["name"]] = path
    return paths


def safe_url(url: str | None) -> str | None:
    """`url` when it is an https URL made only of characters that cannot end a Markdown link, else None."""
    return url if url is not None and _SAFE_URL.fullmatch(url) else None


def file_url(repository: str | None, sha: str, path: str, run_url: str | None) -> str | None:
    """The module file at `sha` on the server the run is on (github.com without a run URL); None unless every
    part checks out."""
    if repository is None or not _REPOSITORY.fullmatch(repository) or not _SHA.fullmatch(sha):
        return None
    checked = safe_url(run_url)
    server = DEFAULT_SERVER
    if checked is not None:
        parts = urlsplit(checked)
        server = f"{parts.scheme}://{parts.netloc}"
    return safe_url(f"{server}/{repository}/blob/{sha}/{path}")
