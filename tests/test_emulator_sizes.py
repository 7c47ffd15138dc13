"""Output sizes over the wire: every aspect ratio of every model at its default size, and
every image size of every model at two ratios (PNG header only; 4K only twice per model)."""

from __future__ import annotations

import pytest
from _emulator_fixtures import answer_image, png_size
from google import genai
from google.genai import types

from nbbanana.models import MODELS

RATIOS = [(m.id, r) for m in MODELS.values() for r in m.aspect_ratios]
SIZES = [(m.id, s, r) for m in MODELS.values() for s in m.image_sizes for r in ("16:9", "9:16")]


def request(
    client: genai.Client, model: str, ratio: str, size: str | None = None
) -> tuple[int, int]:
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size),
    )
    return png_size(
        answer_image(client.models.generate_content(model=model, contents="s", config=config))
    )


@pytest.fixture(scope="module")
def client() -> object:
    from nbbanana.emulator import Emulator

    with Emulator() as emulator:
        yield genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url))


@pytest.mark.parametrize(("model", "ratio"), RATIOS)
def test_every_ratio(client: genai.Client, model: str, ratio: str) -> None:
    assert request(client, model, ratio) == MODELS[model].output_size(ratio)


@pytest.mark.parametrize(("model", "size", "ratio"), SIZES)
def test_every_image_size(client: genai.Client, model: str, size: str, ratio: str) -> None:
    expected = MODELS[model].output_size(ratio, size)
    assert request(client, model, ratio, size) == expected
    if size == "4K" and ratio == "16:9" and model == "gemini-3-pro-image":
        assert expected == (5504, 3072)  # the guide's number, checked independently
