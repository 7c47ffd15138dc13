"""Load anything a user may hand us and normalise it into a PIL image the API accepts.

:func:`load_image` takes a path, bytes, a binary file object, a PIL image, a numpy array or
an item of an ipywidgets ``FileUpload`` value, and returns a :class:`LoadedImage`: an
upright, sRGB, 8-bit ``"RGB"``/``"RGBA"``/``"L"`` picture without metadata, plus what the
rest of the pipeline needs to know about the original (its bytes' hash, its size, whether
the original bytes may be sent unchanged).

Why each step exists:

* **Refuse before decoding.** The declared pixel count is read from the header and
  checked against ``max_pixels`` before a single pixel is decoded, so a 1 KB PNG claiming
  100 000 × 100 000 pixels costs nothing. Pillow's own ``MAX_IMAGE_PIXELS`` check is
  replaced by ours (its warning and error never reach the caller).
* **Decode no more than needed.** With ``target_side`` (the long side the caller will
  downscale to), 8-bit JPEG, PNG, TIFF and WebP files are decoded and resized to it in
  one streamed libvips pipeline (:mod:`nbbanana._vips`; JPEGs shrink on load by DCT
  scaling). Otherwise, or without libvips, JPEGs are decoded at 1/2, 1/4 or 1/8 scale by
  libjpeg's DCT scaling (``Image.draft``; at most 10 % below ``target_side``, see
  :data:`DRAFT_SLACK`) and other formats are box-reduced by an integer factor to no less
  than twice ``target_side``. A 48 MP phone JPEG fitted to 3072 px is decoded at
  4000 × 3000 at most: 36 MB of pixels instead of 144 MB.
* **Show what the photographer saw.** EXIF orientation (all eight values) is applied;
  embedded ICC profiles (including CMYK print profiles) are converted to sRGB, the
  only colour space the model assumes.
* **Send nothing private by accident.** EXIF (with GPS), XMP and comments are removed by
  default, and a warning says so when a location was removed.
* **Fail in one sentence.** Empty, truncated, corrupt, vector/document, and oversized
  inputs raise a subclass of :class:`~nbbanana.errors.ImageError` whose message says what
  is wrong and what to do.
* **Read nothing unbounded.** A path must name a regular file: a FIFO, a device such as
  ``/dev/zero``, a socket or a folder is refused before anything is read (opening a FIFO
  would block, reading ``/dev/zero`` would never end). No input — file or stream — is read
  past ``max_bytes`` + 1 byte (:data:`DEFAULT_MAX_BYTES`).
* **Hold no more than needed.** A file given by path that will be reduced is decoded by
  libvips from disk while a helper thread streams it through SHA-256 (and a PNG's chunk
  checksums): its bytes are never held whole. Any other case, or any doubt (a file
  libvips refuses, one that changed meanwhile), reads the file and loads its bytes.
* **Blame the right thing.** A valid PNG whose metadata chunk (iCCP, zTXt, iTXt, tEXt) is
  over one of Pillow's decompression limits is loaded without that chunk, with a note
  naming the chunk and the limit. A HEIC/HEIF/AVIF that the bundled decoder cannot read
  is reported as the decoder's failure, with how to convert the file.

How float pixel values are read: a float numpy array must hold values in [0, 1] (0 is
black, 1 is white). A float image (Pillow mode ``"F"``, e.g. a 32-bit float TIFF) says
nothing about its range, so the range is guessed from its finite values: [0, 1] when
none exceeds 1, else [0, 255] when none exceeds 255, else [0, 65535]; values below 0
are black. In both, NaN and -infinity become black and +infinity white, with a warning
(a :class:`UserWarning` and a note in :attr:`LoadedImage.warnings`).
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import math
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageFile, PngImagePlugin, UnidentifiedImageError

from ._types import ImageSource
from .errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyImageError,
    ImageError,
    UnsupportedImageError,
)
from .models import FORMAT_MIME, SENT_FORMATS

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ImageSource",
    "LoadedImage",
    "load_image",
    "read_image_file",
]

#: Pixel limit checked against the header before decoding. 200 MP admits the largest
#: phone sensors (16 320 × 12 240) while refusing decompression bombs; raise it with
#: ``load_image(..., max_pixels=...)`` for bigger scans or panoramas.
DEFAULT_MAX_PIXELS: int = 200_000_000

#: Largest input read, in bytes: a file larger than this is refused before reading, a
#: stream is read no further than this + 1 byte. 2 GB admits an uncompressed 16-bit
#: TIFF of 200 MP (1.2 GB) and matches the largest file the Files API takes; raise it
#: with ``load_image(..., max_bytes=...)``.
DEFAULT_MAX_BYTES: int = 2_000_000_000

_READ_CHUNK = 1 << 20  # streams are read in pieces of this, counting as they come


@dataclass
class LoadedImage:
    """A normalised image and the facts about its original that fitting needs."""

    #: Upright, sRGB, 8-bit, mode ``"RGB"``, ``"RGBA"`` (only when some pixel is not
    #: opaque) or ``"L"``; metadata stripped unless ``strip_metadata=False``. Possibly
    #: reduced when ``target_side`` was given (a JPEG to no less than
    #: ``DRAFT_SLACK × target_side``, other formats to no less than ``target_side``).
    image: Image.Image
    #: File name, or ``"<bytes>"``, ``"<file>"``, ``"<array>"``, ``"<PIL image>"``.
    name: str
    #: Pillow's format name of the original (``"JPEG"``, ``"PNG"``, ``"HEIF"``, ...).
    original_format: str | None
    #: Size in bytes of the encoded input, when there was one.
    original_bytes: int | None
    #: ``(width, height)`` of the original after orientation, before any reduction.
    original_size: tuple[int, int]
    #: True when the image has an alpha channel with at least one non-opaque pixel.
    has_alpha: bool
    #: Plain-words notes about what was changed, e.g. ``"GPS location removed"``.
    warnings: list[str] = field(default_factory=list)
    #: SHA-256 (hex) of the original encoded bytes, or of the pixels for arrays/PIL images.
    source_sha256: str = ""
    #: The original bytes when they may be sent unchanged (JPEG/PNG/WebP, 8-bit, upright,
    #: sRGB, nothing to strip); else ``None``. Also ``None`` for a file given by path that
    #: was decoded reduced from disk: its bytes were never held (and a reduced image is
    #: never sent as it is).
    passthrough: bytes | None = None
    #: MIME type of :attr:`passthrough` (``"image/jpeg"``, ``"image/png"``, ``"image/webp"``).
    passthrough_mime: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of :attr:`image` (smaller than the original if reduced)."""
        return self.image.size


# Raster formats worth decoding; anything else Pillow might identify (EPS, PDF writers,
# fonts, ...) is refused as unsupported rather than half-handled.
_READABLE_FORMATS = (
    "JPEG",
    "MPO",
    "PNG",
    "GIF",
    "WEBP",
    "BMP",
    "DIB",
    "TIFF",
    "HEIF",
    "AVIF",
    "PPM",
    "TGA",
    "ICO",
    "PSD",
    "JPEG2000",
    "QOI",
)
_PASSTHROUGH_MIME = {fmt: FORMAT_MIME[fmt] for fmt in SENT_FORMATS}
_ANIMATED_NAMES = {"GIF": "animated GIF", "WEBP": "animated WebP", "PNG": "animated PNG"}

