"""What the contract tests share: the same assertions run against the emulator always
and, when ``GEMINI_API_KEY`` is set, against the real Gemini API (``pytest -m live``).

A test module declares its ``target`` fixture with :data:`TARGETS` and
:func:`open_target`; a target is ``(base_url, client)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import pytest
from google import genai
from google.genai import types

from nbbanana.emulator import Emulator
from nbbanana.session import GOOGLE_BASE_URL

KEY = os.environ.get("GEMINI_API_KEY")
#: The key the emulator is sent (any key but its "invalid" ones is accepted).
EMULATOR_KEY = "contract-key"

Target: TypeAlias = tuple[str, genai.Client]

#: The ``target`` fixture's params: ``emulator`` always; ``live`` marked ``live`` and
#: skipped cleanly without a key.
TARGETS: list[Any] = [
    "emulator",
    pytest.param(
        "live",
        marks=[pytest.mark.live, pytest.mark.skipif(not KEY, reason="GEMINI_API_KEY is not set")],
    ),
]

# Live calls meet real rate limits: a few patient retries.
_RETRY = types.HttpRetryOptions(attempts=3, initial_delay=2.0)


@contextmanager
def open_target(name: str) -> Iterator[Target]:
    """``(base_url, client)`` for ``"emulator"`` (started here) or ``"live"``."""
    if name == "live":
        assert KEY is not None
        options = types.HttpOptions(base_url=GOOGLE_BASE_URL, retry_options=_RETRY)
        yield GOOGLE_BASE_URL, genai.Client(api_key=KEY, http_options=options)
        return
    with Emulator() as emulator:
        options = types.HttpOptions(base_url=emulator.base_url, retry_options=_RETRY)
        yield emulator.base_url, genai.Client(api_key=EMULATOR_KEY, http_options=options)


def is_live(target: Target) -> bool:
    return target[0] == GOOGLE_BASE_URL


def client_for(
    target: Target, *, key: str | None = None, version: str | None = None
) -> genai.Client:
    """A client for ``target`` with another key (default: the target's own) or API
    version (no retries: a refusal must show as it is)."""
    own = KEY if is_live(target) else EMULATOR_KEY
    return genai.Client(
        api_key=key or own,
        http_options=types.HttpOptions(base_url=target[0], api_version=version),
    )


def final_images(response: types.GenerateContentResponse) -> list[bytes]:
    """The answer's images, thought images left out."""
    parts = response.candidates[0].content.parts if response.candidates else None
    return [
        p.inline_data.data
        for p in parts or []
        if p.inline_data and p.inline_data.data and not p.thought
    ]
