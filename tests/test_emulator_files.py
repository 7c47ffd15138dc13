"""The Files API as the SDK speaks it: resumable (and chunked) uploads, get, list, delete,
``fileData`` references, expiry, and downloads of generated files."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from _emulator_fixtures import answer_image, image_bytes, png_size
from google import genai
from google.genai import errors, types

from nbbanana.emulator import Emulator

FLASH = "gemini-2.5-flash-image"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def upload(
    client: genai.Client, data: bytes, mime: str = "image/jpeg", **config: str
) -> types.File:
    return client.files.upload(file=io.BytesIO(data), config={"mime_type": mime, **config})


def test_upload_get_list_delete(emulator: Emulator, sdk_client: genai.Client) -> None:
    data = image_bytes(300, 200)
    uploaded = upload(sdk_client, data, display_name="red square")
    assert uploaded.name and uploaded.name.startswith("files/")
    assert uploaded.size_bytes == len(data)
    assert uploaded.mime_type == "image/jpeg"
    assert uploaded.display_name == "red square"
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.source == types.FileSource.UPLOADED
    assert uploaded.uri == f"{emulator.base_url}/v1/{uploaded.name}"
    assert uploaded.expiration_time and uploaded.create_time
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 48 * 3600
    assert uploaded.sha256_hash  # base64 of the hex digest, as the service writes it

    fetched = sdk_client.files.get(name=uploaded.name)
    assert fetched.uri == uploaded.uri and fetched.size_bytes == len(data)

    second = upload(sdk_client, image_bytes(10, 10))
    pager = sdk_client.files.list(config={"page_size": 1})
    assert len(pager.page) == 1
    assert {f.name for f in pager} == {uploaded.name, second.name}

    sdk_client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as info:
        sdk_client.files.get(name=uploaded.name)
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")
    assert "may not exist" in info.value.message
    # the upload itself went start → upload, finalize; the SDK sends no key on the second
    paths = [r.path for r in emulator.requests[:2]]
    assert paths == ["/upload/v1/files", "/upload/v1/files"]


def test_upload_from_path_and_requested_name(tmp_path: object, sdk_client: genai.Client) -> None:
    path = os.path.join(str(tmp_path), "photo.png")
    with open(path, "wb") as out:
        out.write(image_bytes(20, 20, "PNG"))
    uploaded = sdk_client.files.upload(file=path, config={"name": "myphoto"})
    assert uploaded.name == "files/myphoto" and uploaded.mime_type == "image/png"
    with pytest.raises(errors.ClientError) as info:
        sdk_client.files.upload(file=path, config={"name": "myphoto"})
    assert info.value.code == 409


def test_large_upload_goes_in_8_mib_chunks(emulator: Emulator, sdk_client: genai.Client) -> None:
    data = os.urandom(8 * 1024 * 1024 + 1000)
    uploaded = upload(sdk_client, data, mime="application/octet-stream")
    assert uploaded.size_bytes == len(data)
    chunks = [r for r in emulator.requests if r.path == "/upload/v1/files"][1:]
    assert [r.body_bytes for r in chunks] == [8 * 1024 * 1024, 1000]
    assert uploaded.sha256_hash
    import base64

    assert base64.b64decode(uploaded.sha256_hash).decode() == hashlib.sha256(data).hexdigest()


def test_file_data_reference_is_resolved(sdk_client: genai.Client) -> None:
    uploaded = upload(sdk_client, image_bytes(900, 300, colour=(0, 0, 255)))
    response = sdk_client.models.generate_content(
        model=FLASH,
        contents=[
            "make it pop",
            types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/jpeg"),
        ],
    )
    assert png_size(answer_image(response)) == (1536, 672)  # 3:1 input → closest is 21:9
    # two 768-px tiles wide, one high
    assert response.usage_metadata.prompt_token_count == 2 * 258 + 3
    described = sdk_client.models.generate_content(
        model=FLASH,
        contents=[
            types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/jpeg"),
            "what is it?",
        ],
        config=types.GenerateContentConfig(response_modalities=["TEXT"]),
    )
    assert "900×300" in described.text and "blue" in described.text


def test_unknown_file_reference_is_403(sdk_client: genai.Client, emulator: Emulator) -> None:
    part = types.Part.from_uri(
        file_uri=f"{emulator.base_url}/v1beta/files/doesnotexist", mime_type="image/png"
    )
    with pytest.raises(errors.ClientError) as info:
        sdk_client.models.generate_content(model=FLASH, contents=["x", part])
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")


def test_files_expire_after_48_hours() -> None:
    clock = Clock()
    with Emulator(clock=clock) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        uploaded = upload(client, image_bytes())
        clock.now += 48 * 3600 - 1
        assert client.files.get(name=uploaded.name).name == uploaded.name
        clock.now += 1
        with pytest.raises(errors.ClientError) as info:
            client.files.get(name=uploaded.name)
        assert info.value.code == 403
        part = types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/jpeg")
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model=FLASH, contents=["x", part])
        assert list(client.files.list()) == []


def test_unsupported_mime_in_a_file_reference(sdk_client: genai.Client) -> None:
    out = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(out, "GIF")
    uploaded = upload(sdk_client, out.getvalue(), mime="image/gif")
    with pytest.raises(errors.ClientError) as info:
        sdk_client.models.generate_content(
            model=FLASH,
            contents=["x", types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/gif")],
        )
    assert info.value.message == "Unsupported MIME type: image/gif"


def test_uploaded_files_cannot_be_downloaded(sdk_client: genai.Client) -> None:
    uploaded = upload(sdk_client, image_bytes())
    with pytest.raises(ValueError, match="Only generated files"):
        sdk_client.files.download(file=uploaded)  # the SDK refuses before asking
    with pytest.raises(errors.ClientError) as info:
        sdk_client.files.download(file=uploaded.name)
    assert info.value.code == 400
