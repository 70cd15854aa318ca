"""Playwright driving Debian's Chromium (headless) against pytest-django's live server.

Never `playwright install`: the tests use the system browser at CHROMIUM (default
/usr/bin/chromium) and skip, saying why, when it or the playwright package is absent.
Screenshots go to tests/browser/screenshots/ (ignored by git). CI sets BROWSER_TESTS_REQUIRED=1
so that a missing browser fails the run instead of skipping quietly.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
PHONE = {"width": 390, "height": 844}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    return None


@pytest.fixture(scope="package")
def chromium():
    reason = _missing()
    if reason and os.environ.get("BROWSER_TESTS_REQUIRED"):
        pytest.fail(f"browser tests required (BROWSER_TESTS_REQUIRED) but {reason}")
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    # The sync Playwright API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told this is safe (it is: the loop only drives the
    # browser). Only while the browser tests run (package scope), so the others keep the check.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()


@pytest.fixture
def phone(chromium, live_server):
    """A phone-sized page (390×844, touch) whose relative URLs go to the live server."""
    context = chromium.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        base_url=live_server.url,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def desktop(chromium, live_server):
    context = chromium.new_context(
        viewport={"width": 1280, "height": 800}, base_url=live_server.url
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
