"""fit_image and check_image: resolution, quality search, formats, pass-through, refusals."""

from __future__ import annotations

import io

import pytest
from _imagegen import encode, jpeg_bytes, photo_like, png_bytes, screenshot_like
from google.genai import types
from PIL import Image, ImageDraw

from nbbanana import models
from nbbanana.budget import SAFETY_MARGIN, RequestBudget
from nbbanana.errors import DoesNotFitError
from nbbanana.fit import QUALITY_CAP, QUALITY_FLOOR, check_image, fit_image
from nbbanana.images import load_image
from nbbanana.samples import sample_path


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    """A 2400×1800 camera-like JPEG (q95), larger than the default model resolution."""
    return jpeg_bytes(photo_like(2400, 1800, seed=7), quality=95, exif_orientation=1)


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_default_fit_uses_the_model_resolution_and_max_the_cap_quality() -> None:
    side = models.get_model("gemini-2.5-flash-image").fit_max_side
    # Larger than the model's side, and not a DCT-scale multiple of it (no draft snap).
    original = (side * 5 // 4, side * 15 // 16)
    photo_jpeg = jpeg_bytes(photo_like(*original, seed=3), 90)
    fitted = fit_image(photo_jpeg, model="gemini-2.5-flash-image", quality="max")
    assert (fitted.width, fitted.height) == (side, side * 3 // 4)
    assert fitted.mime == "image/jpeg" and fitted.quality == QUALITY_CAP
    assert _decoded(fitted.data).size == (fitted.width, fitted.height)
    assert fitted.tokens == models.tile_tokens(fitted.width, fitted.height)
    assert fitted.request_bytes == RequestBudget(limit=None).request_bytes(
        "", [(len(fitted.data), "image/jpeg")]
    )
    report = fitted.report
    assert report.input_size == original and report.input_bytes == len(photo_jpeg)
    assert report.output_size == (fitted.width, fitted.height)
    assert report.encodes == 1 and not report.passthrough and report.seconds > 0


def test_a_pro_model_gets_its_larger_default(photo_jpeg: bytes) -> None:
    fitted = fit_image(photo_jpeg, model="gemini-3-pro-image")
    assert fitted.width == 2400  # below the model's 3072 px
    assert fitted.tokens == models.get_model("gemini-3-pro-image").fixed_input_tokens


def test_max_side_int_and_keep(photo_jpeg: bytes) -> None:
    assert max(fit_image(photo_jpeg, max_side=500).to_pil().size) == 500
    kept = fit_image(photo_jpeg, max_side="keep", budget=3_000_000)
    assert (kept.width, kept.height) == (2400, 1800)
    assert kept.request_bytes <= 3_000_000 - SAFETY_MARGIN


@pytest.mark.parametrize("budget", [1_500_000, 700_000, 400_000])
def test_quality_search_lands_under_budget_in_at_most_two_encodes(
    photo_jpeg: bytes, budget: int
) -> None:
    fitted = fit_image(photo_jpeg, max_side="keep", budget=budget)
    assert (fitted.width, fitted.height) == (2400, 1800)  # quality, not size, gave way
    assert QUALITY_FLOOR <= fitted.quality <= QUALITY_CAP  # type: ignore[operator]
    assert fitted.request_bytes <= budget - SAFETY_MARGIN
    assert fitted.report.encodes <= 2


def test_quality_is_the_highest_that_fits_within_a_step_or_two(photo_jpeg: bytes) -> None:
    budget = 1_000_000
    fitted = fit_image(photo_jpeg, max_side="keep", budget=budget)
    assert fitted.quality is not None
    allowance = RequestBudget(limit=budget).image_allowance()
    image = load_image(photo_jpeg).image
    quality = fitted.quality + 3
    two_up = encode(image, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    assert len(two_up) > allowance


def test_a_small_budget_shrinks_the_image(photo_jpeg: bytes) -> None:
    fitted = fit_image(photo_jpeg, budget=SAFETY_MARGIN + 30_000)
    assert fitted.request_bytes <= SAFETY_MARGIN + 30_000 - SAFETY_MARGIN
    assert max(fitted.width, fitted.height) < 1536
    assert any("to fit the budget" in w for w in fitted.report.warnings)
    assert _decoded(fitted.data).size == (fitted.width, fitted.height)


def test_impossible_budget_raises_does_not_fit_with_the_numbers(photo_jpeg: bytes) -> None:
    with pytest.raises(DoesNotFitError, match=r"request budget of 8,600 bytes.*Raise the budget"):
        fit_image(photo_jpeg, budget=8600)
    with pytest.raises(DoesNotFitError, match="16 px"):
        fit_image(photo_jpeg, budget=SAFETY_MARGIN + 400)


def test_the_prompt_counts_against_the_budget(photo_jpeg: bytes) -> None:
    budget = SAFETY_MARGIN + 200_000
    prompt = "Make the sky violet — très vite 🍌 " * 2000
    fitted = fit_image(photo_jpeg, budget=budget, prompt=prompt, max_side="keep")
    assert fitted.request_bytes == RequestBudget(limit=None).request_bytes(
        prompt, [(len(fitted.data), fitted.mime)]
    )
    assert fitted.request_bytes <= budget - SAFETY_MARGIN
    alone = fit_image(photo_jpeg, budget=budget, max_side="keep")
    assert len(fitted.data) < len(alone.data)


def test_a_request_budget_object_and_the_endpoints_per_image_limit(photo_jpeg: bytes) -> None:
    budget = RequestBudget(limit=None, per_image_limit=400_000)
    fitted = fit_image(photo_jpeg, budget=budget, max_side="keep")
    assert 4 * -(-len(fitted.data) // 3) <= 400_000
    vertex = fit_image(photo_jpeg, endpoint="vertex", max_side="keep")
    assert len(vertex.data) * 4 / 3 <= models.PROFILES["vertex"].per_image_limit  # type: ignore[operator]


def test_passthrough_returns_the_original_bytes_without_encoding() -> None:
    path = sample_path("coffee.jpg")
    fitted = fit_image(path)
    assert fitted.data == path.read_bytes()
    assert fitted.report.passthrough and fitted.report.encodes == 0
    assert fitted.source_sha256 == load_image(path).source_sha256 == fitted.sent_sha256
    # ...but not when it is over the budget or the size
    assert not fit_image(path, max_side=300).report.passthrough
    assert not fit_image(path, budget=SAFETY_MARGIN + 50_000).report.passthrough


def test_alpha_is_kept_as_png_when_it_fits_else_as_webp() -> None:
    image = photo_like(600, 400, seed=3, mode="RGBA")
    as_png = fit_image(image)
    assert as_png.mime == "image/png" and as_png.to_pil().mode == "RGBA"
    as_webp = fit_image(image, budget=SAFETY_MARGIN + 60_000)
    assert as_webp.mime == "image/webp"
    decoded = as_webp.to_pil()
    assert decoded.mode == "RGBA" and decoded.getchannel("A").getextrema()[0] == 0
    assert any("WebP" in w for w in as_webp.report.warnings)


def test_forcing_jpeg_drops_alpha_with_a_warning() -> None:
    image = photo_like(300, 200, seed=4, mode="RGBA")
    fitted = fit_image(image, format="jpeg")
    assert fitted.mime == "image/jpeg" and fitted.to_pil().mode == "RGB"
    assert any("alpha dropped" in w for w in fitted.report.warnings)
    # transparent corners are composited on white
    assert min(fitted.to_pil().getpixel((0, 0))) > 230  # type: ignore[arg-type]


@pytest.mark.parametrize(("fmt", "mime"), [("png", "image/png"), ("webp", "image/webp")])
def test_format_can_be_forced(fmt: str, mime: str) -> None:
    fitted = fit_image(photo_like(400, 300, seed=5), format=fmt)  # type: ignore[arg-type]
    assert fitted.mime == mime and fitted.to_pil().format == fmt.upper()


def test_forced_png_shrinks_until_it_fits() -> None:
    fitted = fit_image(photo_like(800, 600, seed=6), format="png", budget=SAFETY_MARGIN + 80_000)
    assert fitted.mime == "image/png" and fitted.width < 800
    assert fitted.request_bytes <= 80_000


def test_screenshots_stay_png_when_that_is_smaller() -> None:
    shot = screenshot_like(900, 600, seed=1)
    fitted = fit_image(png_bytes(shot))
    assert fitted.mime == "image/png"
    assert fitted.to_pil().convert("RGB").tobytes() == shot.tobytes()  # lossless
    chart = fit_image(sample_path("chart.png"), budget=SAFETY_MARGIN + 25_000)
    assert chart.mime == "image/png" and chart.width == 640


def test_grayscale_line_art_stays_png_and_grayscale_photos_become_jpeg() -> None:
    text = Image.new("L", (800, 300), 255)
    ImageDraw.Draw(text).text((10, 10), "hello world " * 8, fill=0)
    fitted = fit_image(text)
    assert fitted.mime == "image/png" and fitted.to_pil().tobytes() == text.tobytes()
    assert fit_image(photo_like(600, 400, seed=9, mode="L")).mime == "image/jpeg"


def test_grayscale_stays_grayscale() -> None:
    fitted = fit_image(photo_like(500, 400, seed=8, mode="L"), format="jpeg")
    assert fitted.to_pil().mode == "L"


def test_part_carries_the_exact_bytes(photo_jpeg: bytes) -> None:
    fitted = fit_image(photo_jpeg, max_side=256)
    part = fitted.part()
    assert isinstance(part, types.Part)
    assert part.inline_data is not None
    assert part.inline_data.data == fitted.data and part.inline_data.mime_type == fitted.mime


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_side": 8}, "max_side"),
        ({"max_side": "full"}, "max_side"),
        ({"budget": 0}, "budget"),
        ({"format": "gif"}, "format"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_image(photo_like(64, 64), **kwargs)  # type: ignore[arg-type]


def test_check_image_as_is() -> None:
    check = check_image(sample_path("coffee.jpg"), model="gemini-2.5-flash-image")
    assert check.fits_inline and check.reason == ""
    assert (check.width, check.height, check.pixels) == (600, 400, 240_000)
    assert check.mime == "image/jpeg" and check.input_bytes == 64474
    assert check.request_bytes == RequestBudget(limit=None).request_bytes(
        "", [(64474, "image/jpeg")]
    )
    assert check.tokens == 258
    assert check.cost_usd == pytest.approx(258 * 0.30 / 1e6)


def test_check_image_reports_what_does_not_fit() -> None:
    big = encode(photo_like(1200, 900, seed=2), "PNG")
    check = check_image(big, endpoint=models.get_profile("custom", request_limit=500_000))
    assert not check.fits_inline and "over" in check.reason
    gif = encode(photo_like(64, 48).convert("P"), "GIF")
    check = check_image(gif)
    assert not check.fits_inline and check.mime is None and "not accepted" in check.reason
    pixels = check_image(photo_like(64, 48))
    assert not pixels.fits_inline and pixels.request_bytes is None