# JPEG APP segments that carry no personal metadata (JFIF header, ICC profile, Adobe
# colour transform flag); any other segment (EXIF, XMP, IPTC, MPF, ...) is metadata.
_HARMLESS_JPEG_APPS = (("APP0", b"JFIF\x00"), ("APP2", b"ICC_PROFILE\x00"), ("APP14", b"Adobe"))
# Image.info keys that are decoding hints rather than metadata.
_HARMLESS_INFO_KEYS = frozenset(
    {
        "dpi",
        "aspect",
        "gamma",
        "srgb",
        "chromaticities",
        "transparency",
        "icc_profile",
        "interlace",
        "progressive",
        "progression",
        "jfif",
        "jfif_version",
        "jfif_unit",
        "jfif_density",
        "adobe",
        "adobe_transform",
        "background",
        "loop",
        "duration",
        "timestamp",
        "version",
        "compression",
        "default_image",
    }
)

_EXIF_ORIENTATION = 0x0112
_EXIF_GPS_IFD = 0x8825
_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow's own bomb check and truncation switch are module globals; we change them only
# for a header parse (milliseconds), or for a decode when Pillow's settings would
# interfere with ours (rare), under this lock, and always restore them.
_PILLOW_GLOBALS_LOCK = threading.Lock()
_HEIF_LOCK = threading.Lock()
_heif_registered = False


# --------------------------------------------------------------------------- public API


def load_image(
    source: ImageSource | LoadedImage,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_side: int | None = None,
    strip_metadata: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Load ``source`` and normalise it (see the module docstring for what and why).

    ``target_side`` is the long side the caller will downscale to: the image may then be
    decoded or reduced to a smaller size whose long side is still at least
    ``min(target_side, original long side)`` — for JPEGs ``DRAFT_SLACK × target_side``,
    so that a DCT-scaled decode can be used without resampling. ``max_pixels`` bounds the declared pixel
    count (checked before decoding). With ``strip_metadata=False`` EXIF (minus the
    orientation, which has been applied), XMP and comments are kept in ``image.info``.
    ``max_bytes`` bounds the bytes read from a path or a stream (see
    :data:`DEFAULT_MAX_BYTES`); a path must name a regular file.

    A :class:`LoadedImage` is returned as it is, so callers can accept either.

    Raises :class:`~nbbanana.errors.EmptyImageError`, :class:`CorruptImageError`,
    :class:`UnsupportedImageError` or :class:`DecompressionBombError`, each with a message
    that says what to do.
    """
    if target_side is not None and target_side < 1:
        raise ValueError(f"target_side must be a positive number of pixels, not {target_side}")
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        return _load_pil(source, "<PIL image>", max_pixels, target_side, strip_metadata)
    if isinstance(source, np.ndarray):
        notes: list[str] = []
        image = _array_to_image(source, notes)
        loaded = _load_pil(
            image,
            "<array>",
            max_pixels,
            target_side,
            strip_metadata,
            source_sha256=_array_sha256(source),
        )
        loaded.warnings[:0] = notes
        return loaded
    if isinstance(source, str | os.PathLike) and target_side is not None and strip_metadata:
        streamed = _load_path_reduced(source, max_pixels, target_side, max_bytes)
        if streamed is not None:
            return streamed
    data, name = _read_source(source, max_bytes)
    return _load_bytes(data, name, max_pixels, target_side, strip_metadata)


# --------------------------------------------------------------------------- sources


def _read_source(source: object, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, str]:
    """Return the encoded bytes and a display name of a path, bytes, file or upload item."""
    if isinstance(source, bytes):
        return source, "<bytes>"
    if isinstance(source, bytearray | memoryview):
        return bytes(source), "<bytes>"
    if isinstance(source, str | os.PathLike):
        return _read_path(source, max_bytes)
    if isinstance(source, Mapping):
        return _read_upload(source)
    read = getattr(source, "read", None)
    if callable(read):
        raw_name = getattr(source, "name", None)
        name = Path(raw_name).name if isinstance(raw_name, str) else "<file>"
        try:
            return _read_bounded(read, max_bytes, name, _READ_CHUNK), name
        except OSError as exc:
            raise ImageError(f"could not read {name}: {exc}; check the file.", source=name) from exc
    if isinstance(source, list | tuple):
        raise UnsupportedImageError(
            f"got a {type(source).__name__} of {len(source)} items, not one image; pass one "
            "item (e.g. upload.value[0]) or call this once per image.",
            source=f"<{type(source).__name__}>",
        )
    raise UnsupportedImageError(
        f"cannot load an image from an object of type {type(source).__name__}; pass a path, "
        "bytes, a binary "
        "file, a PIL image, a numpy array or a FileUpload item.",
        source=f"<{type(source).__name__}>",
    )


def _read_path(source: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, str) and source[:5].lower() == "data:":
        return _read_data_url(source)
    text, name = _path_names(source)
    with _path_errors(text, name), _open_regular(text, name, max_bytes) as (handle, info):
        # One read of the whole file in the usual case; bounded if it grew meanwhile.
        return _read_bounded(handle.read, max_bytes, name, info.st_size + 1), name


def _path_names(source: str | os.PathLike[str]) -> tuple[str, str]:
    """The path as given and its display name; a URL is refused."""
    text = os.fspath(source)
    name = Path(text).name or text
    if isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        raise UnsupportedImageError(
            f"{source!r} is a URL; nbbanana does not download images, so download it and "
            "pass the file (or its bytes).",
            source=name,
        )
    return text, name


@contextmanager
def _open_regular(
    text: str, name: str, max_bytes: int
) -> Iterator[tuple[io.FileIO, os.stat_result]]:
    """The regular file at ``text``, opened unbuffered, and its ``fstat``; anything else,
    or a file over ``max_bytes``, is refused before a byte is read."""
    path = Path(text).expanduser()
    # Look before opening: opening a FIFO blocks until a writer comes, a socket
    # cannot be opened at all; O_NONBLOCK covers a file swapped in between.
    _check_regular(os.stat(path).st_mode, text, name)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        assert isinstance(handle, io.FileIO)
        info = os.fstat(handle.fileno())
        _check_regular(info.st_mode, text, name)
        if info.st_size > max_bytes:
            raise _too_many_bytes(name, info.st_size, max_bytes)
        yield handle, info


@contextmanager
def _path_errors(text: str, name: str) -> Iterator[None]:
    """An ``OSError`` of opening or reading the file at ``text`` as one sentence."""
    try:
        yield
    except FileNotFoundError as exc:
        raise ImageError(f"{text} does not exist; check the path.", source=name) from exc
    except IsADirectoryError as exc:
        raise ImageError(
            f"{text} is a folder, not an image; pass the image files in it.", source=name
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError(
                f"{text} is a loop of symbolic links; point it at the image file.", source=name
            ) from exc
        raise ImageError(
            f"could not read {text} ({exc.strerror or exc}); check the path and its permissions.",
            source=name,
        ) from exc


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _check_regular(mode: int, text: str, name: str) -> None:
    """Refuse anything but a regular file (after symbolic links are followed)."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ImageError(
            f"{text} is a folder, not an image; pass the image files in it.", source=name
        )
    kind = next((kind for test, kind in _SPECIAL_FILES if test(mode)), "special file")
    raise ImageError(
        f"{text} is a {kind}, not a regular file; save the image to a file and pass that.",
        source=name,
    )


