"""The OpenAI-compatible backend against the emulator's OpenAI surface, over real HTTP with
the real ``openai`` SDK: each answer shape, exact body bytes on the wire, each error."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import openai
import pytest
from google.genai import types
from PIL import Image

from nbbanana import _openai
from nbbanana._hosted import HostedImageError, fetch_image, split_images
from nbbanana._openai import OpenAIBackend, chat_body_bytes, gemini_model_id
from nbbanana.emulator import Emulator
from nbbanana.errors import (
    AuthError,
    Blocked,
    InvalidRequest,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
)

FLASH = "gemini-2.5-flash-image"
KEY = "sk-gateway-secret-0123456789"


@dataclass(frozen=True)
class Request:  # the shape of the pipeline's BackendRequest
    model: str
    contents: Sequence[types.Content]
    config: types.GenerateContentConfig = field(default_factory=types.GenerateContentConfig)


def _png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def _noise_jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        buffer, "JPEG", quality=95
    )
    return buffer.getvalue()


def _user(prompt: str, *images: bytes, mime: str = "image/png") -> types.Content:
    parts = [types.Part(text=prompt)]
    parts += [types.Part.from_bytes(data=i, mime_type=mime) for i in images]
    return types.Content(role="user", parts=parts)


def _edit(**config: object) -> Request:
    return Request(
        FLASH,
        [_user("make it blue", _png())],
        types.GenerateContentConfig(**config),  # type: ignore[arg-type]
    )


def _images(response: types.GenerateContentResponse) -> list[bytes]:
    content = response.candidates[0].content if response.candidates else None
    parts = content.parts if content is not None else None
    return [p.inline_data.data or b"" for p in parts or [] if p.inline_data is not None]


def _texts(response: types.GenerateContentResponse) -> list[str]:
    content = response.candidates[0].content if response.candidates else None
    parts = content.parts if content is not None else None
    return [p.text for p in parts or [] if p.text]


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@pytest.fixture
def relay() -> Iterator[Emulator]:
    with Emulator(seed=5, profile="proxy-20mb") as emu:
        yield emu


def _backend(relay: Emulator, shape: str | None = None, **kw: object) -> OpenAIBackend:
    headers = {"x-emulator-openai-shape": shape} if shape else {}
    options: dict[str, object] = {"max_retries": 0, "default_headers": headers, **kw}
    return OpenAIBackend(base_url=relay.base_url + "/v1", api_key=KEY, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", ["images", "markdown", "hosted"])
def test_every_chat_shape_becomes_inline_data(relay: Emulator, shape: str) -> None:
    backend = _backend(relay, shape)
    response = backend.generate(_edit(image_config=types.ImageConfig(aspect_ratio="16:9")))
    (image,) = _images(response)
    assert _size(image) == (1344, 768)
    assert _texts(response) == [
        "Here is the edited image (1344×768, 16:9) from the offline emulator."
    ]
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert (
        usage is not None and usage.candidates_token_count and usage.candidates_token_count >= 1290
    )
    backend.close()


@pytest.mark.parametrize("shape", ["b64_json", "url"])
def test_images_api_shapes_after_falling_back_from_chat(relay: Emulator, shape: str) -> None:
    backend = _backend(relay, shape)
    response = backend.generate(_edit(image_config=types.ImageConfig(aspect_ratio="3:2")))
    assert _size(_images(response)[0]) == (1248, 832)
    assert backend.endpoint == "images"  # remembered: the next call goes there at once
    generated = backend.generate(Request(FLASH, [_user("a lighthouse")]))
    assert _size(_images(generated)[0]) == (1024, 1024)
    paths = [r.path for r in relay.requests if r.path.startswith("/v1/")]
    assert paths == ["/v1/chat/completions", "/v1/images/edits", "/v1/images/generations"]


def test_images_endpoint_chosen_up_front(relay: Emulator) -> None:
    backend = _backend(relay, endpoint="images")
    assert _images(backend.generate(_edit()))
    assert [r.path for r in relay.requests] == ["/v1/images/edits"]


def test_async_and_stream(relay: Emulator) -> None:
    backend = _backend(relay, "hosted")

    async def run() -> tuple[types.GenerateContentResponse, list[types.GenerateContentResponse]]:
        one = await backend.agenerate(_edit())
        chunks = [c async for c in backend.agenerate_stream(_edit())]
        return one, chunks

    one, chunks = asyncio.run(run())
    assert _images(one) and len(chunks) == 1 and _images(chunks[0]) == _images(one)
    assert [_images(c) for c in backend.generate_stream(_edit())] == [_images(one)]


def test_multi_turn_sends_earlier_results_as_assistant_images(relay: Emulator) -> None:
    backend = _backend(relay)
    first = backend.generate(_edit())
    history = [_edit().contents[0], first.candidates[0].content]
    assert history[1] is not None
    request = Request(
        "gemini-3-pro-image",
        [*history, _user("now square")],  # type: ignore[list-item]
        types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="1:1")),
    )
    assert _size(_images(backend.generate(request))[0]) == (1024, 1024)
    messages, _ = _openai.chat_body(request.model, request.contents, request.config)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [p["type"] for p in messages[1]["content"]] == ["text", "image_url"]


@pytest.mark.parametrize(
    "request_",
    [
        Request(FLASH, [_user("a cat")]),
        Request(FLASH, [_user('gâteau « Ünïcode » 🍌 "quoted" \\ slash/', _png())]),
        Request(FLASH, [_user("two", _noise_jpeg(400, 300), _png(), mime="image/jpeg")]),
        Request(
            "google/" + FLASH,
            [
                _user("first", _png()),
                types.Content(
                    role="model",
                    parts=[
                        types.Part(text="done"),
                        types.Part.from_bytes(data=_png(10, 10), mime_type="image/png"),
                    ],
                ),
                _user("again"),
            ],
            types.GenerateContentConfig(
                system_instruction="You are terse.",
                response_modalities=["IMAGE"],
                image_config=types.ImageConfig(aspect_ratio="21:9"),
                temperature=0.5,
            ),
        ),
    ],
    ids=["text", "unicode", "jpeg-and-png", "history-system-config"],
)
def test_body_bytes_exact_on_the_wire(relay: Emulator, request_: Request) -> None:
    backend = _backend(relay)
    backend.generate(request_)
    (record,) = relay.requests
    images = [
        len(p.inline_data.data or b"")
        for c in request_.contents
        for p in c.parts or []
        if p.inline_data is not None
    ]
    predicted = backend.body_bytes(request_.model, request_.contents, request_.config)
    assert predicted + sum(4 * -(-n // 3) for n in images) == record.body_bytes
    assert predicted == chat_body_bytes(request_.model, request_.contents, request_.config)


def test_body_bytes_of_a_large_photo(relay: Emulator) -> None:
    photo = _noise_jpeg(1400, 1000)  # ~1.5 MB of incompressible JPEG
    request = Request(FLASH, [_user("warmer", photo, mime="image/jpeg")])
    _backend(relay).generate(request)
    predicted = chat_body_bytes(FLASH, request.contents, request.config)
    assert predicted + 4 * -(-len(photo) // 3) == relay.requests[0].body_bytes


# ----------------------------------------------------------------------- answers


def test_content_filter_becomes_a_blocking_finish_reason(relay: Emulator) -> None:
    backend = _backend(relay, default_headers={"x-emulator-fault": "image_safety"})
    response = backend.generate(_edit())
    assert response.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert not _images(response)


def test_text_only_answer_keeps_the_text(relay: Emulator) -> None:
    backend = _backend(relay, default_headers={"x-emulator-fault": "text_only"})
    response = backend.generate(_edit())
    assert not _images(response) and "no image" in _texts(response)[0]


def test_markdown_split_keeps_surrounding_text() -> None:
    url = "data:image/png;base64," + base64.b64encode(_png()).decode()
    text, urls = split_images(f"Before.\n\n![img]({url})\n\nAfter. https://example.com/page")
    assert urls == [url] and text == "Before.\n\n\n\nAfter. https://example.com/page"
    text, urls = split_images(f"bare {url} end")
    assert urls == [url] and text == "bare  end"


# ----------------------------------------------------------------------- errors


def _mapped(backend: OpenAIBackend, request: Request) -> BaseException:
    with pytest.raises(openai.OpenAIError) as caught:
        backend.generate(request)
    error = backend.map_error(caught.value)
    assert error is not None and error.sdk_error is caught.value  # type: ignore[attr-defined]
    return error


def test_bad_key_is_an_auth_error_that_names_openai_api_key(relay: Emulator) -> None:
    backend = OpenAIBackend(
        base_url=relay.base_url + "/v1", api_key="invalid-" + KEY, max_retries=0
    )
    error = _mapped(backend, _edit())
    assert isinstance(error, AuthError) and "OPENAI_API_KEY" in str(error)
    assert KEY not in str(error) and KEY not in repr(backend)


def test_rate_limit_keeps_the_servers_delay(relay: Emulator) -> None:
    backend = _backend(relay, default_headers={"x-emulator-fault": "429;retry=9"})
    error = _mapped(backend, _edit())
    assert isinstance(error, RateLimited) and error.retry_after == 9.0


def test_too_large_learns_the_limit(relay: Emulator) -> None:
    error = _mapped(_backend(relay), Request(FLASH, [_user("x" * 20_000_001)]))
    assert isinstance(error, RequestTooLarge) and error.limit_bytes == 20_000_000
    assert error.code == 413 and "no Files API" in str(error)


def test_unknown_model_is_invalid_request(relay: Emulator) -> None:
    error = _mapped(_backend(relay), Request("gpt-image-1", [_user("x")]))
    assert isinstance(error, InvalidRequest) and "base_url ends with /v1" in str(error)


def test_bad_parameter_is_invalid_request(relay: Emulator) -> None:
    error = _mapped(_backend(relay), _edit(image_config=types.ImageConfig(aspect_ratio="7:5")))
    assert isinstance(error, InvalidRequest) and "aspect_ratio must be one of" in str(error)


def test_server_errors_are_retried_then_service_unavailable(relay: Emulator) -> None:
    relay.inject("503", count=2)
    backend = _backend(relay, max_retries=1)
    error = _mapped(backend, _edit())
    assert isinstance(error, ServiceUnavailable) and error.code == 503
    assert [r.status for r in relay.requests] == [503, 503]
    assert _images(backend.generate(_edit()))  # and the next one goes through


def test_timeout_is_service_unavailable(relay: Emulator) -> None:
    backend = _backend(
        relay, timeout=0.5, default_headers={"x-emulator-fault": "timeout;seconds=3"}
    )
    error = _mapped(backend, _edit())
    assert isinstance(error, ServiceUnavailable) and "timeout=" in str(error)


def test_unreachable_gateway_is_service_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
    error = _mapped(backend, _edit())
    assert isinstance(error, ServiceUnavailable) and "base_url" in str(error)


def test_images_api_content_filter_is_blocked(relay: Emulator) -> None:
    backend = _backend(relay, endpoint="images", default_headers={"x-emulator-fault": "prohibited"})
    error = _mapped(backend, _edit())
    assert isinstance(error, Blocked) and error.reason == "content_policy_violation"


def test_other_exceptions_are_not_mapped(relay: Emulator) -> None:
    assert _backend(relay).map_error(ValueError("a bug")) is None


def test_key_from_environment_or_a_clear_error(
    relay: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        OpenAIBackend(base_url=relay.base_url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert _images(OpenAIBackend(base_url=relay.base_url + "/v1", max_retries=0).generate(_edit()))


def test_no_files_api(relay: Emulator) -> None:
    backend = _backend(relay)
    assert backend.files_api is False
    with pytest.raises(InvalidRequest, match="no Files API"):
        backend.upload(object())
    uri = types.Content(
        role="user", parts=[types.Part.from_uri(file_uri="files/x", mime_type="image/png")]
    )
    with pytest.raises(InvalidRequest, match="fit it smaller"):
        backend.body_bytes(FLASH, [uri], None)


# ----------------------------------------------------------------------- downloads


def _hosted_url(relay: Emulator) -> str:
    response = _backend(relay, "hosted").client.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "a cat"}]
    )
    content = response.choices[0].message.content or ""
    return content.split("](", 1)[1].rstrip(")")


def test_fetch_image_caps_size_and_scheme(relay: Emulator) -> None:
    url = _hosted_url(relay)
    data, mime = fetch_image(url)
    assert mime == "image/png" and _size(data) == (1024, 1024)
    with pytest.raises(HostedImageError, match="cap"):
        fetch_image(url, limit=1000)
    for bad in ("file:///etc/passwd", "ftp://example.com/a.png"):
        with pytest.raises(HostedImageError, match="http"):
            fetch_image(bad)
    with pytest.raises(HostedImageError, match="HTTP 404"):
        fetch_image(url.replace(".png", "0.png"))


def test_download_failure_maps_to_service_unavailable(relay: Emulator) -> None:
    backend = _backend(relay, "hosted", fetch_limit=1000)
    with pytest.raises(HostedImageError) as caught:
        backend.generate(_edit())
    error = backend.map_error(caught.value)
    assert isinstance(error, ServiceUnavailable) and "could not be fetched" in str(error)


def test_gemini_model_id() -> None:
    assert gemini_model_id("google/gemini-2.5-flash-image") == FLASH
    assert gemini_model_id("gemini-2.5-flash-image:free") == FLASH
    assert gemini_model_id("vendor/some-other-model") is None
