"""Where the relay forwards requests: a Gemini-native REST endpoint and its key.

The relay is a reverse proxy that understands the bodies for accounting; this class is
the only code that holds the facilitator's key. Its one method, :meth:`Upstream.forward`,
sends raw Gemini JSON with the key in the ``x-goog-api-key`` header and hands back the
answer as a stream of chunks from which the key has already been removed, so nothing
the upstream echoes can carry it on to a participant, a log, the ledger or the gallery.
Another kind of upstream (an nbbanana backend) only has to provide the same method.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ..emulator import Emulator

__all__ = ["GEMINI_URL", "Upstream", "UpstreamReply", "redact_stream"]

GEMINI_URL = "https://generativelanguage.googleapis.com"
_REDACTED = b"[redacted]"


@dataclass
class UpstreamReply:
    status: int
    content_type: str
    chunks: AsyncIterator[bytes]


class Upstream:
    """A Gemini-native upstream: Google, a compatible gateway, or the offline emulator.

    ``emulator`` is kept only to stop it with the upstream (rehearsals); ``transport``
    replaces the network (tests)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 300.0,
        label: str | None = None,
        emulator: Emulator | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("The upstream needs an API key (the facilitator's).")
        self.base_url = base_url.rstrip("/")
        self.label = label or self.base_url
        self._key = api_key
        self._emulator = emulator
        self._timeout = httpx.Timeout(timeout, connect=15.0)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the key
        return f"Upstream({self.label!r})"

    @classmethod
    def rehearsal(cls, *, latency: float = 0.0, seed: int = 0) -> Upstream:
        """An offline emulator on loopback as the upstream, with a fresh random key that
        only the relay knows (so tests can show it never reaches a participant)."""
        from ..emulator import Emulator

        key = "rehearsal-" + secrets.token_urlsafe(24)
        emulator = Emulator(latency=latency, seed=seed, api_keys={key}).start()
        return cls(emulator.base_url, key, label="offline emulator (rehearsal)", emulator=emulator)

    def holds(self, text: str) -> bool:
        """Whether ``text`` contains the key (tests and self-checks)."""
        return self._key in text

    def _http(self) -> httpx.AsyncClient:
        # Created on first use, inside the relay's event loop.
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
                follow_redirects=False,
                transport=self._transport,
            )
        return self._client

    async def forward(
        self, method: str, path: str, *, query: Mapping[str, str], body: bytes | None
    ) -> UpstreamReply:
        """Send one request; raises ``httpx.HTTPError`` when the upstream cannot be reached."""
        headers = {"x-goog-api-key": self._key}
        if body is not None:
            headers["content-type"] = "application/json"
        client = self._http()
        request = client.build_request(
            method, path, params=dict(query), content=body, headers=headers
        )
        response = await client.send(request, stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in redact_stream(response.aiter_bytes(), self._key.encode()):
                    yield chunk
            finally:
                await response.aclose()

        return UpstreamReply(
            response.status_code, response.headers.get("content-type", "application/json"), chunks()
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def stop_emulator(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()


async def redact_stream(source: AsyncIterator[bytes], secret: bytes) -> AsyncIterator[bytes]:
    """``source`` with every occurrence of ``secret`` replaced, even one split across
    chunks: the last ``len(secret) - 1`` bytes are held back until the next chunk."""
    keep = len(secret) - 1
    tail = b""
    async for chunk in source:
        data = (tail + chunk).replace(secret, _REDACTED)
        if len(data) > keep:
            tail = data[len(data) - keep :] if keep else b""
            yield data[: len(data) - keep] if keep else data
        else:
            tail = data
    if tail:
        yield tail.replace(secret, _REDACTED)
