"""Image links inside text (data URLs, hosted URLs), as relays return them."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import openai
import pytest
from google.genai import types
from PIL import Image

from nbbanana._hosted import HostedImageError, ImageFetcher, lift_text_images
from nbbanana.emulator import Emulator


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def hosted_url() -> Iterator[str]:
    with Emulator(openai_shape="hosted") as emu:
        client = openai.OpenAI(base_url=emu.base_url + "/v1", api_key="k", max_retries=0)
        url = (
            client.images.generate(
                model="gemini-2.5-flash-image", prompt="a cat", response_format="url"
            )
            .data[0]
            .url
        )
        assert url is not None
        yield url


def _response(*parts: types.Part) -> types.GenerateContentResponse:
    content = types.Content(role="model", parts=list(parts))
    return types.GenerateContentResponse(
        candidates=[types.Candidate(content=content, finish_reason=types.FinishReason.STOP)]
    )


def test_data_url_and_hosted_url_in_text_parts_become_images(hosted_url: str) -> None:
    red = _png((255, 0, 0))
    data_url = "data:image/png;base64," + base64.b64encode(red).decode()
    response = _response(
        types.Part(text="thinking about ![x](" + data_url + ")", thought=True),
        types.Part(text=f"Here it is:\n\n![image]({data_url})"),
        types.Part(text=f"![image]({hosted_url})"),
    )
    fetcher = ImageFetcher()
    lifted = lift_text_images(response, fetcher)
    fetcher.close()
    parts = lifted.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts[0].thought and parts[0].text is not None and data_url in parts[0].text
    assert parts[1].text == "Here it is:"
    assert parts[2].inline_data is not None and parts[2].inline_data.data == red
    assert parts[3].inline_data is not None
    assert parts[3].inline_data.mime_type == "image/png"
    assert lifted.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_a_plain_answer_is_returned_unchanged() -> None:
    response = _response(types.Part(text="no links here, see https://example.com/page"))
    assert lift_text_images(response, ImageFetcher()) is response


def test_a_link_that_cannot_be_fetched_is_an_error() -> None:
    response = _response(types.Part(text="![image](http://127.0.0.1:9/never.png)"))
    with pytest.raises(HostedImageError, match="Downloading the image"):
        lift_text_images(response, ImageFetcher(timeout=2))
    broken = _response(types.Part(text="![image](data:image/png;base64,@@@@)"))
    with pytest.raises(HostedImageError):
        lift_text_images(broken, ImageFetcher())
