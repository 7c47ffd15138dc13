"""Gemini 3 features end to end: the emulator's answers through the real SDK over HTTP,
and the same through Session/Result (thoughts, grounding, several images, sizes,
14 references), the CLI and the emulator's --models option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _client_helpers import session_for
from _emulator_fixtures import png_size
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from nbbanana import errors
from nbbanana.emulator import Emulator
from nbbanana.emulator._generate import images_asked
from nbbanana.models import MODELS, RETIRED

PRO = "gemini-3-pro-image"
NB2 = "gemini-3.1-flash-image"
SEARCH = [types.Tool(google_search=types.GoogleSearch())]


def _config(**kwargs: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"], **kwargs)


def _images(response: types.GenerateContentResponse) -> list[bytes]:
    parts = response.candidates[0].content.parts or []
    return [p.inline_data.data for p in parts if p.inline_data and not p.thought]


# --------------------------------------------------------------------------- SDK level


@pytest.mark.parametrize("retired", sorted(RETIRED))
def test_retired_ids_answer_404_with_the_service_wording(
    sdk_client: genai.Client, retired: str
) -> None:
    with pytest.raises(genai_errors.ClientError) as caught:
        sdk_client.models.generate_content(model=retired, contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert caught.value.message == (
        f"models/{retired} is not found for API version v1, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods."
    )


def test_models_list_reports_generation_methods(sdk_client: genai.Client) -> None:
    listed = {m.name: m for m in sdk_client.models.list()}
    assert set(listed) == {f"models/{i}" for i in MODELS}
    assert "generateContent" in (listed[f"models/{PRO}"].supported_actions or [])
    assert listed["models/gemini-3.1-flash-lite-image"].output_token_limit == 4096


def test_an_emulator_started_without_a_model_answers_404() -> None:
    with Emulator(models=[PRO]) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        assert [m.name for m in client.models.list()] == [f"models/{PRO}"]
        with pytest.raises(genai_errors.ClientError, match="is not found for API version"):
            client.models.generate_content(model=NB2, contents="x")
    with pytest.raises(ValueError, match="retired"):
        Emulator(models=["gemini-3-pro-image-preview"])


def test_thoughts_text_and_interim_image_when_asked(sdk_client: genai.Client) -> None:
    config = _config(thinking_config=types.ThinkingConfig(include_thoughts=True))
    response = sdk_client.models.generate_content(model=NB2, contents="a kite", config=config)
    thoughts = [p for p in response.candidates[0].content.parts if p.thought]
    assert [bool(p.text) for p in thoughts] == [True, False]
    assert thoughts[1].inline_data is not None
    assert png_size(thoughts[1].inline_data.data) != png_size(_images(response)[0])


def test_a_thinking_level_the_model_lacks_is_refused(sdk_client: genai.Client) -> None:
    config = _config(thinking_config=types.ThinkingConfig(thinking_level="HIGH"))
    with pytest.raises(genai_errors.ClientError, match="thinking_level is not supported"):
        sdk_client.models.generate_content(model=PRO, contents="x", config=config)
    ok = _config(thinking_config=types.ThinkingConfig(thinking_level="MINIMAL"))
    assert _images(sdk_client.models.generate_content(model=NB2, contents="x", config=ok))


def test_grounding_metadata_with_fake_sources(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(
        model=PRO, contents="today's weather in Lisbon as a poster", config=_config(tools=SEARCH)
    )
    meta = response.candidates[0].grounding_metadata
    assert meta is not None and meta.web_search_queries
    uris = [c.web.uri for c in meta.grounding_chunks or [] if c.web]
    assert uris and all(u.startswith("https://example.invalid/") for u in uris)
    assert all(
        "offline emulator" in (c.web.title or "") for c in meta.grounding_chunks or [] if c.web
    )
    assert meta.search_entry_point and "offline emulator" in (
        meta.search_entry_point.rendered_content or ""
    )
    plain = sdk_client.models.generate_content(model=PRO, contents="x")
    assert plain.candidates[0].grounding_metadata is None


def test_grounding_on_a_model_without_it_is_refused(sdk_client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError, match="Search Grounding is not supported"):
        sdk_client.models.generate_content(
            model="gemini-2.5-flash-image", contents="x", config=_config(tools=SEARCH)
        )


@pytest.mark.parametrize(
    ("prompt", "count"),
    [
        ("a banana", 1),
        ("three variations of a banana logo", 3),
        ("4 images of a cat, one per season", 4),
        ("two different versions of this poster", 2),
        ("twelve pictures", 1),  # not a count the emulator reads
        ("20 images", 4),  # capped
    ],
)
def test_images_asked(prompt: str, count: int) -> None:
    assert images_asked(prompt) == count


def test_several_images_when_the_prompt_asks(sdk_client: genai.Client) -> None:
    response = sdk_client.models.generate_content(
        model=NB2, contents="three variations of a banana logo", config=_config()
    )
    images = _images(response)
    assert len(images) == 3 and len(set(images)) == 3
    usage = response.usage_metadata
    assert usage is not None and usage.candidates_token_count >= 3 * 1120


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        (NB2, "512", (512, 512)),
        (NB2, "4K", (4096, 4096)),
        ("gemini-nano-banana-2.1", "2K", (2048, 2048)),
        ("gemini-3.1-flash-lite-image", "1K", (1024, 1024)),
        (PRO, "4K", (4096, 4096)),
    ],
)
def test_sizes_where_offered(
    sdk_client: genai.Client, model: str, size: str, expected: tuple[int, int]
) -> None:
    config = _config(image_config=types.ImageConfig(image_size=size))
    response = sdk_client.models.generate_content(model=model, contents="x", config=config)
    assert png_size(_images(response)[0]) == expected


@pytest.mark.parametrize(("model", "size"), [("gemini-nano-banana-2.1", "512"), (PRO, "512")])
def test_sizes_not_offered_are_refused(sdk_client: genai.Client, model: str, size: str) -> None:
    config = _config(image_config=types.ImageConfig(image_size=size))
    with pytest.raises(genai_errors.ClientError, match="image_size must be one of"):
        sdk_client.models.generate_content(model=model, contents="x", config=config)


# --------------------------------------------------------------------------- Session


@pytest.fixture(scope="module")
def shared() -> Any:
    with Emulator(seed=3) as emu:
        yield emu


def test_session_thoughts_are_kept_apart_and_not_saved(shared: Emulator, tmp_path: Path) -> None:
    session = session_for(shared.base_url, model="nano-banana-2")
    result = session.generate("a lighthouse", include_thoughts=True, thinking_level="minimal")
    assert result.model == NB2  # the alias's concrete id
    assert result.thoughts and len(result.thought_images) == 1 and len(result.images) == 1
    html = result._repr_html_()
    assert '<details class="nbbanana-thoughts"' in html and "Thoughts (2)" in html
    files = result.save(tmp_path)
    assert [p.suffix for p in files] == [".png", ".json"]
    meta = json.loads(files[-1].read_text())
    assert meta["model"] == NB2 and meta["thought_images"] == 1
    plain = session.generate("a lighthouse")
    assert not plain.thoughts and not plain.thought_images


def test_session_grounding_lists_sources_and_shows_suggestions(shared: Emulator) -> None:
    session = session_for(shared.base_url, model=PRO)
    result = session.generate("a poster of this week's top news", grounding=True)
    assert [s.url for s in result.sources] == [
        "https://example.invalid/offline-emulator/source-1",
        "https://example.invalid/offline-emulator/source-2",
    ]
    html = result._repr_html_()
    assert "<b>Sources</b>" in html and "offline emulator source 1" in html
    assert result.search_suggestions_html and result.search_suggestions_html in html
    assert "source: offline emulator source 1" in result._plain_text()
    assert result.provenance()["sources"][0]["title"] == "offline emulator source 1"


def test_session_refuses_features_before_sending(shared: Emulator) -> None:
    session = session_for(shared.base_url)  # gemini-2.5-flash-image
    before = len(shared.requests)
    with pytest.raises(errors.InvalidRequest, match="Google Search grounding"):
        session.generate("x", grounding=True)
    with pytest.raises(errors.InvalidRequest, match="does not think"):
        session.edit(Image.new("RGB", (32, 32)), "x", include_thoughts=True)
    with pytest.raises(errors.InvalidRequest, match="thinking_level"):
        session.chat(model=PRO, thinking_level="HIGH")
    assert len(shared.requests) == before


def test_session_several_images_all_saved(shared: Emulator, tmp_path: Path) -> None:
    session = session_for(shared.base_url, model=NB2)
    result = session.generate("four variations of a paper boat", image_size="512")
    assert len(result.images) == 4 and result.image is result.images[0]
    assert all(im.size == (512, 512) for im in result.images)
    files = result.save(tmp_path)
    assert [p.name for p in files[:4]] == [
        f"{result.id}.png", f"{result.id}-2.png", f"{result.id}-3.png", f"{result.id}-4.png",
    ]  # fmt: skip


def test_session_4k(shared: Emulator) -> None:
    session = session_for(shared.base_url, model=PRO)
    result = session.generate("a banana boat", aspect_ratio="16:9", image_size="4k")
    assert result.image is not None and result.image.size == (5504, 3072)
    assert result.cost_usd == pytest.approx(result.usage.cost_usd(MODELS[PRO]))


def test_session_fourteen_references(shared: Emulator) -> None:
    session = session_for(shared.base_url, model=NB2)
    refs = [Image.new("RGB", (48, 48), (10 * i, 100, 200)) for i in range(14)]
    result = session.edit(refs, "a group photo of all these objects")
    assert len(result.inputs) == 14 and result.image is not None
    before = len(shared.requests)
    with pytest.raises(errors.TooManyReferenceImages, match="at most 14"):
        session.edit([*refs, refs[0]], "too many")
    assert len(shared.requests) == before


def test_chat_with_grounding_and_thoughts(shared: Emulator) -> None:
    session = session_for(shared.base_url, model=PRO)
    chat = session.chat(include_thoughts=True, grounding=True)
    first = chat.send("a map of today's festivals")
    second = chat.branch(1).send("now in autumn colours")
    assert first.sources and first.thoughts and second.sources and second.thought_images


# --------------------------------------------------------------------------- CLI


def test_emulator_cli_models_option() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbbanana", "emulator", "--models", f"{PRO},gemini-4-flash-image"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=base_url))
        names = [m.name for m in client.models.list()]
        assert names == [f"models/{PRO}", "models/gemini-4-flash-image"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_generate_cli_with_thoughts_grounding_and_4k(
    shared: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbbanana.cli import main

    argv = ["generate", "-p", "two variations of a weather poster", "--model", "nano-banana-pro",
            "--image-size", "4K", "--thoughts", "--grounding", "--base-url", shared.base_url,
            "-o", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "gemini-3-pro-image · 4096×4096, 4096×4096" in out
    assert "thought: **Planning the image**" in out
    assert "source: offline emulator source 1 <https://example.invalid/" in out
    assert len(list(tmp_path.glob("*.png"))) == 2  # the final images, no thought image
    assert main([*argv[:4], "gemini-2.5-flash-image", "--grounding", "--base-url",
                 shared.base_url]) == 2  # fmt: skip
    assert "does not support Google Search grounding" in capsys.readouterr().err


def test_edit_cli_with_fourteen_references(
    shared: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbbanana.cli import main

    refs = []
    for i in range(15):
        path = tmp_path / f"ref{i:02d}.png"
        Image.new("RGB", (48, 48), (10 * i, 100, 200)).save(path)
        refs.append(str(path))
    base = ["edit", "-p", "a group photo of all these objects", "--model", "nano-banana-pro",
            "--base-url", shared.base_url]  # fmt: skip
    assert main([*base[:1], *refs[:14], *base[1:], "-o", str(tmp_path / "out")]) == 0
    assert "gemini-3-pro-image" in capsys.readouterr().out
    before = len(shared.requests)
    assert main([*base[:1], *refs, *base[1:], "-o", str(tmp_path / "out15")]) == 2
    assert "at most 14" in capsys.readouterr().err
    assert len(shared.requests) == before  # refused before sending
