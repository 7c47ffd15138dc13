"""The studio in a real browser: JupyterLab, headless Chromium, a 30 MB photo.

In the isolated JupyterLab the studio tests share (``conftest.py``: default websocket
limits, no API key: offline emulator), opens a notebook showing ``nbbanana.studio()``,
uploads a ~30 MB JPEG through the uploader's file input, checks the gauge shows the
fitted size and that the bytes arrived intact, runs an edit, checks the after-image,
runs a second turn (the gauge then describes that turn's image), branches from the
first turn and runs again (every turn stays in the history), and saves. Screenshots go
to ``tests/artifacts/``; the README's ``docs/studio.png`` is written when missing or
when ``NBBANANA_UPDATE_SCREENSHOT=1``.

Uses Debian's Chromium (``/usr/bin/chromium``); the test is skipped when it is missing,
and never downloads a browser.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest
from _browser import ARTIFACTS, in_browser, require_browser
from _imagegen import jpeg_bytes, photo_like
from PIL import Image

from nbbanana.models import DEFAULT_MODEL, get_model
from nbbanana.widgets._prompt import aspect_ratio_options

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
README_SCREENSHOT = HERE.parents[1] / "docs" / "studio.png"
README_SCREENSHOT_MAX_BYTES = 300_000
MODEL = DEFAULT_MODEL  # what nbbanana.studio() uses offline
ASPECT = "3:2"

sync_api = require_browser()

from _jupyter import JupyterLab, open_studio_in_lab  # noqa: E402


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48 MP photo-like JPEG of about 30 MB (three times the 10 MiB websocket cap)."""
    path = tmp_path_factory.mktemp("e2e") / "big-photo.jpg"
    path.write_bytes(jpeg_bytes(photo_like(8000, 6000, seed=3), 98))
    assert path.stat().st_size > 25_000_000
    return path


