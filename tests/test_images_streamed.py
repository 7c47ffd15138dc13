"""A file given by path that will be reduced is decoded from disk and hashed in pieces:
its bytes are never held whole (what libvips' own thumbnail does not do either)."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _imagegen import (
    asymmetric_image,
    encode,
    heic_bytes,
    jpeg_bytes,
    orient_for_exif,
    photo_like,
    png_bytes,
    quadrant_colours,
    swapped_rgb_icc_profile,
    webp_bytes,
)
from PIL import Image, PngImagePlugin

from nbbanana import _vips, images
from nbbanana.errors import CorruptImageError, DecompressionBombError
from nbbanana.fit import fit_image
from nbbanana.images import _PngChecksums, load_image

pytestmark = pytest.mark.skipif(not _vips.available(), reason="libvips is not installed")


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Incompressible pixels: the file is about as large as the image."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def vips_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What libvips was given, for the calls that did not fall back: "path" or "bytes"."""
    calls: list[str] = []
    decode = _vips.decode_reduced

    def spy(data: Any, *args: Any, **kwargs: Any) -> Image.Image | None:
        result = decode(data, *args, **kwargs)
        if result is not None:
            calls.append("bytes" if isinstance(data, bytes) else "path")
        return result

    monkeypatch.setattr(_vips, "decode_reduced", spy)
    return calls


