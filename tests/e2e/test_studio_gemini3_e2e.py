"""The studio's Gemini 3 features in a real browser: JupyterLab, headless Chromium.

In the isolated JupyterLab the studio tests share (``conftest.py``; no API key: the
offline emulator), opens its own copy of the studio notebook, and checks that the model
picker lists the emulator's models, picks Nano Banana Pro, 4K, "Show thoughts" and
Google Search grounding (controls that appear only for models that take them), uploads
14 reference images (Pro's limit; a 15th is refused with the model's guidance), runs,
and checks the answer: a 4K image, the thoughts collapsed and marked as not the answer,
the sources listed with their links, and the search suggestions shown. Screenshots go
to ``tests/artifacts/studio-gemini3-*.png``.

Uses Debian's Chromium (``/usr/bin/chromium``); skipped when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _browser import ARTIFACTS, in_browser, require_browser
from _imagegen import jpeg_bytes, photo_like

from nbbanana.models import get_model
from nbbanana.widgets._prompt import aspect_ratio_options

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PRO = "gemini-3-pro-image"
REFERENCES = get_model(PRO).max_reference_images  # 14

sync_api = require_browser()

from _jupyter import JupyterLab, open_studio_in_lab  # noqa: E402


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Square photo-like JPEGs: one more than Pro takes."""
    work = tmp_path_factory.mktemp("e2e-gemini3")
    paths = []
    for n in range(REFERENCES + 1):
        path = work / f"ref-{n + 1:02d}.jpg"
        path.write_bytes(jpeg_bytes(photo_like(480, 480, seed=40 + n), 85))
        paths.append(path)
    return paths


def test_studio_gemini3_features(lab: JupyterLab, references: list[Path]) -> None:
    in_browser(
        "studio-gemini3",
        lambda page: _drive(page, sync_api.expect, lab, references),
        height=2600,
    )


def _drive(page, expect, lab: JupyterLab, references: list[Path]):  # type: ignore[no-untyped-def]
    width, height = get_model(PRO).output_size("1:1", "4K")

    studio = open_studio_in_lab(page, expect, lab, "studio_gemini3.ipynb")

    # The picker lists what the emulator serves (its models.list), Pro among them.
    model = studio.locator(".nbb-model select")
    # (ipywidgets numbers its <option>s: they are found by their labels.)
    expect(model.locator(f"option:has-text('({PRO})')")).to_have_count(1)
    expect(model.locator("option:has-text('-preview')")).to_have_count(0)
    # Nano Banana 2 Lite has no published price: its entry says so.
    expect(model.locator("option:has-text('gemini-3.1-flash-lite-image')")).to_contain_text(
        "cost unknown"
    )
    model.select_option(label=f"{get_model(PRO).name} ({PRO})")
    size = studio.locator(".nbb-size select")
    expect(size.locator("option")).to_have_text(["1K", "2K", "4K"])
    size.select_option(label="4K")
    square = next(label for label, value in aspect_ratio_options(PRO, "4K") if value == "1:1")
    studio.locator(".widget-dropdown:has-text('Aspect') select").select_option(label=square)
    # Pro always thinks (no level to choose) and takes Google Search grounding.
    expect(studio.locator(".nbb-thinking")).to_be_hidden()
    studio.locator(".nbb-show-thoughts input").check()
    studio.locator(".nbb-grounding input").check()

    # 14 references, Pro's limit, then a 15th: refused with the model's guidance.
    studio.locator(".nbb-upload-input").set_input_files([str(p) for p in references[:-1]])
    ready = studio.locator(".nbb-item.nbb-state-ready")
    expect(ready).to_have_count(REFERENCES)
    studio.locator(".nbb-upload-input").set_input_files(str(references[-1]))
    refused = studio.locator(".nbb-item.nbb-state-error .nbb-item-error")
    expect(refused).to_contain_text("accepts at most 14")
    expect(refused).to_contain_text("up to 6 objects and 5 people")
    studio.locator(".nbb-item.nbb-state-error button").click()
    expect(studio.locator(".nbb-item")).to_have_count(REFERENCES)
    # 14 references are a compact grid of thumbnails, not a long column of cards.
    items = studio.locator(".nbb-upload-items")
    expect(items).to_have_class("nbb-upload-items nbb-layout-grid")
    grid = items.bounding_box()
    assert grid is not None and grid["height"] < 600, grid
    page.screenshot(path=str(ARTIFACTS / "studio-gemini3-1-ready.png"), full_page=True)

    studio.locator(".nbb-prompt textarea").fill(
        "A poster combining these objects, with today's weather in Lisbon"
    )
    studio.locator("button.nbb-run").click()
    after = studio.locator("img.nbb-after-img")
    expect(after).to_have_attribute("data-width", str(width))
    expect(after).to_have_attribute("data-height", str(height))
    expect(studio.locator(".nbb-status")).to_contain_text("Done in")
    expect(studio.locator(".nbb-error-box")).to_have_text("")

    # Thoughts: collapsed, and marked as not the answer.
    thoughts = studio.locator(".nbb-answer details.nbbanana-thoughts")
    expect(thoughts).to_have_count(1)
    expect(thoughts).not_to_have_attribute("open", "")
    expect(thoughts.locator("summary")).to_contain_text("not the answer")
    expect(thoughts.locator("img")).to_be_hidden()  # the interim image stays folded away
    # Sources, each a link, then the search suggestions.
    sources = studio.locator(".nbb-answer-sources li a")
    expect(sources.first).to_be_visible()
    assert sources.count() >= 1
    for n in range(sources.count()):
        assert (sources.nth(n).get_attribute("href") or "").startswith("https://")
    page.screenshot(path=str(ARTIFACTS / "studio-gemini3-2-answer.png"), full_page=True)
    thoughts.locator("summary").click()
    expect(thoughts.locator("img").first).to_be_visible()
    studio.locator(".nbb-answer").screenshot(path=str(ARTIFACTS / "studio-gemini3-3-thoughts.png"))
    thoughts.locator("summary").click()  # folded again for the picture of the studio

    # An answer with several images: a strip picks the After image (and the next input).
    studio.locator(".nbb-prompt textarea").fill("Three variations of this poster")
    studio.locator("button.nbb-run").click()
    picks = studio.locator("button.nbb-pick")
    expect(picks).to_have_count(3)
    expect(picks.first).to_have_text("Image 1 ●")
    picks.nth(1).click()
    expect(picks.nth(1)).to_have_text("Image 2 ●")
    expect(studio.locator(".nbb-status")).to_contain_text("Image 2 of 3 is the After image")
    # The gauge says what the next run does with it: a new chat, not the chat history.
    summary = studio.locator(".nbb-upload-summary")
    expect(summary).to_contain_text("Next request: image 2 of 3 of turn 2")
    expect(summary).to_contain_text("a new chat starts from it")
    page.screenshot(path=str(ARTIFACTS / "studio-gemini3-4-several.png"), full_page=True)
    studio.locator(".nbb-compare-view").screenshot(
        path=str(ARTIFACTS / "studio-gemini3-5-compare.png")
    )
    studio.locator(".nbb-answer").screenshot(path=str(ARTIFACTS / "studio-gemini3-6-strip.png"))
