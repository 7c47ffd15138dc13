"""Run slow work off the kernel's message loop and hand the result back to it.

Fitting a 48 MP photo takes a second or more; done inside a comm handler it would freeze
every widget and cell until it finished. In a kernel there is a running asyncio loop:
the work goes to a worker thread and ``on_done`` runs back on the loop's thread, where
widget traits are safe to set. Without a running loop (a script, a test) the work simply
runs inline, which keeps behaviour deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_in_background"]

T = TypeVar("T")

# Two workers: enough to fit a second photo while the first one's gauge is drawn, few
# enough not to starve the kernel on a small machine.
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbbanana-widgets")


def run_in_background(work: Callable[[], T], on_done: Callable[[T], None]) -> None:
    """Call ``work()`` in a worker thread, then ``on_done(result)`` on the caller's loop.

    ``work`` must not raise: callers wrap failures into their result (an error message
    for the user), so nothing is lost in a thread.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        on_done(work())
        return

    def deliver(future: Future[T]) -> None:
        loop.call_soon_threadsafe(on_done, future.result())

    _EXECUTOR.submit(work).add_done_callback(deliver)
