"""The emulator's uplink bandwidth: requests arrive no faster than the link carries them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from _imagegen import jpeg_bytes
from google import genai
from google.genai import types
from PIL import Image

from nbbanana.emulator import OFFLINE_API_KEY, Emulator
from nbbanana.emulator._throttle import Uplink, parse_bandwidth


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("10mbit", 10e6),
        ("2.5mbit", 2.5e6),
        ("500kbit", 500e3),
        ("1gbit", 1e9),
        ("10Mbit/s", 10e6),
        ("10mbps", 10e6),
        ("1.25MB/s", 10e6),
        ("64000", 64e3),
    ],
)
def test_bandwidth_units(text: str, bps: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(bps)


@pytest.mark.parametrize("text", ["fast", "10 parsecs", "0mbit", "-1mbit", ""])
def test_bad_bandwidth_is_refused_in_one_sentence(text: str) -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        parse_bandwidth(text)


def test_uplink_is_shared_by_all_readers() -> None:
    link = Uplink(8 * 200_000, burst=1024)  # 200 KB/s
    started = time.monotonic()
    threads = [threading.Thread(target=link.carry, args=(20_000,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 60 KB through one 200 KB/s link: ~0.3 s, not the 0.1 s three separate links take.
    assert time.monotonic() - started >= 0.25


def _noise_jpeg() -> bytes:
    """A valid JPEG of about 150 KB (noise does not compress)."""
    pixels = np.random.default_rng(3).integers(0, 256, (360, 360, 3), dtype=np.uint8)
    return jpeg_bytes(Image.fromarray(pixels), 95)


def _edit_seconds(emulator: Emulator, image: bytes) -> float:
    client = genai.Client(
        api_key=OFFLINE_API_KEY, http_options=types.HttpOptions(base_url=emulator.base_url)
    )
    part = types.Part.from_bytes(data=image, mime_type="image/jpeg")
    started = time.monotonic()
    response = client.models.generate_content(
        model="gemini-2.5-flash-image", contents=[part, "make it blue"]
    )
    assert response.candidates
    return time.monotonic() - started


def test_request_body_is_read_at_the_uplink_speed() -> None:
    image = _noise_jpeg()  # ~150 KB → ~200 KB of base64 JSON
    with Emulator(bandwidth_bps=2e6) as slow:  # 2 Mbit/s: 250 KB/s
        seconds = _edit_seconds(slow, image)
        body = slow.requests[-1].body_bytes
    assert body > 200_000
    assert seconds >= body * 8 / 2e6 * 0.9  # the whole body went through the link
    with Emulator() as fast:
        assert _edit_seconds(fast, image) < seconds / 2


def test_cli_bandwidth_option() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "nbbanana", "emulator", "--bandwidth", "fast"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "bandwidth 'fast' is not understood" in refused.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "nbbanana", "emulator", "--bandwidth", "2mbit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
        image = _noise_jpeg()
        part = types.Part.from_bytes(data=image, mime_type="image/jpeg")
        started = time.monotonic()
        client.models.generate_content(model="gemini-2.5-flash-image", contents=[part, "x"])
        assert time.monotonic() - started >= len(image) * 4 / 3 * 8 / 2e6 * 0.9
    finally:
        process.terminate()
        process.communicate(timeout=20)
