"""Exact request accounting: how many bytes a ``generateContent`` request will be.

Servers limit the *request body*, not the image file. The google-genai SDK sends JSON in
which every image is base64 text (``4·⌈n/3⌉`` characters for ``n`` raw bytes, a third
larger than the file), wrapped in part framing, next to the prompt and the generation
config. A "compress it to 18 MB" rule therefore fails a 20 MB limit.

:class:`RequestBudget` computes the body size exactly. It does not re-implement any wire
format: it asks the backend to count a *skeleton* of the request — the prompt, the
config, and every image with empty data — and adds the base64 length of each image. For
Gemini that count runs the SDK's own request conversion (:func:`nbbanana._gemini.body_bytes`);
another backend brings its own (:meth:`nbbanana._backend.Backend.body_bytes`). Only the
image bytes are left out of the skeleton, so the arithmetic stays cheap for a 100 MB
request and follows the installed SDK when its framing changes. The test suite checks the
figure against the bytes the SDK actually puts on the wire.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.genai import types

from .errors import DoesNotFitError
from .models import EndpointProfile, get_profile, learned_limit

__all__ = [
    "FILE_URI_RESERVE",
    "SAFETY_MARGIN",
    "RequestBudget",
    "RequestPlan",
    "base64_size",
]

#: Bytes kept free below every request limit.
#:
#: The request size itself is exact for the installed SDK; the margin is for what that
#: exact figure cannot see:
#:
#: * a newer google-genai adding fields to the body (a display name or a media resolution
#:   per part, a new config default: tens of bytes each);
#: * the request line and headers (about 0.5–1 KB with the API key and user agent), which
#:   Google's front end does not count but some proxies do;
#: * relays that re-wrap the body (an OpenAI-compatible proxy adds a ``data:`` URL prefix
#:   and its own JSON framing per image).
#:
#: 8 KiB is 0.04 % of a 20 MB request: nothing for image quality, ample for all of the above.
SAFETY_MARGIN: int = 8192

#: Characters reserved for a Files API URI when an image is sent by reference. Real URIs
#: (``https://generativelanguage.googleapis.com/v1beta/files/<id>``) are about 70.
FILE_URI_RESERVE: int = 128


def base64_size(n: int) -> int:
    """Characters of standard (padded) base64 for ``n`` raw bytes: ``4·⌈n/3⌉``."""
    if n < 0:
        raise ValueError(f"a byte count cannot be negative (got {n})")
    return 4 * ((n + 2) // 3)


@dataclass(frozen=True)
class RequestPlan:
    """Which images of a request go inline and which through the Files API."""

    #: One flag per image, in the order given: ``True`` inline, ``False`` upload first.
    inline: tuple[bool, ...]
    #: Bytes of the request body with this split (file references counted with
    #: :data:`FILE_URI_RESERVE` characters for their URI).
    request_bytes: int

    @property
    def all_inline(self) -> bool:
        return all(self.inline)


#: Counts the exact body bytes of a request whose inline images are empty: a backend's
#: :meth:`~nbbanana._backend.Backend.body_bytes` with the model bound.
BodyCounter = Callable[[Sequence[types.Content], types.GenerateContentConfig | None], int]


def _gemini_body_bytes(
    contents: Sequence[types.Content], config: types.GenerateContentConfig | None
) -> int:
    # Imported on first use: fitting an image needs no HTTP client stack.
    from ._gemini import body_bytes

    return body_bytes("", contents, config)


def _skeleton(prompt: str, parts: Sequence[tuple[str, str]]) -> list[types.Content]:
    """The user turn for ``prompt`` + ``parts`` with every image's data empty.

    ``parts`` are ``(kind, mime)`` with kind ``"inline"`` or ``"file"``.
    """
    skeleton: list[types.Part] = []
    if prompt:
        skeleton.append(types.Part.from_text(text=prompt))
    for kind, mime in parts:
        if kind == "inline":
            skeleton.append(types.Part.from_bytes(data=b"", mime_type=mime))
        else:
            skeleton.append(types.Part.from_uri(file_uri="f" * FILE_URI_RESERVE, mime_type=mime))
    if not skeleton:
        # The SDK refuses an empty request; the budget of "nothing" is the empty text part.
        skeleton.append(types.Part.from_text(text=""))
    return [types.Content(role="user", parts=skeleton)]


@dataclass(frozen=True)
class RequestBudget:
    """The byte limits one request must respect, and the arithmetic to meet them.

    ``limit`` counts the whole JSON body as the server receives it (``None``: no
    request limit); ``per_image_limit`` counts one image's base64 characters. Requests
    are planned to stay ``margin`` bytes below ``limit`` (see :data:`SAFETY_MARGIN`).
    """

    limit: int | None
    per_image_limit: int | None = None
    margin: int = SAFETY_MARGIN
    files_api: bool = True
    #: How the backend counts a request body (``None``: as the google-genai SDK sends
    #: it to Gemini). Not part of the budget's identity.
    counter: BodyCounter | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("limit", "per_image_limit"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"RequestBudget.{name} must be positive bytes (got {value}).")
        if self.margin < 0:
            raise ValueError(f"RequestBudget.margin cannot be negative (got {self.margin}).")

    @classmethod
    def for_endpoint(
        cls,
        profile: str | EndpointProfile = "gemini",
        *,
        base_url: str | None = None,
        counter: BodyCounter | None = None,
    ) -> RequestBudget:
        """The budget of an endpoint profile, tightened by any limit a server at
        ``base_url`` has named in a "too large" refusal (see :func:`models.learn_limit`).
        ``counter`` counts request bodies for a backend other than Gemini's."""
        info = get_profile(profile)
        limit = info.request_limit
        if base_url is not None:
            learned = learned_limit(base_url)
            if learned is not None:
                limit = learned if limit is None else min(limit, learned)
        return cls(
            limit=limit,
            per_image_limit=info.per_image_limit,
            files_api=info.files_api,
            counter=counter,
        )

    @property
    def usable(self) -> int | None:
        """Request bytes actually planned for: ``limit - margin``."""
        return None if self.limit is None else self.limit - self.margin

    def request_bytes(
        self,
        prompt: str,
        images: Sequence[tuple[int, str]],
        *,
        config: types.GenerateContentConfig | None = None,
        history_bytes: int = 0,
    ) -> int:
        """The exact size of the body ``client.models.generate_content`` sends for
        ``contents=[prompt, *image_parts]`` and ``config``.

        ``images`` are ``(raw byte size, mime type)``, sent inline with
        ``types.Part.from_bytes``; an empty prompt adds no text part. ``history_bytes`` is
        added as is: the bytes earlier chat turns add to the body.
        """
        framing = self._skeleton_bytes(prompt, [("inline", mime) for _, mime in images], config)
        return framing + sum(base64_size(n) for n, _ in images) + history_bytes

    def image_allowance(
        self,
        prompt: str = "",
        *,
        other_images: Sequence[tuple[int, str]] = (),
        mime: str = "image/jpeg",
        config: types.GenerateContentConfig | None = None,
        history_bytes: int = 0,
    ) -> int:
        """The largest raw size of one more ``mime`` image such that the request (with
        ``prompt`` and ``other_images``) stays within ``limit - margin`` and the image
        within ``per_image_limit``. ``0`` when not even an empty image fits;
        ``sys.maxsize`` when nothing limits it."""
        allowance = sys.maxsize
        if self.per_image_limit is not None:
            allowance = 3 * (self.per_image_limit // 4)
        usable = self.usable
        if usable is not None:
            empty = self.request_bytes(
                prompt,
                [*other_images, (0, mime)],
                config=config,
                history_bytes=history_bytes,
            )
            room = usable - empty
            # base64_size(n) <= room  ⇔  ⌈n/3⌉ <= room // 4  ⇔  n <= 3·(room // 4)
            allowance = min(allowance, 3 * (room // 4) if room >= 0 else 0)
        return max(allowance, 0)

    def fits(
        self,
        prompt: str,
        images: Sequence[tuple[int, str]],
        *,
        config: types.GenerateContentConfig | None = None,
    ) -> bool:
        """Whether all ``images`` can go inline in one request."""
        return self.plan_or_none(prompt, images, config=config, files_api=False) is not None

    def plan(
        self,
        prompt: str,
        images: Sequence[tuple[int, str]],
        *,
        config: types.GenerateContentConfig | None = None,
    ) -> RequestPlan:
        """Decide which images go inline: as many as fit, the largest moved to the Files
        API first. Raises :class:`~nbbanana.errors.DoesNotFitError` when the endpoint has
        no Files API and the images do not fit inline."""
        plan = self.plan_or_none(prompt, images, config=config, files_api=self.files_api)
        if plan is not None:
            return plan
        total = self.request_bytes(prompt, images, config=config)
        raise DoesNotFitError(
            f"{len(images)} image(s) make a {total:,}-byte request, over this endpoint's "
            f"budget of {self.usable:,} bytes ({self.limit:,} limit less a {self.margin:,}-byte "
            "safety margin), and the endpoint has no Files API. Fit the images first "
            "(nbbanana.fit_image with a smaller budget or max_side), or send fewer per request."
            if self.limit is not None
            else f"An image is over this endpoint's per-image limit of {self.per_image_limit:,} "
            "base64 characters, and the endpoint has no Files API. Fit the image first "
            "(nbbanana.fit_image).",
            source="request",
        )

    def plan_or_none(
        self,
        prompt: str,
        images: Sequence[tuple[int, str]],
        *,
        config: types.GenerateContentConfig | None = None,
        files_api: bool = True,
    ) -> RequestPlan | None:
        """Like :meth:`plan`, but ``None`` instead of an error when no split fits."""
        inline = [True] * len(images)
        if self.per_image_limit is not None:
            for i, (n, _) in enumerate(images):
                if base64_size(n) > self.per_image_limit:
                    inline[i] = False
        largest_first = sorted(range(len(images)), key=lambda i: images[i][0], reverse=True)
        while True:
            size = self._plan_bytes(prompt, images, inline, config)
            over_limit = self.usable is not None and size > self.usable
            if not over_limit and (files_api or all(inline)):
                return RequestPlan(inline=tuple(inline), request_bytes=size)
            if not files_api:
                return None
            movable = [i for i in largest_first if inline[i]]
            if not movable:
                return None  # even with every image uploaded, the prompt/config is too large
            inline[movable[0]] = False

    def _plan_bytes(
        self,
        prompt: str,
        images: Sequence[tuple[int, str]],
        inline: Sequence[bool],
        config: types.GenerateContentConfig | None,
    ) -> int:
        kinds = [
            ("inline" if keep else "file", mime)
            for keep, (_, mime) in zip(inline, images, strict=True)
        ]
        data = sum(base64_size(n) for keep, (n, _) in zip(inline, images, strict=True) if keep)
        return self._skeleton_bytes(prompt, kinds, config) + data

    def _skeleton_bytes(
        self,
        prompt: str,
        parts: Sequence[tuple[str, str]],
        config: types.GenerateContentConfig | None,
    ) -> int:
        if self.counter is None and config is None:
            return _gemini_skeleton_bytes(prompt, tuple(parts))
        count = self.counter if self.counter is not None else _gemini_body_bytes
        return count(_skeleton(prompt, parts), config)


@functools.lru_cache(maxsize=256)
def _gemini_skeleton_bytes(prompt: str, parts: tuple[tuple[str, str], ...]) -> int:
    """The Gemini body of a config-less request skeleton, counted once: the SDK's
    conversion takes about 1.5 ms, and one fit asks for the same few (an allowance per
    format, then the request) every time."""
    return _gemini_body_bytes(_skeleton(prompt, parts), None)
