"""The emulator's OpenAI-compatible surface, driven by the real ``openai`` SDK over HTTP:
every answer shape of §13, validation, faults, the relay's 413 and OpenAI-style errors."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from PIL import Image

from nbbanana.emulator import Emulator

FLASH = "gemini-2.5-flash-image"


def _png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _edit_messages(prompt: str = "make it blue") -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": _data_url(_png())}},
            ],
        }
    ]


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@pytest.fixture
def relay() -> Iterator[Emulator]:
    with Emulator(seed=3, profile="proxy-20mb") as emu:
        yield emu


@pytest.fixture
def client(relay: Emulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.base_url + "/v1", api_key="sk-test", max_retries=0)


def _chat(client: openai.OpenAI, shape: str | None = None, **extra: Any) -> Any:
    headers = {"x-emulator-openai-shape": shape} if shape else {}
    return client.chat.completions.create(
        model=FLASH,
        messages=_edit_messages(),
        extra_body={"modalities": ["image", "text"], **extra},
        extra_headers=headers,
    )


def test_message_images_shape(client: openai.OpenAI) -> None:
    answer = _chat(client, image_config={"aspect_ratio": "16:9"})
    message = answer.choices[0].message
    images = message.model_extra["images"]
    assert len(images) == 1 and images[0]["type"] == "image_url"
    url = images[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert _size(base64.b64decode(url.split(",", 1)[1])) == (1344, 768)
    assert "edited image" in message.content
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens >= 1290


def test_markdown_data_url_shape(client: openai.OpenAI) -> None:
    content = _chat(client, "markdown").choices[0].message.content
    match = re.search(r"!\[image\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", content)
    assert match is not None
    assert _size(base64.b64decode(match.group(1)))[0] > 0
    assert content.startswith("Here is the edited image")


def test_hosted_url_shape_is_served_without_a_key(client: openai.OpenAI) -> None:
    content = _chat(client, "hosted").choices[0].message.content
    match = re.search(r"!\[image\]\((http://[^)]+\.png)\)", content)
    assert match is not None
    response = httpx2.get(match.group(1))  # no key: like a CDN link
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert httpx2.get(match.group(1).replace(".png", "0.png")).status_code == 404


def test_shape_switch_from_constructor() -> None:
    with Emulator(openai_shape="markdown") as emu:
        client = openai.OpenAI(base_url=emu.base_url + "/v1", api_key="k", max_retries=0)
        content = _chat(client).choices[0].message.content
    assert "](data:image/png;base64," in content
    with pytest.raises(ValueError, match="Unknown OpenAI answer shape"):
        Emulator(openai_shape="jpeg")


def test_images_generations_b64_json_and_url(client: openai.OpenAI) -> None:
    answer = client.images.generate(model=FLASH, prompt="a cat", size="1536x1024", n=2)
    assert len(answer.data) == 2
    first, second = (base64.b64decode(d.b64_json or "") for d in answer.data)
    assert _size(first) == (1248, 832) and first != second  # 3:2, two different images
    url = client.images.generate(model=FLASH, prompt="a cat", response_format="url").data[0].url
    assert url is not None and httpx2.get(url).content.startswith(b"\x89PNG")


def test_images_edits_multipart(client: openai.OpenAI) -> None:
    answer = client.images.edit(
        model=FLASH, prompt="make it blue", image=[("a.png", _png(), "image/png")]
    )
    assert _size(base64.b64decode(answer.data[0].b64_json or "")) == (1184, 864)  # 4:3 input


def test_images_only_gateway(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        _chat(client, "b64_json")
    answer = client.images.generate(
        model=FLASH, prompt="a cat", extra_headers={"x-emulator-openai-shape": "url"}
    )
    assert answer.data[0].url is not None and answer.data[0].b64_json is None


def test_google_prefixed_model_and_openai_prefix_path(relay: Emulator) -> None:
    client = openai.OpenAI(base_url=relay.base_url + "/v1beta/openai", api_key="k", max_retries=0)
    answer = client.chat.completions.create(
        model="google/" + FLASH, messages=_edit_messages(), extra_body={"modalities": ["image"]}
    )
    assert answer.choices[0].message.model_extra["images"]


def _error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    return dict(body["error"])


def test_too_large_uses_the_relay_wording_and_413(client: openai.OpenAI) -> None:
    big = "x" * 20_000_001
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": big}])
    assert caught.value.status_code == 413
    error = _error(caught.value)
    assert error["message"] == "file size exceeds maximum allowed size: 20MB"
    assert error["code"] == "request_too_large"


def test_bad_key_is_401(relay: Emulator) -> None:
    client = openai.OpenAI(base_url=relay.base_url + "/v1", api_key="invalid-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        _chat(client)
    assert _error(caught.value)["type"] == "authentication_error"


def test_rate_limit_sends_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=FLASH,
            messages=_edit_messages(),
            extra_headers={"x-emulator-fault": "429;retry=7"},
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert _error(caught.value)["type"] == "rate_limit_error"


def test_sdk_retries_transient_faults(relay: Emulator) -> None:
    relay.inject("503", count=1)
    client = openai.OpenAI(base_url=relay.base_url + "/v1", api_key="k", max_retries=1)
    assert _chat(client).choices[0].message.model_extra["images"]
    assert [r.status for r in relay.requests] == [503, 200]


@pytest.mark.parametrize(
    ("fault", "native"), [("image_safety", "IMAGE_SAFETY"), ("blocked", "SAFETY")]
)
def test_content_filter(client: openai.OpenAI, fault: str, native: str) -> None:
    answer = client.chat.completions.create(
        model=FLASH, messages=_edit_messages(), extra_headers={"x-emulator-fault": fault}
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.model_extra["native_finish_reason"] == native
    assert not choice.message.model_extra.get("images")


def test_content_filter_on_images_api(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(
            model=FLASH, prompt="x", extra_headers={"x-emulator-fault": "prohibited"}
        )
    assert _error(caught.value)["code"] == "content_policy_violation"


def test_text_only_answer(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=FLASH, messages=_edit_messages(), extra_headers={"x-emulator-fault": "text_only"}
    )
    message = answer.choices[0].message
    assert "no image" in (message.content or "")
    assert not message.model_extra.get("images")


def test_validation_is_the_gemini_one(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(client, image_config={"aspect_ratio": "7:5"})
    assert "aspect_ratio must be one of" in _error(caught.value)["message"]
    with pytest.raises(openai.BadRequestError, match="Unsupported MIME type: image/gif"):
        client.chat.completions.create(
            model=FLASH,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}}
                    ],
                }
            ],
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_multi_turn_edits_the_previous_answer(client: openai.OpenAI) -> None:
    first = _chat(client).choices[0].message
    url = first.model_extra["images"][0]["image_url"]["url"]
    messages = [
        *_edit_messages(),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": first.content},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
        {"role": "user", "content": "now make it square"},
    ]
    answer = client.chat.completions.create(
        model="gemini-3-pro-image",  # thinking: the gateway keeps the signatures
        messages=messages,  # type: ignore[arg-type]
        extra_body={"modalities": ["image", "text"], "image_config": {"aspect_ratio": "1:1"}},
    )
    image = answer.choices[0].message.model_extra["images"][0]["image_url"]["url"]
    assert _size(base64.b64decode(image.split(",", 1)[1])) == (1024, 1024)