def _too_many_bytes(name: str, size: int | None, max_bytes: int) -> ImageError:
    amount = f"{size:,} bytes" if size is not None else "more bytes"
    return ImageError(
        f"{name} has {amount}, more than the limit of {max_bytes:,} bytes for an input; "
        "if it really is one image, pass a larger max_bytes= to load_image.",
        source=name,
    )


def _read_bounded(read: Callable[[int], Any], max_bytes: int, name: str, first: int) -> bytes:
    """Everything ``read`` gives until EOF, never asking for more than ``max_bytes`` + 1
    bytes in all; more than ``max_bytes`` is refused. ``first`` is the first request's
    size (a regular file's size + 1: one read, one allocation)."""
    pieces: list[bytes] = []
    total = 0
    want = first
    while total <= max_bytes:
        piece = read(max(1, min(want, max_bytes + 1 - total)))
        if isinstance(piece, str):
            raise UnsupportedImageError(
                f"{name} was opened in text mode; open it with 'rb' (binary) instead.",
                source=name,
            )
        if piece is not None and not isinstance(piece, bytes | bytearray | memoryview):
            raise UnsupportedImageError(
                f"{name}.read() returned {type(piece).__name__}, not bytes; pass a binary file.",
                source=name,
            )
        if not piece:
            break
        pieces.append(bytes(piece))
        total += len(piece)
        want = _READ_CHUNK
    if total > max_bytes:
        raise _too_many_bytes(name, None, max_bytes)
    return b"".join(pieces)


