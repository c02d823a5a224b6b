"""`make demo` seen in a real browser: headless Chromium opens the inbox after the sample traffic.

Needs Debian's `chromium` (CI's .ci/run installs it); CHROMIUM=/path/to/chrome points elsewhere.
Without it the tests are skipped, with the reason shown, except in CI (CI=true), where they fail.
SCREENSHOT=docs/inbox.png, SCREENSHOT_CARD=docs/card.png and SCREENSHOT_KINDS=docs (one
card-<kind>.png per kind of card) also save the README's pictures (`make screenshot`).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from starlette.applications import Starlette
from starlette.testclient import TestClient

from demo_app.app import FAILURES
from demo_app.inbox import KINDS_TITLE, inbox_routes
from lark_alert_middleware.cli import main

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
GREEN = "rgb(46, 161, 33)"
BLUE = "rgb(51, 112, 255)"
SPLIT = "500 POST /orders/{order_id}/split"
# Each kind of card on the demo's /_alerts/kinds page, in its order: what its title says before
# the service, its header's colour, and a line of its body that only this kind has.
KIND_CARDS = {
    "new": (f"🔴 🆕 {SPLIT}", RED, "New: not seen in the last 14 days"),
    "back": (f"🔴 🔁 {SPLIT}", RED, "Back after 3 days 2 h"),
    "repeated": (f"🔴 {SPLIT}", RED, "Repeated 3 times since the previous alert"),
    "escalation": (f"🔴 📈 {SPLIT}: now 1,042 times in 4 min", RED, "(crossed 1,000)"),
    "recovered": (f"🟢 {SPLIT}: quiet for 10 min", GREEN, "Quiet for 10 min, after 1,234 times"),
    "summary": ("📋 Daily summary: 1,551 errors", BLUE, "… and 2 more kinds"),
}
# The sample card of the sources a request does not make (`lark-alert preview --source`).
SOURCE_CARDS = {
    "log": ("🔴 payment provider timed out, order 42 left unpaid", RED, "shop.payments"),
    "relay": ("🔴 HighErrorRate (instance=checkout-2:8000)", RED, "Silence"),
}
README_WIDTH = 520  # the pictures' viewport: cards 472 pixels wide, legible where the README shows them


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


@pytest.fixture
def narrow_page(browser: Browser) -> Iterator[Page]:
    """A page as wide as the README's pictures of cards."""
    opened = browser.new_page(viewport={"width": README_WIDTH, "height": 900})
    yield opened
    opened.close()


def lacks_emoji_font() -> bool:
    """Where fontconfig can tell, whether no font has 📈 (the pictures would show empty boxes)."""
    if shutil.which("fc-list") is None:
        return False
    fonts = subprocess.run(["fc-list", ":charset=1f4c8"], capture_output=True, text=True, check=False)
    return not fonts.stdout.strip()


def save_picture(png: bytes, path: str | Path) -> None:
    """Write a README picture as a 256-colour PNG: to the eye the same, a third of the size."""
    if lacks_emoji_font():
        pytest.fail("no font has the cards' emoji (📈): install fonts-noto-color-emoji, then retake")
    from PIL import Image  # only `make screenshot` installs Pillow (the docs extra)

    colours = Image.open(io.BytesIO(png)).convert("RGB")
    colours.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def header_colour(card: Locator) -> str:
    return str(card.locator("header").evaluate("element => getComputedStyle(element).backgroundColor"))


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
        save_picture(page.screenshot(), os.environ["SCREENSHOT"])

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
            save_picture(card.screenshot(), os.environ["SCREENSHOT_CARD"])
    finally:
        phone.close()


def test_the_demo_s_page_of_kinds_shows_each_kind_of_card_in_its_colour(narrow_page: Page) -> None:
    with TestClient(Starlette(routes=inbox_routes(None))) as client:
        kinds_page = client.get("/_alerts/kinds")
    assert kinds_page.status_code == 200
    narrow_page.set_content(kinds_page.text)
    assert narrow_page.title() == KINDS_TITLE
    cards = narrow_page.locator("article.lark-card").all()
    assert len(cards) == len(KIND_CARDS)
    for card, (kind, (title, colour, line)) in zip(cards, KIND_CARDS.items(), strict=True):
        assert card.locator("header").inner_text().split(" · ")[0] == title, kind
        assert header_colour(card) == colour, kind
        assert line in card.inner_text(), kind
    assert narrow_page.evaluate("document.documentElement.scrollWidth") <= README_WIDTH
    if os.environ.get("SCREENSHOT_KINDS"):
        for card, kind in zip(cards, KIND_CARDS, strict=True):
            save_picture(card.screenshot(), Path(os.environ["SCREENSHOT_KINDS"], f"card-{kind}.png"))


@pytest.mark.parametrize("source", SOURCE_CARDS)
def test_the_sample_card_of_a_source_renders_with_its_title_and_colour(
    narrow_page: Page, tmp_path: Path, source: str
) -> None:
    title, colour, line = SOURCE_CARDS[source]
    page_file = tmp_path / "card.html"
    assert main(["preview", "--source", source, "--html", str(page_file)]) == 0
    narrow_page.goto(page_file.as_uri())
    card = narrow_page.locator("article.lark-card")
    assert card.locator("header").inner_text().split(" · ")[0] == title
    assert header_colour(card) == colour
    assert line in card.inner_text()
    assert narrow_page.evaluate("document.documentElement.scrollWidth") <= README_WIDTH
    if os.environ.get("SCREENSHOT_KINDS"):
        save_picture(card.screenshot(), Path(os.environ["SCREENSHOT_KINDS"], f"card-{source}.png"))
