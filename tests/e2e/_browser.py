"""Headless Chromium for the end-to-end tests: Debian's browser, never a download.

``require_browser()`` skips the calling test module when Chromium or Playwright is
missing; ``in_browser()`` runs a test's steps on one page of a fresh browser context,
keeping the browser console in ``tests/artifacts/<name>-console.log`` and a full-page
screenshot when a step fails. The run's browser tests share one Chromium, closed by
``close_browser()`` after the last of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
#: Without the networking flags Chromium keeps trying Google's hosts on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Generous: a slow CI machine may take long to start a kernel; nothing here is timed.
WAIT_MS = 120_000
_NOT_LOCAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z]+://")


def require_browser() -> ModuleType:
    """Playwright's sync API, or a module-level skip saying what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(
            "Chromium is not installed at /usr/bin/chromium (Debian package 'chromium'; "
            "`make system-deps` installs it): skipping the browser tests",
            allow_module_level=True,
        )
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def in_browser(
    name: str,
    steps: Callable[[Any], None],
    *,
    height: int = 1200,
    local_only: bool = False,
) -> None:
    """Run ``steps(page)`` on a fresh page of headless Chromium.

    ``local_only`` aborts every request that would leave 127.0.0.1 (Voila's page links
    Font Awesome from a CDN, which this closed network would leave hanging).
    """
    sync_api = require_browser()
    sync_api.expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    context = _shared_browser(sync_api).new_context(viewport={"width": 1300, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        if local_only:
            page.on("requestfailed", lambda req: console.append(f"requestfailed: {req.url}"))
            page.route(_NOT_LOCAL, lambda route: route.abort())
        try:
            steps(page)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            raise
    finally:
        (ARTIFACTS / f"{name}-console.log").write_text("\n".join(console))
        context.close()


#: Playwright and the one Chromium every browser test of a run shares, while open.
_running: list[Any] = []


def _shared_browser(sync_api: ModuleType) -> Any:
    """The shared Chromium, launched on first use (a launch costs a second or two; each
    test still gets a fresh browser context: no cookies, storage or cache in common)."""
    if _running and not _running[1].is_connected():
        close_browser()  # it crashed: the next test gets a new one
    if not _running:
        playwright = sync_api.sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except BaseException:
            playwright.stop()
            raise
        _running[:] = [playwright, browser]
    return _running[1]


def close_browser() -> None:
    """Close the shared Chromium and stop Playwright. Called after the last browser test:
    while Playwright runs, its event loop counts as running, and asyncio.run() refuses."""
    if not _running:
        return
    playwright, browser = _running
    _running.clear()
    try:
        if browser.is_connected():
            browser.close()
    finally:
        playwright.stop()
