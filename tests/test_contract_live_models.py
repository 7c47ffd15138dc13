"""The model table's contract (reference §12): the same assertions against the emulator
and, with ``GEMINI_API_KEY``, against the real service (``pytest -m live``).

The first run with a key confirms or corrects the table: which ids the service lists,
that a retired id answers 404, that grounding and thoughts come back in the documented
shape, that fourteen references are taken, and that every size gives the documented
pixels. It generates about a dozen
images (roughly $1.50 at the table's prices).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from _live_helpers import TARGETS, Target, final_images, open_target
from google.genai import errors, types
from PIL import Image

from nbbanana import discovery
from nbbanana.models import MODELS, RETIRED

PRO = "gemini-3-pro-image"
IMAGE = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])


@pytest.fixture(params=TARGETS, scope="module")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with open_target(request.param) as opened:
        yield opened


def test_discovery_lists_the_tables_current_ids(target: Target) -> None:
    base_url, client = target
    catalogue = discovery.discover(client, base_url, refresh=True, persist=False)
    listed = {m.id for m in catalogue.listed}
    expected = {i for i, info in MODELS.items() if not info.reported_retired}
    assert expected <= listed, f"not listed: {sorted(expected - listed)}"
    assert not set(RETIRED) & listed, f"retired but listed: {sorted(set(RETIRED) & listed)}"
    for model in catalogue.listed:
        if model.id in MODELS:
            assert "generateContent" in model.methods


@pytest.mark.parametrize("retired", ["gemini-3-pro-image-preview"])
def test_a_retired_id_answers_404(target: Target, retired: str) -> None:
    _, client = target
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=retired, contents="hello")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert info.value.message.startswith(f"models/{retired} is not found for API version")


def test_grounding_returns_sources_and_suggestions(target: Target) -> None:
    _, client = target
    config = IMAGE.model_copy(update={"tools": [types.Tool(google_search=types.GoogleSearch())]})
    response = client.models.generate_content(
        model=PRO,
        contents="A small infographic of yesterday's weather in Lisbon.",
        config=config,
    )
    meta = response.candidates[0].grounding_metadata
    assert meta is not None
    assert any(c.web and c.web.uri for c in meta.grounding_chunks or [])
    assert meta.search_entry_point and meta.search_entry_point.rendered_content


def test_thoughts_come_when_asked(target: Target) -> None:
    _, client = target
    config = IMAGE.model_copy(
        update={"thinking_config": types.ThinkingConfig(include_thoughts=True)}
    )
    response = client.models.generate_content(
        model=PRO, contents="A paper boat on a pond.", config=config
    )
    parts = response.candidates[0].content.parts or []
    assert any(p.thought and p.text for p in parts)
    assert final_images(response)
    assert response.usage_metadata and response.usage_metadata.thoughts_token_count


@pytest.mark.parametrize(
    ("model", "size"),
    [(m.id, size) for m in MODELS.values() if not m.reported_retired for size in m.image_sizes],
)
def test_each_size_gives_the_documented_pixels(target: Target, model: str, size: str) -> None:
    _, client = target
    config = IMAGE.model_copy(
        update={"image_config": types.ImageConfig(aspect_ratio="1:1", image_size=size)}
    )
    response = client.models.generate_content(
        model=model, contents="A single yellow banana on white.", config=config
    )
    (image, *_) = final_images(response)
    # Pillow reads the size whatever the format (the service may answer JPEG or PNG).
    assert Image.open(io.BytesIO(image)).size == MODELS[model].output_size("1:1", size)


def test_fourteen_references_are_taken(target: Target) -> None:
    _, client = target
    refs = []
    for i in range(14):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (18 * i, 120, 200 - 10 * i)).save(buffer, "PNG")
        refs.append(types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png"))
    response = client.models.generate_content(
        model=PRO,
        contents=[*refs, "One poster with a small square of each of these fourteen colours."],
        config=IMAGE,
    )
    assert final_images(response)
