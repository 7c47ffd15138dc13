"""Helpers for the client tests: sessions against an emulator, and a wire recorder.

The recorder uses the SDK's documented ``HttpOptions(client_args=...)`` to add an httpx
event hook, so tests see the exact bytes the real SDK put on the wire without patching it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx2
from google import genai
from google.genai import types

from nbbanana._connect import connect
from nbbanana._gemini import honour_retry_info
from nbbanana.models import EndpointProfile, get_profile
from nbbanana.session import Session

#: Retries that keep tests fast: 3 attempts, 10 ms then 20 ms apart.
FAST_RETRY = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=1.0, jitter=0.0)


@dataclass
class Wire:
    """Every request the SDK sent: method, URL and JSON body (when it was JSON)."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, request: Any) -> None:
        body: Any = None
        try:
            content = request.content
        except httpx2.RequestNotRead:  # a streamed upload body
            content = b""
        if content:
            try:
                body = json.loads(content)
            except (ValueError, UnicodeDecodeError):
                body = content
        with self.lock:
            self.requests.append((request.method, str(request.url), body))

    async def ahook(self, request: Any) -> None:
        self.hook(request)

    def generate_bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [b for _, url, b in self.requests if ":generateContent" in url]

    def urls(self) -> list[str]:
        with self.lock:
            return [url for _, url, _ in self.requests]


def session_for(
    base_url: str,
    *,
    key: str = "test-key",
    endpoint: str | EndpointProfile = "gemini",
    retry: types.HttpRetryOptions | None = None,
    **options: Any,
) -> Session:
    """A session made by :func:`nbbanana.connect` against ``base_url``, on
    gemini-2.5-flash-image unless ``model=`` says otherwise (the tests of fitting,
    references and sizes rely on its facts; the default model has its own tests)."""
    options.setdefault("model", "gemini-2.5-flash-image")
    return connect(key, base_url=base_url, endpoint=endpoint, retry=retry or FAST_RETRY, **options)


def recorded_session(
    base_url: str,
    *,
    key: str = "test-key",
    endpoint: str | EndpointProfile = "gemini",
    model: str = "gemini-2.5-flash-image",
    max_cost_usd: float | None = None,
) -> tuple[Session, Wire]:
    """A session like :func:`connect` makes, whose SDK client records the wire."""
    wire = Wire()
    retry = FAST_RETRY.model_copy(deep=True)
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=base_url,
            retry_options=retry,
            client_args={"event_hooks": {"request": [wire.hook]}},
            async_client_args={"event_hooks": {"request": [wire.ahook]}},
        ),
    )
    honour_retry_info(client, retry)
    session = Session(
        client,
        model=model,
        base_url=base_url,
        offline=False,
        endpoint=get_profile(endpoint),
        max_cost_usd=max_cost_usd,
        api_key=key,
    )
    return session, wire
