"""The libvips decode-and-reduce path of load_image (what fit_image uses to reduce)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from _imagegen import (
    asymmetric_image,
    encode,
    jpeg_bytes,
    orient_for_exif,
    photo_like,
    png_bytes,
    quadrant_colours,
    swapped_rgb_icc_profile,
    webp_bytes,
)
from PIL import Image, PngImagePlugin

from nbbanana import _vips
from nbbanana._ssim import ssim
from nbbanana.errors import CorruptImageError
from nbbanana.fit import fit_image
from nbbanana.images import load_image

pytestmark = pytest.mark.skipif(not _vips.available(), reason="libvips is not installed")


@pytest.fixture
def vips_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Formats that went through libvips (and did not fall back)."""
    calls: list[str] = []
    decode = _vips.decode_reduced

    def spy(data: bytes, fmt: str, *args: Any, **kwargs: Any) -> Image.Image | None:
        result = decode(data, fmt, *args, **kwargs)
        if result is not None:
            calls.append(fmt)
        return result

    monkeypatch.setattr(_vips, "decode_reduced", spy)
    return calls


def _pillow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vips, "_module", lambda: None)


PHOTO = photo_like(1600, 1200, seed=31)
INPUTS = {
    "JPEG": lambda: jpeg_bytes(PHOTO, 92),
    "PNG": lambda: png_bytes(PHOTO),
    "TIFF": lambda: encode(PHOTO, "TIFF"),
    "WEBP": lambda: webp_bytes(PHOTO, quality=92),
}


@pytest.mark.parametrize("fmt", sorted(INPUTS))
def test_reduced_to_the_exact_target_by_libvips(fmt: str, vips_calls: list[str]) -> None:
    loaded = load_image(INPUTS[fmt](), target_side=700)
    assert vips_calls == [fmt]
    assert loaded.image.size == (700, 525) and loaded.image.mode == "RGB"
    assert loaded.original_size == (1600, 1200)
    reference = np.asarray(PHOTO.resize((700, 525), Image.Resampling.LANCZOS))
    assert ssim(reference, np.asarray(loaded.image)) > 0.9


def test_jpeg_within_the_draft_slack_is_only_dct_scaled(vips_calls: list[str]) -> None:
    # 1/2 scale gives 800 px, within DRAFT_SLACK of 850: used as is, no resampling.
    loaded = load_image(jpeg_bytes(PHOTO, 92), target_side=850)
    assert vips_calls == ["JPEG"] and loaded.image.size == (800, 600)


def test_same_picture_as_the_pillow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_bytes(PHOTO)
    fast = fit_image(data, max_side=640)
    _pillow_only(monkeypatch)
    slow = fit_image(data, max_side=640)
    assert (fast.width, fast.height) == (slow.width, slow.height) == (640, 480)
    assert ssim(np.asarray(fast.to_pil()), np.asarray(slow.to_pil())) > 0.97


def test_orientation_and_colour_profile_still_applied(vips_calls: list[str]) -> None:
    upright = asymmetric_image(400, 300)
    data = jpeg_bytes(orient_for_exif(upright, 6), 95, exif_orientation=6)
    loaded = load_image(data, target_side=200)
    assert vips_calls == ["JPEG"]
    assert loaded.image.size == (200, 150)
    expected = quadrant_colours(upright.resize((200, 150)))
    for got, want in zip(quadrant_colours(loaded.image), expected, strict=True):
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 40
    swapped = jpeg_bytes(
        Image.new("RGB", (400, 300), (200, 30, 30)), 95, icc=swapped_rgb_icc_profile()
    )
    red, _, blue = load_image(swapped, target_side=100).image.getpixel((50, 37))
    assert blue > red  # the profile says the stored red is blue


def test_rgba_is_premultiplied_so_transparent_colour_does_not_bleed(
    vips_calls: list[str],
) -> None:
    img = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # invisible red
    img.paste((0, 0, 255, 255), (0, 0, 34, 64))  # opaque blue
    loaded = load_image(png_bytes(img), target_side=8)
    assert vips_calls == ["PNG"] and loaded.image.size == (8, 8) and loaded.has_alpha
    r, _, b, a = loaded.image.getpixel((4, 4))  # the edge: half blue, half invisible red
    assert 60 < a < 200 and r < 30 and b > 200


def test_truncated_file_still_refused_in_one_sentence(vips_calls: list[str]) -> None:
    data = jpeg_bytes(PHOTO, 92)
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        load_image(data[: len(data) // 2], target_side=400)
    assert vips_calls == []


def test_png_with_chunks_after_the_pixels_goes_to_pillow(vips_calls: list[str]) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "after the pixels", zip=False)
    buffer = io.BytesIO()
    PHOTO.save(buffer, "PNG", pnginfo=info)
    data = buffer.getvalue()
    # Move the tEXt chunk behind IDAT, where Pillow only reads it on a full decode.
    start = data.index(b"tEXt") - 4
    length = int.from_bytes(data[start : start + 4], "big") + 12
    chunk, rest = data[start : start + length], data[:start] + data[start + length :]
    iend = rest.index(b"IEND") - 4
    late = rest[:iend] + chunk + rest[iend:]
    loaded = load_image(late, target_side=400)
    assert vips_calls == []
    assert loaded.image.size[0] >= 400


def test_fit_works_without_libvips(monkeypatch: pytest.MonkeyPatch) -> None:
    _pillow_only(monkeypatch)
    fitted = fit_image(jpeg_bytes(PHOTO, 92), max_side=500)
    assert (fitted.width, fitted.height) == (500, 375)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_streamed_into_pillow_row_by_row_with_the_same_pixels(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes(PHOTO.convert(mode))
    streamed: list[str] = []
    stream = _vips._streamed

    def spy(pyvips: Any, image: Any, mode: str) -> Image.Image:
        streamed.append(mode)
        return stream(pyvips, image, mode)

    monkeypatch.setattr(_vips, "_streamed", spy)
    fast = _vips.decode_reduced(data, "PNG", PHOTO.size, 700, draft_slack=1.0)
    # RGB and grey go through libvips' raw output into Pillow's parser; alpha does not.
    assert streamed == ([] if mode == "RGBA" else [mode])
    monkeypatch.setattr(_vips, "_streams", lambda pyvips, pixels: False)
    whole = _vips.decode_reduced(data, "PNG", PHOTO.size, 700, draft_slack=1.0)
    assert fast is not None and whole is not None
    assert fast.mode == whole.mode == mode and fast.size == whole.size == (700, 525)
    assert np.array_equal(np.asarray(fast), np.asarray(whole))
