"""Result: parsing a response, display, and saving with provenance (no server needed)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from google.genai import types
from PIL import Image

from nbbanana.models import get_model
from nbbanana.result import InputRef, Result, Usage


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _response(parts: list[types.Part], **usage: int) -> types.GenerateContentResponse:
    return types.GenerateContentResponse(
        candidates=[
            types.Candidate(
                content=types.Content(role="model", parts=parts),
                finish_reason=types.FinishReason.STOP,
            )
        ],
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=usage.get("prompt", 300),
            candidates_token_count=usage.get("output", 1300),
            candidates_tokens_details=[
                types.ModalityTokenCount(modality=types.MediaModality.IMAGE, token_count=1290),
                types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=10),
            ],
            thoughts_token_count=usage.get("thoughts", 0),
            total_token_count=usage.get("total", 1600),
        ),
        model_version="gemini-2.5-flash-image",
        response_id="resp-1",
    )


def _result(parent: Result | None = None, *, color: tuple[int, int, int] = (200, 30, 30)) -> Result:
    response = _response(
        [
            types.Part(text="thinking about it", thought=True),
            types.Part(
                inline_data=types.Blob(data=_png((0, 0, 255)), mime_type="image/png"), thought=True
            ),
            types.Part(text="Here it is."),
            types.Part.from_bytes(data=_png(color), mime_type="image/png"),
        ]
    )
    ref = InputRef(
        name="cat.jpg",
        source_sha256="ab" * 32,
        size=(64, 48),
        mime="image/jpeg",
        sent_bytes=1234,
        sent_sha256="cd" * 32,
        thumbnail=Image.new("RGB", (32, 24), (10, 200, 10)),
    )
    return Result.from_response(
        response,
        model=get_model("gemini-2.5-flash-image"),
        prompt='Make it <b>red</b> & "shiny"',
        params={"kind": "edit", "aspect_ratio": "4:3"},
        inputs=[ref],
        parent=parent,
        latency_s=1.25,
    )


def test_from_response_separates_thoughts_from_results() -> None:
    result = _result()
    assert len(result.images) == 1  # the interim thought image is not a result
    assert result.image is result.images[0]
    assert result.image.getpixel((0, 0)) == (200, 30, 30)
    assert result.text == "Here it is."
    assert result.thoughts == ["thinking about it"]
    assert result.finish_reason == "STOP"
    assert result.usage == Usage(
        prompt_tokens=300,
        output_tokens=1300,
        output_image_tokens=1290,
        thought_tokens=0,
        total_tokens=1600,
    )
    # 300 input at $0.30/M, 1290 image at $30/M, 10 text at $2.50/M
    assert result.cost_usd == pytest.approx((300 * 0.30 + 1290 * 30 + 10 * 2.5) / 1e6)
    assert result.response_id == "resp-1"
    assert result.image_data[0][1] == "image/png"


def test_usage_without_modality_details_counts_output_as_image_when_there_is_one() -> None:
    meta = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=5, candidates_token_count=1290
    )
    assert Usage.from_metadata(meta, images=1).output_image_tokens == 1290
    assert Usage.from_metadata(meta, images=0).output_image_tokens == 0
    assert Usage.from_metadata(None, images=0) == Usage()


def test_result_without_candidates_is_empty() -> None:
    result = Result.from_response(
        types.GenerateContentResponse(),
        model=get_model("gemini-2.5-flash-image"),
        prompt="p",
        params={},
    )
    assert result.images == [] and result.image is None and result.text == ""


def test_ids_are_unique() -> None:
    assert len({_result().id for _ in range(20)}) == 20


def test_mimebundle_shows_inputs_outputs_prompt_and_footer() -> None:
    result = _result()
    bundle = result._repr_mimebundle_()
    page = bundle["text/html"]
    assert "Make it &lt;b&gt;red&lt;/b&gt; &amp; &quot;shiny&quot;" in page  # escaped
    assert "<b>red</b>" not in page
    shown, thoughts = page.split('<details class="nbbanana-thoughts"')
    uris = re.findall(r'src="data:(image/(?:jpeg|png));base64,([^"]+)"', shown)
    assert len(uris) == 2  # one input thumbnail, one output
    # The interim thought image is shown collapsed, with the thought text.
    assert len(re.findall(r'src="data:image/', thoughts)) == 1
    assert "thinking about it" in thoughts and "<summary>Thoughts (2)</summary>" in thoughts
    for _, payload in uris:
        thumb = Image.open(io.BytesIO(base64.b64decode(payload)))
        assert max(thumb.size) <= 384
    assert "gemini-2.5-flash-image" in page and "64×48" in page and "$0.0" in page
    assert "1.2 s" in page or "1.3 s" in page
    plain = bundle["text/plain"]
    assert result.id in plain and "Make it" in plain


def test_display_stays_small_for_large_outputs() -> None:
    big = Image.effect_noise((2048, 2048), 64).convert("RGB")
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    response = _response([types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png")])
    result = Result.from_response(response, model=get_model(None), prompt="noise", params={})
    assert len(result._repr_html_()) < 200_000


def test_save_writes_png_with_provenance_and_sidecar(tmp_path: Path) -> None:
    parent = _result(color=(1, 2, 3))
    result = _result(parent=parent)
    paths = result.save(tmp_path / "out")
    assert [p.name for p in paths] == [f"{result.id}.png", f"{result.id}.json"]
    png = Image.open(paths[0])
    assert png.format == "PNG" and png.getpixel((0, 0)) == (200, 30, 30)
    text = png.text  # type: ignore[attr-defined]
    assert text["nbbanana:prompt"] == 'Make it <b>red</b> & "shiny"'
    assert text["nbbanana:model"] == "gemini-2.5-flash-image"
    assert json.loads(text["nbbanana:params"]) == {"aspect_ratio": "4:3", "kind": "edit"}
    assert json.loads(text["nbbanana:inputs"]) == ["ab" * 32]
    assert text["nbbanana:parent"] == parent.id
    assert text["nbbanana:id"] == result.id
    sidecar = json.loads(paths[1].read_text())
    assert sidecar["id"] == result.id and sidecar["parent"] == parent.id
    assert sidecar["inputs"][0]["source_sha256"] == "ab" * 32
    assert sidecar["files"] == [paths[0].name]
    assert sidecar["usage"]["total_tokens"] == 1600
    # No temporary files are left behind.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)


def test_save_never_touches_another_results_files(tmp_path: Path) -> None:
    first, second = _result(color=(10, 10, 10)), _result(color=(250, 250, 250))
    first_paths = first.save(tmp_path)
    before = {p: p.read_bytes() for p in first_paths}
    second.save(tmp_path)
    second.save(tmp_path)  # saving the same result again rewrites only its own files
    assert {p: p.read_bytes() for p in first_paths} == before
    assert len(list(tmp_path.iterdir())) == 4


def test_save_numbers_several_images(tmp_path: Path) -> None:
    response = _response(
        [
            types.Part.from_bytes(data=_png((1, 1, 1)), mime_type="image/png"),
            types.Part.from_bytes(data=_png((2, 2, 2)), mime_type="image/png"),
        ]
    )
    result = Result.from_response(response, model=get_model(None), prompt="two", params={})
    names = [p.name for p in result.save(tmp_path)]
    assert names == [f"{result.id}.png", f"{result.id}-2.png", f"{result.id}.json"]


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _result()
    existing = tmp_path / f"{result.id}.png"
    existing.write_bytes(b"previous complete file")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("nbbanana.result.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        result.save(tmp_path)
    # The old file is intact and no temporary file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == [existing.name]
    assert existing.read_bytes() == b"previous complete file"