def read_image_file(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the image file at ``path``, read as :func:`load_image` reads it: a
    regular file only (never a FIFO, device or socket), at most ``max_bytes``."""
    return _read_path(path, max_bytes)[0]


def _read_data_url(url: str) -> tuple[bytes, str]:
    """Bytes of a ``data:[<mime>][;base64],<data>`` URL (as browsers and widgets produce)."""
    name = "<data URL>"
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise UnsupportedImageError(
            "only base64 data URLs (data:image/...;base64,...) can be read; pass the image "
            "bytes instead.",
            source=name,
        )
    try:
        return base64.b64decode(payload, validate=False), name
    except (binascii.Error, ValueError) as exc:
        raise CorruptImageError(
            f"the data URL's base64 text is damaged ({exc}); copy it again in full.", source=name
        ) from exc


def _read_upload(item: Mapping[str, Any]) -> tuple[bytes, str]:
    """Bytes and name of one ipywidgets 8 ``FileUpload.value`` item."""
    name = str(item.get("name") or "<upload>")
    if "content" not in item:
        if len(item) == 1 and isinstance(next(iter(item.values())), Mapping):
            hint = "this looks like an ipywidgets 7 upload value; pass one of its values"
        else:
            hint = "pass one item of FileUpload.value (a dict with 'name' and 'content')"
        raise UnsupportedImageError(f"{name} has no 'content'; {hint}.", source=name)
    content = item["content"]
    if not isinstance(content, bytes | bytearray | memoryview):
        raise UnsupportedImageError(
            f"the 'content' of {name} is a {type(content).__name__}, not bytes; pass the "
            "FileUpload item unchanged.",
            source=name,
        )
    return bytes(content), name


# --------------------------------------------------------------------------- arrays


def _array_to_image(array: np.ndarray[Any, Any], notes: list[str]) -> Image.Image:
    """Convert an HxW / HxWx3 / HxWx4 array (uint8, uint16, bool or float in [0, 1])."""
    shape = array.shape
    if array.size == 0:
        raise EmptyImageError(
            f"the array of shape {shape} has no pixels; pass a non-empty image.",
            source="<array>",
        )
    if array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise UnsupportedImageError(
            f"an array of shape {shape} is not an image; expected height×width (gray), "
            "height×width×3 (RGB) or height×width×4 (RGBA).",
            source="<array>",
        )
    dtype = array.dtype
    if dtype == np.uint8:
        pixels = array
    elif dtype == np.uint16:
        # Proper 16→8 bit scaling: 65535 → 255, rounding to nearest.
        pixels = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(dtype, np.floating):
        array = _finite(array, 1.0, "<array>", notes)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise UnsupportedImageError(
                f"float arrays must hold values in [0, 1], this one spans [{low:g}, {high:g}]; "
                "scale it (e.g. array / 255) or convert it to uint8.",
                source="<array>",
            )
        pixels = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise UnsupportedImageError(
            f"arrays of dtype {dtype} are not supported; convert to uint8 (0–255), uint16 "
            "(0–65535) or float in [0, 1].",
            source="<array>",
        )
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[pixels.ndim if pixels.ndim == 2 else pixels.shape[2]]
    return Image.fromarray(np.ascontiguousarray(pixels), mode)


def _finite(
    values: np.ndarray[Any, Any], top: float, name: str, notes: list[str]
) -> np.ndarray[Any, Any]:
    """``values`` with NaN and -inf replaced by 0 (black) and +inf by ``top`` (white),
    with a warning; unchanged (not copied) when all are finite."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    count = int(values.size - np.count_nonzero(finite))
    replaced = np.where(finite, values, np.where(np.isposinf(values), top, 0.0))
    plural = "s" if count != 1 else ""
    note = (
        f"{count} non-finite value{plural} (NaN or infinity) replaced: NaN and -inf by "
        "black, +inf by white"
    )
    notes.append(note)
    warnings.warn(f"{name}: {note}.", UserWarning, stacklevel=5)
    return replaced


def _array_sha256(array: np.ndarray[Any, Any]) -> str:
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _pil_sha256(image: Image.Image) -> str:
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- bytes


def _load_bytes(
    data: bytes, name: str, max_pixels: int, target_side: int | None, strip_metadata: bool
) -> LoadedImage:
    if not data:
        raise EmptyImageError(
            f"{name} is empty (0 bytes); check that the file was saved or uploaded completely.",
            source=name,
        )
    _refuse_non_raster(data, name)
    if _is_heif(data):
        _register_heif(name)
    original = data
    notes: list[str] = []
    if data.startswith(_PNG_SIGNATURE):
        data = _without_oversized_png_chunks(data, notes)
    image = _open_header(data, name)
    png = image.format == "PNG"
    if png and data is not original:  # chunks were dropped: check what is decoded
        _verify_png_checksums(data, name)
    checks = _Checks(
        iter((original,)),
        name,
        png=png and data is original,
        background=len(original) >= _Checks._BACKGROUND_FROM,
    )
    try:
        return _decode_checked(original, data, image, name, max_pixels, target_side,
                               strip_metadata, notes, checks)  # fmt: skip
    except BaseException:
        checks.result()  # a damaged PNG is reported as such, whatever the decoder said
        raise


def _decode_checked(
    original: bytes,
    data: bytes,
    image: Image.Image,
    name: str,
    max_pixels: int,
    target_side: int | None,
    strip_metadata: bool,
    notes: list[str],
    checks: _Checks,
) -> LoadedImage:
    declared = image.size
    _check_pixels(declared, max_pixels, name)
    fmt = image.format
    with _pillow_globals():
        frames = _frame_count(image)
    _check_pixels(image.size, max_pixels, name)  # counting GIF frames may grow the canvas
    if frames > 1 and fmt != "MPO":
        notes.append(_frames_warning(fmt, frames))
    source_mode = image.mode
    reduced = None
    if target_side is not None and strip_metadata and frames == 1:
        reduced = _vips_reduced(image, data, target_side)
    if reduced is None:
        if target_side is not None and fmt in ("JPEG", "MPO"):
            _draft(image, target_side)
        _full_load(image, name, fmt)
    # After the load: for a PNG whose eXIf chunk follows the pixels, reading the EXIF
    # would otherwise trigger a decode outside _full_load's safeguards.
    orientation = _orientation(image)
    facts = _Facts.of(image, data, fmt, source_mode, orientation, frames)
    loaded = _normalise(
        image if reduced is None else reduced,
        name,
        target_side,
        orientation,
        facts,
        strip_metadata,
        notes,
    )
    passthrough = data if facts.may_pass_through(strip_metadata) else None
    return LoadedImage(
        image=loaded.image,
        name=name,
        # A multi-picture JPEG (MPO: phone photos with a preview or depth map appended)
        # is a JPEG to the user; its extra pictures are metadata and are not kept.
        original_format="JPEG" if fmt == "MPO" else fmt,
        original_bytes=len(original),
        original_size=_oriented(declared, orientation),
        has_alpha=loaded.has_alpha,
        warnings=notes,
        source_sha256=checks.result(),
        passthrough=passthrough,
        passthrough_mime=_PASSTHROUGH_MIME[fmt] if passthrough is not None and fmt else None,
    )


#: File formats (by signature) that :func:`_load_path_reduced` may decode from disk.
_STREAMED_SIGNATURES = ("JPEG", "PNG", "TIFF", "WebP")
_PIECE = 1 << 20  # a file given by path is hashed in pieces of this size


def _load_path_reduced(
    source: str | os.PathLike[str], max_pixels: int, target_side: int, max_bytes: int
) -> LoadedImage | None:
    """A file given by path that will be reduced, decoded by libvips from disk while a
    helper thread streams it through SHA-256 (and a PNG's chunk checksums): its bytes
    are never held whole, as libvips' own thumbnail does not hold them (36 MB for a
    12 MP TIFF scan). Nothing is lost by not reading it: a reduced image is never
    passed through as it is.

    ``None`` when this does not apply or any doubt arises — not a JPEG/PNG/TIFF/WebP
    that libvips decodes (see :func:`_vips_suits`), nothing to reduce, a PNG metadata
    chunk over Pillow's limits, a file libvips refuses (damaged, cut short), or a file
    that changed while it was read — and the caller reads the file and loads its bytes,
    which gives every other case its usual handling and error message.
    """
    from . import _vips

    if not _vips.available() or (isinstance(source, str) and source[:5].lower() == "data:"):
        return None
    text, name = _path_names(source)
    with _path_errors(text, name), _open_regular(text, name, max_bytes) as (raw, info):
        handle = io.BufferedReader(raw)
        head = handle.read(32)
        if _signature_format(head) not in _STREAMED_SIGNATURES:
            return None
        handle.seek(0)
        try:
            with _pillow_globals():
                image = Image.open(handle, formats=_readable_formats())
        except (OSError, SyntaxError, ValueError, EOFError, RuntimeError, IndexError):
            return None  # the bytes path says what is wrong
        if max(image.size) <= target_side:
            return None  # nothing to reduce: the file may be passed through as it is
        _check_pixels(image.size, max_pixels, name)  # before anything else is read
        with _pillow_globals():
            frames = _frame_count(image)
        if frames != 1:
            return None
        read_at = _file_reader(handle)
        first_idat, after_pixels = -1, True
        if image.format == "PNG":
            first_idat, after_pixels = _png_walk(read_at, info.st_size)
        if first_idat > 0:
            prefix = read_at(0, first_idat)
            if _without_oversized_png_chunks(prefix, []) is not prefix:
                return None  # a chunk to drop: the bytes path does that
        if not _vips_suits(image, head[24:25], lambda: after_pixels):
            return None
        orientation = _orientation(image)
        fmt = image.format
        facts = _Facts.of(image, None, fmt, image.mode, orientation, frames)
        # From here the helper thread owns the handle (Pillow is done with it).
        handle.seek(0)
        checks = _Checks(
            _pieces(handle, max_bytes, name),
            name,
            png=fmt == "PNG",
            background=info.st_size >= _Checks._BACKGROUND_FROM,
        )
        path = Path(text).expanduser()
        try:
            reduced = _vips.decode_reduced(
                path, fmt or "", image.size, target_side, draft_slack=DRAFT_SLACK
            )
        finally:
            digest = _checked_digest(checks)
        if reduced is None or digest is None or _changed(info, os.fstat(raw.fileno()), path):
            return None
        if checks.size != info.st_size:
            return None
    notes: list[str] = []
    loaded = _normalise(reduced, name, target_side, orientation, facts, True, notes)
    return LoadedImage(
        image=loaded.image,
        name=name,
        original_format="JPEG" if fmt == "MPO" else fmt,
        original_bytes=checks.size,
        original_size=_oriented(image.size, orientation),
        has_alpha=loaded.has_alpha,
        warnings=notes,
        source_sha256=digest,
    )


def _pieces(handle: io.BufferedReader[Any], max_bytes: int, name: str) -> Iterator[memoryview]:
    """The file's bytes from the current position, in pieces of one reused buffer."""
    buffer = bytearray(_PIECE)
    view = memoryview(buffer)
    total = 0
    while count := handle.readinto(view):
        total += count
        if total > max_bytes:  # it grew past the limit while being read
            raise _too_many_bytes(name, None, max_bytes)
        yield view[:count]


def _checked_digest(checks: _Checks) -> str | None:
    """The streamed digest; ``None`` when reading the file failed (the caller falls back
    to reading it whole, which reports the failure). A damaged PNG's checksum error and
    a file over the size limit are raised as they are."""
    try:
        return checks.result()
    except ImageError:
        raise
    except OSError:
        return None


def _changed(before: os.stat_result, after: os.stat_result, path: Path) -> bool:
    """True when the file was written to while it was read, or ``path`` (which libvips
    opened by name) no longer names the file that was hashed."""
    try:
        now = os.stat(path)
    except OSError:
        return True

    def identity(info: os.stat_result) -> tuple[int, ...]:
        return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns

    return not identity(before) == identity(after) == identity(now)


def _load_pil(
    image: Image.Image,
    name: str,
    max_pixels: int,
    target_side: int | None,
    strip_metadata: bool,
    *,
    source_sha256: str | None = None,
) -> LoadedImage:
    """Normalise an in-memory (or lazily opened) PIL image without touching the caller's."""
    if image.width == 0 or image.height == 0:
        raise EmptyImageError(
            f"{name} has no pixels (size {image.size}); pass a non-empty image.", source=name
        )
    _check_pixels(image.size, max_pixels, name)
    notes: list[str] = []
    frames = _frame_count(image)
    if frames > 1 and image.format != "MPO":
        notes.append(_frames_warning(image.format, frames))
    declared = image.size
    _full_load(image, name, image.format)
    orientation = _orientation(image)
    facts = _Facts.of(image, None, image.format, image.mode, orientation, frames)
    digest = source_sha256 or _pil_sha256(image)
    loaded = _normalise(
        image, name, target_side, orientation, facts, strip_metadata, notes, owned=False
    )
    result = loaded.image
    if result is image and (result.info or result.format):
        # Never strip metadata from (or otherwise change) the caller's own object.
        result = image.copy()
        result.info = _kept_info(image, strip_metadata, orientation)
    return LoadedImage(
        image=result,
        name=name,
        original_format=image.format,
        original_bytes=None,
        original_size=_oriented(declared, orientation),
        has_alpha=loaded.has_alpha,
        warnings=notes,
        source_sha256=digest,
    )


def _refuse_non_raster(data: bytes, name: str) -> None:
    """Recognise documents, vectors and text by their first bytes and say what to do."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf"):
        raise UnsupportedImageError(
            f"{name} is a PDF document, not an image; export the page as PNG or JPEG first.",
            source=name,
        )
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) and (
        b"<svg" in data[:8192].lower()
    ):
        raise UnsupportedImageError(
            f"{name} is an SVG (vector) image; export it as PNG first.", source=name
        )
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise UnsupportedImageError(
            f"{name} is an HTML page, not an image (a download link that returned a web "
            "page?); save the image itself and pass that.",
            source=name,
        )
    if head.startswith(b"%!ps") or data[:4] == b"\xc5\xd0\xd3\xc6":
        raise UnsupportedImageError(
            f"{name} is a PostScript/EPS file; export it as PNG first.", source=name
        )


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(1, len(text))


# Magic numbers of the formats we read: if the file starts like one of these but Pillow
# cannot identify it, it is a damaged image rather than an unknown format.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _signature_format(data: bytes) -> str | None:
    for magic, fmt in _SIGNATURES:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if _is_heif(data):
        return "HEIF"
    return None


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in (
        b"heic",
        b"heix",
        b"hevc",
        b"hevx",
        b"heim",
        b"heis",
        b"mif1",
        b"msf1",
        b"avif",
        b"avis",
    )


def _register_heif(name: str) -> None:
    """Register pillow-heif's opener the first time a HEIF file is seen."""
    global _heif_registered
    if _heif_registered:
        return
    with _HEIF_LOCK:
        if _heif_registered:
            return
        try:
            import pillow_heif
        except ImportError as exc:  # pragma: no cover - pillow-heif is a dependency
            raise UnsupportedImageError(
                f"{name} is a HEIC/HEIF image and reading it needs pillow-heif; "
                "install it with: pip install pillow-heif",
                source=name,
            ) from exc
        pillow_heif.register_heif_opener()
        _heif_registered = True


@contextmanager
def _pillow_globals(*, pixels: int | None = None) -> Iterator[None]:
    """Our limits instead of Pillow's globals while we parse or decode.

    Pillow's ``MAX_IMAGE_PIXELS`` check (a warning, then an error at twice the value) is
    replaced by our ``max_pixels``, and ``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced off
    so a cut-off file is an error rather than grey padding. ``pixels`` is the declared
    size when known: if Pillow's check could not fire for it and truncated loading is off
    (the usual case), nothing is changed and no lock is taken, so decodes run in parallel.
    """
    limit = Image.MAX_IMAGE_PIXELS
    bomb_check_in_the_way = limit is not None and (pixels is None or pixels > limit)
    if not bomb_check_in_the_way and not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _PILLOW_GLOBALS_LOCK:
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = None
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _open_header(data: bytes, name: str) -> Image.Image:
    """Parse the header only (no pixels are decoded here)."""
    try:
        with _pillow_globals():
            return Image.open(io.BytesIO(data), formats=_readable_formats())
    except UnidentifiedImageError as exc:
        if _is_heif(data):
            raise _heif_decoder_error(data, name, exc) from exc
        looks_like = _signature_format(data)
        if looks_like is not None:
            raise CorruptImageError(
                f"{name} starts like a {looks_like} image but its header is damaged or cut "
                "short; re-export or re-download it.",
                source=name,
            ) from exc
        if _looks_like_text(data):
            raise UnsupportedImageError(
                f"{name} is a text file, not an image; pass a JPEG, PNG, WebP, HEIC or GIF.",
                source=name,
            ) from exc
        raise UnsupportedImageError(
            f"{name} is not an image format nbbanana can read; convert it to JPEG or PNG.",
            source=name,
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError, IndexError) as exc:
        if _is_heif(data):
            raise _heif_decoder_error(data, name, exc) from exc
        if (limit := _pillow_limit_error(exc, name)) is not None:
            raise limit from exc
        looks_like = _signature_format(data) or "an"
        raise CorruptImageError(
            f"{name} starts like a {looks_like} image but its header is damaged or cut short "
            f"({exc}); re-export or re-download it.",
            source=name,
        ) from exc


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PILLOW_LIMIT_WORDS = ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY", "Too much memory used in text chunks")


def _without_oversized_png_chunks(data: bytes, notes: list[str]) -> bytes:
    """``data`` without the metadata chunks Pillow would refuse to read, with a note each.

    Pillow decompresses a PNG's colour profile (iCCP) and text (zTXt, iTXt) to at most
    ``PngImagePlugin.MAX_TEXT_CHUNK`` bytes (1 MB) each and keeps at most
    ``MAX_TEXT_MEMORY`` (64 MB) of text in all; past either it refuses the whole file,
    pixels and all. Such a file is fine: the pixels are what we need, so the chunk goes.
    Bounded: each chunk is decompressed to at most the limit + 1 byte. Whole chunks are
    removed, so the other chunks' checksums stay valid.
    """
    chunk_limit = PngImagePlugin.MAX_TEXT_CHUNK
    text_limit = PngImagePlugin.MAX_TEXT_MEMORY
    drops: list[tuple[int, int]] = []
    text_total = 0
    # Decompression work stays in proportion to what Pillow itself would do: a file of
    # many small zlib bombs is scanned up to this much output, then left to Pillow.
    budget = text_limit + 8 * chunk_limit
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data) and budget > 0:
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(data) or kind == b"IEND":
            break
        if kind in (b"iCCP", b"zTXt", b"iTXt", b"tEXt"):
            body = data[offset + 8 : offset + 8 + length]
            keyword = body.split(b"\0", 1)[0].decode("latin-1", "replace")[:40]
            size = _png_chunk_value_size(kind, body, chunk_limit)
            budget -= size or 0
            what = (
                "iCCP chunk (colour profile)"
                if kind == b"iCCP"
                else f"{kind.decode()} chunk {keyword!r} (text metadata)"
            )
            if size is not None and size > chunk_limit and kind != b"tEXt":
                drops.append((offset, end))
                after = "; colours assumed sRGB" if kind == b"iCCP" else ""
                notes.append(
                    f"PNG {what} dropped: it decompresses to more than Pillow's limit of "
                    f"{chunk_limit:,} bytes (PngImagePlugin.MAX_TEXT_CHUNK){after}"
                )
            elif size is not None and kind != b"iCCP":
                text_total += size
                if text_total > text_limit:
                    drops.append((offset, end))
                    text_total -= size
                    notes.append(
                        f"PNG {what} dropped: the text chunks together exceed Pillow's limit "
                        f"of {text_limit:,} bytes (PngImagePlugin.MAX_TEXT_MEMORY)"
                    )
        offset = end
    if not drops:
        return data
    kept, start = [], 0
    for begin, end in drops:
        kept.append(data[start:begin])
        start = end
    kept.append(data[start:])
    return b"".join(kept)


