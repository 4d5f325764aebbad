"""Headless Chromium for the dashboard tests and benchmark (Debian's ``chromium`` package).

The browser loads only the router on 127.0.0.1; with no way out to the internet a page
that asked for a CDN asset would show it as a failed request and a console error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("HERD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("HERD_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts"
)


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def require_browser() -> None:
    """Skip, or fail when ``HERD_REQUIRE_BROWSER=1`` (CI sets it)."""
    why = browser_missing()
    if why is None:
        return
    if os.environ.get("HERD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}, but HERD_REQUIRE_BROWSER=1")
    pytest.skip(why)


# What the security middleware sends: the page must work under it (no inline scripts,
# styles or event handlers). Tests add it to the page's response themselves so they
# check the dashboard whatever the router's middleware does.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def strict_csp(context: Any) -> None:
    """Serve every dashboard page of ``context`` with :data:`STRICT_CSP`."""

    def handle(route: Any) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": STRICT_CSP}
        route.fulfill(response=response, headers=headers)

    context.route("**/dashboard", handle)


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


class PageProblems:
    """Console errors, uncaught exceptions and failed requests of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("requestfailed", self._failed)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _failed(self, request: Any) -> None:
        # Closing a page aborts its live-events stream: that is not a failure.
        if "/dashboard/events" not in request.url:
            self.errors.append(f"request failed: {request.url} {request.failure}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (import this fixture into the module)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
