"""Headless Chromium for the site tests: Debian's packaged `chromium`, driven by Playwright's Python package.

Playwright's own browser downloads are not used (`playwright install` needs the network); the launch points
`executable_path` at the packaged binary. Without chromium or playwright the tests skip with what to install, except
under CI (the `CI` environment variable set), where a missing browser fails: CI must never pass without having
looked at the site.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

INSTALL_CHROMIUM = "install Debian's chromium: `apt-get update && apt-get install -y chromium`"
INSTALL_PLAYWRIGHT = "install Playwright's Python package: `.venv/bin/pip install -e '.[dev]'` (playwright==1.65.2)"


def missing() -> str | None:
    """What the browser tests lack, as an instruction, or None when chromium and playwright are both there."""
    lacking = []
    if importlib.util.find_spec("playwright") is None:
        lacking.append(f"the playwright package is missing: {INSTALL_PLAYWRIGHT}")
    if shutil.which("chromium") is None:
        lacking.append(f"no `chromium` on PATH: {INSTALL_CHROMIUM}")
    return "; ".join(lacking) or None


def require() -> str:
    """The chromium executable; skips the test when something is missing, or fails it when CI is set."""
    lacking = missing()
    if lacking:
        message = f"headless browser tests cannot run: {lacking}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: browser tests are never skipped in CI)", pytrace=False)
        pytest.skip(message)
    executable = shutil.which("chromium")
    assert executable is not None
    return executable


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (`--no-sandbox`: CI containers run as root, where Chromium's sandbox cannot start)."""
    executable = require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()
