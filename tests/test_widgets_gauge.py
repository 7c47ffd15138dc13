"""The size gauge's arithmetic, with real fitted images and the real request budget."""

from __future__ import annotations

import pytest
from _imagegen import animated_gif_bytes, jpeg_bytes, photo_like, png_bytes

from nbbanana import models
from nbbanana.budget import RequestBudget
from nbbanana.fit import fit_image
from nbbanana.models import get_model
from nbbanana.widgets._gauge import (
    format_bytes,
    format_usd,
    image_gauge,
    plain_warnings,
    request_gauge,
    resize_note,
    scale_labels,
    text_tokens,
    turn_gauge,
)

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (20_000_000, "20.0 MB"),
        (20_971_520, "21.0 MB"),
        (999_960_000, "1.0 GB"),
        (None, "no limit"),
    ],
)
def test_format_bytes_uses_the_decimal_units_limits_are_given_in(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


def test_format_usd_keeps_cheap_requests_apart() -> None:
    assert format_usd(0) == "$0.00"
    assert format_usd(0.00031) == "$0.00031"
    assert format_usd(0.039) == "$0.039"
    assert format_usd(1.2) == "$1.20"


def test_the_gauge_counts_text_tokens_as_the_estimate_does() -> None:
    # One text-token rule (models.text_tokens): the gauge and Session.estimate agree.
    assert text_tokens is models.text_tokens
    assert text_tokens("abcdef") == models.text_tokens("abcdef") > 0


def test_image_gauge_of_a_photo_sent_unchanged(photo_jpeg: bytes) -> None:
    budget = RequestBudget.for_endpoint("gemini")
    fitted = fit_image(photo_jpeg, model=FLASH, budget=budget)
    gauge = image_gauge(
        fitted, raw_bytes=len(photo_jpeg), raw_mime="image/jpeg", model=FLASH, budget=budget
    )
    assert gauge.raw_request_bytes == budget.request_bytes("", [(len(photo_jpeg), "image/jpeg")])
    assert gauge.request_bytes == budget.request_bytes("", [(len(fitted.data), fitted.mime)])
    assert gauge.original_size == (320, 240)
    assert gauge.fitted_size == (fitted.width, fitted.height)
    assert gauge.tokens == get_model(FLASH).input_image_tokens(fitted.width, fitted.height)
    assert gauge.cost_usd == pytest.approx(get_model(FLASH).cost_usd(input_tokens=gauge.tokens))
    lines = gauge.lines()
    assert lines[0] == f"320×240, {format_bytes(len(photo_jpeg))} uploaded"
    assert "request after base64" in lines[1]
    assert f"{fitted.width}×{fitted.height}" in lines[2]


def test_image_gauge_of_a_downscaled_photo_reports_the_fitted_size_and_quality() -> None:
    big = jpeg_bytes(photo_like(2400, 1800, seed=5), 95)
    budget = RequestBudget.for_endpoint("gemini")
    fitted = fit_image(big, model=FLASH, budget=budget, max_side=1024)
    gauge = image_gauge(
        fitted, raw_bytes=len(big), raw_mime="image/jpeg", model=FLASH, budget=budget
    )
    assert gauge.original_size == (2400, 1800)
    assert gauge.fitted_size == (fitted.width, fitted.height) == (1024, 768)
    assert not gauge.passthrough
    assert gauge.fitted_bytes < len(big)
    line = gauge.lines()[2]
    assert line.startswith("fitted: 1024×768 JPEG")
    if fitted.quality is not None:
        assert f"quality {fitted.quality}" in line


def test_a_format_the_api_refuses_has_no_as_is_request_size() -> None:
    gif = animated_gif_bytes(3, (64, 48))
    budget = RequestBudget.for_endpoint("gemini")
    fitted = fit_image(gif, model=FLASH, budget=budget)
    gauge = image_gauge(
        fitted, raw_bytes=len(gif), raw_mime="image/gif", model=FLASH, budget=budget
    )
    assert gauge.raw_request_bytes is None
    assert "image/gif is not accepted by the API" in gauge.lines()[1]
    assert any("frame" in w for w in gauge.warnings)  # the first animation frame is used


def test_plain_warnings_add_lost_transparency_once() -> None:
    assert plain_warnings([], has_alpha=True, fitted_mime="image/jpeg") == (
        "transparency dropped: sent as JPEG on a white background",
    )
    assert plain_warnings([], has_alpha=True, fitted_mime="image/png") == ()
    engine = ("alpha channel flattened onto white",)
    assert plain_warnings(engine, has_alpha=True, fitted_mime="image/jpeg") == engine
    assert plain_warnings(["GPS location removed", "GPS location removed"]) == (
        "GPS location removed",
    )


def _gauged(data: bytes, model: str, budget: RequestBudget, mime: str = "image/jpeg"):  # type: ignore[no-untyped-def]
    fitted = fit_image(data, model=model, budget=budget)
    return fitted, image_gauge(
        fitted, raw_bytes=len(data), raw_mime=mime, model=model, budget=budget
    )


def test_request_gauge_sums_tokens_and_prices_the_output(photo_jpeg: bytes) -> None:
    budget = RequestBudget.for_endpoint("gemini")
    images = [_gauged(photo_jpeg, FLASH, budget), _gauged(photo_jpeg, FLASH, budget)]
    gauge = request_gauge(images, model=FLASH, budget=budget, prompt="Make it blue")
    info = get_model(FLASH)
    expected_in = sum(f.tokens for f, _ in images) + text_tokens("Make it blue")
    assert gauge.input_tokens == expected_in
    assert gauge.output_tokens == 1290
    assert gauge.cost_usd == pytest.approx(
        info.cost_usd(input_tokens=expected_in, output_image_tokens=1290)
    )
    sizes = [(len(f.data), f.mime) for f, _ in images]
    assert gauge.request_bytes == budget.plan("Make it blue", sizes).request_bytes
    assert gauge.inline == (True, True)
    assert gauge.limit == budget.limit
    assert gauge.raw_fits is True
    assert gauge.warnings == ()
    assert "2 images as uploaded" in gauge.lines()[0]
    printed = str(gauge)
    assert printed.count("uploaded\n") == 2 and printed.endswith(gauge.lines()[-1])


def test_request_gauge_follows_the_model_and_image_size(photo_jpeg: bytes) -> None:
    budget = RequestBudget.for_endpoint("gemini")
    images = [_gauged(photo_jpeg, PRO, budget)]
    at_1k = request_gauge(images, model=PRO, budget=budget, image_size="1K")
    at_4k = request_gauge(images, model=PRO, budget=budget, image_size="4K")
    assert (at_1k.output_tokens, at_4k.output_tokens) == (1120, 2000)
    assert at_4k.cost_usd > at_1k.cost_usd
    assert at_1k.input_tokens == 1120  # Gemini 3: a fixed count per image


def test_request_gauge_warns_about_too_many_images_and_the_files_api() -> None:
    data = png_bytes(photo_like(200, 150, seed=2))
    tight = RequestBudget(limit=3 * len(data), margin=0, files_api=True)
    roomy = RequestBudget.for_endpoint("gemini")
    images = [_gauged(data, FLASH, roomy, "image/png") for _ in range(4)]
    gauge = request_gauge(images, model=FLASH, budget=tight)
    assert any("at most 3 images" in w for w in gauge.warnings)
    assert gauge.files_api_count >= 1
    assert any("Files API will be used" in w for w in gauge.warnings)


def test_a_photo_that_fits_but_is_resized_says_why() -> None:
    big = jpeg_bytes(photo_like(2400, 1800, seed=5), 95)
    budget = RequestBudget.for_endpoint("gemini")
    fitted = fit_image(big, model=FLASH, budget=budget, max_side=1024)
    gauge = image_gauge(
        fitted, raw_bytes=len(big), raw_mime="image/jpeg", model=FLASH, budget=budget
    )
    assert gauge.raw_request_bytes is not None and budget.limit is not None
    assert gauge.raw_request_bytes < budget.limit  # it would have fitted as it was
    info = get_model(FLASH)
    fewer = info.input_image_tokens(2400, 1800) - info.input_image_tokens(1024, 768)
    assert gauge.lines()[-1] == (
        "why smaller although it fits: 1024 px is the resolution images are fitted to for "
        f"{info.name} (it gains little from more pixels): ≈{fewer:,} fewer input tokens and "
        "a faster upload."
    )


def test_no_resize_note_when_the_photo_is_sent_unchanged_or_had_to_shrink() -> None:
    info = get_model(PRO)
    assert resize_note(info, (1000, 800), (1000, 800), fits_as_is=True) == ""
    assert resize_note(info, (9000, 6000), (3072, 2048), fits_as_is=False) == ""
    # Gemini 3 counts a fixed number of tokens per image: only the upload gets faster.
    note = resize_note(info, (4000, 3000), (3072, 2304), fits_as_is=True)
    assert "tokens" not in note and "a faster upload" in note


def test_turn_gauge_describes_the_turn_image_being_sent() -> None:
    gauge = turn_gauge(
        2,
        size=(1248, 832),
        history_bytes=3_000_000,
        history_tokens=1_800,
        model=FLASH,
        limit=20_000_000,
        prompt="Add a red kite",
    )
    lines = gauge.lines()
    assert lines[0].startswith("next run edits turn 2's image (1248×832, made by the model)")
    assert "uploaded" not in " ".join(lines)
    assert lines[1] == "request ≈3.0 MB of 20.0 MB budget (15%)"
    assert gauge.input_tokens == 1_800 + text_tokens("Add a red kite")
    assert gauge.fraction == pytest.approx(3_000_014 / 20_000_000)


def test_a_picked_image_gauge_says_a_new_chat_starts_from_it() -> None:
    gauge = turn_gauge(
        3,
        size=(1264, 848),
        history_bytes=1_400_000,
        history_tokens=1_120,
        model=FLASH,
        limit=20_000_000,
        picked=(1, 3),
    )
    assert gauge.title == "Next request: image 2 of 3 of turn 3"
    said = gauge.lines()[0]
    assert said.startswith("next run edits image 2 of 3 of turn 3 (1264×848, made by the model)")
    assert "a new chat starts from it" in said and "goes back in the chat history" not in said
    unpicked = turn_gauge(3, size=(1264, 848), history_bytes=1, history_tokens=1, model=FLASH,
                          limit=None)  # fmt: skip
    assert unpicked.title == "Next request: turn 3's image"
    assert "goes back in the chat history" in unpicked.lines()[0]


def test_the_budget_bar_has_a_scale() -> None:
    assert scale_labels(3_800_000, 100_000_000) == ("0", "3.8 MB (4%)", "100.0 MB budget")
    assert scale_labels(3_800_000, None) == ("0", "3.8 MB request", "no limit")
