"""The Gemini backend: the real google-genai SDK over real HTTP against the emulator.

With ``tests/test_budget.py`` (body bytes against the wire) and
``tests/test_errors_mapping.py`` (error unpacking, retry delays), this is the file a
google-genai upgrade is checked with: every private use of the SDK is in
``nbbanana/_gemini.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _client_helpers import recorded_session
from google.genai import types

from nbbanana._backend import Backend, BackendRequest, UploadRequest
from nbbanana._gemini import GeminiBackend, body_bytes
from nbbanana.emulator import Emulator
from nbbanana.samples import sample_path


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator(seed=3) as emu:
        yield emu


def _request(prompt: str) -> BackendRequest:
    return BackendRequest(
        model="gemini-2.5-flash-image",
        contents=[types.Content(role="user", parts=[types.Part.from_text(text=prompt)])],
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
    )


def test_the_session_backend_is_a_gemini_backend(emulator: Emulator) -> None:
    session, _ = recorded_session(emulator.base_url)
    assert isinstance(session.backend, GeminiBackend)
    assert isinstance(session.backend, Backend)
    assert session.client is session.backend.client


def test_streams_yield_the_answer_sync_and_async(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    backend = session.backend
    chunks = list(backend.generate_stream(_request("a kite")))
    assert any(":streamGenerateContent" in url for url in wire.urls())
    parts = [
        part
        for chunk in chunks
        for candidate in chunk.candidates or []
        for part in (candidate.content.parts if candidate.content else None) or []
    ]
    assert any(p.inline_data is not None and p.inline_data.data for p in parts)

    async def collect() -> list[types.GenerateContentResponse]:
        return [chunk async for chunk in backend.agenerate_stream(_request("a kite"))]

    assert asyncio.run(collect())


def test_body_bytes_match_the_wire(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    request = _request("ünïcode prompt")
    session.backend.generate(request)
    sent = len(json.dumps(wire.generate_bodies()[-1]))
    assert body_bytes(request.model, request.contents, request.config) == sent


def test_upload_returns_a_file_part(emulator: Emulator) -> None:
    session, _ = recorded_session(emulator.base_url)
    data = sample_path("chart.png").read_bytes()
    part = session.backend.upload(UploadRequest(data=data, mime="image/png", name="chart.png"))
    assert part.file_data is not None and part.file_data.file_uri
    assert part.file_data.mime_type == "image/png"
    again = asyncio.run(
        session.backend.aupload(UploadRequest(data=data, mime="image/png", name="chart.png"))
    )
    assert again.file_data is not None and again.file_data.file_uri != part.file_data.file_uri
