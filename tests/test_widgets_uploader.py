"""The chunked uploader: reassembly, the browser message protocol, fitting and refusals.

The browser is played by calling the widget's message handler with the messages
``_uploader.js`` sends (begin, chunk with one binary buffer, end, remove); what the
widget sends back is captured instead of going over a comm.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from _imagegen import animated_gif_bytes, bomb_png_bytes, jpeg_bytes, photo_like
from hypothesis import given, settings
from hypothesis import strategies as st

from nbbanana.models import get_model
from nbbanana.widgets import ImageUploader
from nbbanana.widgets._uploader import (
    CHUNK_SIZE,
    ChunkAssembler,
    UploadRefused,
    fit_upload,
)

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"


# --------------------------------------------------------------------------- assembler


def test_chunk_size_stays_well_below_the_websocket_message_cap() -> None:
    assert CHUNK_SIZE <= 10 * 1024 * 1024 // 2


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000), chunk=st.integers(min_value=1, max_value=700))
def test_reassembles_any_file_in_any_slice_size(data: bytes, chunk: int) -> None:
    assembler = ChunkAssembler()
    assembler.begin("t", name="f", size=len(data))
    for offset in range(0, len(data), chunk):
        assert assembler.add("t", offset, memoryview(data[offset : offset + chunk])) == min(
            offset + chunk, len(data)
        )
    assert assembler.finish("t", hashlib.sha256(data).hexdigest()) == data
    assert assembler.active == 0


def test_a_file_larger_than_the_websocket_cap_arrives_intact() -> None:
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256 + 7)  # > 12 MiB
    assembler = ChunkAssembler()
    assembler.begin("big", name="big.jpg", size=len(data))
    for offset in range(0, len(data), CHUNK_SIZE):
        assembler.add("big", offset, data[offset : offset + CHUNK_SIZE])
    assert assembler.finish("big", hashlib.sha256(data).hexdigest()) == data


@pytest.mark.parametrize(
    ("size", "message"),
    [(0, "is empty"), (201_000_000, "accepts files up to 200 MB")],
)
def test_refuses_empty_and_huge_files_up_front(size: int, message: str) -> None:
    with pytest.raises(UploadRefused, match=message):
        ChunkAssembler().begin("t", name="f.jpg", size=size)


def test_refuses_out_of_order_overflowing_incomplete_and_damaged_uploads() -> None:
    assembler = ChunkAssembler()
    assembler.begin("a", name="a.jpg", size=10)
    with pytest.raises(UploadRefused, match="out of order"):
        assembler.add("a", 4, b"xxxx")
    assert assembler.active == 0  # the broken transfer is forgotten

    assembler.begin("b", name="b.jpg", size=4)
    with pytest.raises(UploadRefused, match="more data arrived"):
        assembler.add("b", 0, b"12345")

    assembler.begin("c", name="c.jpg", size=4)
    assembler.add("c", 0, b"12")
    with pytest.raises(UploadRefused, match="incomplete: 2 of 4 bytes"):
        assembler.finish("c")

    assembler.begin("d", name="d.jpg", size=4)
    assembler.add("d", 0, b"1234")
    with pytest.raises(UploadRefused, match="damaged"):
        assembler.finish("d", "0" * 64)

    with pytest.raises(UploadRefused, match="never started"):
        assembler.add("nope", 0, b"1")
    with pytest.raises(UploadRefused, match="never started"):
        assembler.finish("nope")
    assembler.begin("e", name="e.jpg", size=1)
    with pytest.raises(UploadRefused, match="already started"):
        assembler.begin("e", name="e.jpg", size=1)


# --------------------------------------------------------------------------- fitting


def test_fit_upload_returns_the_engines_message_for_refused_files() -> None:
    from nbbanana.budget import RequestBudget

    budget = RequestBudget.for_endpoint("gemini")
    corrupt = fit_upload(
        b"\xff\xd8\xff\xe0 not really a jpeg", name="x.jpg", model=FLASH, budget=budget
    )
    assert corrupt.fitted is None and corrupt.error
    bomb = fit_upload(bomb_png_bytes(), name="bomb.png", model=FLASH, budget=budget)
    assert bomb.fitted is None and "pixels" in bomb.error.lower()
    svg = fit_upload(
        b"<svg xmlns='http://www.w3.org/2000/svg'/>", name="v.svg", model=FLASH, budget=budget
    )
    assert svg.fitted is None and svg.error
    for outcome in (corrupt, bomb, svg):
        assert "Traceback" not in outcome.error


# --------------------------------------------------------------------------- widget


class Browser:
    """Plays ``_uploader.js``: sends an upload in slices and records the kernel's replies."""

    def __init__(self, uploader: ImageUploader) -> None:
        self.uploader = uploader
        self.replies: list[dict[str, Any]] = []
        uploader.send = lambda content, buffers=None: self.replies.append(content)

    def message(self, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        self.uploader._on_browser_message(self.uploader, content, buffers or [])

    def upload(self, transfer_id: str, name: str, data: bytes, *, chunk: int = 64 * 1024) -> None:
        self.message(
            {"type": "begin", "id": transfer_id, "name": name, "size": len(data), "mime": ""}
        )
        if self.replies[-1]["type"] == "refused":
            return
        for offset in range(0, len(data), chunk):
            self.message(
                {"type": "chunk", "id": transfer_id, "offset": offset},
                [memoryview(data[offset : offset + chunk])],
            )
        self.message({"type": "end", "id": transfer_id, "sha256": hashlib.sha256(data).hexdigest()})


def test_upload_over_the_message_protocol_is_acknowledged_fitted_and_gauged(
    photo_jpeg: bytes,
) -> None:
    uploader = ImageUploader(model=FLASH)
    browser = Browser(uploader)
    browser.upload("u1", "holiday.jpg", photo_jpeg, chunk=10_000)
    acks = [r["offset"] for r in browser.replies if r["type"] == "ack"]
    assert acks[0] == 0 and acks[-1] == len(photo_jpeg)
    assert acks == sorted(acks) and len(acks) == 1 + -(-len(photo_jpeg) // 10_000)
    (item,) = uploader.items
    assert item["state"] == "ready" and item["name"] == "holiday.jpg"
    assert item["sha256"] == hashlib.sha256(photo_jpeg).hexdigest()
    assert item["thumb"].startswith("data:image/jpeg;base64,")
    assert item["lines"][0].startswith("320×240")
    (fitted,) = uploader.images
    assert fitted.source_sha256 == hashlib.sha256(photo_jpeg).hexdigest()
    assert "fitted request" in uploader.summary["lines"][1]
    assert not uploader.busy


def test_refused_uploads_show_the_message_and_no_traceback() -> None:
    uploader = ImageUploader(model=FLASH)
    browser = Browser(uploader)
    browser.upload("bad", "broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    browser.upload("bomb", "bomb.png", bomb_png_bytes())
    states = {item["name"]: item for item in uploader.items}
    assert states["broken.jpg"]["state"] == "error"
    assert states["bomb.png"]["state"] == "error"
    for item in uploader.items:
        assert item["error"] and "Traceback" not in item["error"]
    assert uploader.images == [] and len(uploader.errors) == 2


def test_a_damaged_transfer_is_refused_to_the_browser(photo_jpeg: bytes) -> None:
    uploader = ImageUploader(model=FLASH)
    browser = Browser(uploader)
    browser.message({"type": "begin", "id": "d", "name": "d.jpg", "size": len(photo_jpeg)})
    browser.message({"type": "chunk", "id": "d", "offset": 0}, [photo_jpeg])
    browser.message({"type": "end", "id": "d", "sha256": "f" * 64})
    assert browser.replies[-1] == {
        "type": "refused",
        "id": "d",
        "message": browser.replies[-1]["message"],
    }
    assert "damaged" in browser.replies[-1]["message"]
    assert uploader.items[0]["state"] == "error"


def test_more_images_than_the_model_accepts_are_refused(photo_jpeg: bytes) -> None:
    uploader = ImageUploader(model=FLASH)
    browser = Browser(uploader)
    limit = get_model(FLASH).max_reference_images
    for n in range(limit + 1):
        browser.upload(f"u{n}", f"p{n}.jpg", photo_jpeg)
    assert browser.replies[-1]["type"] == "refused"
    assert "accepts at most 3 per request" in browser.replies[-1]["message"]
    assert len(uploader.images) == limit


def test_remove_message_drops_the_image(photo_jpeg: bytes) -> None:
    uploader = ImageUploader(model=FLASH)
    browser = Browser(uploader)
    browser.upload("u1", "a.jpg", photo_jpeg)
    browser.message({"type": "remove", "id": "u1"})
    assert uploader.items == [] and uploader.images == [] and uploader.summary == {}


def test_changing_the_model_fits_again_and_updates_the_gauge() -> None:
    data = jpeg_bytes(photo_like(1600, 1200, seed=4), 85)
    uploader = ImageUploader(model=FLASH)
    uploader.add_bytes(data, "wide.jpg")
    flash_fit = uploader.images[0]
    flash_lines = uploader.summary["lines"]
    uploader.model = PRO
    pro_fit = uploader.images[0]
    assert pro_fit is not flash_fit  # fitted again, for the new model
    assert uploader.max_images == get_model(PRO).max_reference_images
    assert max(pro_fit.width, pro_fit.height) <= get_model(PRO).fit_max_side
    # Token rules differ: tiles for Gemini 2.5, a fixed count for Gemini 3.
    assert flash_fit.tokens == get_model(FLASH).input_image_tokens(
        flash_fit.width, flash_fit.height
    )
    assert pro_fit.tokens == get_model(PRO).input_image_tokens(pro_fit.width, pro_fit.height)
    assert uploader.summary["lines"] != flash_lines
    assert PRO in uploader.summary["lines"][-1]
    assert f"≈{pro_fit.tokens:,} input tokens" in uploader.items[0]["lines"][-1]


def test_fitting_runs_off_the_event_loop_when_one_is_running(photo_jpeg: bytes) -> None:
    async def scenario() -> list[str]:
        uploader = ImageUploader(model=FLASH)
        uploader.add_bytes(photo_jpeg, "a.jpg")
        states = [uploader.items[0]["state"]]  # the loop has not been yielded to yet
        while uploader.busy:
            await asyncio.sleep(0.01)
        states.append(uploader.items[0]["state"])
        return states

    assert asyncio.run(scenario()) == ["fitting", "ready"]


def test_an_outdated_fit_is_dropped(photo_jpeg: bytes) -> None:
    async def scenario() -> ImageUploader:
        uploader = ImageUploader(model=FLASH)
        uploader.add_bytes(photo_jpeg, "a.jpg")
        uploader.model = PRO  # a second fit starts before the first one is delivered
        while uploader.busy:
            await asyncio.sleep(0.01)
        return uploader

    uploader = asyncio.run(scenario())
    assert uploader.gauge().model == PRO


def test_add_file_reads_a_path_on_the_kernels_machine(tmp_path, photo_jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "kernel-side.jpg"
    path.write_bytes(photo_jpeg)
    uploader = ImageUploader()
    uploader.add_file(path)
    assert uploader.items[0]["name"] == "kernel-side.jpg"
    assert uploader.images[0].source_sha256 == hashlib.sha256(photo_jpeg).hexdigest()
    uploader.clear()
    assert uploader.items == [] and uploader.images == []


def test_a_garbled_message_is_refused_not_raised() -> None:
    uploader = ImageUploader()
    browser = Browser(uploader)
    browser.message({"type": "begin", "id": "g", "name": "g.jpg", "size": "many"})
    assert browser.replies[-1]["type"] == "refused"
    assert "garbled" in browser.replies[-1]["message"]


def test_plain_word_warnings_reach_the_view() -> None:
    uploader = ImageUploader()
    uploader.add_bytes(jpeg_bytes(photo_like(320, 240, seed=1), 90, gps=True), "gps.jpg")
    uploader.add_bytes(animated_gif_bytes(4, (64, 48)), "anim.gif")
    warnings = {item["name"]: " ".join(item["warnings"]) for item in uploader.items}
    assert "GPS" in warnings["gps.jpg"]
    assert "first of 4 frames" in warnings["anim.gif"]
    assert "not accepted by the API" in uploader.items[1]["lines"][1]  # GIF is converted


def test_many_uploads_are_a_grid_of_thumbnails_with_a_short_gauge() -> None:
    uploader = ImageUploader(model=PRO)
    photos = [jpeg_bytes(photo_like(480, 480, seed=40 + n), 85) for n in range(14)]
    uploader.add_bytes(photos[0], "ref-01.jpg")
    uploader.add_bytes(photos[1], "ref-02.jpg")
    assert uploader.layout_mode == "cards"  # a few: each card with its whole gauge
    for n, data in enumerate(photos[2:], start=3):
        uploader.add_bytes(data, f"ref-{n:02d}.jpg")
    assert uploader.layout_mode == "grid" and len(uploader.images) == 14
    view = uploader.items[0]
    assert view["short"] == ["480×480 sent as is", view["short"][1]]
    assert view["short"][1].endswith("tokens") and " · ≈" in view["short"][1]
    assert len(view["lines"]) >= 4  # the whole gauge is still there, for the tooltip
    uploader.remove(uploader.items[0]["id"])
    for view in list(uploader.items)[:11]:
        uploader.remove(view["id"])
    assert len(uploader.items) == 2 and uploader.layout_mode == "cards"
