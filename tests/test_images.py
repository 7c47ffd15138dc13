"""Tests for nbbanana.images.load_image: inputs, conversions, metadata, errors, speed paths."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _imagegen import (
    animated_gif_bytes,
    animated_png_bytes,
    animated_webp_bytes,
    asymmetric_image,
    bomb_png_bytes,
    cmyk_icc_profile,
    cmyk_image,
    cmyk_profile_expected_rgb,
    encode,
    file_upload_value,
    heic_bytes,
    jpeg_bytes,
    orient_for_exif,
    photo_like,
    png_bytes,
    quadrant_colours,
    raw_png_bytes,
    srgb_icc_profile,
    swapped_rgb_icc_profile,
    webp_bytes,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from nbbanana import samples
from nbbanana.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyImageError,
    ImageError,
    UnsupportedImageError,
)
from nbbanana.images import DEFAULT_MAX_PIXELS, DRAFT_SLACK, LoadedImage, load_image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
UPRIGHT_QUADRANTS = (RED, GREEN, BLUE, WHITE)


def close(actual: Any, expected: Any, tol: int = 12) -> bool:
    """True when every channel of ``actual`` is within ``tol`` of ``expected``."""
    return all(abs(int(a) - int(e)) <= tol for a, e in zip(actual, expected, strict=True))


def one_sentence(message: str) -> None:
    """Error messages are one line, end with a full stop and say what to do."""
    assert "\n" not in message
    assert message.endswith("."), message


# --------------------------------------------------------------------------- input kinds


@pytest.fixture(scope="module")
def small_jpeg() -> bytes:
    return jpeg_bytes(photo_like(64, 48, seed=1), 92)


def test_path_str_and_pathlike(write_file: Any, small_jpeg: bytes) -> None:
    path = write_file("holiday.jpg", small_jpeg)
    for source in (str(path), path):
        loaded = load_image(source)
        assert loaded.name == "holiday.jpg"
        assert loaded.original_format == "JPEG"
        assert loaded.original_bytes == len(small_jpeg)
        assert loaded.image.size == (64, 48)
        assert loaded.source_sha256 == hashlib.sha256(small_jpeg).hexdigest()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like(kind: type, small_jpeg: bytes) -> None:
    loaded = load_image(kind(small_jpeg))
    assert loaded.name == "<bytes>"
    assert loaded.image.mode == "RGB"
    assert loaded.source_sha256 == hashlib.sha256(small_jpeg).hexdigest()
    assert loaded.passthrough == small_jpeg
    assert loaded.passthrough_mime == "image/jpeg"


def test_binary_file_objects(write_file: Any, small_jpeg: bytes) -> None:
    assert load_image(io.BytesIO(small_jpeg)).name == "<file>"
    path = write_file("sub/cat.jpg", small_jpeg)
    with path.open("rb") as handle:
        loaded = load_image(handle)
    assert loaded.name == "cat.jpg"
    assert loaded.image.size == (64, 48)


def test_text_mode_file_is_refused(write_file: Any, small_jpeg: bytes) -> None:
    path = write_file("cat.jpg", small_jpeg)
    with path.open("r", encoding="latin-1") as handle, pytest.raises(UnsupportedImageError) as err:
        load_image(handle)  # type: ignore[arg-type]
    assert "'rb'" in str(err.value)
    one_sentence(str(err.value))


def test_file_upload_item(small_jpeg: bytes) -> None:
    item = file_upload_value(small_jpeg, name="IMG_0042.jpg")
    assert isinstance(item["content"], memoryview)
    loaded = load_image(item)
    assert loaded.name == "IMG_0042.jpg"
    assert loaded.source_sha256 == hashlib.sha256(small_jpeg).hexdigest()
    assert loaded.passthrough == small_jpeg


def test_file_upload_mistakes_are_explained(small_jpeg: bytes) -> None:
    item = file_upload_value(small_jpeg)
    with pytest.raises(UnsupportedImageError, match=r"upload\.value\[0\]"):
        load_image((item,))  # type: ignore[arg-type]
    with pytest.raises(UnsupportedImageError, match="ipywidgets 7"):
        load_image({"photo.jpg": {"metadata": {}, "content": small_jpeg}})
    with pytest.raises(UnsupportedImageError, match="no 'content'"):
        load_image({"name": "x.jpg"})


def test_pil_image_is_normalised_without_touching_the_callers(small_jpeg: bytes) -> None:
    opened = Image.open(
        io.BytesIO(
            jpeg_bytes(orient_for_exif(asymmetric_image(), 3), 95, exif_orientation=3, gps=True)
        )
    )
    loaded = load_image(opened)
    assert loaded.name == "<PIL image>"
    assert loaded.original_format == "JPEG"
    assert all(map(close, quadrant_colours(loaded.image), UPRIGHT_QUADRANTS))
    assert loaded.warnings == ["GPS location removed"]
    assert loaded.image.info == {}
    assert "exif" in opened.info  # the caller's image keeps its metadata
    assert loaded.passthrough is None
    assert loaded.original_bytes is None


def test_plain_pil_image_and_its_hash() -> None:
    a = Image.new("RGB", (8, 8), (10, 20, 30))
    b = Image.new("RGB", (8, 8), (10, 20, 31))
    la, lb = load_image(a), load_image(b)
    assert la.image.getpixel((0, 0)) == (10, 20, 30)
    assert la.source_sha256 == load_image(a.copy()).source_sha256
    assert la.source_sha256 != lb.source_sha256
    assert a.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize(
    ("array", "mode", "pixel"),
    [
        (np.full((6, 5), 7, np.uint8), "L", 7),
        (np.full((6, 5, 1), 7, np.uint8), "L", 7),
        (np.full((6, 5, 3), (1, 2, 3), np.uint8), "RGB", (1, 2, 3)),
        (np.full((6, 5), 65535, np.uint16), "L", 255),
        (np.full((6, 5), 32896, np.uint16), "L", 128),
        (np.full((6, 5, 3), (0.0, 0.5, 1.0), np.float32), "RGB", (0, 128, 255)),
        (np.ones((6, 5), bool), "L", 255),
    ],
)
def test_numpy_arrays(array: np.ndarray, mode: str, pixel: Any) -> None:
    loaded = load_image(array)
    assert loaded.name == "<array>"
    assert loaded.image.mode == mode
    assert loaded.image.size == (5, 6)
    assert loaded.image.getpixel((2, 2)) == pixel
    assert loaded.original_format is None


def test_numpy_rgba_keeps_alpha_only_when_used() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    assert load_image(rgba).image.mode == "RGB"
    rgba[0, 0, 3] = 0
    loaded = load_image(rgba)
    assert loaded.image.mode == "RGBA"
    assert loaded.has_alpha


def test_numpy_hash_depends_on_content_and_shape() -> None:
    a = np.zeros((4, 6), np.uint8)
    assert load_image(a).source_sha256 == load_image(a.copy()).source_sha256
    assert load_image(a).source_sha256 != load_image(a.reshape(6, 4)).source_sha256


@pytest.mark.parametrize(
    ("array", "error", "words"),
    [
        (np.zeros((4, 4, 2), np.uint8), UnsupportedImageError, "shape (4, 4, 2)"),
        (np.zeros((2, 4, 4, 3), np.uint8), UnsupportedImageError, "is not an image"),
        (np.zeros((4,), np.uint8), UnsupportedImageError, "is not an image"),
        (np.zeros((4, 4), np.int64), UnsupportedImageError, "dtype int64"),
        (np.full((4, 4), 2.0), UnsupportedImageError, "[0, 1]"),
        (np.zeros((0, 4, 3), np.uint8), EmptyImageError, "no pixels"),
    ],
)
def test_bad_arrays(array: np.ndarray, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as err:
        load_image(array)
    assert words in str(err.value)
    one_sentence(str(err.value))


def test_unknown_source_types_missing_files_and_urls(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="from an object of type int"):
        load_image(42)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="does not exist") as err:
        load_image(tmp_path / "nope.jpg")
    one_sentence(str(err.value))
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(UnsupportedImageError, match="is a URL"):
        load_image("https://example.com/cat.jpg")


def test_base64_data_url(small_jpeg: bytes) -> None:
    import base64

    url = "data:image/jpeg;base64," + base64.b64encode(small_jpeg).decode()
    loaded = load_image(url)
    assert loaded.name == "<data URL>"
    assert loaded.source_sha256 == hashlib.sha256(small_jpeg).hexdigest()
    with pytest.raises(UnsupportedImageError, match="only base64 data URLs"):
        load_image("data:text/plain,hello")


def test_target_side_must_be_positive(small_jpeg: bytes) -> None:
    with pytest.raises(ValueError, match="target_side"):
        load_image(small_jpeg, target_side=0)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    upright = asymmetric_image(40, 30)
    stored = orient_for_exif(upright, orientation)
    loaded = load_image(jpeg_bytes(stored, 95, exif_orientation=orientation))
    assert loaded.image.size == (40, 30)
    assert loaded.original_size == (40, 30)
    for got, want in zip(quadrant_colours(loaded.image), UPRIGHT_QUADRANTS, strict=True):
        assert close(got, want, tol=40), (orientation, quadrant_colours(loaded.image))
    # EXIF is present, so there is something to strip: never passed through.
    assert loaded.passthrough is None


def test_png_exif_orientation() -> None:
    stored = orient_for_exif(asymmetric_image(40, 30), 6)
    loaded = load_image(png_bytes(stored, exif_orientation=6))
    assert quadrant_colours(loaded.image) == UPRIGHT_QUADRANTS


def test_webp_exif_orientation_and_exif_after_png_pixels() -> None:
    stored = orient_for_exif(asymmetric_image(40, 30), 8)
    exif = Image.Exif()
    exif[0x0112] = 8
    loaded = load_image(webp_bytes(stored, lossless=True, exif=exif.tobytes()))
    assert quadrant_colours(loaded.image) == UPRIGHT_QUADRANTS
    assert loaded.passthrough is None
    # A PNG whose eXIf chunk comes after IDAT (some tools write it there).
    plain = png_bytes(orient_for_exif(asymmetric_image(40, 30), 3))
    iend = plain.rindex(b"IEND") - 4
    payload = b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x03\x00\x00"
    payload += bytes(4)
    chunk = (
        len(payload).to_bytes(4, "big")
        + b"eXIf"
        + payload
        + zlib.crc32(b"eXIf" + payload).to_bytes(4, "big")
    )
    late = plain[:iend] + chunk + plain[iend:]
    assert load_image(late).image.getpixel((5, 5)) == RED


def test_concurrent_loads_with_colour_profiles() -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = jpeg_bytes(Image.new("RGB", (64, 64), RED), 95, icc=swapped_rgb_icc_profile())
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: load_image(data).image.getpixel((9, 9)), range(16)))
    assert all(close(pixel, BLUE, tol=20) for pixel in results)


def test_orientation_with_reduction_reports_the_upright_original_size() -> None:
    upright = photo_like(400, 300, seed=2)
    loaded = load_image(
        jpeg_bytes(orient_for_exif(upright, 8), exif_orientation=8), target_side=100
    )
    assert loaded.original_size == (400, 300)
    assert loaded.image.size == (100, 75)


# --------------------------------------------------------------------------- colour


CMYK_SWATCHES = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 255, 255, 0)]


def _swatches(img: Image.Image, n: int, cell: int = 16) -> list[Any]:
    return [img.getpixel((i * cell + cell // 2, cell // 2)) for i in range(n)]


def test_cmyk_without_profile_converts_naively_with_a_warning() -> None:
    loaded = load_image(jpeg_bytes(cmyk_image(CMYK_SWATCHES), 95))
    assert loaded.image.mode == "RGB"
    got = _swatches(loaded.image, 4)
    for actual, want in zip(got, [WHITE, (0, 255, 255), (0, 0, 0), RED], strict=True):
        assert close(actual, want), got
    assert any("CMYK" in w for w in loaded.warnings)
    assert loaded.passthrough is None


def test_cmyk_with_embedded_profile_uses_it() -> None:
    data = jpeg_bytes(cmyk_image(CMYK_SWATCHES), 95, icc=cmyk_icc_profile())
    loaded = load_image(data)
    got = _swatches(loaded.image, 4)
    expected = [cmyk_profile_expected_rgb(*(v // 255 for v in s)) for s in CMYK_SWATCHES]
    for actual, want in zip(got, expected, strict=True):
        assert close(actual, want, tol=20), (got, expected)
    # The profile's cyan and black are visibly not the naive (0, 255, 255) and (0, 0, 0).
    assert got[1][1] < 200
    assert got[2][0] > 25
    assert loaded.warnings == []
    assert loaded.passthrough is None


def test_cmyk_tiff_with_profile() -> None:
    data = encode(cmyk_image(CMYK_SWATCHES), "TIFF", icc_profile=cmyk_icc_profile())
    loaded = load_image(data)
    assert loaded.original_format == "TIFF"
    assert close(_swatches(loaded.image, 4)[1], cmyk_profile_expected_rgb(1, 0, 0, 0), tol=20)


def test_rgb_icc_profile_is_converted_to_srgb() -> None:
    data = jpeg_bytes(Image.new("RGB", (16, 16), RED), 95, icc=swapped_rgb_icc_profile())
    loaded = load_image(data)
    assert close(loaded.image.getpixel((8, 8)), BLUE, tol=20)
    assert loaded.passthrough is None
    assert "icc_profile" not in loaded.image.info


def test_rgba_png_with_profile_keeps_alpha() -> None:
    img = Image.new("RGBA", (16, 16), (255, 0, 0, 128))
    loaded = load_image(png_bytes(img, icc=swapped_rgb_icc_profile()))
    assert loaded.image.mode == "RGBA"
    pixel = loaded.image.getpixel((4, 4))
    assert close(pixel[:3], BLUE, tol=20)
    assert pixel[3] == 128


def test_srgb_profile_is_left_alone_and_allows_passthrough() -> None:
    img = photo_like(32, 24, seed=3)
    data = jpeg_bytes(img, 95, icc=srgb_icc_profile())
    loaded = load_image(data)
    assert loaded.passthrough == data
    reference = load_image(jpeg_bytes(img, 95))
    assert loaded.image.tobytes() == reference.image.tobytes()


def test_unreadable_profile_is_ignored_with_a_warning() -> None:
    data = jpeg_bytes(Image.new("RGB", (8, 8), RED), 95, icc=b"not a profile at all" * 8)
    loaded = load_image(data)
    assert close(loaded.image.getpixel((4, 4)), RED)
    assert any("colour profile" in w for w in loaded.warnings)
    assert loaded.passthrough is None


# --------------------------------------------------------------------------- bit depth & modes


def test_16bit_gray_png_is_scaled() -> None:
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    loaded = load_image(raw_png_bytes(values))
    assert loaded.image.mode == "L"
    assert [loaded.image.getpixel((x, 0)) for x in range(4)] == [0, 1, 128, 255]
    assert loaded.passthrough is None


def test_16bit_rgb_and_rgba_pngs_are_scaled() -> None:
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[...] = (65535, 32896, 0)
    loaded = load_image(raw_png_bytes(rgb))
    assert loaded.image.mode == "RGB"
    assert close(loaded.image.getpixel((0, 0)), (255, 128, 0), tol=1)
    assert loaded.passthrough is None  # 16-bit PNG: must be re-encoded
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[...] = (65535, 0, 0, 32896)
    loaded = load_image(raw_png_bytes(rgba))
    assert loaded.image.mode == "RGBA"
    assert loaded.has_alpha
    assert close(loaded.image.getpixel((0, 0)), (255, 0, 0, 128), tol=1)


def test_16bit_big_endian_tiff_and_32bit_and_float_modes() -> None:
    big = Image.fromarray(np.array([[0, 65535, 32896]], dtype=">u2"))
    assert big.mode == "I;16B"
    loaded = load_image(encode(big, "TIFF"))
    assert [loaded.image.getpixel((x, 0)) for x in range(3)] == [0, 255, 128]
    as_i = Image.fromarray(np.array([[0, 65535, 32896]], dtype=np.int32))
    assert as_i.mode == "I"
    assert [load_image(as_i).image.getpixel((x, 0)) for x in range(3)] == [0, 255, 128]
    as_f = Image.fromarray(np.array([[0.0, 1.0, 0.5]], dtype=np.float32))
    assert as_f.mode == "F"
    loaded = load_image(encode(as_f, "TIFF"))
    assert [loaded.image.getpixel((x, 0)) for x in range(3)] == [0, 255, 128]


def test_palette_without_and_with_transparency() -> None:
    opaque = Image.new("RGB", (8, 8), (200, 10, 10)).quantize(4)
    loaded = load_image(png_bytes(opaque))
    assert loaded.image.mode == "RGB"
    assert close(loaded.image.getpixel((1, 1)), (200, 10, 10), tol=2)
    assert loaded.passthrough is None  # palette PNG: not in the passthrough modes
    transparent = Image.new("P", (8, 8), 0)
    transparent.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    transparent.putpixel((0, 0), 1)
    gif = encode(transparent, "GIF", transparency=1)
    loaded = load_image(gif)
    assert loaded.image.mode == "RGBA"
    assert loaded.has_alpha
    assert loaded.image.getpixel((0, 0))[3] == 0
    assert loaded.image.getpixel((4, 4)) == (255, 0, 0, 255)


def test_la_and_rgba_alpha_is_kept_only_when_used() -> None:
    la = Image.new("LA", (8, 8), (90, 255))
    loaded = load_image(png_bytes(la))
    assert loaded.image.mode == "L"
    assert not loaded.has_alpha
    la.putpixel((0, 0), (90, 10))
    loaded = load_image(png_bytes(la))
    assert loaded.image.mode == "RGBA"
    assert loaded.has_alpha
    opaque_rgba = Image.new("RGBA", (8, 8), (1, 2, 3, 255))
    data = png_bytes(opaque_rgba)
    loaded = load_image(data)
    assert loaded.image.mode == "RGB"
    assert not loaded.has_alpha
    assert loaded.passthrough == data


def test_one_bit_becomes_l() -> None:
    img = Image.new("1", (8, 8), 0)
    img.putpixel((1, 1), 1)
    loaded = load_image(png_bytes(img))
    assert loaded.image.mode == "L"
    assert loaded.image.getpixel((1, 1)) == 255
    assert loaded.image.getpixel((2, 2)) == 0


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (animated_gif_bytes, "animated GIF: first of 4 frames used"),
        (animated_webp_bytes, "animated WebP: first of 4 frames used"),
        (animated_png_bytes, "animated PNG: first of 4 frames used"),
    ],
)
def test_animations_use_the_first_frame(make: Any, words: str) -> None:
    data = make(4)
    first = Image.open(io.BytesIO(data)).convert("RGB")
    loaded = load_image(data)
    assert loaded.warnings == [words]
    assert close(loaded.image.convert("RGB").getpixel((1, 1)), first.getpixel((1, 1)), tol=4)
    assert loaded.passthrough is None


def test_multi_picture_jpeg_is_a_jpeg_without_its_extra_pictures() -> None:
    main, preview = photo_like(64, 48, seed=15), photo_like(32, 24, seed=16)
    data = encode(main, "MPO", save_all=True, append_images=[preview], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    loaded = load_image(data)
    assert loaded.original_format == "JPEG"
    assert loaded.image.size == (64, 48)
    assert loaded.warnings == []
    assert loaded.passthrough is None  # the appended picture would be sent too


def test_loaded_image_is_returned_as_is(small_jpeg: bytes) -> None:
    loaded = load_image(small_jpeg)
    assert load_image(loaded) is loaded


def test_multipage_tiff_warns() -> None:
    pages = [Image.new("RGB", (8, 8), c) for c in (RED, GREEN)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    loaded = load_image(data)
    assert loaded.warnings == ["multi-page TIFF: first of 2 pages used"]
    assert loaded.image.getpixel((1, 1)) == RED


# --------------------------------------------------------------------------- metadata


def test_gps_is_stripped_with_a_warning() -> None:
    data = jpeg_bytes(photo_like(48, 32, seed=4), 90, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    loaded = load_image(data)
    assert loaded.warnings == ["GPS location removed"]
    assert loaded.passthrough is None
    assert loaded.image.info == {}
    reencoded = Image.open(io.BytesIO(encode(loaded.image, "JPEG")))
    assert len(reencoded.getexif()) == 0
    assert "exif" not in reencoded.info


def test_exif_xmp_comments_and_text_chunks_block_passthrough() -> None:
    img = photo_like(32, 24, seed=5)
    for data in (
        jpeg_bytes(img, exif=True),
        jpeg_bytes(img, comment=b"shot on holiday"),
        jpeg_bytes(img, xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>"),
        png_bytes(img, text={"Author": "someone"}),
    ):
        loaded = load_image(data)
        assert loaded.passthrough is None
        assert loaded.warnings == []
        assert loaded.image.info == {}


def test_keep_metadata_when_asked() -> None:
    data = jpeg_bytes(asymmetric_image(), 95, exif_orientation=6, gps=True)
    loaded = load_image(data, strip_metadata=False)
    assert loaded.warnings == []
    exif = Image.Exif()
    exif.load(loaded.image.info["exif"])
    assert exif.get_ifd(0x8825)  # GPS kept
    assert 0x0112 not in exif  # orientation applied, so removed
    assert loaded.passthrough is None  # orientation 6: the bytes are not upright
    upright = jpeg_bytes(asymmetric_image(), 95, gps=True)
    assert load_image(upright, strip_metadata=False).passthrough == upright


@pytest.mark.parametrize(
    ("encoder", "mime"),
    [
        (lambda img: jpeg_bytes(img, 90), "image/jpeg"),
        (png_bytes, "image/png"),
        (lambda img: webp_bytes(img, 80), "image/webp"),
        (lambda img: jpeg_bytes(img.convert("L"), 90), "image/jpeg"),
    ],
)
def test_passthrough_for_clean_upright_files(encoder: Any, mime: str) -> None:
    data = encoder(photo_like(40, 30, seed=6))
    loaded = load_image(data)
    assert loaded.passthrough is data or loaded.passthrough == data
    assert loaded.passthrough_mime == mime


def test_no_passthrough_for_other_formats() -> None:
    img = photo_like(40, 30, seed=6)
    for data in (encode(img, "BMP"), encode(img, "TIFF"), encode(img, "GIF"), heic_or_skip(img)):
        loaded = load_image(data)
        assert loaded.passthrough is None
        assert loaded.passthrough_mime is None


# --------------------------------------------------------------------------- HEIC


def heic_or_skip(img: Image.Image) -> bytes:
    try:
        return heic_bytes(img)
    except (ImportError, RuntimeError, OSError, ValueError) as exc:  # pragma: no cover
        pytest.skip(f"this pillow-heif build cannot encode HEIC ({exc})")


def test_heic_round_trip() -> None:
    img = photo_like(64, 48, seed=8)
    data = heic_or_skip(img)
    loaded = load_image(data)
    assert loaded.original_format == "HEIF"
    assert loaded.image.size == (64, 48)
    assert loaded.image.mode == "RGB"
    diff = np.abs(np.asarray(loaded.image, np.int16) - np.asarray(img, np.int16))
    assert diff.mean() < 12


def test_heic_orientation_and_gps() -> None:
    import pillow_heif

    upright = asymmetric_image(40, 30)
    stored = orient_for_exif(upright, 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0)}
    buf = io.BytesIO()
    try:
        pillow_heif.from_pillow(stored).save(buf, format="HEIF", quality=95, exif=exif.tobytes())
    except (RuntimeError, OSError, ValueError) as exc:  # pragma: no cover
        pytest.skip(f"this pillow-heif build cannot encode HEIC ({exc})")
    loaded = load_image(buf.getvalue())
    assert loaded.image.size == (40, 30)
    assert loaded.original_size == (40, 30)
    for got, want in zip(quadrant_colours(loaded.image), UPRIGHT_QUADRANTS, strict=True):
        assert close(got, want, tol=40)
    assert "GPS location removed" in loaded.warnings


# --------------------------------------------------------------------------- bombs


def test_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    data = bomb_png_bytes(100_000, 100_000)
    assert len(data) < 2000
    with pytest.raises(DecompressionBombError) as err:
        load_image(data)
    message = str(err.value)
    assert "100000×100000 pixels (10,000 MP), more than the limit of 200 MP" in message
    assert "max_pixels=10000000000" in message
    one_sentence(message)


def test_pixel_limit_is_configurable(small_jpeg: bytes) -> None:
    with pytest.raises(DecompressionBombError, match="64×48") as err:
        load_image(small_jpeg, max_pixels=64 * 48 - 1)
    assert "(3,072 pixels), more than the limit of 3,071 pixels" in str(err.value)
    assert load_image(small_jpeg, max_pixels=64 * 48).image.size == (64, 48)
    with pytest.raises(DecompressionBombError):
        load_image(np.zeros((10, 10), np.uint8), max_pixels=99)
    assert DEFAULT_MAX_PIXELS >= 200_000_000


def test_pillows_own_bomb_check_does_not_leak(
    monkeypatch: pytest.MonkeyPatch, small_jpeg: bytes
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would refuse 64×48 (>2×)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(small_jpeg).image.size == (64, 48)
        gif = load_image(animated_gif_bytes(3, (64, 48)))  # frame counting checks sizes too
        assert gif.warnings == ["animated GIF: first of 3 frames used"]
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # Pillow would only warn
        assert load_image(small_jpeg).image.size == (64, 48)
    assert Image.MAX_IMAGE_PIXELS == 2000  # restored after use


# --------------------------------------------------------------------------- broken input


def test_empty_inputs(write_file: Any) -> None:
    for source in (b"", bytearray(), io.BytesIO(b""), write_file("empty.jpg", b"")):
        with pytest.raises(EmptyImageError) as err:
            load_image(source)
        assert "empty (0 bytes)" in str(err.value)
        one_sentence(str(err.value))
    with pytest.raises(EmptyImageError, match=r"empty\.jpg is empty"):
        load_image(file_upload_value(b"", name="empty.jpg"))


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_is_detected(progressive: bool) -> None:
    data = jpeg_bytes(photo_like(256, 192, seed=9), 90, progressive=progressive)
    with pytest.raises(CorruptImageError) as err:
        load_image(data[: len(data) * 2 // 3], target_side=64)
    assert "truncated or damaged JPEG" in str(err.value)
    one_sentence(str(err.value))


def test_truncation_is_detected_even_if_pillow_is_told_to_pad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = jpeg_bytes(photo_like(128, 96, seed=9), 90)
    with pytest.raises(CorruptImageError):
        load_image(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_truncated_and_corrupt_png() -> None:
    data = png_bytes(photo_like(128, 96, seed=10))
    with pytest.raises(CorruptImageError):
        load_image(data[: len(data) // 2])
    damaged = bytearray(data)
    damaged[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    with pytest.raises(CorruptImageError, match="checksum mismatch in its IDAT chunk"):
        load_image(bytes(damaged))


@pytest.mark.parametrize("target_side", [None, 256])
def test_a_big_damaged_png_is_reported_as_damaged(target_side: int | None) -> None:
    # Over a megabyte, the checksums are verified on a helper thread while the pixels
    # decode (through libvips when reduced): the damage is still what is reported.
    rng = np.random.default_rng(3)
    data = png_bytes(Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)))
    assert len(data) > 1 << 20
    damaged = bytearray(data)
    damaged[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    with pytest.raises(CorruptImageError, match="checksum mismatch in its IDAT chunk"):
        load_image(bytes(damaged), target_side=target_side)
    assert (
        load_image(data, target_side=target_side).source_sha256 == hashlib.sha256(data).hexdigest()
    )


def test_cut_header_is_corrupt_not_unsupported() -> None:
    data = jpeg_bytes(photo_like(32, 24, seed=11), 90)
    with pytest.raises(CorruptImageError, match="starts like a JPEG") as err:
        load_image(data[:12])
    one_sentence(str(err.value))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>',
            "is an SVG (vector) image; export it as PNG first.",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG (vector) image"),
        (
            b"<?xml version='1.0'?>\n<!-- " + b"x" * 3000 + b" -->\n<svg></svg>",
            "SVG (vector) image",
        ),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "is a PDF document"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "is an HTML page"),
        (b"just some notes\nabout a picture\n", "is a text file"),
        (bytes(range(256)) * 4, "not an image format nbbanana can read"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "PostScript/EPS"),
    ],
)
def test_unsupported_inputs(data: bytes, words: str) -> None:
    with pytest.raises(UnsupportedImageError) as err:
        load_image(data)
    assert words in str(err.value)
    one_sentence(str(err.value))


def test_unsupported_input_names_the_file(write_file: Any) -> None:
    path = write_file("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    with pytest.raises(UnsupportedImageError) as err:
        load_image(path)
    assert str(err.value).startswith("logo.svg is an SVG")
    assert err.value.source == "logo.svg"


# --------------------------------------------------------------------------- speed paths
# These test the Pillow path, used when libvips is missing (tests/test_fit_decode.py tests
# the libvips one).


@pytest.fixture
def pillow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbbanana import _vips

    monkeypatch.setattr(_vips, "_module", lambda: None)


def test_jpeg_draft_mode_decodes_at_reduced_size(
    monkeypatch: pytest.MonkeyPatch, pillow_only: None
) -> None:
    data = jpeg_bytes(photo_like(4000, 3000, seed=12), 85)
    from PIL import JpegImagePlugin

    drafts: list[Any] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Any, mode: str | None, size: tuple[int, int] | None) -> Any:
        result = original_draft(self, mode, size)
        drafts.append(result)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    small = load_image(data, target_side=500)
    assert small.image.size == (500, 375)  # decoded at 1/8 scale: exactly the target
    assert small.original_size == (4000, 3000)
    assert drafts and drafts[-1] is not None
    mid = load_image(data, target_side=1536)
    assert mid.image.size == (2000, 1500)  # 1/2 scale: the smallest not below 1536
    full = load_image(data, target_side=2500)
    assert full.image.size == (4000, 3000)  # 1/2 would be below the target
    assert small.passthrough == data  # the original bytes are still usable as they are


def test_other_formats_are_reduced_by_an_integer_factor(pillow_only: None) -> None:
    data = png_bytes(photo_like(1000, 800, seed=13))
    loaded = load_image(data, target_side=150)
    assert loaded.image.size == (334, 267)  # factor 3: long side 334 >= 2 × 150
    assert loaded.original_size == (1000, 800)
    # factor 1: Lanczos (the caller's) does better than a box for the last factor of 2
    assert load_image(data, target_side=300).image.size == (1000, 800)


def test_reduced_rgba_does_not_bleed_transparent_colour(pillow_only: None) -> None:
    img = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # invisible red
    img.paste((0, 0, 255, 255), (0, 0, 34, 64))  # opaque blue, 2 px into the 4-px block at 32
    loaded = load_image(png_bytes(img), target_side=8)
    assert loaded.image.size == (16, 16)
    r, _, b, a = loaded.image.getpixel((8, 8))  # half blue, half invisible red
    assert 100 < a < 155
    assert r < 10
    assert b > 240


@pytest.mark.slow
def test_48_megapixel_jpeg_is_never_decoded_at_full_size() -> None:
    data = jpeg_bytes(photo_like(8000, 6000, seed=14), 85)
    loaded = load_image(data, target_side=1536)
    # Pillow stops at the 1/4 DCT scale; libvips also resamples to the exact target.
    assert loaded.image.size in ((2000, 1500), (1536, 1152))
    assert loaded.original_size == (8000, 6000)


# --------------------------------------------------------------------------- samples


def test_bundled_samples_load_and_are_credited() -> None:
    paths = samples.sample_paths()
    assert len(paths) >= 3
    credits = (Path(samples.__file__).parent / "CREDITS.md").read_text(encoding="utf-8")
    kinds = set()
    for path in paths:
        assert path.stat().st_size < 150_000
        assert path.name in credits
        loaded = load_image(path)
        assert isinstance(loaded, LoadedImage)
        assert loaded.warnings == []
        kinds.add((loaded.original_format, loaded.image.mode))
    assert ("JPEG", "RGB") in kinds
    assert ("PNG", "RGBA") in kinds
    assert samples.sample_path("coffee.jpg") == paths[0]
    with pytest.raises(KeyError, match=r"coffee\.jpg"):
        samples.sample_path("missing.png")


# --------------------------------------------------------------------------- test helpers


def test_photo_like_is_deterministic_and_compresses_like_a_photo() -> None:
    a, b = photo_like(640, 480, seed=3), photo_like(640, 480, seed=3)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != photo_like(640, 480, seed=4).tobytes()
    bytes_per_pixel = len(jpeg_bytes(a, 90)) / (640 * 480)
    assert 0.05 < bytes_per_pixel < 1.5  # real photos at q90: about 0.1 to 1
    assert photo_like(30, 20, mode="RGBA").getpixel((0, 0))[3] == 0
    assert photo_like(30, 20, mode="L").mode == "L"


# --------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(["RGB", "L", "RGBA", "LA", "P", "1", "I;16", "CMYK"]),
    fmt=st.sampled_from(["JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP"]),
    orientation=st.integers(1, 8),
    target_side=st.one_of(st.none(), st.integers(1, 400)),
)
def test_any_input_is_normalised(
    width: int,
    height: int,
    mode: str,
    fmt: str,
    orientation: int,
    target_side: int | None,
) -> None:
    base = photo_like(width, height, seed=width * 1000 + height)
    img = base.convert("L").convert(mode) if mode in ("I;16", "1", "LA") else base.convert(mode)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257).astype("<u2"))
    accepted = {
        "JPEG": {"RGB", "L", "CMYK"},
        "PNG": {"RGB", "L", "RGBA", "LA", "P", "1", "I;16"},
        "WEBP": {"RGB", "RGBA"},
        "TIFF": {"RGB", "L", "RGBA", "LA", "P", "1", "I;16", "CMYK"},
        "GIF": {"L", "P", "1"},
        "BMP": {"RGB", "L", "P", "1"},
    }[fmt]
    if mode not in accepted:
        img = img.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    params = {"exif": exif.tobytes()} if fmt in ("JPEG", "PNG", "WEBP") else {}
    data = encode(img, fmt, **params)
    loaded = load_image(data, target_side=target_side)

    applied = orientation if params else 1
    upright = (height, width) if applied in (5, 6, 7, 8) else (width, height)
    assert loaded.original_size == upright
    assert loaded.image.mode in ("RGB", "RGBA", "L")
    assert loaded.image.info == {}
    long_side = max(loaded.image.size)
    slack = DRAFT_SLACK if fmt == "JPEG" else 1.0
    wanted = math.ceil((target_side or max(upright)) * slack)
    assert long_side >= min(wanted, max(upright))
    assert long_side <= max(upright)
    if target_side is None:
        assert loaded.image.size == upright
    if loaded.image.mode == "RGBA":
        assert loaded.has_alpha
    else:
        assert not loaded.has_alpha
    assert loaded.source_sha256 == hashlib.sha256(data).hexdigest()
    if loaded.passthrough is not None:
        assert loaded.passthrough == data
        assert applied == 1 and not params  # EXIF present means nothing passes through
