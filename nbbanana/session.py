"""The kernel-side API: :func:`connect` → :class:`Session` → :class:`~nbbanana.result.Result`.

A session joins a connection — an API key, an endpoint and its profile, a backend (the
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
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google import genai

from . import _state, models
from ._backend import Backend
from ._estimate import CostEstimate, estimate
from ._format import format_usd
from ._gemini import GeminiBackend
from ._options import RequestOptions
from ._pipeline import Ledger, Pipeline, as_list, estimated_sent_size
from ._spend import SpendSummary
from ._types import ImageInput, RequestKind
from .budget import RequestBudget
from .chat import Chat
from .errors import InvalidRequest
from .models import EndpointProfile, get_model
from .result import Result

if TYPE_CHECKING:
    from .discovery import Catalogue
    from .region import MaskSource

__all__ = ["GOOGLE_BASE_URL", "CostEstimate", "Session"]

#: Where Google's Gemini Developer API lives (the SDK's default base URL).
GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"


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
        price_per_image: float | None = None,
    ) -> None:
        self._secret = _Secret(api_key)
        limit_key = (base_url or GOOGLE_BASE_URL).rstrip("/")
        if isinstance(client, genai.Client):
            backend: Backend = GeminiBackend(client, secrets=(api_key,), base_url=limit_key)
        else:
            backend = client
        self.backend = backend
        info = get_model(model)
        self.model = info.id
        self.base_url = base_url
        self.offline = offline
        # ``price_per_image``: this session's price for its model (a gateway's, or one
        # the table does not know); other sessions and nbbanana.models stay as they are.
        prices: dict[str, models.Price] = {}
        if price_per_image is not None:
            prices[info.id] = models.price_per_image(info, price_per_image)
        #: The request pipeline every call of this session (and its chats) goes through.
        self.pipeline = Pipeline(
            backend,
            endpoint=endpoint,
            limit_key=limit_key,
            ledger=Ledger(max_cost_usd),
            offline=offline,
            secrets=(api_key,),
            prices=prices,
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
        cap = f" of {format_usd(self.max_cost_usd)}" if self.max_cost_usd is not None else ""
        state = ""
        learned = _state.learned_limit(self.limit_key)
        if learned is not None:
            state += f", learned limit {learned:,} bytes"
        price = _state.price_overrides().get(self.model)
        if self.model in self.pipeline.prices:
            usd = self.pipeline.model_info(self.model).price_per_image()
            state += f", price set to ${usd:g} per image for this session"
        elif price is not None:
            state += f", price set to {price}"
        return f"<nbbanana.Session {self.model} via {where}, spent {format_usd(self.spent)}{cap}{state}>"

    def _repr_html_(self) -> str:
        """The session in a notebook: model, where requests go, and the spend in dollars
        (spent, cap and what is left) rounded for reading."""
        where = "offline emulator" if self.offline else (self.base_url or GOOGLE_BASE_URL)
        spend = SpendSummary(self.spent, self.max_cost_usd, offline=self.offline)
        calls = f"{self.calls:,} {'call' if self.calls == 1 else 'calls'}"
        return (
            '<div class="nbbanana-session" style="font-family:sans-serif">'
            f"<b>nbbanana session</b> · {html.escape(self.model)} via {html.escape(where)}"
            f"<div>{html.escape(spend.text())} · {calls}</div></div>"
        )

    def models(self, *, refresh: bool = False) -> Catalogue:
        """The image models this endpoint serves (``models.list``, cached for a day),
        merged with nbbanana's table; see :func:`nbbanana.models.list_models`."""
        if not isinstance(self.backend, GeminiBackend):
            raise InvalidRequest(
                f"This session's backend is {self.backend.name!r}, which nbbanana cannot "
                "ask for its models; see the gateway's own model list."
            )
        return self.backend.models(refresh=refresh)

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
        output_images: int | None = None,
    ) -> CostEstimate:
        """Tokens and USD a generate/edit with ``prompt`` and ``images`` would use.

        Images may be fitted images, results, or any input :meth:`edit` takes (those are
        measured at the size fitting would give them, without encoding). The answer's
        image count is not known before it comes (a prompt may ask for several): the
        estimate is per image unless ``output_images`` says how many to count.
        """
        info = self.pipeline.model_info(model or self.model)
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
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """Generate an image from ``prompt`` alone (square unless ``aspect_ratio``).

        Gemini 3 models: ``image_size`` "512"/"1K"/"2K"/"4K" where offered,
        ``thinking_level`` and ``include_thoughts`` (thoughts go to ``Result.thoughts``
        and ``Result.thought_images``), ``grounding=True`` for Google Search grounding
        (``Result.sources``). A prompt may ask for several images ("three variations of …").
        Options a model does not take are refused before sending.
        """
        options = self._options(
            "generate", model, aspect_ratio, image_size, thinking_level, include_thoughts,
            grounding,
        )  # fmt: skip
        return self.pipeline.run(self.pipeline.prepare(options, prompt)).result

    def edit(
        self,
        images: ImageInput | Sequence[ImageInput],
        prompt: str,
        *,
        region: object = None,
        mask: MaskSource | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """Edit or combine reference images according to ``prompt``.

        ``images`` is one image or a list of them, each a path, bytes, a file object, a
        PIL image, a numpy array, an ipywidgets FileUpload item, a
        :class:`~nbbanana.fit.FittedImage` (sent as is), or a previous :class:`Result`
        (its first image; the new result records it as ``parent``). Without
        ``aspect_ratio`` the model keeps the input's ratio. The Gemini 3 options are
        those of :meth:`generate`.

        ``region`` (a box ``(left, top, right, bottom)`` in pixels) or ``mask`` edits only
        that part of one image at full resolution: see :func:`nbbanana.region.edit_region`
        (which takes the margin, feather and confidence options too); the Gemini 3 options
        go with the crop's request, and the result, a
        :class:`~nbbanana.region.RegionResult`, keeps the answer's thoughts and sources.
        """
        sources = as_list(images)
        if not sources:
            raise InvalidRequest("edit() needs at least one image; use generate() for none.")
        if region is not None or mask is not None:
            # Imported here: the regional machinery loads only for regional edits.
            from .region import edit_region

            return edit_region(
                self, _one_image(sources), prompt, region=region, mask=mask,
                aspect_ratio=aspect_ratio, image_size=image_size, model=model,
                thinking_level=thinking_level, include_thoughts=include_thoughts,
                grounding=grounding,
            )  # fmt: skip
        options = self._options(
            "edit", model, aspect_ratio, image_size, thinking_level, include_thoughts, grounding
        )
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
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Chat:
        """A multi-turn editing conversation (see :class:`~nbbanana.chat.Chat`); every
        turn uses these options (those of :meth:`generate`)."""
        return Chat(
            self, model=model, aspect_ratio=aspect_ratio, image_size=image_size,
            thinking_level=thinking_level, include_thoughts=include_thoughts,
            grounding=grounding,
        )  # fmt: skip

    async def generate_async(
        self,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """:meth:`generate` for ``asyncio`` (via ``client.aio``)."""
        options = self._options(
            "generate", model, aspect_ratio, image_size, thinking_level, include_thoughts,
            grounding,
        )  # fmt: skip
        call = await asyncio.to_thread(self.pipeline.prepare, options, prompt)
        return (await self.pipeline.arun(call)).result

    async def edit_async(
        self,
        images: ImageInput | Sequence[ImageInput],
        prompt: str,
        *,
        region: object = None,
        mask: MaskSource | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """:meth:`edit` for ``asyncio``: fitting runs in a worker thread, the request
        and any uploads through ``client.aio``, so many edits can run concurrently."""
        sources = as_list(images)
        if not sources:
            raise InvalidRequest(
                "edit_async() needs at least one image; use generate_async() for none."
            )
        if region is not None or mask is not None:
            # Imported here: the regional machinery loads only for regional edits.
            from .region import aedit_region

            return await aedit_region(
                self, _one_image(sources), prompt, region=region, mask=mask,
                aspect_ratio=aspect_ratio, image_size=image_size, model=model,
                thinking_level=thinking_level, include_thoughts=include_thoughts,
                grounding=grounding,
            )  # fmt: skip
        options = self._options(
            "edit", model, aspect_ratio, image_size, thinking_level, include_thoughts, grounding
        )
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
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> RequestOptions:
        return RequestOptions(
            kind=kind,
            model=model or self.model,
            aspect_ratio=aspect_ratio,
            image_size=image_size,
            thinking_level=thinking_level,
            include_thoughts=include_thoughts,
            grounding=grounding,
        )

    # The first names of the async methods, kept so that existing code keeps working.
    agenerate = generate_async
    aedit = edit_async
    adescribe = describe_async


def _one_image(sources: list[ImageInput]) -> ImageInput:
    """The one image a regional edit takes (it cuts the region from it)."""
    if len(sources) != 1:
        raise InvalidRequest(
            f"A regional edit (region= or mask=) changes one image; got {len(sources)}. "
            "Pass one image, or drop region=/mask= to combine several."
        )
    return sources[0]
