"""The request pipeline: prepare → send → settle, the same for every call and backend.

* **prepare** (:meth:`Pipeline.prepare`, nothing sent, nothing booked) — check the
  options against the model's facts, load each reference image once, fit it to its share
  of the request budget (the endpoint profile, tightened by learned limits, counted with
  the backend's exact byte count), plan which images go inline and which through the
  Files API, and estimate the cost;
* **send** — book the estimate against the cap, upload what the plan says, and hand a
  :class:`~nbbanana._backend.BackendRequest` to the backend;
* **settle** — turn the answer into a :class:`~nbbanana.result.Result` (or ``Blocked`` /
  ``NoImage``), record what it cost; on a "too large" refusal, learn the endpoint's limit,
  refit and send once more; map every other failure to :mod:`nbbanana.errors`.

Send-and-settle is written once, as a generator (:meth:`Pipeline._attempts`) that yields
the I/O it needs — an upload, a request, a refit — and receives the outcome. The sync
driver (:meth:`Pipeline.run`) performs each step by calling the backend; the async one
(:meth:`Pipeline.arun`) awaits it. Nothing else differs between the two paths.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
from google.genai import types
from PIL import Image

from . import models
from ._backend import Backend, BackendRequest, UploadRequest
from ._estimate import CostEstimate, estimate
from ._format import format_usd
from ._options import RequestOptions, check_reference_count
from ._types import ImageInput
from .budget import RequestBudget
from .errors import (
    APIError,
    Blocked,
    CostLimitExceeded,
    InvalidRequest,
    NbbananaError,
    NoImage,
    RequestTooLarge,
    redact,
)
from .fit import FittedImage, fit_image
from .images import LoadedImage, load_image
from .models import EndpointProfile, ModelInfo, get_model
from .result import INPUT_THUMBNAIL_SIDE, InputRef, Result, thumbnail_from_bytes

__all__ = [
    "BLOCKING_FINISH_REASONS",
    "Call",
    "Ledger",
    "Pipeline",
    "Sent",
    "as_list",
    "error_from_response",
    "estimated_sent_size",
    "fit_inline",
]

#: Finish reasons that mean a safety or policy filter stopped the answer.
BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)


#: Where a price set by ``connect(price_per_image=...)`` comes from.
_SESSION = models.Source("set for this session (price_per_image)", "this session", "user")

# --------------------------------------------------------------------------- values


@dataclass
class _Input:
    """One reference image: what the user gave, loaded once (streams can be read once),
    and the bytes to send once fitted."""

    loaded: LoadedImage | None
    #: ``None`` until fitted (a FittedImage given by the user is ready as is).
    fitted: FittedImage | None
    parent: Result | None = None

    @property
    def sent(self) -> FittedImage:
        """The fitted image that goes into the request."""
        if self.fitted is None:  # pragma: no cover - prepare always fits loaded inputs
            raise RuntimeError("reference image used before it was fitted")
        return self.fitted


@dataclass
class Call:
    """Everything one request needs, prepared before anything is sent."""

    options: RequestOptions
    model: ModelInfo
    prompt: str
    config: types.GenerateContentConfig
    inputs: list[_Input]
    inline: tuple[bool, ...]
    estimate: CostEstimate
    #: Earlier chat turns, sent before this request's user turn.
    history: tuple[types.Content, ...] = ()
    #: Bytes earlier chat turns add to the body.
    history_bytes: int = 0
    history_tokens: int = 0

    @property
    def parent(self) -> Result | None:
        return next((item.parent for item in self.inputs if item.parent is not None), None)

    def input_refs(self) -> list[InputRef]:
        refs = []
        for item, inline in zip(self.inputs, self.inline, strict=True):
            fitted = item.sent
            refs.append(
                InputRef(
                    name=fitted.name,
                    source_sha256=fitted.source_sha256,
                    size=(fitted.width, fitted.height),
                    mime=fitted.mime,
                    sent_bytes=len(fitted.data),
                    sent_sha256=fitted.sent_sha256,
                    transport="inline" if inline else "files-api",
                    thumbnail=thumbnail_from_bytes(fitted.data, INPUT_THUMBNAIL_SIDE),
                )
            )
        return refs


@dataclass
class Sent:
    """A settled request: the result, and the turn as sent and answered (for a chat's
    history: the user content and the model's content, thought signatures included)."""

    result: Result
    user: types.Content
    answer: types.Content | None


def one_content_per_turn(contents: Sequence[types.Content]) -> list[types.Content]:
    """``contents`` with neighbours of the same role joined into one content.

    A chat's history can hold two user contents in a row (a regional turn adds the
    composite as a user picture with no model answer, and the next prompt follows it).
    Turns that alternate user/model are what every Gemini model accepts (older ones
    refused anything else: "Please ensure that multiturn requests alternate between user
    and model"), and joining the parts of neighbours says exactly the same.
    """
    joined: list[types.Content] = []
    for content in contents:
        if joined and joined[-1].role == content.role:
            previous = joined[-1]
            joined[-1] = types.Content(
                role=previous.role, parts=[*(previous.parts or ()), *(content.parts or ())]
            )
        else:
            joined.append(content)
    return joined


def as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or several: lists and tuples hold several (an ipywidgets FileUpload
    value is a tuple of dicts); anything else — bytes, a path, an array — is one."""
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # type: ignore[list-item]  # a Sequence that is not a list is one image


# --------------------------------------------------------------------------- ledger


class Ledger:
    """What a session has spent and booked, and its cap. Thread-safe: estimates are
    booked before sending, so concurrent calls cannot pass the cap together."""

    def __init__(self, cap_usd: float | None) -> None:
        self.cap_usd = cap_usd
        self._lock = threading.Lock()
        self._spent = 0.0
        self._reserved = 0.0
        self._calls = 0

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    def reserve(self, estimate: CostEstimate) -> float:
        """Book ``estimate`` against the cap before sending (or refuse).

        A model whose price is unknown books nothing; with a cap it is refused, since no
        cap can be kept on a cost nobody knows.
        """
        with self._lock:
            if estimate.usd is None:
                if self.cap_usd is not None:
                    raise CostLimitExceeded(
                        f"The price of {estimate.model} is unknown, so max_cost_usd cannot "
                        "be kept and nothing was sent. Set it with connect(..., "
                        "price_per_image=...) or nbbanana.models.set_price"
                        f'("{estimate.model}", per_image=...).',
                        estimate_usd=0.0,
                        spent_usd=self._spent,
                        cap_usd=self.cap_usd,
                    )
                return 0.0
            if self.cap_usd is not None:
                committed = self._spent + self._reserved
                if committed + estimate.usd > self.cap_usd + 1e-12:
                    raise CostLimitExceeded(
                        f"This call would cost about {format_usd(estimate.usd)}; the session has "
                        f"used {format_usd(self._spent)}"
                        + (f" (+{format_usd(self._reserved)} in flight)" if self._reserved else "")
                        + f" of its {format_usd(self.cap_usd)} cap (max_cost_usd), so nothing "
                        "was sent.",
                        estimate_usd=estimate.usd,
                        spent_usd=self._spent,
                        cap_usd=self.cap_usd,
                    )
            self._reserved += estimate.usd
            return estimate.usd

    def settle(self, reserved: float, actual_usd: float, *, answered: bool) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            self._spent += actual_usd
            if answered:
                self._calls += 1


# --------------------------------------------------------------------------- pipeline

#: One step the attempt generator asks its driver to perform.
_Step: TypeAlias = (
    tuple[Literal["upload"], UploadRequest]
    | tuple[Literal["send"], BackendRequest]
    | tuple[Literal["refit"], Call]
)


class _Driver:
    """Feeds the attempt generator the outcome of each step it asks for.

    :attr:`step` is the next step to perform (``None`` once the attempts are over, then
    :attr:`sent` holds the outcome); :meth:`reply` or :meth:`fail` hands back how it went.
    An error the attempts do not handle propagates from :meth:`reply`/:meth:`fail`.
    """

    def __init__(self, attempts: Generator[_Step, Any, Sent]) -> None:
        self._attempts = attempts
        self.step: _Step | None = None
        self._sent: Sent | None = None
        self._advance(lambda: next(attempts))

    @property
    def sent(self) -> Sent:
        assert self._sent is not None, "the attempts are not over"
        return self._sent

    def reply(self, value: Any) -> None:
        self._advance(lambda: self._attempts.send(value))

    def fail(self, error: Exception) -> None:
        self._advance(lambda: self._attempts.throw(error))

    def _advance(self, resume: Callable[[], _Step]) -> None:
        try:
            self.step = resume()
        except StopIteration as done:
            self.step, self._sent = None, done.value


@dataclass
class Pipeline:
    """Prepares, sends and settles requests for one session (see the module docstring)."""

    backend: Backend
    endpoint: EndpointProfile
    #: The key under which limits learned from this endpoint are kept (its base URL).
    limit_key: str
    ledger: Ledger
    offline: bool = False
    #: Redacted from every message built from the service's text.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    #: This session's own prices (``connect(price_per_image=...)``), by model id; they
    #: win over the table's, for this session only.
    prices: dict[str, models.Price] = field(default_factory=dict)

    def model_info(self, model: str | ModelInfo | None, *, warn: bool = True) -> ModelInfo:
        """The facts of ``model`` (id or alias) as this session sees them: the table's,
        with this session's price where it set one. ``warn`` as :func:`get_model`'s."""
        info = get_model(model, warn=warn)
        price = self.prices.get(info.id)
        if price is None:
            return info
        return dataclasses.replace(info, price=price, sources={**info.sources, "price": _SESSION})

    # ------------------------------------------------------------ budget

    def budget(self, model: str | None = None) -> RequestBudget:
        """The request budget in force: the endpoint profile, tightened by any limit
        this endpoint has named in a "too large" refusal, counted as the backend sends."""
        counter = functools.partial(self.backend.body_bytes, model or "")
        budget = RequestBudget.for_endpoint(self.endpoint, base_url=self.limit_key, counter=counter)
        if budget.files_api and not self.backend.files_api:
            budget = dataclasses.replace(budget, files_api=False)
        return budget

    # ------------------------------------------------------------ prepare

    def prepare(
        self,
        options: RequestOptions,
        prompt: str,
        sources: Sequence[ImageInput] = (),
        *,
        history: Sequence[types.Content] = (),
        history_bytes: int = 0,
        history_tokens: int = 0,
    ) -> Call:
        """Validate, load, fit and plan a request; nothing is sent and nothing is booked."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest("The prompt is empty: say what to generate, change or ask.")
        info = self.model_info(options.model)
        options = options.checked(info)
        models.note_if_reported_retired(info)  # once per process, on stderr; after the checks
        if options.kind != "generate":
            # stacklevel 4: the warning points at the user's call (through Session/Chat).
            check_reference_count(info, len(sources), stacklevel=4)
        inputs = [_load_input(src, info) for src in sources]
        return self._plan(
            options,
            info,
            prompt,
            inputs,
            history=tuple(history),
            history_bytes=history_bytes,
            history_tokens=history_tokens,
            refit=False,
        )

    def refit(self, call: Call) -> Call:
        """``call`` again, every image fitted anew to the budget now in force."""
        return self._plan(
            call.options,
            call.model,
            call.prompt,
            call.inputs,
            history=call.history,
            history_bytes=call.history_bytes,
            history_tokens=call.history_tokens,
            refit=True,
        )

    def _plan(
        self,
        options: RequestOptions,
        info: ModelInfo,
        prompt: str,
        inputs: list[_Input],
        *,
        history: tuple[types.Content, ...],
        history_bytes: int,
        history_tokens: int,
        refit: bool,
    ) -> Call:
        config = options.config()
        budget = self.budget(info.id)
        if budget.limit is not None and history_bytes:
            room = budget.limit - history_bytes
            if room <= budget.margin:
                raise RequestTooLarge(
                    f"The chat history alone is {history_bytes:,} bytes, at this endpoint's "
                    f"limit of {budget.limit:,}. Branch from an earlier turn "
                    "(chat.branch(n)) or start a new chat.",
                    limit_bytes=budget.limit,
                )
            budget = dataclasses.replace(budget, limit=room)

        if inputs and (refit or any(item.loaded is not None for item in inputs)):
            inputs = _fit_inputs(inputs, info, budget, prompt, config, refit=refit)
        sizes = [(len(item.sent.data), item.sent.mime) for item in inputs]
        plan = budget.plan(prompt, sizes, config=config)
        if not plan.all_inline and not budget.files_api:
            raise RequestTooLarge(
                "The images do not fit this endpoint's request limit and it has no Files API.",
                limit_bytes=budget.limit,
            )
        cost = estimate(
            info,
            prompt,
            [item.sent.tokens for item in inputs],
            image_size=options.image_size,
            # How many images the answer holds is not known: booked as one (per image).
            output_images=None if options.want_image else 0,
            extra_input_tokens=history_tokens,
        )
        return Call(
            options=options,
            model=info,
            prompt=prompt,
            config=config,
            inputs=inputs,
            inline=plan.inline,
            estimate=cost,
            history=history,
            history_bytes=history_bytes,
            history_tokens=history_tokens,
        )

    # ------------------------------------------------------------ send and settle

    def run(self, call: Call) -> Sent:
        """Send ``call`` and settle it, waiting on the backend's sync calls."""
        attempts = _Driver(self._attempts(call))
        while (step := attempts.step) is not None:
            try:
                attempts.reply(self._perform(step))
            except Exception as exc:
                attempts.fail(exc)
        return attempts.sent

    async def arun(self, call: Call) -> Sent:
        """:meth:`run` for ``asyncio``: the backend's async calls, a refit in a thread."""
        attempts = _Driver(self._attempts(call))
        while (step := attempts.step) is not None:
            try:
                attempts.reply(await self._aperform(step))
            except Exception as exc:
                attempts.fail(exc)
        return attempts.sent

    def _perform(self, step: _Step) -> Any:
        if step[0] == "upload":
            return self.backend.upload(step[1])
        if step[0] == "send":
            return self.backend.generate(step[1])
        return self.refit(step[1])

    async def _aperform(self, step: _Step) -> Any:
        if step[0] == "upload":
            return await self.backend.aupload(step[1])
        if step[0] == "send":
            return await self.backend.agenerate(step[1])
        return await asyncio.to_thread(self.refit, step[1])

    def _attempts(self, call: Call) -> Generator[_Step, Any, Sent]:
        """Book, send, map errors, refit-and-retry once on "too large", settle."""
        for attempt in (1, 2):
            reserved = self.ledger.reserve(call.estimate)
            start = time.perf_counter()
            try:
                parts = [types.Part.from_text(text=call.prompt)]
                for item, inline in zip(call.inputs, call.inline, strict=True):
                    fitted = item.sent
                    if inline:
                        parts.append(types.Part.from_bytes(data=fitted.data, mime_type=fitted.mime))
                    else:
                        upload = UploadRequest(data=fitted.data, mime=fitted.mime, name=fitted.name)
                        parts.append((yield ("upload", upload)))
                user = types.Content(role="user", parts=parts)
                request = BackendRequest(
                    model=call.model.id,
                    contents=one_content_per_turn([*call.history, user]),
                    config=call.config,
                )
                response: types.GenerateContentResponse = yield ("send", request)
            except Exception as exc:
                self.ledger.settle(reserved, 0.0, answered=False)
                mapped = self.backend.map_error(exc)
                if mapped is None:
                    raise
                if isinstance(mapped, RequestTooLarge) and attempt == 1 and call.inputs:
                    self._learn_limit(mapped, call)
                    try:
                        call = yield ("refit", call)
                    except NbbananaError:
                        raise mapped from exc
                    continue
                raise mapped from exc
            result = self._settle(call, response, time.perf_counter() - start, reserved)
            candidates = response.candidates or []
            answer = candidates[0].content if candidates else None
            return Sent(result=result, user=user, answer=answer)
        raise AssertionError("unreachable")  # pragma: no cover

    def _learn_limit(self, err: RequestTooLarge, call: Call) -> None:
        """Remember this endpoint's limit after a "too large" refusal.

        The limit the server names is learned when it explains the refusal (it is below
        what was sent). A refusal that names no limit, or one at or above what was sent
        (a relay that says "20MB" but counts differently), teaches half of what was sent.
        """
        inline = [
            (len(item.sent.data), item.sent.mime)
            for item, keep in zip(call.inputs, call.inline, strict=True)
            if keep
        ]
        sent = self.budget(call.model.id).request_bytes(
            call.prompt, inline, config=call.config, history_bytes=call.history_bytes
        )
        named = err.limit_bytes
        limit = named if named is not None and named < sent else max(1, sent // 2)
        err.limit_bytes = models.learn_limit(self.limit_key, limit)

    def _settle(
        self,
        call: Call,
        response: types.GenerateContentResponse,
        latency_s: float,
        reserved: float,
    ) -> Result:
        """Turn a response into a Result (or Blocked/NoImage), recording what it cost."""
        try:
            result = Result.from_response(
                response,
                model=call.model,
                prompt=call.prompt,
                params=call.options.params(call.config),
                inputs=call.input_refs(),
                parent=call.parent,
                latency_s=latency_s,
                offline=self.offline,
            )
        except Exception:
            self.ledger.settle(reserved, 0.0, answered=True)
            raise
        # An unknown price (None) was booked as nothing and is spent as nothing.
        self.ledger.settle(reserved, result.cost_usd or 0.0, answered=True)
        problem = error_from_response(
            response, want_image=call.options.want_image, secrets=self.secrets
        )
        if problem is not None:
            raise problem
        return result


# --------------------------------------------------------------------------- answers


def error_from_response(
    response: types.GenerateContentResponse, *, want_image: bool, secrets: Sequence[str] = ()
) -> APIError | None:
    """:class:`Blocked` or :class:`NoImage` for a 200 answer that holds no usable image,
    else ``None``. ``want_image=False`` (describe) only checks for blocking."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum_text(feedback.block_reason)
        said = redact(feedback.block_reason_message or "", *secrets)
        extra = f" {said}" if said else ""
        return Blocked(f"The prompt was blocked ({reason}).{extra}", reason=reason)
    candidates = response.candidates or []
    if not candidates:
        return NoImage("The model returned no candidates.", text="", finish_reason=None)
    candidate = candidates[0]
    finish = _enum_text(candidate.finish_reason) if candidate.finish_reason is not None else None
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    if finish in BLOCKING_FINISH_REASONS:
        return Blocked(f"The answer was blocked (finishReason {finish}).", reason=finish)
    if not want_image:
        return None
    has_image = any(
        p.inline_data is not None and p.inline_data.data and not p.thought for p in parts
    )
    if has_image:
        return None
    text = redact("".join(p.text for p in parts if p.text and not p.thought), *secrets)
    said = f' It said: "{_shorten(text)}"' if text else ""
    return NoImage(
        f"The model answered without an image (finishReason {finish}).{said}",
        text=text,
        finish_reason=finish,
    )


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- inputs


def _load_input(source: ImageInput, info: ModelInfo) -> _Input:
    """Load one reference once. A FittedImage is sent as is; a Result gives its first
    image's bytes as the server sent them (no re-encoding)."""
    if isinstance(source, FittedImage):
        return _Input(loaded=None, fitted=source)
    parent = None
    if isinstance(source, Result):
        if not source.image_data:
            raise InvalidRequest(
                f"Result {source.id} has no image to edit (it answered with text only)."
            )
        parent = source
        data = source.image_data[0][0]
        loaded = load_image(data, target_side=info.fit_max_side)
        loaded = dataclasses.replace(loaded, name=f"result {source.id}")
    else:
        loaded = load_image(source, target_side=info.fit_max_side)
    return _Input(loaded=loaded, fitted=None, parent=parent)


def _fit_inputs(
    inputs: list[_Input],
    info: ModelInfo,
    budget: RequestBudget,
    prompt: str,
    config: types.GenerateContentConfig,
    *,
    refit: bool,
) -> list[_Input]:
    """Fit each image to its share of the budget.

    With a Files API, each image only has to fit a request on its own (the plan then
    uploads whatever does not fit inline together). Without one, all must fit inline
    together: each gets an equal share of the room the prompt and the other images'
    framing leave.
    """
    count = len(inputs)
    per_image = budget
    if count > 1 and not budget.files_api and budget.limit is not None:
        room = budget.image_allowance(
            prompt, other_images=[(0, "image/jpeg")] * (count - 1), config=config
        )
        share = max(1, room // count)
        per_image = dataclasses.replace(
            budget, limit=budget.request_bytes(prompt, [(share, "image/jpeg")]) + budget.margin
        )
    elif budget.files_api and budget.limit is not None:
        # Alone in a request it must fit inline; beyond that the Files API takes it.
        per_image = dataclasses.replace(budget, files_api=False)
    fitted: list[_Input] = []
    for item in inputs:
        if item.loaded is None and not refit:
            fitted.append(item)
            continue
        source: LoadedImage | bytes = item.loaded if item.loaded is not None else item.sent.data
        result = fit_image(source, model=info, budget=per_image, prompt=prompt)
        if item.loaded is None:
            result = dataclasses.replace(
                result, name=item.sent.name, source_sha256=item.sent.source_sha256
            )
        fitted.append(_Input(loaded=item.loaded, fitted=result, parent=item.parent))
    return fitted


def fit_inline(
    sources: Sequence[ImageInput],
    info: ModelInfo,
    budget: RequestBudget,
    prompt: str,
    config: types.GenerateContentConfig,
) -> list[FittedImage]:
    """The references of one request, loaded and fitted to go inline *together*: one
    request's budget shared between them, the prompt and config counted — as a request
    to an endpoint without a Files API is fitted (a Batch API request line, say).

    Raises :class:`~nbbanana.errors.DoesNotFitError` when not even the smallest versions
    fit together.
    """
    budget = dataclasses.replace(budget, files_api=False)
    inputs = [_load_input(source, info) for source in sources]
    inputs = _fit_inputs(inputs, info, budget, prompt, config, refit=False)
    fitted = [item.sent for item in inputs]
    budget.plan(prompt, [(len(f.data), f.mime) for f in fitted], config=config)  # or raise
    return fitted


def estimated_sent_size(item: ImageInput, info: ModelInfo) -> tuple[int, int]:
    """The pixel size an input would be sent at (no encoding)."""
    if isinstance(item, FittedImage):
        return item.width, item.height
    if isinstance(item, Result):
        image = item.image
        size = (image.width, image.height) if image is not None else (0, 0)
    elif isinstance(item, Image.Image):
        size = item.size
    elif isinstance(item, np.ndarray) and item.ndim >= 2:
        size = (int(item.shape[1]), int(item.shape[0]))
    else:
        size = load_image(item, target_side=info.fit_max_side).original_size
    w, h = size
    scale = min(1.0, info.fit_max_side / max(w, h, 1))
    return max(1, round(w * scale)), max(1, round(h * scale))