def _png_chunk_value_size(kind: bytes, body: bytes, limit: int) -> int | None:
    """Size of a text/profile chunk's value as Pillow reads it, counted up to ``limit``
    + 1; ``None`` when the chunk is malformed (left to Pillow to judge)."""
    _keyword, sep, rest = body.partition(b"\0")
    if not sep:
        return None
    if kind == b"tEXt":
        return len(rest)
    if kind == b"iTXt":  # flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return None
        compressed = rest[0] == 1
        _language, _, tail = rest[2:].partition(b"\0")
        _translated, sep, payload = tail.partition(b"\0")
        if not sep:
            return None
        if not compressed:
            return len(payload)
    else:  # iCCP, zTXt: method, then the zlib stream
        payload = rest[1:]
    try:
        return len(zlib.decompressobj().decompress(payload, limit + 1))
    except zlib.error:
        return None


def _pillow_limit_error(exc: BaseException, name: str) -> ImageError | None:
    """A plain statement of which of Pillow's safety limits refused the file, if one did."""
    text = str(exc)
    if not any(word in text for word in _PILLOW_LIMIT_WORDS):
        return None
    return ImageError(
        f"{name} has metadata larger than Pillow's safety limit allows ({text.strip()}); "
        "the pixels may be fine: save a copy without metadata and pass that.",
        source=name,
    )


