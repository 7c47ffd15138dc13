"""Fixtures for tests that drive the real google-genai SDK against the emulator.

Registered from ``conftest.py`` with ``pytest_plugins``. ``emulator`` is a fresh server per
test (starting one costs a socket and two threads); ``sdk_client`` is a real
``genai.Client`` pointed at it; ``make_client`` builds clients with other options.
"""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import types
from PIL import Image

from nbbanana.emulator import OFFLINE_API_KEY, Emulator

ClientFactory = Callable[..., genai.Client]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=1, batch_delay=0.0) as emu:
        yield emu


@pytest.fixture
def make_client(emulator: Emulator) -> ClientFactory:
    """``make_client(api_key=..., retry=HttpRetryOptions, timeout=ms, headers=..., version=...)``."""

    def make(
        *,
        api_key: str = OFFLINE_API_KEY,
        retry: types.HttpRetryOptions | None = None,
        timeout: int | None = None,
        headers: dict[str, str] | None = None,
        version: str | None = None,
        base_url: str | None = None,
    ) -> genai.Client:
        options = types.HttpOptions(
            base_url=base_url or emulator.base_url,
            retry_options=retry,
            timeout=timeout,
            headers=headers,
            api_version=version,
        )
        return genai.Client(api_key=api_key, http_options=options)

    return make


@pytest.fixture
def sdk_client(make_client: ClientFactory) -> genai.Client:
    return make_client()


def image_bytes(
    width: int = 64, height: int = 48, fmt: str = "JPEG", colour: Any = (200, 40, 40)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, fmt)
    return out.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, without decoding the image."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def answer_image(response: types.GenerateContentResponse) -> bytes:
    """The (non-thought) image of a response."""
    parts = response.candidates[0].content.parts if response.candidates else None
    images = [p.inline_data.data for p in parts or [] if p.inline_data and not p.thought]
    assert len(images) == 1, f"expected one image, got {len(images)}"
    data = images[0]
    assert data is not None
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
