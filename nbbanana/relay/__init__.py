"""The workshop relay: one key for a room of participants, caps they cannot lift, a live gallery.

The facilitator runs ``nbbanana relay serve`` (or :class:`Relay` in a notebook) holding
the real key; participants connect with a token of their own::

    session = nbbanana.connect(base_url=RELAY_URL, api_key=PARTICIPANT_TOKEN)

The relay speaks the Gemini REST API (generate, stream, count tokens, models), checks
each request against the participant's and the workshop's caps before forwarding it,
settles it from the answer's usage, keeps everything in a SQLite ledger, and shows the
results on a gallery page (``/gallery``) and in a notebook (:func:`gallery`).

Modules: :mod:`._server` (:class:`Relay`, uvicorn), :mod:`._app` (the HTTP surface),
:mod:`._ledger` (SQLite), :mod:`._accounting` (estimates and settlement),
:mod:`._upstream` (the only holder of the key), :mod:`._secrets` (tokens),
:mod:`._view` (the notebook gallery), :mod:`._export`, :mod:`._cli`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["GalleryView", "Participant", "Relay", "Upstream", "gallery", "join", "me", "rehearsal"]

# Loaded on first use, so that `nbbanana --help` does not import the server stack.
_LAZY: dict[str, str] = {
    "GalleryView": "_view",
    "gallery": "_view",
    "Participant": "_ledger",
    "Relay": "_server",
    "Upstream": "_upstream",
    "join": "_participant",
    "me": "_participant",
    "rehearsal": "_participant",
}

if TYPE_CHECKING:
    from ._ledger import Participant
    from ._participant import join, me, rehearsal
    from ._server import Relay
    from ._upstream import Upstream
    from ._view import GalleryView, gallery


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbbanana.relay' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