def _heif_decoder_error(
    data: bytes | None, name: str, exc: BaseException, fmt: str | None = None
) -> UnsupportedImageError:
    """The bundled HEIF decoder failed: say so, and how to convert the file, rather than
    calling a file damaged that another decoder (the phone's, macOS's) reads fine."""
    avif = fmt == "AVIF" or (data is not None and data[8:12] in (b"avif", b"avis"))
    kind = "AVIF" if avif else "HEIC/HEIF"
    reason = _heif_reason(data, exc)
    return UnsupportedImageError(
        f"the bundled {kind} decoder ({_heif_decoder_version(avif)}) could not read {name} "
        f"({reason}): it may use a codec or feature this decoder lacks, or be incomplete; "
        "convert it to JPEG or PNG (macOS Preview: File > Export; iPhone: Settings > "
        "Camera > Formats > Most Compatible; or: magick photo.heic photo.jpg) and pass that.",
        source=name,
    )


def _heif_reason(data: bytes | None, exc: BaseException) -> str:
    """libheif's own words where Pillow only says it cannot identify the file."""
    reason = str(exc)
    if data is not None and isinstance(exc, UnidentifiedImageError):
        try:
            import pillow_heif

            heif = pillow_heif.open_heif(io.BytesIO(data))
            if len(heif) == 0:
                reason = "it holds no image in a codec this decoder has"
            else:
                heif[0].load()  # decoding says what is wrong, if anything
        except Exception as detail:  # any libheif error text will do
            reason = str(detail)
    reason = " ".join(reason.split()).rstrip(".")
    return reason if len(reason) <= 160 else reason[:159] + "…"


@lru_cache(maxsize=2)
def _heif_decoder_version(avif: bool) -> str:
    """Which decoder failed: Pillow reads AVIF itself (libavif); HEIC goes to pillow-heif."""
    if avif and "AVIF" in Image.OPEN:
        import PIL

        return f"libavif via Pillow {PIL.__version__}"
    try:
        import pillow_heif

        return f"libheif {pillow_heif.libheif_version()} via pillow-heif {pillow_heif.__version__}"
    except (ImportError, AttributeError):  # pragma: no cover - pillow-heif is a dependency
        return "pillow-heif"


class _Checks:
    """The file's SHA-256 and, for a PNG, its chunk checksums, computed on a helper thread
    while the pixels decode (hashlib and zlib release the GIL; a 25 MB file takes about
    40 ms of one core). ``blocks`` yields the file's bytes in order: the bytes held, or
    pieces read from disk. Small inputs are checked at once, on the calling thread."""

    _BACKGROUND_FROM = 1 << 20

    def __init__(
        self, blocks: Iterator[bytes | memoryview], name: str, *, png: bool, background: bool
    ) -> None:
        self._digest = ""
        self.size = 0  #: bytes seen
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, args=(blocks, name, png), daemon=True)
            self._thread.start()
        else:
            self._run(blocks, name, png)

    def _run(self, blocks: Iterator[bytes | memoryview], name: str, png: bool) -> None:
        try:
            digest = hashlib.sha256()
            checksums = _PngChecksums(name) if png else None
            for block in blocks:
                digest.update(block)
                self.size += len(block)
                if checksums is not None:
                    checksums.feed(block)
            self._digest = digest.hexdigest()
        except BaseException as error:  # raised on the caller's thread by result()
            self._error = error

    def result(self) -> str:
        """The hex digest; raises the checksum error of a damaged PNG."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest


def _verify_png_checksums(data: bytes, name: str) -> None:
    """Check every chunk's CRC of a PNG held in memory (see :class:`_PngChecksums`)."""
    _PngChecksums(name).feed(data)


