"""The kernel-side API: :func:`connect` → :class:`Session` → :class:`~nbbanana.result.Result`.

A session wires a connection — an API key, an endpoint and its profile, a backend (the
official ``google-genai`` client for Gemini) — to the request pipeline
(:mod:`nbbanana._pipeline`), which adds what a notebook user would otherwise write by
hand around every call:

* **fitting** — every reference image goes through :func:`nbbanana.fit_image` and is
  sent as ``types.Part.from_bytes`` with the fitted bytes (never a PIL image, which the
  SDK would re-encode as PNG); :meth:`RequestBudget.plan` decides per image whether it
  goes inline or through the Files API;
* **the cost guard** — each call is estimated before sending (:meth:`Session.estimate`);
  with ``max_cost_usd`` a call that could pass the cap is refused before anything is
  sent, and :attr:`Session.spent` adds up what responses report;
* **errors** — the SDK's errors become the few in :mod:`nbbanana.errors`, each saying
  what to do, with the SDK's error kept as ``__cause__``;
* **retries** — the SDK's ``HttpRetryOptions`` (on by default here), made to honour the
  server's ``RetryInfo`` delay; a "too large" refusal (a proxy stricter than its profile)
  teaches the endpoint's limit, and the request is refitted and sent once more;
* **offline** — without an API key, the session talks to the in-process emulator (the
  same SDK, real HTTP on loopback) and says so once per process.

The API key is held only by the SDK client and a private field that no repr shows; every
message that could contain text from outside passes through :func:`~nbbanana.errors.redact`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from google import genai
from google.genai import types

from . import _state, models
from ._backend import Backend
from ._estimate import CostEstimate, estimate
from ._gemini import GeminiBackend, honour_retry_info
from ._options import RequestOptions
from ._pipeline import Ledger, Pipeline, as_list, estimated_sent_size
from ._types import ImageInput, RequestKind
from .budget import RequestBudget
from .errors import AuthError, InvalidRequest
from .models import EndpointProfile, get_model, get_profile
from .result import Result

if TYPE_CHECKING:
    from .chat import Chat

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT_S",
    "GOOGLE_BASE_URL",
    "CostEstimate",
    "Session",
    "connect",
]

#: Where Google's Gemini Developer API lives (the SDK's default base URL).
GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"

#: Retries for 408/429/5xx, time-outs and connections that could not be made: 4
#: attempts with about 1 s, 2 s, 4 s (± jitter) between them, or what the server's
#: RetryInfo asks for (up to 30 s; a longer ask ends the retries with
#: RateLimited.retry_after set). A connection dropped mid-answer is not retried (the SDK
#: does not, and the call may already have run and been billed): it is
#: ServiceUnavailable at once.
DEFAULT_RETRY = types.HttpRetryOptions(
    attempts=4,
    initial_delay=1.0,
    max_delay=30.0,
    exp_base=2.0,
    jitter=1.0,
    http_status_codes=[408, 429, 500, 502, 503, 504],
)

#: Seconds one HTTP attempt may take. A 4K image from the Pro model can take over a
#: minute; five minutes leaves room without hanging a notebook forever.
DEFAULT_TIMEOUT_S = 300.0

_OFFLINE_NOTE = (
    "nbbanana: OFFLINE session - requests go to the built-in Gemini emulator, not to Google; "
    "images are synthetic and marked 'offline emulator'. Set GEMINI_API_KEY (or pass "
    "api_key=...) to use Gemini."
)


class _Secret:
    """Holds the API key; shows ``***`` in every repr, str and format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an API key is not picklable")


# --------------------------------------------------------------------------- connect


