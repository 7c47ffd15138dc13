"""Faults the emulator can inject, and how a request picks one.

Three sources, checked in this order for each request that can take a fault:

1. the request header ``x-emulator-fault: <name>[;key=value...]`` (the SDK sends extra
   headers with ``HttpOptions(headers=...)``), e.g. ``429;retry=5`` or ``slow;seconds=2``;
2. the queue filled by :meth:`Emulator.inject` (or ``POST /emulator/faults``);
3. the server-wide ``fault_rate``: a seeded RNG draws among the transient faults, so a
   run with the same seed fails the same requests.

Transient faults (the ones clients retry): ``429`` (``retry=SECONDS`` sets ``RetryInfo``),
``500``, ``503``, ``504``, ``slow`` (``seconds=N``, then answers normally), ``timeout``
(hangs ``seconds=N``, default: the client's own timeout plus two seconds, else 30 s, then
answers 504), ``reset`` (closes the TCP connection with an RST). Content faults, for
``generateContent`` only: ``image_safety``, ``prohibited``, ``text_only``, ``blocked``
(``reason=...`` sets ``promptFeedback.blockReason``, default ``SAFETY``),
``transform`` (an edit answer slightly zoomed and shifted by a known amount: see
:mod:`nbbanana.emulator._transform`), ``ignore_input`` (an edit answered with a new
picture, as a model that ignores its input does: a regional edit must refuse to blend
it), and ``unmetered`` (a normal answer without ``usageMetadata``, as some relays give:
the client must still cost its images).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CONTENT_FAULTS", "FAULTS", "TRANSIENT_FAULTS", "Fault", "FaultPlan", "parse_fault"]

TRANSIENT_FAULTS: tuple[str, ...] = ("429", "500", "503", "504", "slow", "timeout", "reset")
CONTENT_FAULTS: tuple[str, ...] = (
    "image_safety",
    "prohibited",
    "text_only",
    "blocked",
    "transform",  # not a failure: the known-transform mode (_transform.py)
    "unmetered",  # not a failure: an answer without usageMetadata
    "ignore_input",  # an edit answered with a new picture
)
FAULTS: tuple[str, ...] = TRANSIENT_FAULTS + CONTENT_FAULTS
#: What ``fault_rate`` draws from unless told otherwise: the failures a client must retry.
RATE_FAULTS: tuple[str, ...] = ("429", "500", "503", "504", "timeout", "reset")

#: Which requests a queued fault waits for: model calls only, or any API request.
Target = Literal["generate", "any"]


@dataclass(frozen=True)
class Fault:
    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    on: Target = "generate"

    def number(self, key: str, default: float) -> float:
        try:
            return float(self.params[key])
        except (KeyError, ValueError):
            return default

    @property
    def transient(self) -> bool:
        return self.name in TRANSIENT_FAULTS


def _check_name(name: str) -> str:
    if name not in FAULTS:
        raise ValueError(f"Unknown emulator fault {name!r}; use one of {', '.join(FAULTS)}.")
    return name


def parse_fault(header: str) -> Fault:
    """Parse ``name[;key=value...]`` (the ``x-emulator-fault`` header)."""
    name, *pairs = (piece.strip() for piece in header.split(";"))
    params: dict[str, str] = {}
    for pair in pairs:
        if pair:
            key, _, value = pair.partition("=")
            params[key.strip()] = value.strip()
    return Fault(_check_name(name), params, "any")


class FaultPlan:
    """The queue of injected faults and the seeded draw behind ``fault_rate``."""

    def __init__(self, rate: float, seed: int, kinds: Iterable[str] | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, not {rate}.")
        self.rate = rate
        self.kinds = tuple(_check_name(k) for k in (kinds or RATE_FAULTS))
        self._rng = random.Random(f"faults:{seed}")
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()

    def inject(self, name: str, count: int, on: Target, params: Mapping[str, str]) -> None:
        fault = Fault(_check_name(name), dict(params), on)
        with self._lock:
            self._queue.extend([fault] * count)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def take(self, *, generate: bool) -> Fault | None:
        """The fault for the next request (``generate``: it is a model call)."""
        with self._lock:
            for index, fault in enumerate(self._queue):
                if generate or (fault.on == "any" and fault.transient):
                    del self._queue[index]
                    return fault
            if generate and self.rate > 0 and self._rng.random() < self.rate:
                return Fault(self._rng.choice(self.kinds), {}, "generate")
        return None
