"""Observing the SDK's retries, to show how many items are "retrying".

Retries of 429/5xx/timeouts belong to the google-genai client (``HttpRetryOptions``), not
to the batch engine: the engine never re-sends a request itself. The SDK announces every
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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["RetryCounter", "current_item"]

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
