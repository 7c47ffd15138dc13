"""Shared fixtures for image tests; the generators themselves live in ``_imagegen``.

Test modules import helpers directly (``from _imagegen import photo_like, jpeg_bytes``):
pytest puts this directory on ``sys.path``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _imagegen import jpeg_bytes, photo_like, png_bytes, screenshot_like

pytest_plugins = ["_emulator_fixtures", "_binder"]  # emulator, sdk_client, make_client; binder_run


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A 320×240 photo-like RGB image (do not modify it: it is shared)."""
    return photo_like(320, 240, seed=7)


@pytest.fixture(scope="session")
def photo_jpeg(photo: Image.Image) -> bytes:
    """``photo`` as a plain JPEG (quality 90, no metadata)."""
    return jpeg_bytes(photo, 90)


@pytest.fixture(scope="session")
def screenshot_png() -> bytes:
    """A 400×300 screenshot-like RGB PNG."""
    return png_bytes(screenshot_like(400, 300))


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, bytes], Path]:
    """Write bytes to a file in a fresh temporary folder and return its path."""

    def _write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return _write
