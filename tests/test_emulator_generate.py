"""generateContent, streaming, countTokens and models, through the real SDK over HTTP."""

from __future__ import annotations

import io
import json
import math
import urllib.error
import urllib.request

import pytest
from _emulator_fixtures import answer_image, image_bytes, png_size
from google import genai
from google.genai import errors, types
from PIL import Image

from nbbanana.emulator import Emulator
from nbbanana.models import MODELS, get_model

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"


def config(**image: str) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(image_config=types.ImageConfig(**image))


def test_generate_is_square_png_with_text_usage_and_ids(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(model=FLASH, contents="a lighthouse at dusk")
    assert png_size(answer_image(response)) == (1024, 1024)
    assert response.text and "offline emulator" in response.text
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert response.model_version == FLASH
    assert response.response_id
    usage = response.usage_metadata
    text_tokens = math.ceil(len("a lighthouse at dusk") / 4)
    assert usage.prompt_token_count == text_tokens
    reply_tokens = math.ceil(len(response.text) / 4)
    assert usage.candidates_token_count == 1290 + reply_tokens
    assert usage.total_token_count == text_tokens + 1290 + reply_tokens
    by_modality = {d.modality.value: d.token_count for d in usage.candidates_tokens_details}
    assert by_modality == {"IMAGE": 1290, "TEXT": reply_tokens}


def test_same_request_same_image_and_other_prompt_other_image(sdk_client: genai.Client) -> None:
    first = answer_image(sdk_client.models.generate_content(model=FLASH, contents="a red fox"))
    again = answer_image(sdk_client.models.generate_content(model=FLASH, contents="a red fox"))
    other = answer_image(sdk_client.models.generate_content(model=FLASH, contents="a blue fox"))
    assert first == again
    assert first != other


def test_server_seed_changes_images(make_client: object) -> None:
    with Emulator(seed=1) as a, Emulator(seed=2) as b:
        images = []
        for emu in (a, b):
            client = genai.Client(
                api_key="k", http_options=types.HttpOptions(base_url=emu.base_url)
            )
            images.append(answer_image(client.models.generate_content(model=FLASH, contents="x")))
    assert images[0] != images[1]


def test_edit_keeps_input_ratio_and_uses_the_input(sdk_client: genai.Client) -> None:
    photo = image_bytes(400, 300, colour=(10, 20, 230))
    response = sdk_client.models.generate_content(
        model=FLASH,
        contents=["make it warmer", types.Part.from_bytes(data=photo, mime_type="image/jpeg")],
    )
    data = answer_image(response)
    assert png_size(data) == (1184, 864)  # 4:3 is the closest supported ratio to 400×300
    centre = Image.open(io.BytesIO(data)).convert("RGB").getpixel((592, 432))
    assert centre[2] > centre[0], "the edit derives from the (blue) input"
    assert "edited" in (response.text or "")
    # one 400×300 image: 258 tokens (one tile); text: ⌈14/4⌉
    assert response.usage_metadata.prompt_token_count == 258 + 4


def test_edit_with_explicit_ratio_and_pro_sizes(sdk_client: genai.Client) -> None:
    photo = image_bytes(300, 300)
    response = sdk_client.models.generate_content(
        model=PRO,
        contents=[types.Part.from_bytes(data=photo, mime_type="image/jpeg"), "wider"],
        config=config(aspect_ratio="16:9", image_size="2K"),
    )
    assert png_size(answer_image(response)) == (2752, 1536)
    usage = response.usage_metadata
    assert usage.prompt_token_count == 1120 + 2  # Gemini 3: fixed 1120 per image
    assert usage.thoughts_token_count and usage.thoughts_token_count > 0


def test_thinking_model_returns_thoughts_and_signatures(sdk_client: genai.Client) -> None:
    asked = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    response = sdk_client.models.generate_content(model=PRO, contents="a banana", config=asked)
    parts = response.candidates[0].content.parts
    thoughts = [p for p in parts if p.thought]
    assert any(p.text for p in thoughts), "a thought text part"
    assert any(p.inline_data for p in thoughts), "an interim thought image"
    final_image = [p for p in parts if p.inline_data and not p.thought]
    assert final_image[0].thought_signature
    assert png_size(final_image[0].inline_data.data) == (1024, 1024)


def test_thoughts_come_only_when_asked(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(model=PRO, contents="a banana")
    parts = response.candidates[0].content.parts
    assert not any(p.thought for p in parts)
    assert next(p for p in parts if p.inline_data).thought_signature
    assert response.usage_metadata.thoughts_token_count  # it thought all the same


def test_non_thinking_model_has_no_thoughts(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(model=FLASH, contents="x")
    assert not any(p.thought for p in response.candidates[0].content.parts)
    assert response.usage_metadata.thoughts_token_count is None


def test_image_only_modality(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(
        model=FLASH, contents="x", config=types.GenerateContentConfig(response_modalities=["IMAGE"])
    )
    parts = response.candidates[0].content.parts
    assert len(parts) == 1 and parts[0].inline_data is not None


def test_describe_answers_text_from_the_image(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(
        model=FLASH,
        contents=[
            types.Part.from_bytes(
                data=image_bytes(640, 480, "PNG", (20, 160, 60)), mime_type="image/png"
            ),
            "Describe this image.",
        ],
        config=types.GenerateContentConfig(response_modalities=["TEXT"]),
    )
    parts = response.candidates[0].content.parts
    assert all(p.inline_data is None for p in parts)
    assert "640×480" in response.text and "green" in response.text
    assert response.usage_metadata.candidates_tokens_details[0].modality.value != "IMAGE"


def test_chat_keeps_signatures_and_edits_the_previous_image(sdk_client: genai.Client) -> None:
    chat = sdk_client.chats.create(model=PRO, config=config(aspect_ratio="3:2"))
    first = chat.send_message("a cat")
    second = chat.send_message("now make it violet")
    assert png_size(answer_image(first)) == (1264, 848)
    assert png_size(answer_image(second)) == (1264, 848)
    assert answer_image(first) != answer_image(second)
    history = chat.get_history()
    assert [c.role for c in history] == ["user", "model", "user", "model"]


def test_history_image_without_signature_is_refused(emulator: Emulator) -> None:
    png = image_bytes(32, 32, "PNG")
    import base64

    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "a cat"}]},
            {
                "role": "model",
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "image/png",
                            "data": base64.b64encode(png).decode(),
                        }
                    }
                ],
            },
            {"role": "user", "parts": [{"text": "blue"}]},
        ]
    }
    status, payload = post(emulator, f"/v1beta/models/{PRO}:generateContent", body)
    assert status == 400
    assert "thought_signature" in payload["error"]["message"]


