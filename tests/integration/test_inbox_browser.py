"""`make demo` seen in a real browser: headless Chromium opens the inbox after the sample traffic.

Needs Debian's `chromium` (CI's .ci/run installs it); CHROMIUM=/path/to/chrome points elsewhere.
Without it the tests are skipped, with the reason shown, except in CI (CI=true), where they fail.
SCREENSHOT=docs/inbox.png also saves the README's screenshot.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from demo_app.app import FAILURES

from ..conftest import card_title, title_subject, wait_until
from .conftest import Process
from .test_demo import EXPECTED_TITLES

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium dials out at start, which a closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RED = "rgb(245, 74, 69)"
ORANGE = "rgb(245, 120, 10)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        missing = (
            f"the browser test needs Chromium, and there is none at {CHROMIUM}: install Debian's package "
            "(`sudo apt-get install chromium`; .ci/run does) or set CHROMIUM to a Chromium or Chrome binary"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(missing)  # in CI a missing browser must never let the test stop running unnoticed
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 800, "height": 1100})
    yield opened
    opened.close()


def titles(page: Page) -> list[str]:
    return [
        title_subject(title.strip()) for title in page.locator("article.lark-card > header").all_inner_texts()
    ]


def test_the_inbox_shows_the_demo_cards_as_lark_would_newest_first(
    spawn: Callable[..., Process], page: Page, tmp_path: Path
) -> None:
    demo = spawn("demo_app", "--port", "0")
    output = demo.wait_for("Serving until Ctrl-C.")
    match = re.search(r"Inbox:\s+(http://\S+/_alerts)", output)
    assert match, output
    inbox_url = match[1]

    page.goto(inbox_url)
    assert page.title() == "Lark inbox"
    assert sorted(titles(page)) == sorted(EXPECTED_TITLES)
    header = page.locator("article.lark-card > header", has_text="502 GET /inventory/{sku}")
    assert header.evaluate("element => getComputedStyle(element).backgroundColor") == RED
    crash = page.locator("article.lark-card", has_text="500 GET /orders/{order_id}/total")
    assert "ZeroDivisionError" in crash.inner_text()
    assert crash.locator("pre code", has_text="in split_total").count() == 1
    page.screenshot(path=str(tmp_path / "inbox.png"))
    if os.environ.get("SCREENSHOT"):
        page.screenshot(path=os.environ["SCREENSHOT"])

    base_url = inbox_url.removesuffix("/_alerts")
    page.goto(base_url)
    assert page.locator("table a, table button").count() == len(FAILURES)
    assert page.locator("a", has_text="the inbox").get_attribute("href") == "/_alerts"

    # A new kind of failure, from the browser, is the newest card after a reload.
    assert page.goto(f"{base_url}/search").status == 422  # type: ignore[union-attr]

    def cards_after_reload() -> int:
        page.goto(inbox_url)
        return page.locator("article.lark-card").count()

    wait_until(lambda: cards_after_reload() == 9, timeout=30, interval=0.2, what="the new card in the inbox")
    assert titles(page)[0] == "422 GET /search"
    newest = page.locator("section.entry").first
    assert newest.locator("header").evaluate("element => getComputedStyle(element).backgroundColor") == ORANGE

    raw = newest.locator("pre.raw")
    assert not raw.is_visible()
    newest.locator("summary", has_text="Raw JSON").click()
    assert raw.is_visible()
    assert card_title(json.loads(raw.inner_text())) == "422 GET /search"

    assert demo.interrupt() == 0, demo.output()


def test_the_default_card_preview_reads_well_on_a_phone_sized_screen(
    browser: Browser, tmp_path: Path
) -> None:
    from lark_alert_middleware.cli import main

    page_file = tmp_path / "card.html"
    assert main(["preview", "--html", str(page_file)]) == 0
    phone = browser.new_page(viewport={"width": 420, "height": 1400})
    try:
        phone.goto(page_file.as_uri())
        card = phone.locator("article.lark-card").first
        assert (
            title_subject(card.locator("header").inner_text().strip()) == "500 POST /orders/{order_id}/split"
        )
        assert card.locator("header").evaluate("element => getComputedStyle(element).backgroundColor") == RED
        assert card.locator("pre code", has_text="ZeroDivisionError").count() >= 1
        assert "[redacted authorization]" in card.inner_text()
        # Nothing overflows the screen sideways except inside scrollable code blocks.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 420
        if os.environ.get("SCREENSHOT_CARD"):
            card.screenshot(path=os.environ["SCREENSHOT_CARD"])
    finally:
        phone.close()