def _peak_traced(run: Any) -> int:
    """Peak of Python-level allocations (bytes objects, numpy arrays) while ``run()``."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_loading_a_large_path_does_not_read_it_whole(
    fmt: str, tmp_path: Path, vips_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode(_noise(1800, 1200, seed=1), fmt)
    assert len(data) > 6_000_000
    path = tmp_path / f"scan.{fmt.lower()}"
    path.write_bytes(data)
    load_image(path, target_side=512)  # first use: imports, libvips' start-up
    loaded: list[Any] = []
    peak = _peak_traced(lambda: loaded.append(load_image(path, target_side=512)))
    assert vips_calls == ["path", "path"]
    # Streamed, the 1 MB read buffer is what Python holds (the pixels are Pillow's).
    assert peak < len(data) / 3, f"{peak:,} bytes traced for a {len(data):,}-byte file"
    assert loaded[0].source_sha256 == hashlib.sha256(data).hexdigest()
    assert loaded[0].original_bytes == len(data) and loaded[0].image.size == (512, 341)
    # The measure can tell: reading the file first holds all of it.
    monkeypatch.setattr(images, "_load_path_reduced", lambda *args: None)
    assert _peak_traced(lambda: load_image(path, target_side=512)) > len(data)


def test_fitting_a_path_hashes_the_file_and_fits_the_same_picture(
    tmp_path: Path, vips_calls: list[str]
) -> None:
    data = encode(photo_like(1800, 1200, seed=1), "TIFF")
    path = tmp_path / "scan.tif"
    path.write_bytes(data)
    fit = fit_image(path, max_side=512)
    same = fit_image(data, max_side=512)
    assert vips_calls == ["path", "bytes"]
    assert fit.source_sha256 == same.source_sha256 == hashlib.sha256(data).hexdigest()
    assert fit.report.input_bytes == len(data) and not fit.report.passthrough
    assert fit.data == same.data and (fit.width, fit.height) == (512, 341)


@pytest.mark.parametrize(
    "make",
    [
        lambda img: jpeg_bytes(img, 92),
        lambda img: png_bytes(img),
        lambda img: encode(img, "TIFF"),
        lambda img: webp_bytes(img, quality=92),
    ],
    ids=["JPEG", "PNG", "TIFF", "WEBP"],
)
def test_path_and_bytes_load_the_same(make: Any, tmp_path: Path, vips_calls: list[str]) -> None:
    data = make(photo_like(1200, 900, seed=5))
    path = tmp_path / "photo"
    path.write_bytes(data)
    from_path = load_image(path, target_side=500)
    from_bytes = load_image(data, target_side=500)
    assert vips_calls == ["path", "bytes"]
    assert from_path.source_sha256 == from_bytes.source_sha256 == hashlib.sha256(data).hexdigest()
    assert from_path.original_bytes == len(data)
    assert from_path.original_size == from_bytes.original_size
    assert from_path.original_format == from_bytes.original_format
    assert np.array_equal(np.asarray(from_path.image), np.asarray(from_bytes.image))
    assert from_path.passthrough is None  # reduced: never sent as it is


def test_orientation_and_colour_profile_from_a_path(tmp_path: Path, vips_calls: list[str]) -> None:
    upright = asymmetric_image(400, 300)
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(jpeg_bytes(orient_for_exif(upright, 6), 95, exif_orientation=6, gps=True))
    loaded = load_image(rotated, target_side=200)
    assert loaded.image.size == (200, 150) and loaded.original_size == (400, 300)
    assert loaded.warnings == ["GPS location removed"]
    expected = quadrant_colours(upright.resize((200, 150)))
    for got, want in zip(quadrant_colours(loaded.image), expected, strict=True):
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 40
    swapped = tmp_path / "swapped.png"
    swapped.write_bytes(
        png_bytes(Image.new("RGB", (400, 300), (200, 30, 30)), icc=swapped_rgb_icc_profile())
    )
    red, _, blue = load_image(swapped, target_side=100).image.getpixel((50, 37))
    assert blue > red  # the profile says the stored red is blue
    assert vips_calls == ["path", "path"]


def test_a_big_damaged_png_path_is_reported_as_damaged(tmp_path: Path) -> None:
    data = png_bytes(_noise(700, 700, seed=3))
    assert len(data) > 1 << 20  # checked on the helper thread
    damaged = bytearray(data)
    damaged[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptImageError, match="checksum mismatch in its IDAT chunk"):
        load_image(path, target_side=256)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_path_falls_back_to_the_loaders_error(fmt: str, tmp_path: Path) -> None:
    img = photo_like(800, 600, seed=7)
    data = jpeg_bytes(img, 92) if fmt == "JPEG" else png_bytes(img)
    path = tmp_path / "cut"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=f"truncated or damaged {fmt}"):
        load_image(path, target_side=300)


def test_a_file_that_already_fits_is_still_passed_through(
    tmp_path: Path, vips_calls: list[str]
) -> None:
    data = jpeg_bytes(photo_like(600, 400, seed=9), 90)
    path = tmp_path / "small.jpg"
    path.write_bytes(data)
    fit = fit_image(path, max_side=1024)
    assert fit.report.passthrough and fit.data == data
    assert vips_calls == []


def test_oversized_png_metadata_is_still_dropped_with_a_note(
    tmp_path: Path, vips_calls: list[str]
) -> None:
    info = PngImagePlugin.PngInfo()
    rng = np.random.default_rng(4)
    big = "".join(chr(c) for c in rng.integers(33, 127, PngImagePlugin.MAX_TEXT_CHUNK + 10))
    info.add_text("Blob", big, zip=True)
    path = tmp_path / "notes.png"
    path.write_bytes(encode(photo_like(800, 600, seed=2), "PNG", pnginfo=info))
    loaded = load_image(path, target_side=300)
    assert any("zTXt chunk 'Blob'" in note for note in loaded.warnings)
    assert loaded.image.size == (300, 225)
    assert vips_calls == ["bytes"]  # the chunk is dropped from the bytes held


def test_heic_path_still_goes_through_pillow_heif(tmp_path: Path) -> None:
    try:
        data = heic_bytes(photo_like(800, 600, seed=6))
    except (ImportError, OSError, RuntimeError) as exc:
        pytest.skip(f"no HEIC encoder: {exc}")
    path = tmp_path / "photo.heic"
    path.write_bytes(data)
    loaded = load_image(path, target_side=300)
    assert loaded.original_format == "HEIF" and max(loaded.image.size) >= 300
    assert loaded.source_sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_rewritten_during_the_decode_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hash and the pixels must come from the same file: libvips opens the path by
    # name, so a file replaced meanwhile is loaded again, from its bytes.
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(Image.new("RGB", (800, 600), (250, 0, 0))))
    blue = png_bytes(Image.new("RGB", (800, 600), (0, 0, 250)))
    decode = _vips.decode_reduced

    def rewrite_first(data: Any, *args: Any, **kwargs: Any) -> Image.Image | None:
        if not isinstance(data, bytes):
            replacement = tmp_path / "new.png"
            replacement.write_bytes(blue)
            replacement.replace(path)
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(_vips, "decode_reduced", rewrite_first)
    loaded = load_image(path, target_side=200)
    assert loaded.source_sha256 == hashlib.sha256(blue).hexdigest()
    assert loaded.image.getpixel((10, 10)) == (0, 0, 250)


@pytest.mark.parametrize("damage", [None, 100, -20])
def test_png_checksums_stream_in_pieces_of_any_size(damage: int | None) -> None:
    data = bytearray(png_bytes(photo_like(64, 48, seed=8), text={"k": "v"}))
    if damage is not None:
        data[damage] ^= 0xFF
    verdicts = []
    for piece in (1, 3, 7, 4096, len(data)):
        checksums = _PngChecksums("x.png")
        try:
            for start in range(0, len(data), piece):
                checksums.feed(data[start : start + piece])
        except CorruptImageError as exc:
            verdicts.append(str(exc))
        else:
            verdicts.append("")
    assert len(set(verdicts)) == 1
    assert (verdicts[0] == "") == (damage is None)
    images._verify_png_checksums(bytes(data[: len(data) // 2]), "cut.png")  # left to the decoder


def test_a_path_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(photo_like(800, 600, seed=1)))
    with pytest.raises(DecompressionBombError, match="max_pixels=480000"):
        load_image(path, target_side=300, max_pixels=100_000)