class _PngChecksums:
    """Every chunk's CRC checked as a PNG's bytes stream past, in pieces of any size:
    Pillow does not check IDAT's, so damage would decode as noise.

    Runs at about 1 GB/s (zlib's CRC-32). A chunk cut short by the end of the file is
    left to the decoder, which reports it as truncated; nothing after IEND is read.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._phase = "signature"  # then "header", "body", "crc", ..., "done"
        self._want = 8  # bytes the fixed-size phase needs
        self._fixed = bytearray()  # the fixed-size phase's bytes so far
        self._kind = b""
        self._left = 0  # body bytes still to come
        self._crc = 0

    def feed(self, block: bytes | memoryview) -> None:
        view = memoryview(block)
        while len(view) and self._phase != "done":
            if self._phase == "body":
                take = min(self._left, len(view))
                self._crc = zlib.crc32(view[:take], self._crc)
                view, self._left = view[take:], self._left - take
                if not self._left:
                    self._phase, self._want = "crc", 4
                continue
            take = self._want - len(self._fixed)
            self._fixed += view[:take]
            view = view[take:]
            if len(self._fixed) == self._want:
                self._fixed_done(bytes(self._fixed))
                self._fixed.clear()

    def _fixed_done(self, fixed: bytes) -> None:
        if self._phase == "crc":
            (stored,) = struct.unpack(">I", fixed)
            if self._crc != stored:
                kind = self._kind.decode("latin-1")
                raise CorruptImageError(
                    f"{self._name} is a damaged PNG (checksum mismatch in its {kind} chunk); "
                    "re-export or re-download it.",
                    source=self._name,
                )
            if self._kind == b"IEND":
                self._phase = "done"
                return
        if self._phase in ("signature", "crc"):
            self._phase, self._want = "header", 8
            return
        (self._left,) = struct.unpack_from(">I", fixed)  # a header: length, kind
        self._kind = fixed[4:8]
        self._crc = zlib.crc32(self._kind)
        self._phase, self._want = ("body", 0) if self._left else ("crc", 4)


def _readable_formats() -> list[str]:
    """The formats of :data:`_READABLE_FORMATS` that this Pillow has a plugin for."""
    Image.init()
    return [fmt for fmt in _READABLE_FORMATS if fmt in Image.OPEN]


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImageError(
            f"{name} declares an empty size of {width}×{height} pixels; the file is damaged.",
            source=name,
        )
    pixels = width * height
    if pixels > max_pixels:
        raise DecompressionBombError(
            f"{name} declares {width}×{height} pixels ({_amount(pixels)}), more than the "
            f"limit of {_amount(max_pixels)}, so it was not decoded; if you trust it, "
            f"pass max_pixels={pixels} (or more) to load it.",
            source=name,
        )


def _amount(pixels: int) -> str:
    """``12.2 MP`` for millions of pixels, ``3,071 pixels`` below a million."""
    if pixels >= 1_000_000:
        return f"{pixels / 1e6:,.1f} MP".replace(".0 MP", " MP")
    return f"{pixels:,} pixels"


def _frame_count(image: Image.Image) -> int:
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError):
        return 1


def _frames_warning(fmt: str | None, frames: int) -> str:
    if fmt in _ANIMATED_NAMES:
        return f"{_ANIMATED_NAMES[fmt]}: first of {frames} frames used"
    if fmt == "TIFF":
        return f"multi-page TIFF: first of {frames} pages used"
    if fmt == "HEIF":
        return f"HEIF with {frames} images: the primary image used"
    return f"{fmt or 'image'} with {frames} frames: the first used"


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


#: A JPEG may be decoded at a DCT scale (1/2, 1/4, 1/8) whose long side falls this much
#: short of ``target_side``: the scaled decode is then used as it is, with no resampling
#: at all — faster and sharper than a larger decode plus Lanczos — and up to 10 % fewer
#: pixels on the long side change nothing the model sees. 6000 px → 3000 px for a 3072 px
#: target, say, instead of a full 24 MP decode.
DRAFT_SLACK = 0.9


def _draft(image: Image.Image, target_side: int) -> None:
    """Ask libjpeg to decode at the smallest 1/2, 1/4, 1/8 scale whose long side is at
    least ``DRAFT_SLACK × target_side``."""
    width, height = image.size
    long_side = max(width, height)
    floor_side = math.ceil(target_side * DRAFT_SLACK)
    if floor_side * 2 > long_side:
        return
    scale = floor_side / long_side
    requested = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
    image.draft(image.mode, requested)


def _vips_reduced(image: Image.Image, data: bytes, target_side: int) -> Image.Image | None:
    """The file's pixels decoded and reduced towards ``target_side`` by libvips (see
    :mod:`nbbanana._vips`), when :func:`_vips_suits` says so. ``None`` sends the file
    down the Pillow path."""
    if max(image.size) <= target_side:
        return None  # nothing to reduce (and the original may be passed through)
    size = len(data)
    if not _vips_suits(image, data[24:25], lambda: _png_walk(_bytes_reader(data), size)[1]):
        return None
    from . import _vips

    fmt = image.format or ""
    return _vips.decode_reduced(data, fmt, image.size, target_side, draft_slack=DRAFT_SLACK)


def _vips_suits(image: Image.Image, png_depth: bytes, after_pixels: Callable[[], bool]) -> bool:
    """True for the inputs whose facts Pillow's header parse already holds in full, so
    that libvips may decode the pixels: 8-bit RGB/L JPEG, 8-bit PNG with nothing after
    its pixels (``after_pixels()``), 8-bit TIFF and WebP. ``png_depth`` is byte 24 of
    the file (a PNG's bit depth)."""
    fmt, mode = image.format, image.mode
    if fmt in ("JPEG", "MPO"):
        return mode in ("RGB", "L")
    if fmt == "PNG":
        # Pillow reads chunks up to the pixels on open; with nothing but IEND after them
        # (eXIf, text) the header holds every fact, and an absent eXIf means no EXIF.
        if mode not in ("RGB", "RGBA", "L", "P") or png_depth != b"\x08" or after_pixels():
            return False
        image.info.setdefault("exif", b"")
        return True
    return fmt in ("TIFF", "WEBP") and mode in ("RGB", "RGBA", "L")


def _bytes_reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, count: data[offset : offset + count]


def _file_reader(handle: io.BufferedReader[Any]) -> Callable[[int, int], bytes]:
    def read_at(offset: int, count: int) -> bytes:
        handle.seek(offset)
        return handle.read(count)

    return read_at


def _png_walk(read_at: Callable[[int, int], bytes], size: int) -> tuple[int, bool]:
    """Where a PNG's first IDAT chunk starts (-1 if none), and whether a chunk other
    than IDAT/IEND follows it (or the walk fails). Only chunk headers are read."""
    offset, first_idat = 8, -1
    while offset + 8 <= size:
        header = read_at(offset, 8)
        if len(header) < 8:
            break
        (length,) = struct.unpack_from(">I", header)
        kind = header[4:8]
        if kind == b"IDAT":
            if first_idat < 0:
                first_idat = offset
        elif kind == b"IEND":
            return first_idat, False
        elif first_idat >= 0:
            return first_idat, True
        offset += 12 + length
    return first_idat, True


def _full_load(image: Image.Image, name: str, fmt: str | None) -> None:
    """Decode all pixels, refusing truncated data instead of padding it with grey."""
    try:
        with _pillow_globals(pixels=image.width * image.height):
            image.load()
    except Image.DecompressionBombError as exc:  # a later frame/layer larger than the header
        raise DecompressionBombError(
            f"{name} contains a frame larger than its declared size; it was not decoded.",
            source=name,
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, RuntimeError) as exc:
        if fmt in ("HEIF", "AVIF"):
            raise _heif_decoder_error(None, name, exc, fmt) from exc
        if (limit := _pillow_limit_error(exc, name)) is not None:
            raise limit from exc
        kind = f"{fmt} " if fmt else ""
        raise CorruptImageError(
            f"{name} is a truncated or damaged {kind}image ({exc}); re-export or re-download it.",
            source=name,
        ) from exc


# --------------------------------------------------------------------------- facts


@dataclass
class _Facts:
    """What decides whether the original bytes may be sent unchanged."""

    fmt: str | None
    data: bytes | None
    source_mode: str
    bit_depth: int
    orientation: int
    icc: bytes | None
    icc_is_srgb: bool
    has_exif: bool
    has_gps: bool
    has_other_metadata: bool
    multi_frame: bool

    @classmethod
    def of(
        cls,
        image: Image.Image,
        data: bytes | None,
        fmt: str | None,
        source_mode: str,
        orientation: int,
        frames: int,
    ) -> _Facts:
        info = image.info
        icc = info.get("icc_profile") or None
        exif = _exif_of(image)
        has_gps = bool(exif is not None and _gps_present(exif))
        other = any(
            key not in _HARMLESS_INFO_KEYS and key != "exif" for key in info if isinstance(key, str)
        )
        applist = getattr(image, "applist", None) or []
        for marker, payload in applist:
            if not any(marker == m and payload.startswith(p) for m, p in _HARMLESS_JPEG_APPS):
                other = True
        bit_depth = 8
        if fmt == "PNG" and data is not None and len(data) > 24:
            bit_depth = data[24]
        return cls(
            fmt=fmt,
            data=data,
            source_mode=source_mode,
            bit_depth=bit_depth,
            orientation=orientation,
            icc=icc if isinstance(icc, bytes) else None,
            icc_is_srgb=icc is None or _is_srgb_profile(icc),
            has_exif=exif is not None and len(exif) > 0,
            has_gps=has_gps,
            has_other_metadata=other,
            multi_frame=frames > 1,
        )

    def may_pass_through(self, strip_metadata: bool) -> bool:
        if self.data is None or self.fmt not in _PASSTHROUGH_MIME or self.multi_frame:
            return False
        modes = ("RGB", "L", "RGBA") if self.fmt == "PNG" else ("RGB", "L")
        if self.source_mode not in modes or self.bit_depth != 8:
            return False
        if self.orientation != 1 or not self.icc_is_srgb:
            return False
        return not (strip_metadata and (self.has_exif or self.has_other_metadata))


def _exif_of(image: Image.Image) -> Image.Exif | None:
    try:
        exif = image.getexif()
    except (OSError, SyntaxError, ValueError, EOFError, TypeError):
        return None
    return exif if len(exif) else None


def _gps_present(exif: Image.Exif) -> bool:
    if _EXIF_GPS_IFD not in exif:
        return False
    try:
        return bool(exif.get_ifd(_EXIF_GPS_IFD))
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError):
        return True  # a GPS pointer we cannot read is still a location to remove


