"""Browser fixtures: Debian's Chromium driven through Playwright (tests/browser/).

Playwright's own browser downloads are never used: `scripts/test` installs Debian's
`chromium` package (scripts/lib.sh `ensure_chromium`) and the fixtures launch that binary.
Tests without it (no /usr/bin/chromium, or no `playwright` package) are skipped with the
reason, so a machine set up by hand still runs the rest of the suite.

    browser   session-scoped: one headless Chromium for the whole run
    page      a fresh context and page per test, 1280x800; `@pytest.mark.viewport(360, 740)`
              gives a test a phone-sized one (the width every page must stay usable at)

Every console error and uncaught page error fails the test (`page.errors` lists them),
since a Content-Security-Policy violation shows up only there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
#: Playwright's default wait (actions and expect), in ms: generous, test machines are slow.
TIMEOUT_MS = 15_000
DESKTOP = (1280, 800)
PHONE = (360, 740)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    marker = request.node.get_closest_marker("viewport")
    width, height = marker.args if marker is not None else DESKTOP
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)
