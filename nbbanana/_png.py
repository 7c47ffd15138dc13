"""Fast lossless PNG for very large images (a regional edit's 48 MP composite).

Pillow's PNG encoder tries every row filter on every row and compresses on one core:
about 10 s for a 48 MP photo even at zlib level 1, and libvips' encoder (one filter, one
core) still takes several. Here the image is cut into stripes of rows; each stripe is
filtered with PNG's "sub" filter (each byte minus the one a pixel to its left: numpy,
one subtraction) and deflated by zlib at level 1 with the run-length strategy, in a
thread per core (numpy and zlib release the GIL). The stripes' deflate streams end on a
byte boundary (a sync flush), so concatenated they are one valid zlib stream — pigz's
technique — whose Adler-32 is combined from the stripes'. Each stripe becomes one IDAT
chunk, written in order as soon as it is ready, so memory holds only a few stripes.

Trade-off, measured in ``benchmarks/region_bench.py`` and stated in the README: the
"sub" filter with run-length deflate makes files somewhat larger than zlib level 6
with adaptive filters (what most tools write), in a fraction of the time. The file is
an ordinary PNG that every decoder reads.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import numpy as np
from PIL import Image

__all__ = ["write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Bytes of pixels per stripe (about 4 MB): small enough to keep a few in memory, large
#: enough that zlib's start-up and the per-stripe flush cost nothing.
_STRIPE_BYTES = 4 << 20
_CHANNELS = {"L": (1, 0), "LA": (2, 4), "RGB": (3, 2), "RGBA": (4, 6)}  # bands, colour type
_FILTER_SUB = 1
_ADLER_BASE = 65521


def write_png(
    image: Image.Image,
    handle: IO[bytes],
    text: Mapping[str, str] | None = None,
    *,
    level: int = 1,
    workers: int | None = None,
) -> None:
    """Write ``image`` (mode L, LA, RGB or RGBA) to ``handle`` as an 8-bit PNG, with
    ``text`` as UTF-8 iTXt chunks, at zlib ``level`` (0-9) on ``workers`` threads (the
    machine's cores by default)."""
    if image.mode not in _CHANNELS:
        raise ValueError(f"write_png takes modes L, LA, RGB and RGBA, not {image.mode}")
    bands, colour_type = _CHANNELS[image.mode]
    width, height = image.size
    image.load()  # once, here: the threads below only read the decoded pixels
    handle.write(_SIGNATURE)
    handle.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)))
    for key, value in (text or {}).items():
        # keyword, no compression, no language tag, no translated keyword, UTF-8 text
        handle.write(_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode()))
    rows = max(1, _STRIPE_BYTES // max(1, width * bands))
    stripes = [(top, min(height, top + rows)) for top in range(0, height, rows)]
    last = len(stripes) - 1
    count = workers or min(8, os.cpu_count() or 1)
    adler = 1
    with ThreadPoolExecutor(max_workers=count) as pool:
        for index, future in enumerate(
            _in_order(
                pool,
                (
                    (_deflate_stripe, image, top, bottom, bands, level, i == last)
                    for i, (top, bottom) in enumerate(stripes)
                ),
                ahead=2 * count,
            )
        ):
            data, stripe_adler, length = future.result()
            adler = _adler32_combine(adler, stripe_adler, length)
            if index == 0:
                data = b"\x78\x01" + data  # zlib header: deflate, 32 K window, fastest
            if index == last:
                data += struct.pack(">I", adler)
            handle.write(_chunk(b"IDAT", data))
    handle.write(_chunk(b"IEND", b""))


def _in_order(
    pool: ThreadPoolExecutor, tasks: Iterator[tuple[Any, ...]], ahead: int
) -> Iterator[Future[tuple[bytes, int, int]]]:
    """Submit ``tasks`` keeping at most ``ahead`` in flight; yield their futures in order."""
    pending: deque[Future[tuple[bytes, int, int]]] = deque()
    for function, *args in tasks:
        pending.append(pool.submit(function, *args))
        if len(pending) >= ahead:
            yield pending.popleft()
    yield from pending


def _deflate_stripe(
    image: Image.Image, top: int, bottom: int, bands: int, level: int, final: bool
) -> tuple[bytes, int, int]:
    """Rows ``[top, bottom)`` filtered ("sub") and deflated (raw, ending byte-aligned, or
    final); with the Adler-32 and length of the filtered bytes."""
    pixels = np.asarray(image.crop((0, top, image.width, bottom)), dtype=np.uint8)
    flat = pixels.reshape(bottom - top, -1)
    filtered = np.empty((flat.shape[0], flat.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = _FILTER_SUB
    filtered[:, 1 : 1 + bands] = flat[:, :bands]
    np.subtract(flat[:, bands:], flat[:, :-bands], out=filtered[:, 1 + bands :])
    raw = filtered.data
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_RLE)
    data = compressor.compress(raw) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
    )
    return data, zlib.adler32(raw), filtered.size


def _adler32_combine(first: int, second: int, length: int) -> int:
    """The Adler-32 of two byte strings joined, from theirs and the second's length
    (zlib's adler32_combine, which Python's zlib does not expose)."""
    rem = length % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (second & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
    )
