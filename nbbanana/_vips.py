"""Decode-and-reduce through libvips: the fast path of :func:`nbbanana.images.load_image`.

When the caller will downscale anyway (``target_side``), the common inputs — 8-bit JPEG,
PNG, TIFF and WebP — are decoded and resized here in one streamed libvips pipeline
(``pyvips`` with the libvips binaries of ``pyvips-binary``): JPEGs shrink on load by
libjpeg's DCT scaling, then a Lanczos-3 ``resize`` lands on the exact size the fitter
wants, on both cores, without the full-size image ever existing in memory. Why libvips
rather than Pillow is measured in ``docs/architecture.md`` ("Fitting: decode, resize,
encode").

Everything else (metadata, orientation, colour profiles, alpha checks, error messages)
stays with :mod:`nbbanana.images`: this module only turns bytes into reduced pixels. It
returns ``None`` — and the caller decodes with Pillow as before — when libvips is not
installed or refuses the file, so a damaged file still gets the loader's one-line error.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from PIL import Image, ImageFile

__all__ = ["available", "decode_reduced"]

#: Bands of a decoded 8-bit image → Pillow mode.
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

_lock = threading.Lock()
_pyvips: Any = None
_checked = False


def _module() -> Any:
    """pyvips, imported once; ``None`` when it (or its libvips) is missing."""
    global _pyvips, _checked
    if _checked:
        return _pyvips
    with _lock:
        if not _checked:
            try:
                import pyvips

                # Each fit decodes a new file once: libvips' operation cache would only
                # keep decoded pixels alive after the fit is done.
                pyvips.cache_set_max(0)
                _pyvips = pyvips
            except (ImportError, OSError):  # no wheel for this platform: Pillow does it
                _pyvips = None
            _checked = True
    return _pyvips


def available() -> bool:
    """True when libvips can be used."""
    return _module() is not None


def scaled_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` scaled so its long side is ``long_side`` (rounded as the fitter does)."""
    w, h = size
    if max(w, h) <= long_side:
        return size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def decode_reduced(
    data: bytes | os.PathLike[str],
    fmt: str,
    size: tuple[int, int],
    target_side: int,
    *,
    draft_slack: float,
) -> Image.Image | None:
    """Decode ``data`` (a ``fmt`` file of stored ``size``, its bytes or its path) reduced
    to ``target_side``. From a path, libvips reads the file as it decodes, in small
    pieces: the file is never held whole.

    The result's long side is ``min(target_side, long side)``, except for a JPEG whose
    DCT-scaled decode already lands within ``draft_slack × target_side``: that decode is
    used as it is (as :func:`PIL.Image.Image.draft` would), with no resampling. Pixels are
    the file's own (no rotation, no colour conversion). ``None`` when libvips is missing
    or cannot decode the file.
    """
    pyvips = _module()
    if pyvips is None:
        return None
    long_side = max(size)
    try:
        if isinstance(data, bytes):
            # A source over the caller's bytes: new_from_buffer would copy the whole file.
            source = pyvips.Source.new_from_memory(data)
        else:
            source = pyvips.Source.new_from_file(os.fspath(data))
        if fmt in ("JPEG", "MPO"):
            floor_side = math.ceil(target_side * draft_slack)
            shrink = 1
            while shrink < 8 and long_side // (shrink * 2) >= floor_side:
                shrink *= 2
            image = pyvips.Image.jpegload_source(
                source, shrink=shrink, access="sequential", fail_on="truncated"
            )
            goal = scaled_size(size, min(target_side, max(image.width, image.height)))
        else:
            image = pyvips.Image.new_from_source(
                source, "", access="sequential", fail_on="truncated"
            )
            goal = scaled_size(size, target_side)
        if image.format != "uchar" or image.bands not in _MODES:
            return None
        if (image.width, image.height) != goal:
            image = _resize(image, goal)
            if (image.width, image.height) != goal:  # never seen; Pillow decodes instead
                return None
        mode = _MODES[image.bands]
        if mode in _NETPBM and _streams(pyvips, image.width * image.height):
            return _streamed(pyvips, image, mode)
        pixels = image.write_to_memory()
    except pyvips.Error:
        return None
    return Image.frombytes(mode, (image.width, image.height), pixels)


#: Modes whose raw pixels are a binary PNM/PGM body, which Pillow reads incrementally.
_NETPBM = {"L": b"P5", "RGB": b"P6"}


def _streams(pyvips: Any, pixels: int) -> bool:
    """Whether :func:`_streamed` can be used: libvips can save raw pixels to a custom
    target (8.15+), and Pillow opens an image of this size without a bomb warning."""
    limit = Image.MAX_IMAGE_PIXELS
    return hasattr(pyvips.Image, "rawsave_target") and (limit is None or pixels <= limit)


def _streamed(pyvips: Any, image: Any, mode: str) -> Image.Image:
    """Run the pipeline into a Pillow image row by row: libvips' raw output, behind a
    PNM header, is fed to Pillow's incremental parser as it is produced. The reduced
    pixels then exist once, in Pillow, instead of also in a libvips buffer the size of
    the image (21 MB at 3072 × 2304), and the copy overlaps the decode."""
    parser = ImageFile.Parser()
    parser.feed(b"%s\n%d %d\n255\n" % (_NETPBM[mode], image.width, image.height))

    def write(chunk: Any) -> int:
        parser.feed(bytes(chunk))
        return len(chunk)

    target = pyvips.TargetCustom()
    target.on_write(write)
    image.rawsave_target(target)
    result = parser.close()
    if result.mode != mode or result.size != (image.width, image.height):
        raise pyvips.Error("the streamed pixels did not make the expected image")
    return result


def _resize(image: Any, goal: tuple[int, int]) -> Any:
    """Lanczos-3 to exactly ``goal``; alpha premultiplied so transparent pixels do not
    bleed their colour into edges."""
    hscale, vscale = goal[0] / image.width, goal[1] / image.height
    if image.bands in (2, 4):
        image = image.premultiply().resize(hscale, vscale=vscale).unpremultiply()
        return image.cast("uchar")
    return image.resize(hscale, vscale=vscale)
