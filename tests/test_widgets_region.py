"""The studio's region tool: geometry, masks from strokes, the crop gauge, the picker and
zoom widgets without a browser, and a regional run in the studio against the emulator."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from _imagegen import jpeg_bytes, orient_for_exif, photo_like
from PIL import Image
from test_region_sdk import textured

import nbbanana
from nbbanana._format import format_usd
from nbbanana.budget import RequestBudget
from nbbanana.emulator import Emulator
from nbbanana.region import Box, RegionResult, parse_region, plan_crop
from nbbanana.widgets import Studio
from nbbanana.widgets._region import (
    SEVERAL_UPLOADS,
    RegionGauge,
    RegionPicker,
    RegionTool,
    RegionZoom,
    Stroke,
    box_to_rect,
    mask_from_strokes,
    normalise_rect,
    rect_to_box,
    region_gauge,
    region_source,
)

FLASH = "gemini-2.5-flash-image"


# --------------------------------------------------------------------------- geometry


def test_normalise_rect_orders_clips_and_refuses_empty() -> None:
    assert normalise_rect([0.8, 0.9, 0.2, 0.1]) == (0.2, 0.1, 0.8, 0.9)
    assert normalise_rect([-0.5, 0.2, 1.7, 0.4]) == (0.0, 0.2, 1.0, 0.4)
    assert normalise_rect([0.3, 0.3, 0.3, 0.9]) is None  # no width
    assert normalise_rect([1.2, 0.1, 1.5, 0.9]) is None  # all outside: nothing left
    assert normalise_rect([0.1, 0.2, 0.3]) is None
    assert normalise_rect(["a", 0, 1, 1]) is None  # type: ignore[list-item]
    assert normalise_rect([float("nan"), 0, 1, 1]) is None


def test_rect_to_box_covers_every_touched_pixel_within_the_image() -> None:
    assert rect_to_box([0.25, 0.5, 0.75, 1.0], (400, 200)) == Box(100, 100, 300, 200)
    assert rect_to_box([0.251, 0.5, 0.749, 0.99], (400, 200)) == Box(100, 100, 300, 198)
    assert rect_to_box([0.999, 0.999, 1.0, 1.0], (400, 200)) == Box(399, 199, 400, 200)
    assert rect_to_box([0.0, 0.0, 0.0001, 0.0001], (400, 200)) == Box(0, 0, 1, 1)
    assert rect_to_box([0.5, 0.5, 0.5, 0.6], (400, 200)) is None
    box = Box(7, 11, 390, 180)
    assert rect_to_box(box_to_rect(box, (400, 200)), (400, 200)) == box


def test_a_box_drawn_on_an_exif_rotated_photo_is_in_upright_pixels() -> None:
    upright = Image.new("RGB", (300, 450), (30, 30, 30))
    upright.paste((255, 0, 0), (60, 300, 150, 390))  # the red patch, upright pixels
    data = jpeg_bytes(orient_for_exif(upright, 6), 95, exif_orientation=6)
    source, preview, size, what = region_source([], [("rotated.jpg", data)], None)
    assert size == (300, 450) and what == "the uploaded image"
    assert preview is not None and preview.width < preview.height  # shown upright
    red = np.asarray(preview.convert("RGB"))[..., 0] > 200
    ys, xs = np.nonzero(red & (np.asarray(preview.convert("RGB"))[..., 1] < 80))
    rect = [
        xs.min() / preview.width,
        ys.min() / preview.height,
        (xs.max() + 1) / preview.width,
        (ys.max() + 1) / preview.height,
    ]
    box = rect_to_box(rect, size)
    assert box is not None
    assert max(abs(a - b) for a, b in zip(box.as_tuple(), (60, 300, 150, 390), strict=True)) <= 2
    # The tool cuts that very patch from the full-resolution upright picture.
    tool = RegionTool()
    tool.set_source(source, size, what)
    tool.rect = normalise_rect(rect)
    assert tool.selection() == {"region": box.as_tuple()}


# --------------------------------------------------------------------------- masks


def test_mask_from_strokes_keeps_the_aspect_ratio_and_paints_the_strokes() -> None:
    stroke = Stroke(points=((0.1, 0.5), (0.9, 0.5)), size=0.1)
    mask = mask_from_strokes([stroke], (4000, 2000))
    assert mask is not None and mask.size == (1024, 512) and mask.mode == "L"
    left, top, right, bottom = mask.getbbox() or (0, 0, 0, 0)
    # a band about 10 % of the long side thick, round-capped at both ends
    assert abs(left - 0.1 * 1024 + 51) <= 3 and abs(right - 0.9 * 1024 - 51) <= 3
    assert abs((bottom - top) - 102) <= 4 and abs((top + bottom) / 2 - 256) <= 2
    region = parse_region(mask=mask, size=(4000, 2000))
    assert region.kind == "mask" and abs(region.box.left - 200) <= 12
    assert mask_from_strokes([], (400, 200)) is None
    # small sources are not blown up; a dab outside the picture paints nothing
    assert mask_from_strokes([Stroke(((0.5, 0.5),), 0.2)], (300, 100)).size == (300, 100)  # type: ignore[union-attr]
    assert mask_from_strokes([Stroke(((3.0, 3.0),), 0.1)], (300, 100)) is None


def test_strokes_from_the_browser_are_checked() -> None:
    assert Stroke.from_json({"points": [[0.1, 0.2], [0.3, 0.4]], "size": 0.05}) == Stroke(
        ((0.1, 0.2), (0.3, 0.4)), 0.05
    )
    assert Stroke.from_json({"points": [], "size": 0.05}) is None
    assert Stroke.from_json({"points": [[0.1]], "size": 0.05}) is None
    assert Stroke.from_json({"points": [[0.1, 0.2]], "size": -1}) is None
    assert Stroke.from_json({"points": [[0.1, "x"]], "size": 0.1}) is None


# --------------------------------------------------------------------------- gauge


@pytest.fixture(scope="module")
def photo_bytes() -> bytes:
    return jpeg_bytes(photo_like(1600, 1200, seed=5), 92)


def test_the_gauge_describes_the_crop_region_py_would_send(photo_bytes: bytes) -> None:
    tool = RegionTool()  # without a running loop the fit runs inline
    tool.set_source(photo_bytes, (1600, 1200), "the uploaded image")
    budget = RequestBudget.for_endpoint("gemini")
    assert tool.gauge(model=FLASH, budget=budget) is None  # nothing selected
    tool.rect = (0.25, 0.25, 0.5, 0.5)
    gauge = tool.gauge(model=FLASH, budget=budget, prompt="make it violet")
    assert isinstance(gauge, RegionGauge) and gauge.fitted is not None
    expected = plan_crop(parse_region((400, 300, 800, 600), size=(1600, 1200)))
    assert gauge.plan == expected
    crop = expected.crop
    text = "\n".join(gauge.lines())
    assert "region (box): 400×300 at 400,300 of the 1600×1200 picture" in text
    assert f"crop sent: {crop.width}×{crop.height} (region + {expected.margin} px margin)" in text
    assert f"fitted: {gauge.fitted.width}×{gauge.fitted.height}" in text
    assert "input +" in text and "tokens ≈ $" in text
    assert gauge.title == "Next request: a region of the uploaded image"
    summary = gauge.summary()
    assert summary["lines"] == gauge.lines() and 0 < summary["fraction"] < 0.2
    # the fit is cached per crop: a new prompt does not fit again
    calls: list[object] = []
    tool._run = lambda work, done: calls.append(work)  # type: ignore[assignment]
    tool.gauge(model=FLASH, budget=budget, prompt="other words")
    assert calls == []


def test_the_gauge_says_so_while_the_crop_is_being_fitted() -> None:
    plan = plan_crop(parse_region((10, 10, 60, 60), size=(200, 100)))
    budget = RequestBudget.for_endpoint("gemini")
    gauge = region_gauge(plan, None, model=FLASH, budget=budget, prompt="x")
    assert "fitting the crop for the model…" in gauge.lines()
    assert gauge.cost_usd is None
    summary = gauge.summary()
    assert summary["fraction"] == 0.0 and summary["scale"][1] == "fitting…"


def test_a_slow_fit_calls_back_and_a_stale_one_is_dropped(photo_bytes: bytes) -> None:
    pending: list[tuple[object, object]] = []
    tool = RegionTool(run=lambda work, done: pending.append((work, done)))
    tool.set_source(photo_bytes, (1600, 1200), "the uploaded image")
    tool.rect = (0.1, 0.1, 0.2, 0.2)
    budget = RequestBudget.for_endpoint("gemini")
    ready: list[int] = []
    first = tool.gauge(model=FLASH, budget=budget, on_ready=lambda: ready.append(1))
    assert first is not None and first.fitted is None and len(pending) == 1
    tool.gauge(model=FLASH, budget=budget)  # already being fitted: not started again
    assert len(pending) == 1
    work, done = pending.pop()
    done(work())  # type: ignore[operator]
    assert ready == [1]
    second = tool.gauge(model=FLASH, budget=budget)
    assert second is not None and second.fitted is not None
    # a fit that finishes after the source changed is dropped
    tool.rect = (0.3, 0.3, 0.4, 0.4)
    tool.gauge(model=FLASH, budget=budget, on_ready=lambda: ready.append(2))
    work, done = pending.pop()
    tool.set_source(photo_bytes, (1600, 1200), "the uploaded image")
    done(work())  # type: ignore[operator]
    assert ready == [1] and tool._fits == {}


# --------------------------------------------------------------------------- widgets


def test_the_picker_maps_what_the_browser_drew(photo_bytes: bytes) -> None:
    picker = RegionPicker()
    changes: list[str] = []
    picker.on_change(lambda p: changes.append(p.label))
    assert picker.label.startswith("Upload an image")
    preview = Image.open(io.BytesIO(photo_bytes))
    picker.set_source(photo_bytes, preview, (1600, 1200), "the uploaded image")
    assert picker.src.startswith("data:image/jpeg;base64,") and picker.size == [1600, 1200]
    assert "No region" in picker.label
    picker.rect = [0.5, 0.5, 0.25, 0.25]  # dragged up and to the left
    assert picker.tool.selection() == {"region": (400, 300, 800, 600)}
    assert picker.label.startswith("Region 400,300 → 800,600 (400×300 px of 1600×1200)")
    assert picker.problems(1) == [] and "one image" in picker.problems(2)[0]
    picker.mode = "mask"
    assert picker.tool.selection() == {} and "paint over" in picker.label
    picker.strokes = [{"points": [[0.5, 0.5], [0.6, 0.5]], "size": 0.05}, {"bogus": 1}]
    mask = picker.tool.selection()["mask"]
    assert mask.size == (1024, 768)
    picker.select((10, 20, 110, 220))
    assert picker.mode == "box" and picker.tool.selection() == {"region": (10, 20, 110, 220)}
    picker.clear()
    assert picker.tool.selection() == {} and changes
    picker.rect = [0.1, 0.1, 0.2, 0.2]
    picker.set_source(None, None, (0, 0), "")
    assert picker.tool.selection() == {} and picker.rect == [] and picker.src == ""


def test_the_picker_summary_reports_a_crop_that_cannot_be_made_in_words() -> None:
    picker = RegionPicker()
    picker.set_source(b"not an image at all", None, (1600, 1200), "the uploaded image")
    picker.rect = [0.1, 0.1, 0.3, 0.3]
    budget = RequestBudget.for_endpoint("gemini")
    summary = picker.summary(model=FLASH, budget=budget)
    assert summary is not None and summary["lines"] == []
    (warning,) = summary["warnings"]
    assert "image" in warning.lower() and "Traceback" not in warning


def test_the_zoom_hides_for_a_whole_image_result() -> None:
    zoom = RegionZoom()
    zoom.show(None)
    assert zoom.layout.display == "none"


# --------------------------------------------------------------------------- studio


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=3) as emulator:
        yield emulator


def test_a_regional_run_in_the_studio(emulator: Emulator) -> None:
    session = nbbanana.connect(base_url=emulator.base_url, endpoint="gemini", model=FLASH)
    app = Studio(session)
    photo = textured(1600, 1200, seed=4)
    app.uploader.add_bytes(jpeg_bytes(photo, 95), "street.jpg")
    assert app.region.size == [1600, 1200] and app.region.src
    app.region.rect = [0.35, 0.3, 0.65, 0.6]
    summary = app.uploader.summary
    assert summary["title"] == "Next request: a region of the uploaded image"
    assert any(line.startswith("crop sent: ") for line in summary["lines"])
    app.prompt_box.prompt.value = "make the sky violet"
    assert app.uploader.summary["title"].startswith("Next request: a region")  # kept on typing
    emulator.inject("transform", scale=1.0)
    result = app.run()
    assert isinstance(result, RegionResult) and result.image is not None
    assert result.image.size == (1600, 1200)  # the full-size composite
    assert tuple(result.region["box"]) == (560, 360, 1040, 720)
    assert app.compare.canvas.after_size == [1600, 1200]
    assert app.zoom.layout.display != "none"
    crop = result.region["crop"]
    assert app.zoom.canvas.after_size == [crop[2] - crop[0], crop[3] - crop[1]]
    assert app.zoom.canvas.can_slide
    # The next run edits the composite: the picker shows it, with no region selected.
    assert app.region.tool.source is result and app.region.rect == []
    assert not app.uploader.summary.get("title", "").startswith("Next request: a region")
    # A second, whole-image turn edits the composite through the chat history.
    app.prompt_box.prompt.value = "now add a boat"
    second = app.run()
    assert second is not None and second.parent is result
    assert app.zoom.layout.display == "none"


def test_after_a_pick_the_region_tool_draws_on_the_picked_image(emulator: Emulator) -> None:
    session = nbbanana.connect(
        base_url=emulator.base_url, endpoint="gemini", model="gemini-3-pro-image"
    )
    app = Studio(session)
    app.uploader.add_bytes(jpeg_bytes(textured(1200, 800, seed=5), 95), "street.jpg")
    app.prompt_box.prompt.value = "Three variations of this street"
    answer = app.run()
    assert answer is not None and len(answer.images) == 3
    assert app.region.tool.source is answer  # the first image, until another is picked
    app.pick(2)
    picked = answer.images[2]
    assert app.region.tool.source is picked and app.region.size == list(picked.size)
    assert app.region.tool.what == "image 3 of 3 of turn 1"
    # A regional run edits the picked image: every pixel outside the region is its own.
    app.region.rect = [0.3, 0.3, 0.6, 0.6]
    assert app.uploader.summary["title"] == "Next request: a region of image 3 of 3 of turn 1"
    emulator.inject("transform", scale=1.0)
    app.prompt_box.prompt.value = "make the sky violet"
    result = app.run()
    assert app.prompt_box.error.value == ""
    assert isinstance(result, RegionResult) and result.image is not None
    assert result.image.size == picked.size
    outside = (0, 0, picked.width, picked.height // 5)  # above the region
    composite = np.asarray(result.image.convert("RGB").crop(outside), dtype=int)
    assert np.array_equal(composite, np.asarray(picked.convert("RGB").crop(outside), dtype=int))
    first = np.asarray(answer.images[0].convert("RGB").crop(outside), dtype=int)
    assert not np.array_equal(composite, first)


def test_an_answer_that_cannot_be_placed_back_is_shown_unblended(emulator: Emulator) -> None:
    session = nbbanana.connect(base_url=emulator.base_url, endpoint="gemini", model=FLASH)
    app = Studio(session)
    # A model that draws something new instead of editing the crop it was given.
    app.uploader.add_bytes(jpeg_bytes(textured(1200, 800, seed=5), 92), "photo.jpg")
    emulator.inject("ignore_input")
    app.region.rect = [0.3, 0.3, 0.6, 0.6]
    plan = app.region.tool.plan()
    assert plan is not None
    app.prompt_box.prompt.value = "paint a door"
    assert app.run() is None
    error = app.prompt_box.error.value
    assert "could not be placed back into the picture" in error
    assert "confidence" in error  # why, in region.py's words
    assert "unblended answer is kept" in error and "shown as the After image" in error
    assert ".answer" not in error and "min_confidence" not in error  # no API advice
    assert "the next run still edits the uploaded image" in error
    # The answer is shown beside the crop that was sent; nothing joined the history.
    answer = app.compare.result
    assert answer is not None and answer.image is not None
    assert app.compare.canvas.after_size == list(answer.image.size)
    assert app.compare.canvas.before_size == [plan.crop.width, plan.crop.height]
    assert not app.compare.save_button.disabled
    assert app.state.turns == [] and app.region.tool.selection()  # ready to run again
    status = app.prompt_box.status.value
    assert "Failed after" in status and f"cost {format_usd(answer.cost_usd)}" in status

    # A second upload: the error was about the old inputs, and there is no one picture
    # to draw on any more (the tool says why); with one upload again, it is back.
    app.uploader.add_bytes(jpeg_bytes(textured(640, 480, seed=6), 92), "kite.jpg")
    assert app.prompt_box.error.value == ""
    assert app.region.src == "" and app.region.label == SEVERAL_UPLOADS
    app.uploader.remove(app.uploader.items[0]["id"])
    assert app.region.src and app.region.size == [640, 480]
    assert app.region.label.startswith("No region")
