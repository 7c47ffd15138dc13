"""Regional turns in a chat, through the real google-genai SDK against the emulator's
known-transform mode: the composite is the turn's result, and the next turn edits it."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _client_helpers import recorded_session
from PIL import Image
from test_region_sdk import textured

from nbbanana.emulator import Emulator
from nbbanana.errors import InvalidRequest, RequestTooLarge
from nbbanana.models import get_model
from nbbanana.region import RegionResult

BOX = (700, 500, 1300, 950)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=3) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return textured(2000, 1500, seed=4)


def _images(content: dict[str, Any]) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.urlsafe_b64decode(p["inlineData"]["data"])))
        for p in content["parts"]
        if "inlineData" in p
    ]


def test_a_regional_turn_is_the_composite_and_the_next_turn_edits_it(
    emu: Emulator, photo: Image.Image
) -> None:
    emu.clear_faults()
    session, wire = recorded_session(emu.base_url)
    chat = session.chat()
    emu.inject("transform", scale=1.0)
    first = chat.send("make the sky violet", photo, region=BOX)
    assert isinstance(first, RegionResult) and first.image is not None
    assert first.image.size == photo.size and tuple(first.region["box"]) == BOX
    assert chat.history == [first] and first.parent is None
    # Untouched pixels are the photo's, bit for bit.
    assert np.array_equal(np.asarray(first.image)[:200, :200], np.asarray(photo)[:200, :200])
    # The crop went out alone: one user content with the crop, no history.
    crop_body = wire.generate_bodies()[-1]
    assert [c["role"] for c in crop_body["contents"]] == ["user"]
    assert _images(crop_body["contents"][0])[0].size[0] < photo.width
    assert chat._history_tokens() > 0

    second = chat.send("now add a small boat")
    assert second.parent is first
    body = wire.generate_bodies()[-1]
    # One content per turn: the composite and the new prompt go as one user turn (two
    # user contents in a row are what older models refused).
    assert [c["role"] for c in body["contents"]] == ["user"]
    assert body["contents"][0]["parts"][-1]["text"] == "now add a small boat"
    # The history holds the whole composite (fitted for the model), with what was done.
    (picture,) = _images(body["contents"][0])
    assert max(picture.size) <= get_model(session.model).fit_max_side
    assert abs(picture.width / picture.height - photo.width / photo.height) < 0.01
    words = body["contents"][0]["parts"][0]["text"]
    assert "make the sky violet" in words and "700,500,1300,950" in words

    # A regional turn without images edits the current picture (the last turn's).
    emu.inject("transform", scale=1.0)
    third = chat.send("make the boat red", region=(10, 10, 300, 200))
    assert isinstance(third, RegionResult) and third.parent is second
    assert third.image is not None and second.image is not None
    assert third.image.size == second.image.size
    assert len(chat) == 3
    # Branching keeps what the history holds.
    branch = chat.branch(1)
    assert branch._history_tokens() == chat.branch(1)._history_tokens() > 0
    assert len(branch._turns) == 1


def test_send_async_takes_a_mask(emu: Emulator, photo: Image.Image) -> None:
    emu.clear_faults()
    session, _wire = recorded_session(emu.base_url)
    chat = session.chat()
    mask = np.zeros((photo.height // 4, photo.width // 4), dtype=np.uint8)
    mask[BOX[1] // 4 : BOX[3] // 4, BOX[0] // 4 : BOX[2] // 4] = 1  # drawn on a thumbnail
    emu.inject("transform", scale=1.0)
    result = asyncio.run(chat.send_async("make it cyan", [photo], mask=mask))
    assert isinstance(result, RegionResult) and result.image is not None
    assert result.image.size == photo.size and result.region["kind"] == "mask"
    assert chat.history == [result]


def test_regional_turn_refusals_leave_the_chat_unchanged(emu: Emulator, photo: Image.Image) -> None:
    session, wire = recorded_session(emu.base_url)
    chat = session.chat()
    with pytest.raises(InvalidRequest, match="there is none yet"):
        chat.send("x", region=BOX)
    with pytest.raises(InvalidRequest, match="changes one image; got 2"):
        chat.send("x", [photo, photo], region=BOX)
    with pytest.raises(InvalidRequest, match="not inside the upright image"):
        chat.send("x", photo, region=(0, 0, 5000, 10))
    assert len(chat) == 0 and chat._turns == [] and wire.generate_bodies() == []


def test_a_regional_turn_is_refused_before_sending_when_the_history_is_full(
    emu: Emulator, photo: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, wire = recorded_session(emu.base_url, endpoint="proxy-20mb")
    chat = session.chat()
    monkeypatch.setattr(chat, "_history_bytes", lambda: 30_000_000)
    with pytest.raises(RequestTooLarge, match="chat history alone"):
        chat.send("x", photo, region=BOX)
    assert wire.generate_bodies() == [] and session.spent == 0 and len(chat) == 0