@lru_cache(maxsize=32)
def _is_srgb_profile(icc: bytes) -> bool:
    """True for the usual sRGB profiles (identified by their description)."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    return "srgb" in description.lower().replace(" ", "")


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=16)
def _to_srgb_transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(
        source,
        _srgb_profile(),
        in_mode,
        out_mode,
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
        # Without LittleCMS's one-pixel cache a shared transform is safe across threads.
        flags=ImageCms.Flags.NOCACHE,
    )


# --------------------------------------------------------------------------- normalising


@dataclass
class _Normalised:
    image: Image.Image
    has_alpha: bool


def _normalise(
    image: Image.Image,
    name: str,
    target_side: int | None,
    orientation: int,
    facts: _Facts,
    strip_metadata: bool,
    notes: list[str],
    *,
    owned: bool = True,
) -> _Normalised:
    """Decoded pixels → upright 8-bit sRGB RGB/RGBA/L, reduced towards ``target_side``.

    ``owned`` says whether ``image`` is ours to change in place (False for a caller's
    PIL image).
    """
    original = image
    img = _to_8bit(image, name, notes)
    if target_side is not None:
        img = _reduce(img, target_side)
    in_place = owned or img is not original
    img = _to_srgb(img, facts.icc, facts.icc_is_srgb, notes, in_place=in_place)
    if orientation in _ORIENTATION_TRANSPOSE:
        img = img.transpose(_ORIENTATION_TRANSPOSE[orientation])
    has_alpha = False
    if img.mode == "RGBA":
        has_alpha = not _alpha_is_opaque(img)
        if not has_alpha:
            img = img.convert("RGB")
    if facts.has_gps and strip_metadata:
        notes.append("GPS location removed")
    kept = _kept_info(original, strip_metadata, orientation)
    if img is original and owned:
        # Detach from the file plugin object (its cached EXIF, file handle and metadata)
        # without copying pixels: a plain Image sharing the decoded pixel buffer.
        img = original._new(original.im)
    if img is not original:
        img.info = kept
    return _Normalised(img, has_alpha)


def _kept_info(
    image: Image.Image, strip_metadata: bool, orientation: int
) -> dict[str | tuple[int, int], Any]:
    """The ``info`` a normalised image keeps: nothing, or its metadata minus orientation."""
    if strip_metadata:
        return {}
    kept: dict[str | tuple[int, int], Any] = {}
    exif = _exif_of(image)
    if exif is not None:
        upright = Image.Exif()
        upright.load(exif.tobytes())
        upright.pop(_EXIF_ORIENTATION, None)
        kept["exif"] = upright.tobytes()
    for key in ("xmp", "XML:com.adobe.xmp", "comment"):
        if key in image.info:
            kept[key] = image.info[key]
    return kept


def _to_8bit(
    image: Image.Image, name: str = "<image>", notes: list[str] | None = None
) -> Image.Image:
    """Any decoded mode → 8-bit "RGB", "RGBA", "L" or "CMYK" (CMYK is converted later)."""
    mode = image.mode
    if mode in ("RGB", "L", "CMYK"):
        if mode in ("RGB", "L") and "transparency" in image.info:
            return image.convert("RGBA")
        return image
    if mode == "RGBA":
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if transparent else "RGB")
    if mode in ("LA", "La"):
        if mode == "LA" and _alpha_is_opaque(image):
            return image.convert("L")
        return image.convert("RGBA")
    if mode in ("RGBa",):
        return image.convert("RGBA")
    if mode in ("RGBX", "YCbCr", "HSV"):
        return image.convert("RGB")
    if mode == "LAB":
        lab_to_srgb = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), _srgb_profile(), "LAB", "RGB"
        )
        converted = ImageCms.applyTransform(image, lab_to_srgb)
        assert converted is not None
        return converted
    if mode.startswith("I;16") or mode == "I":
        return _scaled_to_l(np.asarray(image), 65535 if mode != "I" else None)
    if mode == "F":
        return _scaled_to_l(np.asarray(image), None, name, notes)
    return image.convert("RGB")


def _alpha_is_opaque(image: Image.Image) -> bool:
    lowest = image.getchannel("A").getextrema()[0]
    return isinstance(lowest, int | float) and lowest >= 255


def _scaled_to_l(
    values: np.ndarray[Any, Any],
    full_scale: int | None,
    name: str = "<image>",
    notes: list[str] | None = None,
) -> Image.Image:
    """Gray values of any depth → 8-bit "L", full scale mapped to 255 (rounded).

    For 32-bit integer and float images, whose range the format does not say, the full
    scale is guessed from the data: 1.0 for floats within [0, 1], else 255 when nothing
    exceeds it, else 65535. Only finite values count; NaN and -inf become black, +inf
    white (with a note: a single NaN once made the whole image black).
    """
    data = values.astype(np.float64, copy=False)
    finite = np.isfinite(data)
    if full_scale is None:
        high = float(data[finite].max()) if finite.any() else 0.0
        if values.dtype.kind == "f" and high <= 1.0:
            full_scale = 1
        elif high <= 255:
            full_scale = 255
        else:
            full_scale = 65535
    data = _finite(data, float(full_scale), name, notes if notes is not None else [])
    scaled = np.rint(np.clip(data, 0, full_scale) * (255.0 / full_scale)).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def _reduce(image: Image.Image, target_side: int) -> Image.Image:
    """Box-reduce by the largest integer factor that keeps the long side at least twice
    ``target_side``: it bounds memory and time for huge inputs, and leaves the last
    factor of 2 or more to the caller's Lanczos, which a box filter would blur."""
    factor = max(image.size) // (2 * target_side)
    if factor < 2:
        return image
    if image.mode == "RGBA":
        # Premultiply so fully transparent pixels do not bleed their colour into edges.
        return image.convert("RGBa").reduce(factor).convert("RGBA")
    return image.reduce(factor)


def _to_srgb(
    image: Image.Image,
    icc: bytes | None,
    icc_is_srgb: bool,
    notes: list[str],
    *,
    in_place: bool,
) -> Image.Image:
    """Convert with the embedded profile to sRGB; CMYK without one is converted naively."""
    mode = image.mode
    if icc is not None and not icc_is_srgb and mode in ("RGB", "RGBA", "CMYK"):
        out_mode = "RGBA" if mode == "RGBA" else "RGB"
        try:
            transform = _to_srgb_transform(icc, mode, out_mode)
            if mode == out_mode and in_place:
                ImageCms.applyTransform(image, transform, inPlace=True)
                return image
            converted = ImageCms.applyTransform(image, transform)
            assert converted is not None
            return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            notes.append("unreadable colour profile ignored (colours assumed sRGB)")
    if mode == "CMYK":
        if icc is None:
            notes.append("CMYK image without a colour profile: colours converted approximately")
        return image.convert("RGB")
    return image
