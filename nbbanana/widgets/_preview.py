"""Small previews of images for widget state.

Widget state travels over the kernel websocket and may be saved with the notebook, so
what the browser shows is a downscaled JPEG (or PNG for images with transparency), never
the full image: a 24 MP result would otherwise bloat the notebook by tens of megabytes.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

__all__ = ["THUMB_SIDE", "VIEW_SIDE", "data_url", "preview_bytes"]

#: Long side of a thumbnail in the uploader and the history strip.
THUMB_SIDE = 192
#: Long side of the before/after previews in the compare view.
VIEW_SIDE = 1024


def preview_bytes(image: Image.Image, max_side: int) -> tuple[bytes, str]:
    """A copy of ``image`` no larger than ``max_side``, encoded; returns (bytes, mime)."""
    preview = image.copy()
    preview.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if preview.mode in ("RGBA", "LA", "P"):
        preview.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), "image/png"
    if preview.mode not in ("RGB", "L"):
        preview = preview.convert("RGB")
    preview.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), "image/jpeg"


def data_url(image: Image.Image, max_side: int) -> str:
    """A ``data:`` URL of a preview of ``image`` (for an ``<img src>`` in widget state)."""
    data, mime = preview_bytes(image, max_side)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
