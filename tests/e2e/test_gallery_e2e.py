"""The workshop gallery in a real browser: live results without reload, prompts and
names shown as text, the facilitator's hide control reaching every open gallery.

A rehearsal relay (relay → offline emulator) with participants whose name and prompt
hold HTML and script; two pages of headless Chromium (Debian's, never a download) show
the gallery while results arrive. Nothing is reloaded between the steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _browser import ARTIFACTS, WAIT_MS, in_browser, require_browser

from nbbanana.relay import Relay

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

sync_api = require_browser()
MODEL = "gemini-2.5-flash-image"
EVIL_NAME = '<img src=x onerror="window.__pwned=1">'
EVIL_PROMPT = "<script>window.__pwned=2</script> a banana in a <b>bold</b> hat"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with Relay(tmp_path, "emulator") as relay:
        yield relay


def _generate(relay: Relay, token: str, prompt: str) -> None:
    answer = httpx.post(
        f"{relay.base_url}/v1beta/models/{MODEL}:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": prompt}]}]},
        headers={"x-goog-api-key": token},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def test_gallery_updates_live_renders_text_and_hides_for_everyone(relay: Relay) -> None:
    evil, plain = relay.add_participants(2, names=[EVIL_NAME, "Ada"])
    _generate(relay, plain, "an early banana")  # in the first snapshot
    expect = sync_api.expect

    def steps(page: object) -> None:
        p = page  # type: ignore[assignment]
        p.goto(relay.base_url + "/gallery")
        expect(p.locator("#status")).to_have_text("live")
        cards = p.locator("figure.card")
        expect(cards).to_have_count(1)
        expect(cards.first.locator(".prompt")).to_have_text("an early banana")

        # A second viewer (the projector) open at the same time.
        projector = p.context.browser.new_page()
        projector.goto(relay.base_url + "/gallery")
        expect(projector.locator("#status")).to_have_text("live")

        # New results appear without a reload, newest first.
        p.evaluate("window.__loadedOnce = true")
        _generate(relay, evil, EVIL_PROMPT)
        expect(cards).to_have_count(2)
        newest = cards.first
        expect(newest.locator(".prompt")).to_have_text(EVIL_PROMPT)  # the markup, as text
        expect(newest.locator(".name")).to_have_text(EVIL_NAME)
        assert p.evaluate("window.__loadedOnce") is True  # same page: no reload happened
        assert p.evaluate("window.__pwned") is None
        assert newest.locator("b, script, img[src='x']").count() == 0
        expect(newest.locator("img")).to_have_js_property("complete", True)
        assert newest.locator("img").evaluate("img => img.naturalWidth") > 0
        expect(projector.locator("figure.card")).to_have_count(2)

        # Hide controls appear only for the facilitator; a wrong token is refused.
        expect(newest.locator("button.hide")).to_be_hidden()
        p.fill("#admin-token", "not-the-admin-token")
        p.click("#unlock")
        newest.locator("button.hide").click()
        expect(p.locator("#admin-message")).to_contain_text("admin token")
        expect(cards).to_have_count(2)
        p.fill("#admin-token", relay.admin_token or "")
        p.click("#unlock")
        newest.locator("button.hide").click()
        expect(cards).to_have_count(1, timeout=WAIT_MS)
        expect(projector.locator("figure.card")).to_have_count(1)  # gone for every viewer
        expect(projector.locator("figure.card .prompt")).to_have_text("an early banana")
        p.screenshot(path=str(ARTIFACTS / "gallery.png"))

    in_browser("gallery", steps, height=900, local_only=True)
    assert [i["prompt"] for i in relay.ledger.gallery()] == ["an early banana"]
