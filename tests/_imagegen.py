"""Synthetic test images, made on the fly (shared by every test module and the benchmarks).

Nothing here reads from outside the repository. The generators are deterministic for a
given ``seed`` and fast even at 48 MP: smooth structure is made at low resolution with
numpy and upscaled by Pillow, sharp edges are drawn at full resolution, and noise is a
small random tile repeated (with an odd period, so it does not line up with 8×8 JPEG
blocks). The result compresses like a real photo (a 12 MP ``photo_like`` at JPEG q90 is a
few MB), unlike pure noise (incompressible) or flat colour (compresses to nothing).

Encoders (:func:`jpeg_bytes`, :func:`png_bytes`, ...) return bytes with exactly the
metadata a test asks for: EXIF orientation, GPS, ICC profiles, comments, XMP. The ICC
builders (:func:`rgb_icc_profile`, :func:`cmyk_icc_profile`) write small but valid ICC v2
profiles, because no colour profiles ship with the test environment.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageFont

__all__ = [
    "CMYK_PROFILE_INKS",
    "ORIENTATION_INVERSE",
    "animated_gif_bytes",
    "animated_png_bytes",
    "animated_webp_bytes",
    "asymmetric_image",
    "bomb_png_bytes",
    "cmyk_icc_profile",
    "cmyk_image",
    "cmyk_profile_expected_rgb",
    "encode",
    "file_upload_value",
    "heic_bytes",
    "jpeg_bytes",
    "orient_for_exif",
    "photo_like",
    "png_bytes",
    "quadrant_colours",
    "raw_png_bytes",
    "rgb_icc_profile",
    "screenshot_like",
    "srgb_icc_profile",
    "swapped_rgb_icc_profile",
    "webp_bytes",
]


# --------------------------------------------------------------------------- generators


def photo_like(width: int, height: int, seed: int = 0, *, mode: str = "RGB") -> Image.Image:
    """A photo-like image: smooth gradients at several scales, sharp-edged shapes, grain.

    ``mode`` may be ``"RGB"``, ``"L"`` or ``"RGBA"`` (RGBA gets a soft elliptical alpha
    with fully transparent corners). Cost is dominated by two full-size resizes and one
    blend, so 48 MP takes about a second.
    """
    rng = np.random.default_rng(seed)
    # Structure at 1/24 resolution: a low-frequency colour field (sky/ground-like gradients,
    # a few cells across) plus a weaker mid-frequency texture (foliage/fabric-like).
    small_w, small_h = max(2, width // 24), max(2, height // 24)
    coarse = rng.integers(20, 236, size=(4, 6, 3), dtype=np.uint8)
    field = np.asarray(
        Image.fromarray(coarse, "RGB").resize((small_w, small_h), Image.Resampling.BICUBIC),
        dtype=np.int16,
    )
    texture = rng.integers(-28, 29, size=(small_h, small_w, 3), dtype=np.int16)
    small = np.clip(field + texture, 0, 255).astype(np.uint8)
    img = Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    # Sharp edges: a handful of solid shapes and lines drawn at full resolution.
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, x1 = sorted(rng.integers(0, width, size=2).tolist())
        y0, y1 = sorted(rng.integers(0, height, size=2).tolist())
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        inverse = (255 - colour[0], 255 - colour[1], 255 - colour[2])
        draw.line((x0, y1, x1, y0), fill=inverse, width=max(1, width // 400))
    # Grain: ±10 noise from a 61×67 tile (odd periods), pasted as full-width strips.
    tile = rng.integers(118, 139, size=(67, 61, 3), dtype=np.uint8)
    strip = Image.fromarray(np.ascontiguousarray(np.tile(tile, (1, width // 61 + 1, 1))[:, :width]))
    noise = Image.new("RGB", (width, height))
    for y in range(0, height, 67):
        noise.paste(strip, (0, y))
    img = ImageChops.add(img, noise, scale=1.0, offset=-128)
    if mode == "RGB":
        return img
    if mode == "L":
        return img.convert("L")
    if mode == "RGBA":
        alpha = Image.new("L", (width, height), 0)
        ImageDraw.Draw(alpha).ellipse((0, 0, width - 1, height - 1), fill=255)
        img.putalpha(alpha)
        return img
    raise ValueError(f"photo_like: unsupported mode {mode!r}")


def screenshot_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A screenshot-like RGB image: flat panels, buttons, thin rules and text."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), (246, 246, 248))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    bar = max(12, height // 20)
    draw.rectangle((0, 0, width, bar), fill=(40, 44, 52))
    draw.text((8, bar // 4), "nbbanana - untitled.ipynb", fill=(230, 230, 230), font=font)
    side = max(40, width // 6)
    draw.rectangle((0, bar, side, height), fill=(230, 232, 236))
    y = bar + 10
    while y < height - 14:
        draw.text((8, y), f"item {y}", fill=(60, 60, 60), font=font)
        y += 18
    x0 = side + 12
    y = bar + 12
    line = 0
    while y < height - 16:
        words = " ".join(f"word{int(v)}" for v in rng.integers(0, 1000, size=6))
        draw.text((x0, y), f"{line:3d}  {words}", fill=(20, 20, 20), font=font)
        if line % 7 == 3:
            colour = tuple(int(v) for v in rng.integers(0, 200, size=3))
            draw.rounded_rectangle((x0, y + 14, x0 + 90, y + 32), radius=4, fill=colour)
            y += 22
        draw.line((x0, y + 15, width - 12, y + 15), fill=(220, 220, 224))
        y += 18
        line += 1
    return img


def asymmetric_image(width: int = 40, height: int = 30) -> Image.Image:
    """An RGB image whose four quadrants are red, green, blue and white (clockwise from top-left).

    Any flip or rotation moves the colours, so a test can check orientation by sampling
    the quadrant centres (see :func:`quadrant_colours`).
    """
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    hw, hh = width // 2, height // 2
    draw.rectangle((0, 0, hw - 1, hh - 1), fill=(255, 0, 0))
    draw.rectangle((hw, 0, width - 1, hh - 1), fill=(0, 255, 0))
    draw.rectangle((hw, hh, width - 1, height - 1), fill=(0, 0, 255))
    draw.rectangle((0, hh, hw - 1, height - 1), fill=(255, 255, 255))
    return img


def quadrant_colours(img: Image.Image) -> tuple[Any, Any, Any, Any]:
    """The pixel values at the centres of the four quadrants: TL, TR, BR, BL."""
    w, h = img.size
    return (
        img.getpixel((w // 4, h // 4)),
        img.getpixel((3 * w // 4, h // 4)),
        img.getpixel((3 * w // 4, 3 * h // 4)),
        img.getpixel((w // 4, 3 * h // 4)),
    )


#: For each EXIF orientation, the transpose that turns an upright picture into the
#: stored pixels a camera would write with that tag (the inverse of what a viewer applies).
ORIENTATION_INVERSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def orient_for_exif(upright: Image.Image, orientation: int) -> Image.Image:
    """Return the stored pixels for ``upright`` shot with EXIF ``orientation`` (1–8)."""
    op = ORIENTATION_INVERSE[orientation]
    return upright.copy() if op is None else upright.transpose(op)


# --------------------------------------------------------------------------- metadata


def _exif(orientation: int | None, gps: bool) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "nbbanana test camera"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        gps_ifd = {
            0x0001: "N",  # GPSLatitudeRef
            0x0002: (48.0, 51.0, 29.0),  # GPSLatitude
            0x0003: "E",  # GPSLongitudeRef
            0x0004: (2.0, 17.0, 40.0),  # GPSLongitude
        }
        exif[0x8825] = gps_ifd
    return exif


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    """Encode ``img`` with Pillow in format ``fmt`` and return the bytes."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def jpeg_bytes(
    img: Image.Image,
    quality: int = 90,
    *,
    exif_orientation: int | None = None,
    gps: bool = False,
    icc: bytes | None = None,
    comment: bytes | None = None,
    xmp: bytes | None = None,
    exif: bool | None = None,
    **params: Any,
) -> bytes:
    """JPEG bytes of ``img`` with the requested metadata.

    EXIF is written when ``exif_orientation`` or ``gps`` is given (or ``exif=True``; it then
    holds at least a camera make). ``icc`` embeds a profile, ``comment`` a COM segment,
    ``xmp`` an XMP packet.
    """
    if exif is None:
        exif = exif_orientation is not None or gps
    if exif:
        params["exif"] = _exif(exif_orientation, gps).tobytes()
    if icc is not None:
        params["icc_profile"] = icc
    if comment is not None:
        params["comment"] = comment
    if xmp is not None:
        params["xmp"] = xmp
    return encode(img, "JPEG", quality=quality, **params)


