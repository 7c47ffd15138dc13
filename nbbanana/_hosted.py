"""Images that arrive as links: data URLs and hosted URLs inside an answer's text.

Aggregators and some Gemini-native relays return a generated image not as an image part
but inside text — a Markdown ``![image](data:image/png;base64,…)`` or a hosted
``https://…`` URL [reference §13]. This module finds those links (:func:`split_images`),
decodes data URLs, and downloads hosted images safely (:func:`fetch_image`: http(s) only,
a size cap, a timeout, at most three redirects). :func:`lift_text_images` rewrites a
``GenerateContentResponse`` whose text parts carry such links into one with
``inline_data`` parts, so the rest of the toolkit sees an ordinary image answer.
"""

from __future__ import annotations

import base64
import binascii
import re

import httpx2  # the HTTP client under both SDKs (no extra dependency)
from google.genai import types

__all__ = [
    "DEFAULT_FETCH_LIMIT",
    "DEFAULT_FETCH_TIMEOUT",
    "HostedImageError",
    "ImageFetcher",
    "fetch_image",
    "image_from_url",
    "lift_text_images",
    "mime_of",
    "split_images",
]

#: Largest hosted image downloaded (bytes); a 4K PNG is well under 50 MB.
DEFAULT_FETCH_LIMIT = 50_000_000
#: Seconds allowed for downloading one hosted image.
DEFAULT_FETCH_TIMEOUT = 60.0

_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?(?P<url>(?:data:|https?://)[^)\s>]+)>?\s*\)")
_BARE_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,[A-Za-z0-9+/=_-]+")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class HostedImageError(Exception):
    """An image link in an answer could not be used (a download failed, was too large or
    not http(s), or a data URL was malformed). Backends map it to ``ServiceUnavailable``."""


class ImageFetcher:
    """Downloads hosted result images: http(s) only, at most ``limit`` bytes, ``timeout``
    seconds. One ``httpx2`` client per backend, so connections are reused."""

    def __init__(
        self, *, limit: int = DEFAULT_FETCH_LIMIT, timeout: float = DEFAULT_FETCH_TIMEOUT
    ) -> None:
        self.limit = limit
        self.timeout = timeout
        self._client: httpx2.Client | None = None

    def __call__(self, url: str) -> tuple[bytes, str]:
        return fetch_image(url, limit=self.limit, timeout=self.timeout, client=self._get())

    def _get(self) -> httpx2.Client:
        if self._client is None:
            self._client = httpx2.Client(follow_redirects=True, max_redirects=3)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def fetch_image(
    url: str,
    *,
    limit: int = DEFAULT_FETCH_LIMIT,
    timeout: float = DEFAULT_FETCH_TIMEOUT,
    client: httpx2.Client | None = None,
) -> tuple[bytes, str]:
    """``(bytes, mime)`` of a hosted image; raises :class:`HostedImageError`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise HostedImageError(f"Refusing to fetch an image from a {scheme!r} URL (http(s) only).")
    own = client is None
    http = client or httpx2.Client(follow_redirects=True, max_redirects=3)
    shown = url.split("?", 1)[0]  # a query may carry a signed token
    try:
        with http.stream("GET", url, timeout=timeout) as response:
            if response.url.scheme not in ("http", "https"):
                raise HostedImageError(f"The image at {shown} redirected to a non-http(s) URL.")
            if response.status_code != 200:
                raise HostedImageError(
                    f"Downloading the image at {shown} failed: HTTP {response.status_code}."
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise HostedImageError(
                    f"The image at {shown} is {int(declared):,} bytes, over the {limit:,}-byte cap."
                )
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise HostedImageError(f"The image at {shown} is over the {limit:,}-byte cap.")
            mime = response.headers.get("content-type", "").split(";")[0].strip()
    except httpx2.HTTPError as exc:
        raise HostedImageError(
            f"Downloading the image at {shown} failed ({type(exc).__name__})."
        ) from exc
    finally:
        if own:
            http.close()
    return bytes(body), mime_of(bytes(body), mime)


def mime_of(data: bytes, declared: str = "") -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[8:12] == b"WEBP":
        return "image/webp"
    return declared if declared.startswith("image/") else "image/png"


def _decode_data_url(url: str) -> tuple[bytes, str]:
    match = _DATA_URL.match(url.strip())
    if match is None:
        raise HostedImageError("The gateway returned a malformed data URL.")
    try:
        text = match["data"].replace("-", "+").replace("_", "/")
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise HostedImageError(
            "The gateway returned a data URL that is not valid base64."
        ) from None
    return data, mime_of(data, match["mime"])


def image_from_url(url: str, fetch: ImageFetcher) -> tuple[bytes, str]:
    """An image given as a data URL or a hosted http(s) URL."""
    return _decode_data_url(url) if url.startswith("data:") else fetch(url)


def split_images(text: str) -> tuple[str, list[str]]:
    """``text`` without its Markdown images (and bare image data URLs), and their URLs."""
    urls: list[str] = []

    def take(match: re.Match[str]) -> str:
        urls.append(match.group("url") if "url" in match.groupdict() else match.group(0))
        return ""

    text = _MARKDOWN_IMAGE.sub(take, text)
    text = _BARE_DATA_URL.sub(take, text)
    return text.strip(), urls


def lift_text_images(
    response: types.GenerateContentResponse, fetch: ImageFetcher
) -> types.GenerateContentResponse:
    """``response`` with image links in its (non-thought) text parts turned into
    ``inline_data`` parts, the remaining text kept; unchanged when there are none."""
    changed = False
    candidates = []
    for candidate in response.candidates or []:
        content = candidate.content
        parts: list[types.Part] = []
        for part in (content.parts if content is not None else None) or []:
            if part.text is None or part.thought:
                parts.append(part)
                continue
            text, urls = split_images(part.text)
            if not urls:
                parts.append(part)
                continue
            changed = True
            if text:
                parts.append(part.model_copy(update={"text": text}))
            for url in urls:
                data, mime = image_from_url(url, fetch)
                parts.append(types.Part.from_bytes(data=data, mime_type=mime))
        if content is not None:
            candidate = candidate.model_copy(
                update={"content": content.model_copy(update={"parts": parts})}
            )
        candidates.append(candidate)
    return response.model_copy(update={"candidates": candidates}) if changed else response
