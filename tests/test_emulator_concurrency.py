"""Concurrent requests from threads and from ``client.aio``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from _emulator_fixtures import answer_image, png_size
from google import genai
from google.genai import types

from nbbanana.emulator import Emulator

FLASH = "gemini-2.5-flash-image"
CONFIG = types.GenerateContentConfig(
    response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="4:5")
)


def test_threads(emulator: Emulator, sdk_client: genai.Client) -> None:
    prompts = [f"prompt {i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(
            pool.map(
                lambda p: answer_image(
                    sdk_client.models.generate_content(model=FLASH, contents=p, config=CONFIG)
                ),
                prompts,
            )
        )
    assert all(png_size(i) == (896, 1152) for i in images)
    assert len(set(images)) == len(prompts)
    assert sorted(r.status for r in emulator.requests) == [200] * len(prompts)


def test_async_client_with_faults_and_retries(emulator: Emulator, make_client: object) -> None:
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05, jitter=0.0)
    client: genai.Client = make_client(retry=retry)  # type: ignore[operator]
    emulator.inject("500", count=2)

    async def run() -> list[bytes]:
        calls = [
            client.aio.models.generate_content(model=FLASH, contents=f"a{i}", config=CONFIG)
            for i in range(6)
        ]
        return [answer_image(r) for r in await asyncio.gather(*calls)]

    images = asyncio.run(run())
    assert len(set(images)) == 6
    statuses = sorted(r.status or 0 for r in emulator.requests)
    assert statuses == [200] * 6 + [500, 500]


def test_async_stream_and_files(emulator: Emulator, sdk_client: genai.Client) -> None:
    import io

    from _emulator_fixtures import image_bytes

    async def run() -> tuple[int, str]:
        uploaded = await sdk_client.aio.files.upload(
            file=io.BytesIO(image_bytes()), config={"mime_type": "image/jpeg"}
        )
        chunks = [
            c
            async for c in await sdk_client.aio.models.generate_content_stream(
                model=FLASH,
                contents=[
                    "edit",
                    types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/jpeg"),
                ],
            )
        ]
        return len(chunks), str(chunks[-1].candidates[0].finish_reason)

    count, finish = asyncio.run(run())
    assert count == 2 and finish.endswith("STOP")
