"""Regional edits through the real google-genai SDK against the emulator's known-transform
mode: registration against ground truth, refusal of a mismatching answer, the async twin,
chaining, the CLI and batch manifests."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _imagegen import jpeg_bytes, orient_for_exif, photo_like
from google.genai import types
from PIL import Image

from nbbanana import Session, cli, connect
from nbbanana.batch import BatchError, load_manifest, run_batch, submit_batch
from nbbanana.batch._manifest import ManifestError
from nbbanana.emulator import Emulator
from nbbanana.emulator._transform import KnownTransform, known_transform
from nbbanana.errors import InvalidRequest
from nbbanana.region import Box, RegionResult, RegistrationError, aedit_region, edit_region
from nbbanana.result import Result

BOX = (700, 500, 1300, 950)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=3) as emulator:
        yield emulator


@pytest.fixture
def session(emu: Emulator) -> Iterator[Session]:
    emu.clear_faults()
    with connect(base_url=emu.base_url, timeout=20) as s:
        yield s


def textured(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like image with texture at several scales everywhere, as real photos have:
    registration needs detail coarser than grain in the context."""
    image = photo_like(width, height, seed=seed)
    rng = np.random.default_rng(seed)
    for step in (96, 24, 6):
        noise = rng.integers(0, 256, size=(height // step, width // step, 3), dtype=np.uint8)
        texture = Image.fromarray(noise, "RGB").resize((width, height), Image.Resampling.BICUBIC)
        image = Image.blend(image, texture, 0.2)
    return image


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return textured(2000, 1500, seed=4)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def _truth(result: RegionResult) -> KnownTransform:
    assert result.answer is not None and result.answer.response_id is not None
    truth = known_transform(result.answer.response_id)
    assert truth is not None, "the answer did not come from the known-transform mode"
    return truth


def _worst_error(result: RegionResult) -> float:
    """Largest distance (source pixels) between where the registration and the ground
    truth put the answer, at the corners of the blended area. The truth composes the
    emulator's transform with the fitting of the crop (its size as sent)."""
    truth = _truth(result)
    crop = Box(*result.region["crop"])
    sent_w, sent_h = result.inputs[0].size
    fit = (crop.width / sent_w, crop.height / sent_h)
    reg = result.region["registration"]
    box = Box(*result.region["box"]).expand(
        result.region["feather"], result.region["feather"], tuple(result.region["source_size"])
    )
    worst = 0.0
    for x, y in itertools.product((box.left, box.right), (box.top, box.bottom)):
        cx, cy = x - crop.left, y - crop.top
        ax, ay = (cx - reg["tx"]) / reg["scale"], (cy - reg["ty"]) / reg["scale"]
        ux, uy = truth.to_input(ax, ay)
        worst = max(worst, abs(ux * fit[0] - cx), abs(uy * fit[1] - cy))
    return worst


def _psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


# --------------------------------------------------------------------------- the emulator mode


def test_known_transform_mode_through_the_sdk_header(
    emu: Emulator, photo: Image.Image, make_client: Any
) -> None:
    client = make_client(headers={"x-emulator-fault": "transform;scale=1.04;dx=6;dy=-3"})
    crop = photo.crop((0, 0, 800, 600))
    buffer = io.BytesIO()
    crop.save(buffer, "PNG")
    response = client.models.generate_content(
        model="gemini-2.5-flash-image",
        contents=[types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png"), "teal"],
    )
    assert response.response_id is not None
    truth = known_transform(response.response_id)
    assert truth is not None
    assert (truth.scale, truth.dx, truth.dy) == (1.04, 6.0, -3.0)
    assert truth.input_size == (800, 600) and truth.output_size == (1184, 864)
    part = next(p for p in response.candidates[0].content.parts if p.inline_data)  # type: ignore[index, union-attr]
    answer = Image.open(io.BytesIO(part.inline_data.data))  # type: ignore[union-attr, arg-type]
    assert answer.size == truth.output_size
    # the answer's centre shows the input point the transform says it does
    ux, uy = truth.to_input(592, 432)
    expected = truth.expected(crop).getpixel((int(ux), int(uy)))
    got = answer.convert("RGB").getpixel((592, 432))
    assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) < 40  # type: ignore[arg-type]


# --------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    "params",
    [{"scale": 1.03, "dx": 5.5, "dy": -3.25}, {"seed": "a"}, {"seed": "b"}, {"scale": 1.0}],
)
def test_regional_edit_recovers_the_known_transform(
    emu: Emulator, session: Session, photo: Image.Image, params: dict[str, Any]
) -> None:
    emu.inject("transform", **params)
    data = jpeg_bytes(photo, 95)
    result = edit_region(session, data, "make it violet", region=BOX)
    assert _worst_error(result) < 0.5  # within half a source pixel
    assert result.image is not None and result.image.size == photo.size
    source = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    out = np.asarray(result.image)
    blend = Box(*BOX).expand(result.region["feather"], result.region["feather"], photo.size)
    outside = np.ones(source.shape[:2], bool)
    outside[blend.top : blend.bottom, blend.left : blend.right] = False
    assert np.array_equal(out[outside], source[outside])
    inner = (slice(BOX[1], BOX[3]), slice(BOX[0], BOX[2]))
    truth = np.asarray(_truth(result).expected(Image.fromarray(source[inner])))
    assert _psnr(out[inner], truth) > 28  # the edit itself, at full resolution
    assert result.region["seam"] <= 1.0


def test_async_twin(emu: Emulator, session: Session, photo: Image.Image) -> None:
    emu.inject("transform", scale=1.02, dx=-4, dy=2)
    result = asyncio.run(aedit_region(session, photo, "make it cyan", region=BOX, feather=10))
    assert result.region["feather"] == 10
    assert _worst_error(result) < 0.5


def test_mask_region_and_exif_orientation(emu: Emulator, session: Session) -> None:
    upright = textured(1200, 900, seed=8)
    stored = jpeg_bytes(orient_for_exif(upright, 6), 95, exif_orientation=6)
    mask = np.zeros((900, 1200), np.uint8)
    mask[300:600, 400:700] = 255
    mask[450:500, 700:900] = 255
    emu.inject("transform")
    result = edit_region(session, stored, "make it gold", mask=mask)
    assert result.region["kind"] == "mask" and result.region["box"] == [400, 300, 900, 600]
    assert result.image is not None and result.image.size == (1200, 900)
    assert _worst_error(result) < 0.5


class _IgnoresInput:
    """A model that draws something new instead of editing: the real SDK's answer to a
    generate call, whatever crop it is given."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def edit(self, images: Any, prompt: str, **options: Any) -> Result:
        return self.session.generate(prompt)

    async def aedit(self, images: Any, prompt: str, **options: Any) -> Result:
        return await self.session.agenerate(prompt)


def test_a_mismatching_answer_is_refused_not_blended(session: Session, photo: Image.Image) -> None:
    with pytest.raises(RegistrationError) as caught:
        edit_region(_IgnoresInput(session), photo, "a lighthouse", region=BOX)
    error = caught.value
    assert error.answer is not None and error.answer.image is not None  # kept, paid for
    assert error.estimate is not None and error.estimate.confidence < 0.7


def _sky(width: int, height: int) -> Image.Image:
    """A plain sky: a vertical gradient with a little sensor noise, nothing to register on."""
    rng = np.random.default_rng(0)
    t = np.mgrid[0:height, 0:width][0].astype(np.float32) / height
    rgb = np.stack([90 + 60 * t, 140 + 50 * t, 220 - 20 * t], axis=2)
    rgb += rng.normal(0, 1.5, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def test_a_plain_sky_is_placed_by_the_sizes(emu: Emulator, session: Session) -> None:
    """The emulator's answer (zoomed a little, shifted, with its labels in the corners)
    of a crop with no detail: the sizes' placement pinned by the grain the answer kept
    (once placed where the sizes say, many pixels off), every other pixel kept."""
    sky = _sky(2000, 1500)
    emu.inject("transform")
    result = edit_region(session, sky, "make it violet", region=BOX)
    registration = result.region["registration"]
    assert registration["basis"] == "sizes" and registration["confidence"] >= 0.75
    assert _worst_error(result) < 1.0
    assert result.image is not None
    out, source = np.asarray(result.image), np.asarray(sky)
    blend = Box(*BOX).expand(result.region["feather"], result.region["feather"], sky.size)
    outside = np.ones(source.shape[:2], bool)
    outside[blend.top : blend.bottom, blend.left : blend.right] = False
    assert np.array_equal(out[outside], source[outside])
    truth = np.asarray(_truth(result).expected(sky.crop(BOX)), np.float32)
    inside = out[BOX[1] : BOX[3], BOX[0] : BOX[2]].astype(np.float32)
    assert np.abs(inside - truth).mean() < 3.0


def test_a_plain_sky_still_refuses_another_picture(session: Session) -> None:
    with pytest.raises(RegistrationError, match="too little detail") as caught:
        edit_region(_IgnoresInput(session), _sky(2000, 1500), "a lighthouse", region=BOX)
    assert caught.value.answer is not None
    assert caught.value.estimate is not None and caught.value.estimate.basis == "sizes"


def test_a_region_result_can_be_edited_again(
    emu: Emulator, session: Session, photo: Image.Image, tmp_path: Path
) -> None:
    emu.inject("transform", scale=1.01)
    first = edit_region(session, photo, "make it violet", region=BOX)
    second = session.edit(first, "now describe nothing, just edit")
    assert second.parent is first
    png, sidecar = first.save(tmp_path)
    assert Image.open(png).size == photo.size
    meta = json.loads(sidecar.read_text())
    assert meta["region"]["registration"]["confidence"] > 0.7
    assert meta["inputs"][0]["name"].endswith(
        f"[crop {','.join(map(str, meta['region']['crop']))}]"
    )


# --------------------------------------------------------------------------- CLI and batches


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory: pytest.TempPathFactory, photo: Image.Image) -> Path:
    path = tmp_path_factory.mktemp("region") / "photo.png"
    photo.save(path)
    return path


def test_cli_region_and_mask(
    emu: Emulator, photo_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = np.asarray(Image.open(photo_file))
    emu.clear_faults()
    emu.inject("transform", count=2)
    status = cli.main(
        ["edit", str(photo_file), "-p", "make it violet", "--region", ",".join(map(str, BOX)),
         "--base-url", emu.base_url, "-o", str(tmp_path / "box")]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    png = next(line for line in out.splitlines() if line.endswith(".png"))
    assert "region [700, 500, 1300, 950]" in out
    edited = np.asarray(Image.open(png))
    assert edited.shape == source.shape and np.array_equal(edited[:400], source[:400])

    mask = tmp_path / "mask.png"
    Image.fromarray(np.pad(np.full((450, 600), 255, np.uint8), ((500, 550), (700, 700)))).save(mask)
    status = cli.main(
        ["edit", str(photo_file), "-p", "make it violet", "--mask", str(mask), "--jpeg",
         "--margin", "200", "--base-url", emu.base_url, "-o", str(tmp_path / "mask")]
    )  # fmt: skip
    assert status == 0
    jpg = next(line for line in capsys.readouterr().out.splitlines() if line.endswith(".jpg"))
    assert Image.open(jpg).size == (2000, 1500)


def test_cli_region_sends_thoughts_and_grounding_and_prints_them(
    emu: Emulator, photo_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.clear_faults()
    emu.inject("transform", scale=1.0)
    status = cli.main(
        ["edit", str(photo_file), "-p", "paint it as in Lisbon", "--region",
         ",".join(map(str, BOX)), "--model", "gemini-3-pro-image", "--thoughts", "--grounding",
         "--base-url", emu.base_url, "-o", str(tmp_path / "said")]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "region [700, 500, 1300, 950]" in out
    assert "\nthought: " in out and "\nsource: " in out


def test_cli_region_keeps_an_unplaced_answer_and_says_where(
    emu: Emulator, photo_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The answer was paid for: a refused placement leaves it in the output folder, and
    the advice names flags, not Python attributes."""
    emu.clear_faults()
    emu.inject("ignore_input")
    out = tmp_path / "out"
    status = cli.main(
        ["edit", str(photo_file), "-p", "make it violet", "--region", ",".join(map(str, BOX)),
         "--base-url", emu.base_url, "-o", str(out)]
    )  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err
    saved = re.search(r"The unblended answer was saved as (\S+\.png);", err)
    assert saved is not None, err
    assert Path(saved.group(1)).parent == out and Image.open(saved.group(1)).size[0] > 0
    assert ".answer" not in err and "min_confidence" not in err
    assert "--min-confidence" in err or "--margin" in err
    assert cli.main([*_region_args(photo_file, emu, tmp_path), "--min-confidence", "1.5"]) == 2
    assert "--min-confidence is between 0 and 1 (got 1.5)" in capsys.readouterr().err


def _region_args(photo_file: Path, emu: Emulator, tmp_path: Path) -> list[str]:
    return ["edit", str(photo_file), "-p", "x", "--region", ",".join(map(str, BOX)),
            "--base-url", emu.base_url, "-o", str(tmp_path / "args")]  # fmt: skip


def test_cli_region_refusals(
    emu: Emulator, photo_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["edit", str(photo_file), "-p", "x", "--base-url", emu.base_url]
    two = ["edit", str(photo_file), str(photo_file), "-p", "x", "--base-url", emu.base_url]
    assert cli.main([*two, "--region", "0,0,10,10"]) == 2
    assert "exactly one IMAGE" in capsys.readouterr().err
    assert cli.main([*base, "--region", "0,0,5000,10"]) == 2
    assert "not inside the upright image (2000×1500)" in capsys.readouterr().err
    assert cli.main([*base, "--mask", "no-such-mask.png"]) == 2
    assert "No such mask file" in capsys.readouterr().err


def test_manifest_region_and_mask_keys(tmp_path: Path, photo_file: Path) -> None:
    mask = tmp_path / "m.png"
    Image.new("L", (20, 15), 255).save(mask)
    manifest = tmp_path / "jobs.jsonl"
    lines = [
        {"id": "a", "prompt": "x", "images": [str(photo_file)], "region": "1,2,30,40"},
        {"id": "b", "prompt": "x", "images": [str(photo_file)], "region": [1, 2, 30, 40]},
        {"id": "c", "prompt": "x", "images": [str(photo_file)], "mask": "m.png"},
    ]
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    items = load_manifest(manifest)
    assert [item.extra for item in items] == [
        {"region": "1,2,30,40"},
        {"region": "1,2,30,40"},
        {"mask": str(mask)},
    ]
    assert items[0].fingerprint() != load_manifest(manifest)[2].fingerprint()

    bad = tmp_path / "bad.jsonl"
    bad_lines = [
        {"prompt": "x", "images": [str(photo_file)], "region": "1,2,3"},
        {"prompt": "x", "images": [str(photo_file)], "region": "5,5,1,1"},
        {"prompt": "x", "images": [str(photo_file)], "mask": "missing.png"},
        {"prompt": "x", "images": [str(photo_file)], "region": "1,1,5,5", "mask": "m.png"},
        {"prompt": "x", "region": "1,1,5,5"},
    ]
    bad.write_text("\n".join(json.dumps(line) for line in bad_lines) + "\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(bad)
    messages = [message for _, message in caught.value.problems]
    assert sum("'region' must be a box" in m for m in messages) == 2
    assert any("mask not found" in m for m in messages)
    assert any("not both" in m for m in messages)
    assert any("exactly one image" in m for m in messages)


def test_batch_runs_regional_items_locally(
    emu: Emulator, session: Session, photo_file: Path, tmp_path: Path
) -> None:
    emu.inject("transform", count=1)
    items = [{"id": "sky", "prompt": "make it violet", "images": [str(photo_file)], "region": BOX}]
    items[0]["region"] = ",".join(map(str, BOX))
    report = run_batch(items, tmp_path / "out", session=session, progress=False)
    assert report.done == 1, report.failures
    (png,) = [p for p in report.outputs["sky"] if p.suffix == ".png"]
    assert Image.open(png).size == (2000, 1500)
    with pytest.raises(BatchError, match="run_batch"):
        submit_batch(items, session=session)


# --------------------------------------------------------------------------- Session.edit(region=)


def test_session_edit_with_a_region_or_mask_is_a_regional_edit(
    emu: Emulator, session: Session, photo: Image.Image
) -> None:
    emu.inject("transform", scale=1.0)
    result = session.edit(photo, "make it violet", region=BOX)
    assert isinstance(result, RegionResult) and result.image is not None
    assert result.image.size == photo.size and tuple(result.region["box"]) == BOX
    emu.inject("transform", scale=1.0)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, BOX)
    result = asyncio.run(session.edit_async([photo], "make it cyan", mask=mask))
    assert isinstance(result, RegionResult) and result.image is not None
    assert result.image.size == photo.size


def test_session_edit_region_refuses_what_a_regional_edit_cannot_do(
    emu: Emulator, session: Session, photo: Image.Image
) -> None:
    before = len(emu.requests)
    with pytest.raises(InvalidRequest, match="changes one image; got 2"):
        session.edit([photo, photo], "x", region=BOX)
    with pytest.raises(InvalidRequest, match=r"^min_confidence is between 0 and 1 \(got 1.5\)"):
        edit_region(session, photo, "x", region=BOX, min_confidence=1.5)
    with pytest.raises(InvalidRequest, match=r"^min_confidence is between 0 and 1 \(got -0.1\)"):
        asyncio.run(aedit_region(session, photo, "x", region=BOX, min_confidence=-0.1))
    assert len(emu.requests) == before


@pytest.mark.parametrize("use_async", [False, True])
def test_session_edit_region_sends_the_gemini3_options_with_the_crop(
    emu: Emulator, session: Session, photo: Image.Image, use_async: bool
) -> None:
    """Thoughts and grounding reach the crop's request (as edit_region's and a chat's
    regional turn's do), and the composite keeps what the answer said."""
    emu.inject("transform", scale=1.0)
    options = {"model": "gemini-3-pro-image", "include_thoughts": True, "grounding": True}
    if use_async:
        result = asyncio.run(
            session.edit_async(photo, "paint it as in Lisbon", region=BOX, **options)
        )
    else:
        result = session.edit(photo, "paint it as in Lisbon", region=BOX, **options)
    assert isinstance(result, RegionResult) and result.image is not None
    assert result.thoughts and result.sources