def png_bytes(
    img: Image.Image,
    *,
    exif_orientation: int | None = None,
    gps: bool = False,
    icc: bytes | None = None,
    text: dict[str, str] | None = None,
    **params: Any,
) -> bytes:
    """PNG bytes of ``img`` with optional eXIf (orientation/GPS), iCCP and tEXt chunks."""
    if exif_orientation is not None or gps:
        params["exif"] = _exif(exif_orientation, gps).tobytes()
    if icc is not None:
        params["icc_profile"] = icc
    if text:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        params["pnginfo"] = info
    return encode(img, "PNG", **params)


def webp_bytes(
    img: Image.Image, quality: int = 85, *, lossless: bool = False, **params: Any
) -> bytes:
    """WebP bytes of ``img``."""
    return encode(img, "WEBP", quality=quality, lossless=lossless, **params)


def heic_bytes(img: Image.Image, quality: int = 80) -> bytes:
    """HEIC bytes of ``img`` via pillow-heif (raises ImportError/RuntimeError if it cannot encode)."""
    import pillow_heif

    heif = pillow_heif.from_pillow(img)
    buf = io.BytesIO()
    heif.save(buf, format="HEIF", quality=quality)
    return buf.getvalue()


def _frames(n: int, size: tuple[int, int]) -> list[Image.Image]:
    w, h = size
    frames = []
    for i in range(n):
        frame = Image.new("RGB", size, (30 * i % 256, 80, 160))
        ImageDraw.Draw(frame).rectangle(
            (i * 3 % w, 2, i * 3 % w + w // 4, h - 3), fill=(250, 220, 0)
        )
        frames.append(frame)
    return frames


def animated_gif_bytes(n_frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    """An animated GIF with ``n_frames`` distinct frames."""
    frames = _frames(n_frames, size)
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def animated_webp_bytes(n_frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    """An animated (lossless) WebP with ``n_frames`` distinct frames."""
    frames = _frames(n_frames, size)
    return encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True
    )


def animated_png_bytes(n_frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    """An APNG with ``n_frames`` distinct frames."""
    frames = _frames(n_frames, size)
    return encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)


# --------------------------------------------------------------------------- raw PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png_bytes(array: np.ndarray, *, bit_depth: int = 16) -> bytes:
    """A PNG written by hand from ``array`` (HxW gray, HxWx2 gray+alpha, HxWx3 RGB, HxWx4 RGBA).

    Pillow cannot write 16-bit RGB(A) PNGs, which phones and scanners produce; this writes
    any of them (``bit_depth`` 8 or 16; values are taken as they are, big-endian for 16).
    """
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = array.astype(dtype).reshape(height, width * channels)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def bomb_png_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` RGB pixels (a decompression bomb).

    Its IDAT holds only one compressed row, so it costs nothing to make; a loader that
    checks the declared size before decoding refuses it at once.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(3 * min(width, 1000))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(row))
        + _chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- ICC profiles


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\x00"
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_))
        + ascii_
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + bytes(67)
    )


def _text_tag(text: str) -> bytes:
    return b"text" + bytes(4) + text.encode("ascii") + b"\x00"


def _curve_tag(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _icc(
    device_class: bytes, colour_space: bytes, pcs: bytes, tags: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """Assemble an ICC v2.1 profile from (signature, data) tags (equal data is shared)."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries: list[bytes] = []
    blobs: list[bytes] = []
    placed: dict[bytes, int] = {}
    for sig, data in tags:
        if data not in placed:
            placed[data] = offset
            padded = data + bytes(-len(data) % 4)
            blobs.append(padded)
            offset += len(padded)
        entries.append(sig + struct.pack(">II", placed[data], len(data)))
    body = struct.pack(">I", len(tags)) + b"".join(entries) + b"".join(blobs)
    size = 128 + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + device_class
        + colour_space
        + pcs
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + bytes(4)
        + bytes(4)
        + bytes(4)
        + bytes(8)
        + struct.pack(">I", 0)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"lcms"
        + bytes(16)
        + bytes(28)
    )
    assert len(header) == 128
    return header + body


#: sRGB's colorants adapted to D50, as every ICC v2 sRGB profile stores them.
_SRGB_D50 = {
    "r": (0.4361, 0.2225, 0.0139),
    "g": (0.3851, 0.7169, 0.0971),
    "b": (0.1431, 0.0606, 0.7141),
}


def rgb_icc_profile(
    primaries: dict[str, tuple[float, float, float]] | None = None,
    gamma: float = 2.2,
    description: str = "nbbanana test RGB",
) -> bytes:
    """A matrix/TRC RGB display profile with D50-adapted colorant XYZs and one gamma.

    ``rgb_icc_profile(swap_red_blue=...)`` style tests pass ``primaries`` with "r" and "b"
    exchanged: pure red pixels then *mean* pure blue, so a loader that converts to sRGB
    must turn (255, 0, 0) into about (0, 0, 255).
    """
    p = primaries or _SRGB_D50
    curve = _curve_tag(gamma)
    return _icc(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        [
            (b"desc", _desc_tag(description)),
            (b"cprt", _text_tag("No copyright, test data")),
            (b"wtpt", _xyz_tag(0.9642, 1.0, 0.8249)),
            (b"rXYZ", _xyz_tag(*p["r"])),
            (b"gXYZ", _xyz_tag(*p["g"])),
            (b"bXYZ", _xyz_tag(*p["b"])),
            (b"rTRC", curve),
            (b"gTRC", curve),
            (b"bTRC", curve),
        ],
    )


def swapped_rgb_icc_profile() -> bytes:
    """An RGB profile whose red and blue primaries are exchanged (see :func:`rgb_icc_profile`)."""
    return rgb_icc_profile(
        {"r": _SRGB_D50["b"], "g": _SRGB_D50["g"], "b": _SRGB_D50["r"]},
        description="nbbanana test RGB (red/blue swapped)",
    )


def srgb_icc_profile() -> bytes:
    """The bytes of Pillow's built-in sRGB profile (LittleCMS)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


#: sRGB colour of each process ink printed alone at 100 % on the profile's paper, and of the
#: paper itself; overprints multiply (a simple subtractive model, close to coated stock).
CMYK_PROFILE_INKS: dict[str, tuple[int, int, int]] = {
    "paper": (255, 255, 255),
    "c": (0, 160, 227),
    "m": (229, 0, 126),
    "y": (255, 237, 0),
    "k": (40, 38, 40),
}


def cmyk_profile_expected_rgb(c: int, m: int, y: int, k: int) -> tuple[int, int, int]:
    """The sRGB colour :func:`cmyk_icc_profile` assigns to a CMYK corner (each 0 or 1)."""
    out = np.array(CMYK_PROFILE_INKS["paper"], dtype=float) / 255
    for ink, on in zip("cmyk", (c, m, y, k), strict=True):
        if on:
            out *= (
                np.array(CMYK_PROFILE_INKS[ink], dtype=float)
                / 255
                / (np.array(CMYK_PROFILE_INKS["paper"], dtype=float) / 255)
            )
    r, g, b = (round(float(v)) for v in np.clip(out * 255, 0, 255))
    return (r, g, b)


def cmyk_icc_profile() -> bytes:
    """A small CMYK output profile (lut8 A2B0 with a 2-point grid, Lab PCS).

    The 16 grid corners get the colours of :func:`cmyk_profile_expected_rgb`, so paper is
    slightly warm, 100 % cyan is a real ink cyan (not (0, 255, 255)) and 100 % K is a dark
    grey (not pure black): a loader that really uses the embedded profile is visibly
    different from a naive ``convert("RGB")``.
    """
    corners = [
        cmyk_profile_expected_rgb(c, m, y, k)
        for c in (0, 1)
        for m in (0, 1)
        for y in (0, 1)
        for k in (0, 1)
    ]
    strip = Image.new("RGB", (16, 1))
    strip.putdata(corners)
    to_lab = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    lab = ImageCms.applyTransform(strip, to_lab)
    assert lab is not None
    # Pillow's raw LAB bytes hold a* and b* as signed bytes; lut8 wants them offset by 128.
    raw = bytearray(lab.tobytes())
    for i in range(len(raw)):
        if i % 3:
            raw[i] = (raw[i] + 128) % 256
    clut = bytes(raw)  # 16 entries × (L*255/100, a+128, b+128): lut8's Lab encoding
    identity = bytes(range(256))
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (
        b"mft1"
        + bytes(4)
        + struct.pack(">BBBB", 4, 3, 2, 0)
        + matrix
        + identity * 4
        + clut
        + identity * 3
    )
    return _icc(
        b"prtr",
        b"CMYK",
        b"Lab ",
        [
            (b"desc", _desc_tag("nbbanana test CMYK")),
            (b"cprt", _text_tag("No copyright, test data")),
            (b"wtpt", _xyz_tag(0.9642, 1.0, 0.8249)),
            (b"A2B0", lut),
        ],
    )


def cmyk_image(colours: Sequence[tuple[int, int, int, int]], cell: int = 16) -> Image.Image:
    """A CMYK image made of ``cell``-wide vertical stripes of the given CMYK values (0–255)."""
    img = Image.new("CMYK", (cell * len(colours), cell))
    draw = ImageDraw.Draw(img)
    for i, colour in enumerate(colours):
        draw.rectangle((i * cell, 0, (i + 1) * cell - 1, cell - 1), fill=colour)
    return img


# --------------------------------------------------------------------------- uploads


def file_upload_value(
    data: bytes,
    name: str = "photo.jpg",
    mime: str = "image/jpeg",
    last_modified: int = 1_700_000_000_000,
) -> dict[str, Any]:
    """One item of an ipywidgets 8 ``FileUpload.value``: content is a memoryview."""
    return {
        "name": name,
        "type": mime,
        "size": len(data),
        "last_modified": last_modified,
        "content": memoryview(data),
    }
