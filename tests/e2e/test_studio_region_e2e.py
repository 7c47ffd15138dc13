"""A regional edit in the studio, in a real browser: JupyterLab, headless Chromium.

Uploads a 6 MP photo stored sideways (EXIF orientation 6), drags a box on the picture with
the mouse, resizes it by a handle, paints a mask and clears it, checks that the gauge
describes the crop regional edits cut (:func:`nbbanana.region.plan_crop`), runs, and
checks that the after-image is the full-size upright composite and that the zoomed
before/after of the region appears. Screenshots go to ``tests/artifacts/``.

The notebook puts the offline emulator in its known-transform mode, so the answers can
be registered (its default synthetic edits are unrelated pictures).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _browser import ARTIFACTS, in_browser, require_browser
from _imagegen import jpeg_bytes, orient_for_exif

from nbbanana.region import parse_region, plan_crop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

UPRIGHT = (3000, 2000)

sync_api = require_browser()

from _jupyter import JupyterLab, open_studio_in_lab  # noqa: E402


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A textured photo, 3000×2000 upright, stored 2000×3000 with EXIF orientation 6."""
    # Imported here: the helper lives with the regional SDK tests, one folder up.
    from test_region_sdk import textured

    upright = textured(*UPRIGHT, seed=7)
    path = tmp_path_factory.mktemp("e2e-region") / "sideways.jpg"
    path.write_bytes(jpeg_bytes(orient_for_exif(upright, 6), 92, exif_orientation=6))
    return path


def test_studio_regional_edit(lab: JupyterLab, photo: Path) -> None:
    in_browser("studio-region", lambda page: _drive(page, sync_api.expect, lab, photo), height=2400)


def _region_of(label: str) -> tuple[int, int, int, int]:
    match = re.search(r"Region (\d+),(\d+) → (\d+),(\d+)", label)
    assert match, label
    left, top, right, bottom = (int(v) for v in match.groups())
    return left, top, right, bottom


def _drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def _drive(page, expect, lab: JupyterLab, photo: Path) -> None:  # type: ignore[no-untyped-def]
    studio = open_studio_in_lab(page, expect, lab, "studio_region.ipynb")
    picker = studio.locator(".nbb-region")
    expect(picker.locator(".nbb-region-empty")).to_be_visible()

    # Upload: the picker shows the picture upright, at its full upright size.
    studio.locator(".nbb-upload-input").set_input_files(str(photo))
    expect(studio.locator(".nbb-item")).to_have_class("nbb-item nbb-state-ready")
    image = picker.locator("img.nbb-region-img")
    expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural[0] > natural[1]  # landscape: the EXIF rotation was applied
    label = picker.locator(".nbb-region-label")
    expect(label).to_contain_text("No region")
    summary = studio.locator(".nbb-upload-summary")
    expect(summary).to_contain_text("Next request: the uploaded image")

    # Drag a box with the mouse, from 30 %/25 % to 60 %/55 % of the picture.
    box = image.bounding_box()
    assert box is not None
    at = lambda fx, fy: (box["x"] + fx * box["width"], box["y"] + fy * box["height"])  # noqa: E731
    _drag(page, at(0.30, 0.25), at(0.60, 0.55))
    expect(label).to_contain_text("Region ")
    left, top, right, bottom = _region_of(label.inner_text())
    width, height = UPRIGHT
    assert abs(left - 0.30 * width) <= 0.01 * width and abs(bottom - 0.55 * height) <= 0.01 * height
    expect(picker.locator(".nbb-region-box")).to_be_visible()

    # Resize by the bottom-right handle: the top-left corner stays.
    handle = picker.locator(".nbb-region-handle-se").bounding_box()
    assert handle is not None
    centre = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    _drag(page, centre, at(0.70, 0.65))
    expect(label).not_to_contain_text(f"→ {right},{bottom}")
    left2, top2, right, bottom = _region_of(label.inner_text())
    assert (left2, top2) == (left, top)
    assert abs(right - 0.70 * width) <= 0.01 * width

    # The gauge describes the crop region.py cuts around that box, fitted for the model.
    plan = plan_crop(parse_region((left, top, right, bottom), size=UPRIGHT))
    expect(summary).to_contain_text("Next request: a region of the uploaded image")
    expect(summary).to_contain_text(f"region (box): {right - left}×{bottom - top} at {left},{top}")
    expect(summary).to_contain_text(
        f"crop sent: {plan.crop.width}×{plan.crop.height} (region + {plan.margin} px margin)"
    )
    expect(summary).to_contain_text("fitted: ")
    expect(summary).to_contain_text("output tokens ≈ $")
    page.screenshot(path=str(ARTIFACTS / "studio-region-1-box.png"), full_page=True)

    # Paint a mask instead, then go back to the box.
    picker.locator("button.nbb-region-mode:has-text('Paint mask')").click()
    expect(picker.locator(".nbb-region-brush")).to_be_visible()
    expect(label).to_contain_text("paint over")
    _drag(page, at(0.10, 0.80), at(0.25, 0.85))
    expect(summary).to_contain_text("region (painted mask)")
    page.screenshot(path=str(ARTIFACTS / "studio-region-2-mask.png"), full_page=True)
    picker.locator("button.nbb-region-clear").click()
    expect(label).to_contain_text("No region")
    picker.locator("button.nbb-region-mode:has-text('Box')").click()
    expect(summary).to_contain_text("Next request: the uploaded image")
    _drag(page, at(0.30, 0.25), at(0.70, 0.65))
    expect(label).to_contain_text("Region ")
    region = _region_of(label.inner_text())
    # The gauge fits the crop in the background and adds its "fitted" line when done,
    # which moves the Run button down: wait for it, as a user sees the gauge settle, so
    # that the click lands on the button and not where it was a moment before.
    left, top, right, bottom = region
    expect(summary).to_contain_text(f"region (box): {right - left}×{bottom - top} at {left},{top}")
    expect(summary).to_contain_text("fitted: ")

    # Run: the after-image is the full-size upright composite; the zoom shows the crop.
    studio.locator(".nbb-prompt textarea").fill("Make the sky violet")
    expect(summary).to_contain_text("output tokens ≈ $")
    studio.locator("button.nbb-run").click()
    expect(studio.locator(".nbb-status")).to_contain_text("Done in", timeout=180_000)
    after = studio.locator(".nbb-compare-view img.nbb-after-img")
    expect(after).to_have_attribute("data-width", str(width))
    expect(after).to_have_attribute("data-height", str(height))
    zoom = studio.locator(".nbb-region-zoom")
    expect(zoom).to_be_visible()
    plan = plan_crop(parse_region(region, size=UPRIGHT))
    expect(zoom).to_contain_text(f"box {','.join(map(str, region))}")
    zoomed = zoom.locator("img.nbb-after-img")
    expect(zoomed).to_have_attribute("data-width", str(plan.crop.width))
    expect(zoomed).to_have_attribute("data-height", str(plan.crop.height))
    expect(zoom.locator("img.nbb-before-img")).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=zoomed.element_handle()
    )
    # The next run edits the composite: the picker shows it, with no region selected.
    expect(label).to_contain_text("No region")
    expect(summary).to_contain_text("Next request: turn 1's image")
    page.screenshot(path=str(ARTIFACTS / "studio-region-3-result.png"), full_page=True)
    zoom.locator("button.nbb-mode:text-is('Slider')").click()
    expect(zoom.locator(".nbb-slider-frame")).to_be_visible()
    zoom.screenshot(path=str(ARTIFACTS / "studio-region-4-zoom-slider.png"))
