"""The emulator's contract: the same assertions against the emulator and, when
``GEMINI_API_KEY`` is set, against the real Gemini API (``pytest -m live``).

Each test takes a ``target`` client: ``emulator`` always runs; ``live`` is marked
``live`` and skips cleanly without a key. What is asserted is what nbbanana relies on:
error codes, statuses and the wording clients parse, output sizes, token counts, and the
Files API round trip. Wording the emulator only guesses (marked "emulator wording" in its
source) is compared by code and status only. The live run costs a few cents.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from _emulator_fixtures import answer_image, image_bytes, png_size
from _live_helpers import TARGETS, Target, client_for, open_target
from google.genai import errors, types

from nbbanana.models import get_model

FLASH = "gemini-2.5-flash-image"


@pytest.fixture(params=TARGETS, scope="module")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with open_target(request.param) as opened:
        yield opened


def test_invalid_key(target: Target) -> None:
    client = client_for(target, key="invalid-contract-test-key")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="hello")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.message == "API key not valid. Please pass a valid API key."
    reasons = [d.get("reason") for d in info.value.details["error"].get("details", [])]
    assert "API_KEY_INVALID" in reasons


def test_unknown_model(target: Target) -> None:
    _, client = target
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-0-no-such-model", contents="hello")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert info.value.message.startswith(
        "models/gemini-0-no-such-model is not found for API version"
    )


def test_unsupported_mime_type(target: Target) -> None:
    _, client = target
    gif = types.Part.from_bytes(data=image_bytes(16, 16, "GIF"), mime_type="image/gif")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents=["describe", gif])
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "Unsupported MIME type: image/gif" in info.value.message


def test_bad_aspect_ratio(target: Target) -> None:
    _, client = target
    config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="7:3"))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="a square", config=config)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "aspect_ratio must be one of '1:1'" in info.value.message


def test_count_tokens_of_an_image(target: Target) -> None:
    _, client = target
    part = types.Part.from_bytes(data=image_bytes(1000, 800), mime_type="image/jpeg")
    result = client.models.count_tokens(model=FLASH, contents=[part])
    assert result.total_tokens == get_model(FLASH).input_image_tokens(1000, 800)


def test_output_size_and_usage(target: Target) -> None:
    _, client = target
    config = types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")
    )
    response = client.models.generate_content(
        model=FLASH, contents="a small red boat on a lake", config=config
    )
    assert png_size(answer_image(response)) == get_model(FLASH).output_size("16:9")
    details = {
        d.modality.value: d.token_count
        for d in response.usage_metadata.candidates_tokens_details or []
    }
    assert details.get("IMAGE") == get_model(FLASH).output_image_tokens()
    assert response.model_version and response.model_version.startswith(FLASH)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_files_round_trip(target: Target) -> None:
    _, client = target
    data = image_bytes(64, 64)
    uploaded = client.files.upload(file=io.BytesIO(data), config={"mime_type": "image/jpeg"})
    try:
        assert uploaded.size_bytes == len(data) and uploaded.state == types.FileState.ACTIVE
        assert uploaded.expiration_time and uploaded.create_time
        assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == pytest.approx(
            48 * 3600, abs=60
        )
        assert client.files.get(name=uploaded.name).uri == uploaded.uri
    finally:
        client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as info:
        client.files.get(name=uploaded.name)
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")


def test_image_models_are_listed(target: Target) -> None:
    _, client = target
    model = client.models.get(model=FLASH)
    assert model.name == f"models/{FLASH}"
    assert "generateContent" in (model.supported_actions or [])


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_image_config_on_each_api_version(target: Target, version: str) -> None:
    """google-genai 3.x defaults to ``v1``; one public report saw ``v1`` refuse
    ``responseModalities``. This checks both versions accept the image fields (a text-only
    answer keeps the live cost negligible)."""
    client = client_for(target, version=version)
    config = types.GenerateContentConfig(
        response_modalities=["TEXT"], image_config=types.ImageConfig(aspect_ratio="1:1")
    )
    response = client.models.generate_content(model=FLASH, contents="Say OK.", config=config)
    assert response.text
