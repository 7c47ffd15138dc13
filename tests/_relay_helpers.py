"""Helpers for the relay tests: a rehearsal relay per test and raw Gemini requests."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from nbbanana.relay import Relay

MODEL = "gemini-2.5-flash-image"
#: The emulator's answer to a one-line prompt on this model: 1290 image tokens, the text
#: sentence and the prompt tokens; its estimate is a little higher (see _accounting).
IMAGE_COST_USD = 0.0387


@contextmanager
def running_relay(directory: Path, **kwargs: Any) -> Iterator[Relay]:
    relay = Relay(directory, "emulator", **kwargs).start()
    try:
        yield relay
    finally:
        relay.stop()


def upstream_key(relay: Relay) -> str:
    """The facilitator's key (tests only: to show it appears nowhere)."""
    key: str = relay.upstream._key
    return key


def generate_body(prompt: str, image: bytes | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": prompt}]
    if image is not None:
        parts.append(
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode()}}
        )
    return {"contents": [{"role": "user", "parts": parts}]}


def png(side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 180, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def generate(
    base_url: str, token: str | None, prompt: str = "a banana", *, stream: bool = False, **kw: Any
) -> httpx.Response:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    headers = {"x-goog-api-key": token} if token else {}
    return httpx.post(
        f"{base_url}/v1beta/models/{MODEL}:{method}",
        json=generate_body(prompt),
        headers=headers,
        timeout=60,
        **kw,
    )


def admin(relay: Relay) -> dict[str, str]:
    assert relay.admin_token
    return {"Authorization": f"Bearer {relay.admin_token}"}


def wait_settled(relay: Relay, timeout: float = 10.0) -> None:
    """Settlement runs just after an answer is sent; wait until nothing is in flight."""
    import time

    deadline = time.monotonic() + timeout
    while relay.totals()["reserved_usd"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert relay.totals()["reserved_usd"] == 0
