"""What the request pipeline needs from a service: the :class:`Backend` protocol.

The pipeline (:mod:`nbbanana._pipeline`) prepares every request in google-genai's own
types — they are nbbanana's lingua franca whatever the service — and hands it to a
backend:

* :class:`BackendRequest` — the model id, the ``types.Content`` list (earlier chat turns,
  then the user turn: a text part and one ``types.Part.from_bytes`` or file part per
  reference image) and the ``types.GenerateContentConfig``;
* the backend sends it and answers with a ``types.GenerateContentResponse``, however its
  service words the answer (an OpenAI-compatible backend converts its chat completion into
  one: image parts as ``inline_data``, text parts, ``usage_metadata``, ``finish_reason``).

Everything after the answer — :class:`~nbbanana.result.Result`, ``Blocked``/``NoImage``,
learned limits, refit-and-retry-once on "too large", the spend — is the pipeline's, the
same for every backend. So is everything before it: options, model facts, fitting,
the byte budget (with the backend's exact byte count), the cost estimate and the cap.

Writing a backend
-----------------
Implement the methods below on a plain class; no base class is needed (the protocol is
structural, checked by mypy and by ``isinstance`` at run time). A new backend needs no
change in the pipeline: pass it to :class:`~nbbanana.session.Session`. The Gemini backend
over ``google-genai`` (:mod:`nbbanana._gemini`) is the reference implementation.

Rules every backend keeps:

* **Errors.** Any exception a method raises for a failed request goes through
  :meth:`Backend.map_error` in the pipeline; map every failure of your service there to
  :mod:`nbbanana.errors` (``AuthError``, ``RateLimited``, ``RequestTooLarge`` with
  ``limit_bytes`` when the service names its limit, ``InvalidRequest``,
  ``ServiceUnavailable``), with the service's exception as ``sdk_error``. Return ``None``
  for anything that is not a request failure (a bug): the pipeline re-raises it unchanged.
* **Secrets.** An API key never appears in an error message, a repr or a log: put text
  that came from the service through :func:`nbbanana.errors.redact` with your key.
* **Retries.** Retry transient failures (408, 429, 5xx, connections that could not be
  made) inside :meth:`~Backend.generate` as the session's retry options say, honouring a
  server's requested delay; the pipeline does not retry those (it retries once only after
  refitting a "too large" refusal).
* **Answers.** A refusal by a safety filter is an answer, not an error: return it with
  ``prompt_feedback.block_reason`` or a blocking ``finish_reason`` (``SAFETY``,
  ``IMAGE_SAFETY``, ...). The pipeline turns it into ``Blocked``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    # Type names only: importing the SDK here would make ``import nbbanana`` slow.
    from google.genai import types

    from .errors import NbbananaError

__all__ = ["Backend", "BackendRequest", "UploadRequest"]


@dataclass(frozen=True)
class BackendRequest:
    """One ``generateContent`` request, prepared by the pipeline, ready to send.

    ``contents`` ends with the user turn (role ``"user"``): a text part with the prompt,
    then the reference images in order, each ``types.Part.from_bytes(data=..., mime_type=...)``
    (inline) or a ``file_data`` part returned by :meth:`Backend.upload`. Earlier chat turns
    (user and ``"model"`` contents, thought signatures included) come before it.
    """

    model: str
    contents: Sequence[types.Content]
    config: types.GenerateContentConfig


@dataclass(frozen=True)
class UploadRequest:
    """One image the byte budget sends by reference (Files API) instead of inline."""

    data: bytes
    mime: str
    #: A display name for the stored file (a file name or ``"result <id>"``).
    name: str


@runtime_checkable
class Backend(Protocol):
    """A service that answers image requests. See the module docstring for the rules."""

    #: A short name for reprs and messages: ``"gemini"``, ``"openai"``, ``"relay"``.
    name: str

    @property
    def files_api(self) -> bool:
        """Whether :meth:`upload` works. ``False``: every image must fit inline, and the
        pipeline's budget never plans an upload (the endpoint profile may say so too;
        the stricter of the two wins)."""
        ...

    def generate(self, request: BackendRequest) -> types.GenerateContentResponse:
        """Send ``request`` and wait for the whole answer (with retries, see module doc)."""
        ...

    async def agenerate(self, request: BackendRequest) -> types.GenerateContentResponse:
        """:meth:`generate` without blocking the event loop (real async I/O, so many
        requests can be in flight at once)."""
        ...

    def generate_stream(self, request: BackendRequest) -> Iterator[types.GenerateContentResponse]:
        """Send ``request`` and yield the answer in chunks as they arrive (each chunk a
        ``GenerateContentResponse`` holding the parts received since the last one; the
        last chunk carries ``finish_reason`` and ``usage_metadata``). A service that
        cannot stream yields the whole answer as one chunk."""
        ...

    def agenerate_stream(
        self, request: BackendRequest
    ) -> AsyncIterator[types.GenerateContentResponse]:
        """:meth:`generate_stream` for ``asyncio`` (an async generator)."""
        ...

    def upload(self, upload: UploadRequest) -> types.Part:
        """Store one image with the service's Files API and return the part that refers
        to it (``types.Part.from_uri(file_uri=..., mime_type=...)``). Called only when
        :attr:`files_api` is true and the budget plans an upload."""
        ...

    async def aupload(self, upload: UploadRequest) -> types.Part:
        """:meth:`upload` for ``asyncio``."""
        ...

    def body_bytes(
        self,
        model: str,
        contents: Sequence[types.Content],
        config: types.GenerateContentConfig | None,
    ) -> int:
        """The exact size in bytes of the request body this backend would send for
        ``model``, ``contents`` and ``config`` — with every ``inline_data`` part's data
        **empty**.

        The pipeline budgets requests with this figure plus ``base64_size(n)`` (standard
        padded base64, ``4·⌈n/3⌉``) for each inline image of ``n`` raw bytes, so the wire
        format must carry inline image bytes as exactly that base64 text (true of
        Gemini's JSON and of an OpenAI ``data:`` URL, whose prefix is framing and counted
        here). A file part counts with the URI it has. Must not send anything, and must
        be cheap: the fitter calls it a few times per image.
        """
        ...

    def map_error(self, exc: BaseException) -> NbbananaError | None:
        """The nbbanana error for a failure this backend's service or client raised
        (the pipeline raises it ``from exc``), or ``None`` for anything else."""
        ...

    def close(self) -> None:
        """Close the backend's connections; it is not used afterwards."""
        ...
