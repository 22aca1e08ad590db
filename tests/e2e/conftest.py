"""End-to-end fixtures: Careline under uvicorn on a fixed loopback port (so it can be
restarted in place) and Debian's Chromium driven by Playwright.

CI installs the browser with `apt-get install -y chromium`; `CARELINE_CHROMIUM` overrides its
path. Without a browser these tests are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.server import serve

CHROMIUM = os.environ.get("CARELINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set CARELINE_CHROMIUM)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright for Python is a dev dependency"
)


@pytest.fixture
def backend() -> str:
    """The browser tests exercise the widget; both databases are covered by the socket
    tests, so these run on the embedded default only."""
    return "sqlite"


def serve_on(app: FastAPI, port: int) -> contextlib.AbstractAsyncContextManager[str]:
    return serve(app, port)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()