def test_streaming_sends_sse_events(sdk_client: genai.Client) -> None:
    asked = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    chunks = list(
        sdk_client.models.generate_content_stream(model=PRO, contents="a boat", config=asked)
    )
    assert len(chunks) >= 3
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    images = [
        p for c in chunks for p in c.candidates[0].content.parts if p.inline_data and not p.thought
    ]
    assert len(images) == 1 and png_size(images[0].inline_data.data) == (1024, 1024)
    assert chunks[-1].usage_metadata.candidates_token_count >= 1120


def test_streaming_error_before_the_stream(sdk_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        list(sdk_client.models.generate_content_stream(model="no-such-model", contents="x"))
    assert info.value.code == 404


def test_count_tokens(sdk_client: genai.Client) -> None:
    result = sdk_client.models.count_tokens(
        model=FLASH,
        contents=[
            "twelve chars",
            types.Part.from_bytes(data=image_bytes(1000, 800), mime_type="image/jpeg"),
        ],
    )
    assert result.total_tokens == 3 + get_model(FLASH).input_image_tokens(1000, 800)
    assert get_model(FLASH).input_image_tokens(1000, 800) == 258 * 4


def test_models_list_pages_and_get(sdk_client: genai.Client) -> None:
    pager = sdk_client.models.list(config={"page_size": 2})
    assert len(pager.page) == 2
    names = [m.name for m in pager]
    assert names == [f"models/{m}" for m in MODELS]
    model = sdk_client.models.get(model=PRO)
    assert model.display_name == "Nano Banana Pro"
    assert "generateContent" in (model.supported_actions or [])
    with pytest.raises(errors.ClientError) as info:
        sdk_client.models.get(model="gemini-9-ultra")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_both_api_versions(make_client: object, version: str) -> None:
    client = make_client(version=version)  # type: ignore[operator]
    response = client.models.generate_content(
        model=FLASH, contents="x", config=config(aspect_ratio="9:16")
    )
    assert png_size(answer_image(response)) == (768, 1344)


# ------------------------------------------------------------------ raw HTTP helpers


def post(
    emulator: Emulator, path: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    """A plain HTTP POST (for what the SDK cannot send, e.g. no key at all)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        emulator.base_url + path,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "x-goog-api-key": "k", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_system_instruction_counts_as_prompt_text(sdk_client: genai.Client) -> None:
    config = types.GenerateContentConfig(system_instruction="Paint in watercolour.")  # 21 chars
    response = sdk_client.models.generate_content(model=FLASH, contents="a boat", config=config)
    assert response.usage_metadata.prompt_token_count == math.ceil(21 / 4) + math.ceil(6 / 4)


def test_shared_emulator_is_one_running_instance() -> None:
    from nbbanana.emulator import OFFLINE_API_KEY, shared_emulator

    first = shared_emulator()
    assert shared_emulator() is first and first.running
    client = genai.Client(
        api_key=OFFLINE_API_KEY, http_options=types.HttpOptions(base_url=first.base_url)
    )
    assert client.models.get(model=FLASH).name == f"models/{FLASH}"
    assert OFFLINE_API_KEY not in repr(first)
