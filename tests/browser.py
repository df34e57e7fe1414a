"""A real browser for the web UI's tests and bench: Debian's chromium driven by Playwright for Python.

Playwright's own browser download cannot reach the internet here (and CI should not need it), so the browser is
the system's `/usr/bin/chromium` (`make system-packages` installs it); `--no-sandbox` because the tests run as
root. Tests that need it are skipped, saying why, where neither is installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("DAGWRIGHT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def require() -> None:
    """Skip the calling test when there is no browser to drive."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium: apt-get install chromium (make system-packages)")
    pytest.importorskip("playwright.sync_api")


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()
