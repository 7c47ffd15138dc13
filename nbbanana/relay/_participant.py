"""What a participant (or a rehearsal) needs: join with a code, see your spend, and a
local relay in front of the offline emulator."""

from __future__ import annotations

import tempfile
from typing import Any

import httpx

from ..errors import APIError
from ._server import Relay
from ._view import raise_for

__all__ = ["join", "me", "rehearsal"]


def join(relay_url: str, code: str, name: str = "") -> str:
    """Trade the facilitator's workshop code for your own participant token."""
    try:
        response = httpx.post(
            f"{relay_url.rstrip('/')}/relay/join", json={"code": code, "name": name}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise APIError(
            f"Could not reach the workshop relay at {relay_url} ({type(exc).__name__}); "
            "check the URL the facilitator gave you."
        ) from None
    raise_for(response)
    token: str = response.json()["token"]
    return token


def me(relay_url: str, token: str) -> dict[str, Any]:
    """Your spend, cap and request count on a relay."""
    response = httpx.get(
        f"{relay_url.rstrip('/')}/relay/me", headers={"x-goog-api-key": token}, timeout=30
    )
    raise_for(response)
    data: dict[str, Any] = response.json()
    return data


def rehearsal(
    *, cap_usd: float | None = 0.50, workshop_cap_usd: float | None = None, latency: float = 0.0
) -> tuple[Relay, str]:
    """A relay in front of the offline emulator, in a temporary directory, for rehearsing
    or for running the participant notebook without a workshop. Returns the running relay
    and a join code (each participant who joins gets ``cap_usd``)."""
    relay = Relay(tempfile.mkdtemp(prefix="nbbanana-rehearsal-"), "emulator", latency=latency)
    relay.set_workshop_cap(workshop_cap_usd)
    relay.start()
    return relay, relay.join_code(cap_usd=cap_usd)