def connect(
    api_key: str | None = None,
    *,
    model: str = models.DEFAULT_MODEL,
    base_url: str | None = None,
    offline: bool | None = None,
    max_cost_usd: float | None = None,
    endpoint: str | EndpointProfile | None = None,
    retry: types.HttpRetryOptions | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> Session:
    """Open a session with Gemini, a Gemini-compatible proxy, or the offline emulator.

    * ``api_key`` — else ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``. With none (or
      ``offline=True``) the session uses the in-process emulator and says so once.
    * ``base_url`` — a proxy or a running ``nbbanana emulator``. Without a key, the
      emulator's offline key is sent (a real proxy then answers with an auth error).
    * ``endpoint`` — the endpoint profile whose byte limits requests are fitted to
      (:data:`nbbanana.models.PROFILES`). Default: ``"gemini"`` for Google and the offline
      emulator; for any other ``base_url``, the conservative ``"proxy-20mb"`` (20 MB per
      request, no Files API) — a server that refuses less teaches its real limit.
    * ``max_cost_usd`` — refuse any call that could take :attr:`Session.spent` past it.
    * ``retry`` — ``types.HttpRetryOptions``; default :data:`DEFAULT_RETRY`.
      ``types.HttpRetryOptions(attempts=1)`` turns retries off.
    * ``timeout`` — seconds per HTTP attempt (``None``: the SDK's default).
    """
    key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if offline is None:
        offline = not key and base_url is None
    emulator_profile: EndpointProfile | None = None
    if offline:
        if base_url is not None:
            raise InvalidRequest(
                "offline=True uses the built-in emulator, so base_url cannot be set too. "
                "To use an emulator you started yourself, pass only base_url=."
            )
        # Imported only offline: the emulator's server stack is not needed otherwise.
        from .emulator import OFFLINE_API_KEY, shared_emulator

        emulator = shared_emulator()
        base_url = emulator.base_url
        key = OFFLINE_API_KEY
        # Fit to what the emulator enforces (its profile, with its own request limit).
        emulator_profile = dataclasses.replace(
            get_profile(emulator.profile), request_limit=emulator.request_limit
        )
    elif not key:
        if base_url is None:
            raise AuthError(
                "No API key: pass api_key=..., set GEMINI_API_KEY, or call "
                "nbbanana.connect(offline=True) to use the offline emulator."
            )
        # Imported only without a key: the emulator's server stack is not needed otherwise.
        from .emulator import OFFLINE_API_KEY

        key = OFFLINE_API_KEY
    assert key is not None

    if endpoint is not None:
        profile = get_profile(endpoint)
    elif emulator_profile is not None:
        profile = get_profile(emulator_profile)
    elif base_url is None or (urlsplit(base_url).hostname or "").endswith("googleapis.com"):
        profile = get_profile("gemini")
    else:
        profile = get_profile("proxy-20mb")

    if max_cost_usd is not None and max_cost_usd < 0:
        raise InvalidRequest(f"max_cost_usd must be 0 or more (got {max_cost_usd}).")
    retry_options = retry if retry is not None else DEFAULT_RETRY.model_copy(deep=True)
    http_options = types.HttpOptions(
        base_url=base_url,
        timeout=None if timeout is None else max(1, int(timeout * 1000)),
        retry_options=retry_options,
    )
    client = genai.Client(api_key=key, http_options=http_options)
    honour_retry_info(client, retry_options)
    session = Session(
        client,
        model=model,
        base_url=base_url,
        offline=bool(offline),
        endpoint=profile,
        max_cost_usd=max_cost_usd,
        api_key=key,
    )
    if offline:
        _state.announce_offline(_OFFLINE_NOTE)
    return session


# --------------------------------------------------------------------------- session


class Session:
    """A connection to one endpoint with a default model, a cost guard and a spend total.

    Create one with :func:`connect`. Safe to share between threads and between
    concurrent ``await``-ed calls: the spend accounting is under a lock.

    ``client`` is a ``genai.Client`` (the Gemini backend is built around it) or any
    :class:`~nbbanana._backend.Backend`.
    """

    def __init__(
        self,
        client: genai.Client | Backend,
        *,
        model: str,
        base_url: str | None,
        offline: bool,
        endpoint: EndpointProfile,
        max_cost_usd: float | None,
        api_key: str,
    ) -> None:
        self._secret = _Secret(api_key)
        if isinstance(client, genai.Client):
            backend: Backend = GeminiBackend(client, secrets=(api_key,))
        else:
            backend = client
        self.backend = backend
        self.model = get_model(model).id
        self.base_url = base_url
        self.offline = offline
        #: The request pipeline every call of this session (and its chats) goes through.
        self.pipeline = Pipeline(
            backend,
            endpoint=endpoint,
            limit_key=(base_url or GOOGLE_BASE_URL).rstrip("/"),
            ledger=Ledger(max_cost_usd),
            offline=offline,
            secrets=(api_key,),
        )

    @property
    def client(self) -> genai.Client:
        """The ``google-genai`` client (Gemini backend only): for what nbbanana does not
        wrap, such as the Batch API."""
        if not isinstance(self.backend, GeminiBackend):
            raise InvalidRequest(
                f"This session's backend is {self.backend.name!r}, which has no "
                "google-genai client."
            )
        return self.backend.client

    @property
    def endpoint(self) -> EndpointProfile:
        """The endpoint profile requests are fitted to."""
        return self.pipeline.endpoint

    @endpoint.setter
    def endpoint(self, profile: EndpointProfile) -> None:
        self.pipeline.endpoint = profile

    @property
    def max_cost_usd(self) -> float | None:
        """The cap on :attr:`spent` (``None``: no cap)."""
        return self.pipeline.ledger.cap_usd

    @max_cost_usd.setter
    def max_cost_usd(self, cap: float | None) -> None:
        self.pipeline.ledger.cap_usd = cap

    # ------------------------------------------------------------ accounting

    @property
    def spent(self) -> float:
        """USD used so far, from the token counts the responses reported."""
        return self.pipeline.ledger.spent

    @property
    def calls(self) -> int:
        """Requests answered so far (including blocked ones)."""
        return self.pipeline.ledger.calls

    @property
    def limit_key(self) -> str:
        """The key under which limits learned from this endpoint are kept."""
        return self.pipeline.limit_key

    def budget(self) -> RequestBudget:
        """The request budget in force: the endpoint profile, tightened by any limit this
        endpoint has named in a "too large" refusal."""
        return self.pipeline.budget(self.model)

    def __repr__(self) -> str:
        where = "offline emulator" if self.offline else (self.base_url or GOOGLE_BASE_URL)
        cap = f" of ${self.max_cost_usd:.2f}" if self.max_cost_usd is not None else ""
        state = ""
        learned = _state.learned_limit(self.limit_key)
        if learned is not None:
            state += f", learned limit {learned:,} bytes"
        price = _state.price_overrides().get(self.model)
        if price is not None:
            state += f", price set to {price}"
        return f"<nbbanana.Session {self.model} via {where}, spent ${self.spent:.4f}{cap}{state}>"

    def close(self) -> None:
        """Close the HTTP connections (the session cannot be used afterwards)."""
        self.backend.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ estimates

    def estimate(
        self,
        prompt: str,
        images: ImageInput | Sequence[ImageInput] = (),
        *,
        model: str | None = None,
        image_size: str | None = None,
        output_images: int = 1,
    ) -> CostEstimate:
        """Tokens and USD a generate/edit with ``prompt`` and ``images`` would use.

        Images may be fitted images, results, or any input :meth:`edit` takes (those are
        measured at the size fitting would give them, without encoding).
        """
        info = get_model(model or self.model)
        tokens = []
        for item in as_list(images) if images is not None else []:
            w, h = estimated_sent_size(item, info)
            tokens.append(info.input_image_tokens(w, h))
        return estimate(info, prompt, tokens, image_size=image_size, output_images=output_images)

    # ------------------------------------------------------------ public calls

    def generate(
        self,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
    ) -> Result:
        """Generate an image from ``prompt`` alone (square unless ``aspect_ratio``)."""
        options = self._options("generate", model, aspect_ratio, image_size)
        return self.pipeline.run(self.pipeline.prepare(options, prompt)).result

    def edit(
        self,
        images: ImageInput | Sequence[ImageInput],
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
    ) -> Result:
        """Edit or combine reference images according to ``prompt``.

        ``images`` is one image or a list of them, each a path, bytes, a file object, a
        PIL image, a numpy array, an ipywidgets FileUpload item, a
        :class:`~nbbanana.fit.FittedImage` (sent as is), or a previous :class:`Result`
        (its first image; the new result records it as ``parent``). Without
        ``aspect_ratio`` the model keeps the input's ratio.
        """
        sources = as_list(images)
        if not sources:
            raise InvalidRequest("edit() needs at least one image; use generate() for none.")
        options = self._options("edit", model, aspect_ratio, image_size)
        return self.pipeline.run(self.pipeline.prepare(options, prompt, sources)).result

    def describe(
        self,
        image: ImageInput,
        question: str = "Describe this image.",
        *,
        model: str | None = None,
    ) -> Result:
        """Ask a question about an image; the answer is ``Result.text`` (no image)."""
        options = self._options("describe", model)
        return self.pipeline.run(self.pipeline.prepare(options, question, [image])).result

    def chat(
        self,
        *,
        model: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
    ) -> Chat:
        """A multi-turn editing conversation (see :class:`~nbbanana.chat.Chat`)."""
        # chat.py needs Session only for types; importing it here keeps one direction.
        from .chat import Chat

        return Chat(self, model=model, aspect_ratio=aspect_ratio, image_size=image_size)

    async def generate_async(
        self,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
    ) -> Result:
        """:meth:`generate` for ``asyncio`` (via ``client.aio``)."""
        options = self._options("generate", model, aspect_ratio, image_size)
        call = await asyncio.to_thread(self.pipeline.prepare, options, prompt)
        return (await self.pipeline.arun(call)).result

    async def edit_async(
        self,
        images: ImageInput | Sequence[ImageInput],
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
    ) -> Result:
        """:meth:`edit` for ``asyncio``: fitting runs in a worker thread, the request
        and any uploads through ``client.aio``, so many edits can run concurrently."""
        sources = as_list(images)
        if not sources:
            raise InvalidRequest(
                "edit_async() needs at least one image; use generate_async() for none."
            )
        options = self._options("edit", model, aspect_ratio, image_size)
        call = await asyncio.to_thread(self.pipeline.prepare, options, prompt, sources)
        return (await self.pipeline.arun(call)).result

    async def describe_async(
        self,
        image: ImageInput,
        question: str = "Describe this image.",
        *,
        model: str | None = None,
    ) -> Result:
        """:meth:`describe` for ``asyncio``."""
        options = self._options("describe", model)
        call = await asyncio.to_thread(self.pipeline.prepare, options, question, [image])
        return (await self.pipeline.arun(call)).result

    def _options(
        self,
        kind: RequestKind,
        model: str | None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
    ) -> RequestOptions:
        return RequestOptions(
            kind=kind,
            model=model or self.model,
            aspect_ratio=aspect_ratio,
            image_size=image_size,
        )

    # The first names of the async methods, kept so that existing code keeps working.
    agenerate = generate_async
    aedit = edit_async
    adescribe = describe_async
