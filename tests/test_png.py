"""The fast lossless PNG writer (nbbanana._png): every decoder must read back exactly the
pixels and the text, whatever the mode, size and number of stripes."""

from __future__ import annotations

import io
import zlib
from typing import Any

import numpy as np
import pytest
from _imagegen import photo_like
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from nbbanana import _png


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("stripe_bytes", [1, 700, 4 << 20])  # one row a stripe … one stripe
def test_pixels_and_text_read_back_exactly(
    mode: str, stripe_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_png, "_STRIPE_BYTES", stripe_bytes)
    image = photo_like(97, 61, seed=3).convert(mode)
    buffer = io.BytesIO()
    _png.write_png(image, buffer, {"nbbanana:prompt": "make it violet — 紫", "Software": "x"})
    buffer.seek(0)
    back = Image.open(buffer)
    back.load()  # Pillow checks every chunk's CRC and zlib the Adler-32
    assert back.mode == mode and back.size == image.size
    assert np.array_equal(np.asarray(back), np.asarray(image))
    assert back.text == {"nbbanana:prompt": "make it violet — 紫", "Software": "x"}  # type: ignore[attr-defined]


def test_the_stream_is_one_valid_zlib_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decompressed with zlib itself (which checks the combined Adler-32): the filtered rows."""
    monkeypatch.setattr(_png, "_STRIPE_BYTES", 300)
    image = photo_like(40, 30, seed=1)
    buffer = io.BytesIO()
    _png.write_png(image, buffer, workers=3)
    data = buffer.getvalue()
    idat, pos = b"", 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(raw) == 30 * (1 + 40 * 3)
    assert set(raw[:: 1 + 40 * 3]) == {1}  # every row uses the "sub" filter


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_adler32_combine_is_zlibs(first: bytes, second: bytes) -> None:
    combined = _png._adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


def test_other_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="modes L, LA, RGB and RGBA"):
        _png.write_png(Image.new("I;16", (4, 4)), io.BytesIO())


def test_a_lazily_opened_image_is_written_whole(tmp_path: Any) -> None:
    """A file image not yet decoded: decoded once before the stripes are cut in threads."""
    source = photo_like(120, 90, seed=4)
    path = tmp_path / "in.png"
    source.save(path)
    with Image.open(path) as lazy:
        buffer = io.BytesIO()
        _png.write_png(lazy, buffer, workers=4)
    buffer.seek(0)
    assert np.array_equal(np.asarray(Image.open(buffer)), np.asarray(source))
