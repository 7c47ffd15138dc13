"""Retries in a batch: the engine's own, and observing the SDK's.

Two layers. Inside one request, the google-genai client retries 429/5xx/timeouts
(``HttpRetryOptions``). Some failures it cannot retry, or that outlast its few attempts:
a connection reset or a read error mid-answer (the SDK never re-sends those), a 5xx storm,
a text-only answer. The batch engine retries those itself, the whole item, a bounded
number of times with exponential back-off and jitter (:func:`is_transient`,
:func:`backoff_seconds`), so that only permanent failures (other 4xx, safety blocks, no
image after the retries) are left for ``--retry-failed``. A request whose connection was
dropped may still have run, and been billed, on the server: :func:`possibly_billed` says
which, and the engine counts their estimated cost apart from the spend it knows.

The SDK announces every
retry it is about to make through tenacity's ``before_sleep`` hook, which logs one INFO
record on the ``google_genai._api_client`` logger. Log records are emitted synchronously in
the task that is retrying, so a context variable set by the batch worker tells which item
the retry belongs to. Nothing in the SDK is patched.

What the counts mean: ``retries`` is the number of retry *attempts* the SDK announced for
an item; an item is "retrying" from its first announced retry until it finishes (done or
failed). A retry inside the SDK that logs nothing (none in google-genai 3.6) would not be
counted.
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import NoImage, RateLimited, ServiceUnavailable

__all__ = [
    "DEFAULT_ITEM_ATTEMPTS",
    "RetryCounter",
    "backoff_seconds",
    "current_item",
    "is_transient",
    "possibly_billed",
]

#: Attempts the engine makes per item (each one a full request, itself retried by the SDK).
DEFAULT_ITEM_ATTEMPTS = 4
#: First pause between the engine's attempts; doubled each time, up to ``_MAX_BACKOFF_S``.
BACKOFF_S = 2.0
_MAX_BACKOFF_S = 60.0


def is_transient(exc: BaseException) -> bool:
    """Worth trying the item again: the service failed or the connection did, or the
    model answered without an image. Refusals (4xx), safety blocks, cost caps and input
    problems are not: the same request would fail the same way."""
    if isinstance(exc, (ServiceUnavailable, RateLimited, NoImage)):
        return True
    # Transport errors the Session did not translate (it translates the SDK's own).
    return isinstance(exc, (ConnectionError, TimeoutError)) or _is_httpx_transport(exc)


def _is_httpx_transport(exc: BaseException) -> bool:
    try:
        import httpx2
    except ImportError:  # pragma: no cover - google-genai depends on it
        return False
    return isinstance(exc, httpx2.TransportError)


def possibly_billed(exc: BaseException) -> bool:
    """The request may have run on the server although no answer arrived: the connection
    was dropped or timed out (no HTTP status). A 5xx or 429 says it did not run; a
    text-only answer was billed and is already counted in the session's spend."""
    if isinstance(exc, ServiceUnavailable):
        return exc.code is None
    return isinstance(exc, (ConnectionError, TimeoutError)) or _is_httpx_transport(exc)


def backoff_seconds(attempt: int, exc: BaseException | None = None) -> float:
    """Pause after failed ``attempt`` (1-based): ``BACKOFF_S`` doubled each time, with
    jitter over its upper half (so lanes that failed together do not come back together), at least what
    the server asked for in a 429's ``RetryInfo``."""
    ceiling = min(_MAX_BACKOFF_S, BACKOFF_S * 2.0 ** (attempt - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    asked = getattr(exc, "retry_after", None)
    if isinstance(asked, (int, float)) and asked > 0:
        delay = max(delay, min(float(asked), _MAX_BACKOFF_S))
    return delay


#: The id of the batch item the current asyncio task is working on.
current_item: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "nbbanana_batch_item", default=None
)

_SDK_LOGGER = "google_genai._api_client"


class RetryCounter(logging.Filter):
    """Counts the SDK's announced retries per batch item while installed.

    Installed as a filter on the SDK's logger (not a handler), so that when the user had
    not asked for the SDK's INFO records, the ones enabled only for counting are dropped
    instead of reaching their console.
    """

    def __init__(self) -> None:
        super().__init__()
        self.per_item: Counter[str] = Counter()
        #: Called after each counted retry (e.g. to refresh a progress bar).
        self.on_retry: Callable[[], None] | None = None
        self._show_info = True

    def filter(self, record: logging.LogRecord) -> bool:
        item = current_item.get()
        if item is not None and record.getMessage().startswith("Retrying"):
            self.per_item[item] += 1
            if self.on_retry is not None:
                self.on_retry()
        return self._show_info or record.levelno > logging.INFO

    @property
    def total(self) -> int:
        return sum(self.per_item.values())

    @contextmanager
    def installed(self) -> Iterator[RetryCounter]:
        """Listen on the SDK's logger while the batch runs; its level is restored after."""
        logger = logging.getLogger(_SDK_LOGGER)
        previous = logger.level
        self._show_info = logger.isEnabledFor(logging.INFO)
        if not self._show_info:
            logger.setLevel(logging.INFO)
        logger.addFilter(self)
        try:
            yield self
        finally:
            logger.removeFilter(self)
            logger.setLevel(previous)
