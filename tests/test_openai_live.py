"""Against a real OpenAI-compatible gateway (``pytest -m live``): runs when
``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` are set, skips cleanly otherwise.
``OPENAI_MODEL`` names the model as the gateway spells it (default
``google/gemini-2.5-flash-image``). Costs two or three images."""

from __future__ import annotations

import io
import os

import pytest
from google.genai import types
from PIL import Image

from nbbanana._openai import OpenAIBackend, connect_openai
from nbbanana.errors import AuthError

BASE_URL = os.environ.get("OPENAI_BASE_URL")
KEY = os.environ.get("OPENAI_API_KEY")
MODEL = os.environ.get("OPENAI_MODEL", "google/gemini-2.5-flash-image")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (BASE_URL and KEY), reason="OPENAI_BASE_URL/OPENAI_API_KEY not set"),
]


class _Request:
    def __init__(self, contents: list[types.Content], config: types.GenerateContentConfig) -> None:
        self.model = MODEL
        self.contents = contents
        self.config = config


def test_backend_gets_an_image_in_whatever_shape_the_gateway_uses() -> None:
    assert BASE_URL is not None
    backend = OpenAIBackend(base_url=BASE_URL, api_key=KEY)
    prompt = types.Content(role="user", parts=[types.Part(text="Generate an image of a red kite.")])
    config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="16:9"))
    response = backend.generate(_Request([prompt], config))
    content = response.candidates[0].content if response.candidates else None
    images = [
        p.inline_data.data for p in (content.parts if content else None) or [] if p.inline_data
    ]
    assert images and images[0]
    width, height = Image.open(io.BytesIO(images[0])).size
    assert width > height  # the aspect ratio reached the model
    assert response.usage_metadata is not None and response.usage_metadata.total_token_count


def test_a_wrong_key_is_an_auth_error() -> None:
    assert BASE_URL is not None
    backend = OpenAIBackend(base_url=BASE_URL, api_key="sk-invalid-nbbanana-test", max_retries=0)
    prompt = types.Content(role="user", parts=[types.Part(text="a kite")])
    with pytest.raises(Exception) as caught:
        backend.generate(_Request([prompt], types.GenerateContentConfig()))
    assert isinstance(backend.map_error(caught.value), AuthError)


def test_session_edit() -> None:
    pytest.importorskip("nbbanana._backend", reason="needs the request pipeline")
    assert BASE_URL is not None
    session = connect_openai(BASE_URL, KEY, model=MODEL)
    photo = Image.new("RGB", (640, 480), (30, 90, 200))
    result = session.edit(photo, "Add a small yellow sun in the corner.")
    assert result.image is not None
    assert KEY is not None and KEY not in repr(session)
