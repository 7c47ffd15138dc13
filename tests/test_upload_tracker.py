"""The uploader's state machine, without a widget: uploads, refits, stale fits, refusals.

Fits run through a runner the test controls, so "the model changed while a fit was
running" is a sequence of plain calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from _imagegen import jpeg_bytes, photo_like

from nbbanana.widgets._uploader import FitOutcome, UploadRefused, UploadTracker

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"

Job = tuple[Callable[[], FitOutcome], Callable[[FitOutcome], None]]


class Runner:
    """Holds fits until the test runs them, in any order."""

    def __init__(self) -> None:
        self.pending: list[Job] = []

    def __call__(self, work: Callable[[], FitOutcome], done: Callable[[FitOutcome], None]) -> None:
        self.pending.append((work, done))

    def run(self, index: int = 0) -> None:
        work, done = self.pending.pop(index)
        done(work())


@pytest.fixture
def photo() -> bytes:
    return jpeg_bytes(photo_like(640, 480))


def test_an_upload_goes_from_uploading_to_ready(photo: bytes) -> None:
    runner, changes = Runner(), []
    tracker = UploadTracker(model=FLASH, run=runner, on_change=lambda: changes.append(1))
    tracker.begin("u1", name="p.jpg", size=len(photo), mime="image/jpeg")
    assert [v["state"] for v in tracker.views()] == ["uploading"] and tracker.busy
    half = len(photo) // 2
    assert tracker.chunk("u1", 0, photo[:half]) == half
    assert tracker.chunk("u1", half, photo[half:]) == len(photo)
    tracker.end("u1", hashlib.sha256(photo).hexdigest())
    assert [v["state"] for v in tracker.views()] == ["fitting"]
    runner.run()
    assert [v["state"] for v in tracker.views()] == ["ready"] and not tracker.busy
    assert len(tracker.images) == 1 and tracker.summary()["lines"]
    assert changes  # every step was reported to the view


def test_a_fit_that_finishes_after_the_model_changed_is_dropped(photo: bytes) -> None:
    runner = Runner()
    tracker = UploadTracker(model=FLASH, run=runner)
    tracker.add_bytes(photo, name="p.jpg")
    tracker.model = PRO  # a refit starts; the first fit is now stale
    assert len(runner.pending) == 2
    runner.run(1)  # the refit for PRO finishes first
    assert tracker.images and tracker.views()[0]["state"] == "ready"
    pro_gauge = tracker.views()[0]["lines"]
    runner.run(0)  # then the stale FLASH fit: ignored
    assert tracker.views()[0]["lines"] == pro_gauge
    assert tracker.gauge() is not None and tracker.gauge().model == PRO  # type: ignore[union-attr]


def test_a_removed_upload_ignores_its_fit(photo: bytes) -> None:
    runner = Runner()
    tracker = UploadTracker(run=runner)
    upload = tracker.add_bytes(photo)
    tracker.remove(upload)
    runner.run()
    assert tracker.views() == [] and tracker.images == []


def test_refusals_are_recorded_with_their_message(photo: bytes) -> None:
    tracker = UploadTracker(model=FLASH, run=Runner())
    for n in range(tracker.max_images):
        tracker.begin(f"u{n}", name=f"{n}.jpg", size=10)
    with pytest.raises(UploadRefused, match="accepts at most 3 per request"):
        tracker.begin("extra", name="extra.jpg", size=10)
    tracker.refuse("extra", "at most 3 images")
    assert tracker.errors == ["at most 3 images"]
    with pytest.raises(UploadRefused, match="out of order"):
        tracker.chunk("u0", 5, b"xx")


def test_an_unusable_file_ends_in_error_and_frees_its_bytes() -> None:
    runner = Runner()
    tracker = UploadTracker(run=runner)
    tracker.add_bytes(b"not an image at all", name="notes.txt")
    runner.run()
    (view,) = tracker.views()
    assert view["state"] == "error" and "notes.txt" in view["error"]
    assert tracker._items[0].data is None
