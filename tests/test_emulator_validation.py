"""Every refusal the emulator imitates: status code, status name, message and details,
as the real SDK surfaces them (``errors.ClientError``)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from _emulator_fixtures import image_bytes
from google import genai
from google.genai import errors, types

from nbbanana.emulator import Emulator
from nbbanana.models import get_model, parse_limit_from_message

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"


def refused(
    client: genai.Client, contents: object, *, model: str = FLASH, **image: str
) -> errors.ClientError:
    cfg = types.GenerateContentConfig(image_config=types.ImageConfig(**image)) if image else None
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=model, contents=contents, config=cfg)
    return info.value


def raw(emulator: Emulator, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        emulator.base_url + path, data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_unknown_model(sdk_client: genai.Client) -> None:
    error = refused(sdk_client, "x", model="gemini-0-nope")
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message.startswith("models/gemini-0-nope is not found for API version v1,")
    assert "Call ListModels" in error.message


def test_bad_aspect_ratio(sdk_client: genai.Client) -> None:
    error = refused(sdk_client, "x", aspect_ratio="7:3")
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == (
        "* GenerateContentRequest.generation_config.image_config.aspect_ratio: aspect_ratio "
        "must be one of '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', or '21:9'.\n"
    )


def test_extra_ratio_of_one_model_is_refused_by_another(sdk_client: genai.Client) -> None:
    assert "1:4" in get_model("gemini-3.1-flash-image").aspect_ratios
    assert refused(sdk_client, "x", aspect_ratio="1:4").code == 400


@pytest.mark.parametrize(("model", "size"), [(FLASH, "1K"), (PRO, "512"), (PRO, "1k"), (PRO, "8K")])
def test_image_size_not_supported_by_model(sdk_client: genai.Client, model: str, size: str) -> None:
    error = refused(sdk_client, "x", model=model, image_size=size)
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message.startswith(
        "* GenerateContentRequest.generation_config.image_config.image_size:"
    )
    for supported in get_model(model).image_sizes:
        assert f"'{supported}'" in error.message


def test_too_many_reference_images(sdk_client: genai.Client) -> None:
    limit = get_model(FLASH).max_reference_images
    parts = [types.Part.from_bytes(data=image_bytes(16, 16), mime_type="image/jpeg")] * (limit + 1)
    error = refused(sdk_client, ["combine", *parts])
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert str(limit) in error.message
    # exactly the limit is fine
    ok = sdk_client.models.generate_content(model=FLASH, contents=["combine", *parts[:limit]])
    assert ok.candidates


def test_bad_base64(emulator: Emulator) -> None:
    body = {
        "contents": [
            {
                "parts": [
                    {"text": "x"},
                    {"inlineData": {"mimeType": "image/png", "data": "@@not base64@@"}},
                ]
            }
        ]
    }
    status, payload = raw(
        emulator,
        f"/v1beta/models/{FLASH}:generateContent",
        json.dumps(body).encode(),
        {"x-goog-api-key": "k"},
    )
    error = json.loads(payload)["error"]
    assert (status, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith(
        "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 decoding failed"
    )
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


@pytest.mark.parametrize(
    ("fmt", "mime"), [("GIF", "image/gif"), ("TIFF", "image/tiff"), ("BMP", "image/bmp")]
)
def test_unsupported_mime_type(sdk_client: genai.Client, fmt: str, mime: str) -> None:
    part = types.Part.from_bytes(data=image_bytes(16, 16, fmt), mime_type=mime)
    error = refused(sdk_client, ["x", part])
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == f"Unsupported MIME type: {mime}"


def test_undecodable_image(sdk_client: genai.Client) -> None:
    part = types.Part.from_bytes(data=b"this is not a jpeg", mime_type="image/jpeg")
    error = refused(sdk_client, ["x", part])
    assert error.code == 400 and error.message.startswith("Unable to process input image.")


def test_webp_and_png_inputs_are_accepted(sdk_client: genai.Client) -> None:
    for fmt, mime in (("WEBP", "image/webp"), ("PNG", "image/png")):
        part = types.Part.from_bytes(data=image_bytes(20, 10, fmt), mime_type=mime)
        response = sdk_client.models.generate_content(model=FLASH, contents=["x", part])
        assert response.candidates


def test_invalid_json(emulator: Emulator) -> None:
    status, payload = raw(
        emulator, f"/v1/models/{FLASH}:generateContent", b"{not json", {"x-goog-api-key": "k"}
    )
    assert status == 400 and json.loads(payload)["error"]["status"] == "INVALID_ARGUMENT"


def test_empty_contents(emulator: Emulator) -> None:
    status, payload = raw(
        emulator,
        f"/v1/models/{FLASH}:generateContent",
        b'{"contents": []}',
        {"x-goog-api-key": "k"},
    )
    assert status == 400 and "contents" in json.loads(payload)["error"]["message"]


# ----------------------------------------------------------------------------- keys


def test_missing_key_is_403(emulator: Emulator) -> None:
    status, payload = raw(
        emulator, f"/v1beta/models/{FLASH}:generateContent", b'{"contents": "x"}', {}
    )
    error = json.loads(payload)["error"]
    assert (status, error["code"], error["status"]) == (403, 403, "PERMISSION_DENIED")
    assert error["message"].startswith("Method doesn't allow unregistered callers")


def test_invalid_key_via_sdk(make_client: object) -> None:
    client = make_client(api_key="invalid-key-for-tests")  # type: ignore[operator]
    error = refused(client, "x")
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "API key not valid. Please pass a valid API key."
    reasons = [d.get("reason") for d in error.details["error"]["details"]]
    assert "API_KEY_INVALID" in reasons


def test_key_set_and_query_parameter() -> None:
    with Emulator(api_keys={"good-key"}) as emulator:
        good = genai.Client(
            api_key="good-key", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        assert good.models.get(model=FLASH).name == f"models/{FLASH}"
        bad = genai.Client(
            api_key="other-key", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        with pytest.raises(errors.ClientError) as info:
            bad.models.get(model=FLASH)
        assert info.value.code == 400
        status, _ = raw(
            emulator,
            f"/v1/models/{FLASH}:countTokens?key=good-key",
            b'{"contents": [{"parts": [{"text": "hi"}]}]}',
            {},
        )
        assert status == 200
        assert all("key" not in r.path for r in emulator.requests), "keys never recorded"


# --------------------------------------------------------------------------- limits


def test_request_limit_refuses_before_reading_the_body() -> None:
    with Emulator(request_limit=20_000) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        big = types.Part.from_bytes(data=b"\xff" * 30_000, mime_type="image/jpeg")
        error = refused(client, ["x", big])
        assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
        assert error.message == "Request payload size exceeds the limit: 20000 bytes."
        assert parse_limit_from_message(error.message) == 20_000
        assert emulator.requests[-1].status == 400 and emulator.requests[-1].body_bytes > 20_000
        # the connection stays usable after a drained refusal
        assert client.models.generate_content(model=FLASH, contents="small").candidates


def test_gemini_2025_profile_names_its_limit() -> None:
    with Emulator(profile="gemini-2025", request_limit=1000) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        error = refused(client, "x" * 2000)
        assert error.message == "Request payload size exceeds the limit: 1000 bytes."
    with Emulator(profile="gemini-2025") as emulator:
        assert emulator.request_limit == 20_000_000


def test_proxy_profile_answers_413_in_its_own_words() -> None:
    with Emulator(profile="proxy-20mb", request_limit=1000) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        error = refused(client, "x" * 2000)
        assert error.code == 413
        assert "file size exceeds maximum allowed size: 20MB" in error.message
        assert parse_limit_from_message(error.message) == 20_000_000
        # no Files API behind a relay
        with pytest.raises(errors.ClientError) as info:
            client.files.list()
        assert info.value.code == 404


def test_vertex_profile_per_image_limit() -> None:
    with Emulator(profile="vertex") as emulator:
        limit = emulator.profile.per_image_limit
        assert limit is not None
        body = {
            "contents": [
                {
                    "parts": [
                        {"text": "x"},
                        {"inlineData": {"mimeType": "image/jpeg", "data": "A" * (limit + 4)}},
                    ]
                }
            ]
        }
        status, payload = raw(
            emulator,
            f"/v1/models/{FLASH}:generateContent",
            json.dumps(body).encode(),
            {"x-goog-api-key": "k"},
        )
        assert status == 400
        assert "maximum inline image size is 7 MB" in json.loads(payload)["error"]["message"]
        small = base64.b64encode(image_bytes(8, 8)).decode()
        body["contents"][0]["parts"][1]["inlineData"]["data"] = small  # type: ignore[index]
        status, _ = raw(
            emulator,
            f"/v1/models/{FLASH}:generateContent",
            json.dumps(body).encode(),
            {"x-goog-api-key": "k"},
        )
        assert status == 200


def test_chunked_request_body_is_read(emulator: Emulator) -> None:
    import http.client

    host, port = emulator.base_url.removeprefix("http://").split(":")
    body = json.dumps({"contents": [{"parts": [{"text": "sixteen chars!!!"}]}]}).encode()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "POST",
        f"/v1/models/{FLASH}:countTokens",
        body=iter([body[:7], body[7:]]),
        headers={"x-goog-api-key": "k", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    answer = connection.getresponse()
    assert answer.status == 200 and json.loads(answer.read())["totalTokens"] == 4
    connection.close()


def test_heic_input_is_accepted(sdk_client: genai.Client) -> None:
    import io

    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 200, 0)).save(out, format="HEIF")
    part = types.Part.from_bytes(data=out.getvalue(), mime_type="image/heic")
    response = sdk_client.models.generate_content(
        model=FLASH,
        contents=[part, "what is it?"],
        config=types.GenerateContentConfig(response_modalities=["TEXT"]),
    )
    assert "64×48" in response.text and "green" in response.text


def test_stream_without_sse_is_one_json_array(emulator: Emulator) -> None:
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}]}).encode()
    status, payload = raw(
        emulator, f"/v1/models/{FLASH}:streamGenerateContent", body, {"x-goog-api-key": "k"}
    )
    chunks = json.loads(payload)
    assert status == 200 and isinstance(chunks, list) and len(chunks) == 2
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
