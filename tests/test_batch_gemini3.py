"""Gemini 3 features (issue 11) in batches, end to end through the real SDK over HTTP
against the emulator: image sizes, thinking levels and thoughts, Google Search grounding,
several images per answer and 14 references — in a local run from a manifest, and as a
Batch API job sent inline or as a JSONL file. Thoughts are never saved as answers,
sources are recorded, and every image of an answer is costed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _client_helpers import session_for
from _emulator_fixtures import png_size
from google.genai import types
from PIL import Image

from nbbanana._connect import connect
from nbbanana.batch import BatchJob, ManifestError, run_batch, submit_batch
from nbbanana.batch._api import _jsonl_line, _options
from nbbanana.batch._journal import JOURNAL_NAME, read_journal
from nbbanana.batch._lock import FolderBusy, FolderLock
from nbbanana.batch._manifest import BatchItem
from nbbanana.emulator import OFFLINE_API_KEY, Emulator
from nbbanana.emulator._generate import FAKE_SOURCE_URL
from nbbanana.models import get_model
from nbbanana.session import Session

NB2 = "gemini-3.1-flash-image"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=5, batch_delay=0.0) as emulator:
        yield emulator


def _refs(folder: Path, count: int) -> list[str]:
    paths = []
    for n in range(count):
        path = folder / f"ref{n}.png"
        Image.new("RGB", (40, 40), (15 * n, 120, 200)).save(path)
        paths.append(path.name)
    return paths


def _manifest(folder: Path) -> Path:
    """One line per feature, all on Nano Banana 2 (a Batch API job runs one model)."""
    lines: list[dict[str, Any]] = [
        {"id": "small", "prompt": "a paper boat", "image_size": "512"},
        {"id": "wide", "prompt": "a harbour", "image_size": "1K", "aspect_ratio": "16:9"},
        {"id": "think", "prompt": "a lighthouse", "thinking_level": "high",
         "include_thoughts": True},
        {"id": "search", "prompt": "a poster of this week's festivals", "grounding": True},
        {"id": "three", "prompt": "three variations of a logo", "image_size": "512"},
        {"id": "refs", "prompt": "a group photo of these", "images": _refs(folder, 14),
         "image_size": "512", "thinking_level": "minimal"},
    ]  # fmt: skip
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _sidecar(out: Path, item_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / f"{item_id}.json").read_text(encoding="utf-8"))
    return data


def _check_outputs(out: Path) -> None:
    """What a local run and a Batch API job must both have written."""
    assert png_size((out / "small.png").read_bytes()) == (512, 512)
    assert png_size((out / "wide.png").read_bytes()) == get_model(NB2).output_size("16:9", "1K")

    # Thoughts: in the sidecar, never an image file of the item.
    think = _sidecar(out, "think")
    assert think["thoughts"] and think["thought_images"] == 1
    assert think["files"] == ["think.png"]
    assert not list(out.glob("think+*"))
    assert think["params"]["thinking_level"] == "HIGH"

    # Grounding: the sources are recorded with the answer.
    search = _sidecar(out, "search")
    assert [s["url"] for s in search["sources"]] == [
        FAKE_SOURCE_URL.format(n=1), FAKE_SOURCE_URL.format(n=2),
    ]  # fmt: skip
    assert search["params"]["grounding"] is True

    # Several images: all saved, all costed.
    three = _sidecar(out, "three")
    assert three["files"] == ["three.png", "three+2.png", "three+3.png"]
    assert all(png_size((out / f).read_bytes()) == (512, 512) for f in three["files"])
    assert three["usage"]["output_image_tokens"] == 3 * get_model(NB2).output_image_tokens("512")

    # 14 references reached the model (the emulator refuses more than the model takes).
    refs = _sidecar(out, "refs")
    assert refs["usage"]["prompt_tokens"] >= 14 * get_model(NB2).input_image_tokens(40, 40)

    done = read_journal(out / JOURNAL_NAME).done
    assert set(done) == {"small", "wide", "think", "search", "three", "refs"}
    single = done["small"]["cost_usd"]
    # Three images of the same size cost about three times one (the prompts differ a little).
    assert done["three"]["cost_usd"] == pytest.approx(3 * single, rel=0.05)


def test_local_run_of_a_gemini3_manifest(tmp_path: Path, emu: Emulator) -> None:
    session = session_for(emu.base_url, model=NB2)
    out = tmp_path / "out"
    report = run_batch(_manifest(tmp_path), out, session=session, progress=False)
    assert report.ok, report.summary()
    _check_outputs(out)
    assert len(_sidecar(out, "refs")["inputs"]) == 14
    costs = [r["cost_usd"] for r in read_journal(out / JOURNAL_NAME).done.values()]
    assert report.spent_usd == pytest.approx(sum(costs)) == pytest.approx(session.spent)


@pytest.mark.parametrize("transport", ["inline", "file"])
def test_batch_api_job_of_a_gemini3_manifest(tmp_path: Path, emu: Emulator, transport: str) -> None:
    session = connect(base_url=emu.base_url, timeout=30)
    job = submit_batch(
        _manifest(tmp_path),
        session=session,
        model=NB2,
        inline_limit=50_000_000 if transport == "inline" else 1_000,
    )
    assert job.transport == transport and job.model == NB2
    assert job.wait(poll_interval=0.05, timeout=60, progress=False) == "JOB_STATE_SUCCEEDED"
    out = tmp_path / "out"
    report = job.results(out)
    assert report.ok, report.summary()
    _check_outputs(out)
    done = read_journal(out / JOURNAL_NAME).done
    info = get_model(NB2)
    three = _sidecar(out, "three")
    usage = three["usage"]
    interactive = info.cost_usd(
        input_tokens=usage["prompt_tokens"],
        output_image_tokens=usage["output_image_tokens"],
        output_text_tokens=usage["output_tokens"]
        - usage["output_image_tokens"]
        + usage["thought_tokens"],
    )
    assert done["three"]["cost_usd"] == pytest.approx(interactive / 2)  # half price
    assert report.spent_usd == pytest.approx(sum(r["cost_usd"] for r in done.values()))


def test_a_jsonl_line_carries_grounding_as_a_request_field() -> None:
    """The Batch API input file holds REST ``GenerateContentRequest`` s: ``tools`` sit
    beside ``generationConfig``, not inside it (the service refuses it there)."""
    item = BatchItem(id="x", prompt="news", grounding=True, thinking_level="high",
                     include_thoughts=True, image_size="2k")  # fmt: skip
    config = _options(item, NB2).config()
    contents = types.Content(role="user", parts=[types.Part.from_text(text=item.prompt)])
    line = json.loads(_jsonl_line(item, contents, config))
    request = line["request"]
    assert line["key"] == "x"
    assert request["tools"] == [{"googleSearch": {}}]
    generation = request["generationConfig"]
    assert "tools" not in generation
    assert generation["imageConfig"] == {"imageSize": "2K"}  # normalised by RequestOptions
    assert generation["thinkingConfig"] == {"thinkingLevel": "HIGH", "includeThoughts": True}
    assert generation["responseModalities"] == ["TEXT", "IMAGE"]


def test_the_emulator_refuses_tools_inside_generation_config(emu: Emulator) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "news"}]}],
        "generationConfig": {"tools": [{"googleSearch": {}}]},
    }
    reply = httpx.post(
        f"{emu.base_url}/v1beta/models/{NB2}:generateContent",
        json=body,
        headers={"x-goog-api-key": OFFLINE_API_KEY},
        timeout=30,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == (
        "Invalid JSON payload received. Unknown name \"tools\" at 'generation_config': "
        "Cannot find field."
    )


def test_too_many_references_are_refused_by_the_manifest_check(
    tmp_path: Path, emu: Emulator
) -> None:
    """15 references: refused with the item's line before anything is sent, on the local
    and the Batch API path alike."""
    refs = _refs(tmp_path, 15)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"id": "ok", "prompt": "x"}) + "\n"
        + json.dumps({"id": "many", "prompt": "all of these", "images": refs}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    session: Session = session_for(emu.base_url, model=NB2)
    before = len(emu.requests)
    with pytest.raises(ManifestError, match=r"line 2: 15 reference images, but .* at most 14"):
        run_batch(manifest, tmp_path / "out", session=session, progress=False)
    with pytest.raises(ManifestError, match="line 2: 15 reference images"):
        submit_batch(manifest, session=session)
    assert len(emu.requests) == before


def test_results_take_the_output_folders_lock(tmp_path: Path, emu: Emulator) -> None:
    session = connect(base_url=emu.base_url, timeout=30)
    job = submit_batch([{"id": "a", "prompt": "a kite"}], session=session)
    assert job.wait(poll_interval=0.05, timeout=60, progress=False) == "JOB_STATE_SUCCEEDED"
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out), pytest.raises(FolderBusy):
        job.results(out)  # a local run holds the folder: nothing is written
    assert not (out / JOURNAL_NAME).exists()
    assert job.results(out).done == 1
    again = BatchJob.attach(job.name, [{"id": "a", "prompt": "a kite"}], session=session)
    assert again.results(out).skipped == 1


def test_a_prompt_grid_varies_gemini3_options_and_runs_inside_an_event_loop(
    tmp_path: Path, emu: Emulator
) -> None:
    """Grid parameter sets may vary thinking and grounding like any manifest option; the
    sync form also works where an event loop is running (a notebook cell)."""
    import asyncio

    from nbbanana.batch import prompt_grid

    session = session_for(emu.base_url, model=NB2)
    params = [
        {"image_size": "512", "thinking_level": "minimal", "include_thoughts": True},
        {"image_size": "512", "grounding": True},
    ]

    async def in_a_cell() -> Any:
        return prompt_grid(
            None, {"poster": "a festival poster"}, params=params, session=session,
            outdir=tmp_path / "grid", progress=False,
        )  # fmt: skip

    fig, report = asyncio.run(in_a_cell())
    assert report.ok and report.total == 2
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert titles == [
        "poster\n512, minimal, include thoughts",
        "poster\n512, grounding",
    ]
    grid = tmp_path / "grid"
    sidecars = [_sidecar(grid, path.stem) for path in grid.glob("*.json")]
    thoughtful = next(m for m in sidecars if m["params"].get("include_thoughts"))
    grounded = next(m for m in sidecars if m["params"].get("grounding"))
    assert thoughtful["thought_images"] == 1 and not thoughtful["sources"]
    assert grounded["sources"] and grounded["thought_images"] == 0
    assert len(list((tmp_path / "grid").glob("*.png"))) == 2  # no thought image saved


def test_cli_batch_api_with_a_gemini3_manifest(
    tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbbanana import cli

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "g", "prompt": "a map of festivals", "grounding": true}\n'
        '{"id": "t", "prompt": "two variations of a kite", "include_thoughts": true,'
        ' "image_size": "512"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    argv = ["batch", str(manifest), "-o", str(out), "--base-url", emu.base_url,
            "--model", NB2, "--batch-api", "--poll", "0.05", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "2/2 items done" in capsys.readouterr().out
    assert _sidecar(out, "g")["sources"]
    assert _sidecar(out, "t")["files"] == ["t.png", "t+2.png"]
    assert sorted(p.name for p in out.glob("*.png")) == ["g.png", "t+2.png", "t.png"]


def test_cli_batch_api_checks_the_output_folder_before_submitting(
    tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbbanana import cli

    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "a kite"}\n', encoding="utf-8")
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    before = sum(1 for r in emu.requests if r.path.endswith(":batchGenerateContent"))
    argv = ["batch", str(manifest), "-o", str(taken), "--base-url", emu.base_url,
            "--batch-api", "--poll", "0.05", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "a file of that name exists" in capsys.readouterr().err
    assert sum(1 for r in emu.requests if r.path.endswith(":batchGenerateContent")) == before