def _shrink_png(data: bytes, max_bytes: int) -> bytes:
    """A screenshot as a PNG under ``max_bytes``: palette colours, then smaller if needed."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            buffer, format="PNG", optimize=True
        )
        if buffer.tell() <= max_bytes or image.width < 400:
            return buffer.getvalue()
        image = image.resize(
            (image.width * 4 // 5, image.height * 4 // 5), Image.Resampling.LANCZOS
        )


def test_studio_uploads_runs_and_branches(lab: JupyterLab, photo: Path) -> None:
    expected_size = get_model(MODEL).output_size(ASPECT)
    aspect_label = next(label for label, value in aspect_ratio_options(MODEL) if value == ASPECT)
    in_browser(
        "studio",
        lambda page: _drive(page, sync_api.expect, lab, photo, expected_size, aspect_label),
        # Tall enough for the whole studio after a branch: an element screenshot of a
        # studio taller than the window scrolls, and JupyterLab's toolbar covers its top.
        height=2000,
    )


def _drive(page, expect, lab: JupyterLab, photo: Path, width_height, aspect_label: str):  # type: ignore[no-untyped-def]
    expected_width, expected_height = width_height

    studio = open_studio_in_lab(page, expect, lab, "studio.ipynb")
    expect(studio.locator(".nbb-where")).to_contain_text("offline emulator")

    # Upload the 30 MB photo; it arrives in slices and is fitted in the kernel.
    studio.locator(".nbb-upload-input").set_input_files(str(photo))
    item = studio.locator(".nbb-item")
    expect(item).to_have_count(1)
    expect(item).to_have_class("nbb-item nbb-state-ready")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    expect(item).to_have_attribute("data-sha256", digest)  # every byte arrived
    fit_side = get_model(MODEL).fit_max_side
    gauge = item.locator(".nbb-gauge")
    expect(gauge).to_contain_text("8000×6000")
    expect(gauge).to_contain_text(f"fitted: {fit_side}×{fit_side * 3 // 4} JPEG")
    expect(studio.locator(".nbb-upload-summary")).to_contain_text("fitted request")
    # The region tool shows the upload once its preview is decoded: wait for it, so the
    # screenshot shows the studio as the user sees it (not a moment before).
    region = studio.locator(".nbb-region img.nbb-region-img")
    expect(region).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=region.element_handle()
    )
    page.screenshot(path=str(ARTIFACTS / "studio-1-uploaded.png"), full_page=True)

    # First turn: prompt, aspect ratio, Run; the after-image has the model's size.
    studio.locator(".nbb-prompt textarea").fill("Make the sky violet")
    studio.locator(".widget-dropdown:has-text('Aspect') select").select_option(label=aspect_label)
    studio.locator("button.nbb-run").click()
    after = studio.locator("img.nbb-after-img")
    expect(after).to_have_attribute("data-width", str(expected_width))
    expect(after).to_have_attribute("data-height", str(expected_height))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=after.element_handle()
    )
    expect(studio.locator(".nbb-status")).to_contain_text("Done in")
    expect(studio.locator(".nbb-before-img")).to_be_visible()
    expect(studio.locator("button.nbb-turn")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "studio-2-first-turn.png"), full_page=True)

    # Second turn continues the chat.
    studio.locator(".nbb-prompt textarea").fill("Add a small red kite")
    studio.locator("button.nbb-run").click()
    turns = studio.locator("button.nbb-turn")
    expect(turns).to_have_count(2)
    expect(studio.locator("button.nbb-run")).to_be_enabled()

    # Drag-to-compare (turn 1 and turn 2 are both 3:2) and click to enlarge.
    studio.locator("button.nbb-mode:text-is('Slider')").click()
    studio.locator(".nbb-slider-range").fill("25")
    expect(studio.locator(".nbb-slider-over")).to_have_attribute("style", re.compile("inset.*25%"))
    expect(studio.locator(".nbb-slider-handle")).to_be_visible()
    expect(studio.locator(".nbb-slider-label-before")).to_have_text("Before")
    expect(studio.locator(".nbb-slider-label-after")).to_have_text("After")
    page.screenshot(path=str(ARTIFACTS / "studio-2b-slider.png"), full_page=True)
    studio.locator("button.nbb-mode:text-is('Side by side')").click()
    studio.locator("img.nbb-after-img").click()
    enlarged = page.locator(".nbb-enlarged")
    expect(enlarged).to_be_visible()
    enlarged.click()
    expect(enlarged).to_have_count(0)

    # The gauge describes what the next run sends: turn 2's image, not the upload.
    summary = studio.locator(".nbb-upload-summary")
    expect(summary).to_contain_text("Next request: turn 2's image")
    expect(summary.locator(".nbb-budget-scale")).to_contain_text("budget")
    page.screenshot(path=str(ARTIFACTS / "studio-2c-second-turn.png"), full_page=True)

    # Branch from the first turn and run again: turn 2 stays, the new turn 3 is a
    # branch from turn 1 on its own row.
    expect(turns.first).to_have_text("Branch from here")
    turns.first.click()
    expect(studio.locator(".nbb-status")).to_contain_text("Branched from turn 1")
    expect(turns).to_have_count(2)
    studio.locator(".nbb-prompt textarea").fill("Make it night")
    studio.locator("button.nbb-run").click()
    expect(turns).to_have_count(3)
    expect(turns.nth(2)).to_have_attribute("title", "Turn 3 (from turn 1): Make it night")
    expect(studio.locator(".nbb-branch-from")).to_have_text("↳ from turn 1")
    expect(studio.locator(".nbb-status")).to_contain_text("Done in")
    expect(studio.locator(".nbb-status")).to_contain_text("no cap")
    studio.locator("button.nbb-save").click()
    expect(studio.locator(".nbb-saved")).to_contain_text("Saved in nbbanana-output/")
    page.screenshot(path=str(ARTIFACTS / "studio-3-branched.png"), full_page=True)
    # The README's picture: after a run, a second turn and a branch (the history tree).
    shot = _shrink_png(studio.screenshot(), README_SCREENSHOT_MAX_BYTES)
    (ARTIFACTS / "studio.png").write_bytes(shot)
    if os.environ.get("NBBANANA_UPDATE_SCREENSHOT") or not README_SCREENSHOT.exists():
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        README_SCREENSHOT.write_bytes(shot)

    # A damaged file is refused with the loader's message, not a traceback.
    broken = photo.with_name("broken.jpg")
    broken.write_bytes(photo.read_bytes()[:2000])
    studio.locator(".nbb-upload-input").set_input_files(str(broken))
    error = studio.locator(".nbb-item.nbb-state-error .nbb-item-error")
    expect(error).to_contain_text("broken.jpg")
    expect(error).not_to_contain_text("Traceback")
