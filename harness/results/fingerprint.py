"""The environment fingerprint every results document carries: where and how its figures were measured."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from harness.core.version import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_commit(root: Path = REPO_ROOT) -> tuple[str, bool]:
    """(commit, dirty) of the checkout the harness runs from; ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    if commit.returncode != 0:
        return "unknown", False
    return commit.stdout.strip(), bool(status.stdout.strip())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return "cpu"


def fingerprint(*, device: str, threads: int, dtypes: list[str], seed: int, seed_policy: str) -> dict[str, Any]:
    commit, dirty = git_commit()
    return {
        "harness_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "threads": threads,
        "dtypes": dtypes,
        "seed": seed,
        "seed_policy": seed_policy,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
