"""Process-wide state: everything nbbanana remembers across sessions, in one place.

Four things outlive a session, on purpose:

* **learned limits** — the request limit a server named in a "too large" refusal, per
  base URL (:func:`learn_limit`, :func:`learned_limit`). Every later session with that
  endpoint fits to it, so a notebook does not hit the same refusal twice;
* **price overrides** — :func:`nbbanana.models.set_price` replaces a model's entry in
  :data:`nbbanana.models.MODELS` (marked ``as_of="user"``); :func:`price_overrides`
  lists them;
* **the offline notice** — said once per process (:func:`announce_offline`);
* **the shared emulator** — the in-process emulator that offline sessions use, started
  on first use and stopped at exit (:func:`nbbanana.emulator.shared_emulator`).

A session's repr shows what applies to it (a learned limit, an overridden price).
Nothing here is written to disk; a new kernel starts clean.
"""

from __future__ import annotations

import sys
import threading

from ._notice import show_notice

__all__ = [
    "announce_offline",
    "learn_limit",
    "learned_limit",
    "price_overrides",
    "shared_emulator_running",
]

_lock = threading.Lock()
_learned: dict[str, int] = {}
_offline_announced = False


def learn_limit(endpoint: str, limit_bytes: int) -> int:
    """Remember that ``endpoint`` (a base URL) refuses requests over ``limit_bytes``.

    Keeps the smallest limit seen. Returns the limit now in force for that endpoint.
    """
    with _lock:
        current = _learned.get(endpoint)
        _learned[endpoint] = limit_bytes if current is None else min(current, limit_bytes)
        return _learned[endpoint]


def learned_limit(endpoint: str) -> int | None:
    """The request limit learned for ``endpoint``, if a server ever named one."""
    with _lock:
        return _learned.get(endpoint)


def announce_offline(note: str) -> bool:
    """Show ``note`` the first time an offline session opens in this process (an
    information banner in a notebook, a line on stderr elsewhere). Returns whether it
    was shown."""
    global _offline_announced
    with _lock:
        if _offline_announced:
            return False
        _offline_announced = True
    show_notice(note)
    return True


def price_overrides() -> dict[str, str]:
    """Models whose price :func:`~nbbanana.models.set_price` changed, with the new price
    in words."""
    from .models import MODELS, _user_prices  # models imports this module (learned limits)

    prices = {model_id: info.price for model_id, info in MODELS.items() if info.price}
    prices.update(_user_prices)  # models the table does not know
    return {
        model_id: f"${price.input_per_m:g}/${price.output_image_per_m:g}"
        f"/${price.output_text_per_m:g} per 1M in/image/text"
        for model_id, price in prices.items()
        if price.as_of == "user"
    }


def shared_emulator_running() -> bool:
    """Whether this process's shared emulator is running (without starting it)."""
    emulator = sys.modules.get(f"{__package__}.emulator")
    shared = getattr(emulator, "_shared", None)
    return bool(shared is not None and shared.running)
