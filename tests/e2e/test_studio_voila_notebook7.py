"""The studio in a real browser outside JupyterLab: Voila and Notebook 7.

The issue promises that ``nbbanana.studio()`` works in JupyterLab 4, Notebook 7 and
Voila; ``test_studio_e2e.py`` covers JupyterLab in depth. Here each of the other two
front ends serves the same notebook (no API key: offline emulator) to headless Chromium,
which uploads a photo-like JPEG of a few MB through the uploader's file input, checks the
gauge shows the fitted size, types a prompt, clicks Run and waits for the after-image.
Voila renders widgets with its own widget manager and Notebook 7 with its own shell, so
each needs the anywidget front-end extension to be found and loaded there as well.
Screenshots go to ``tests/artifacts/``.

Uses Debian's Chromium (``/usr/bin/chromium``); the tests are skipped when it is missing,
and never download a browser.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import ARTIFACTS, in_browser, require_browser
from _imagegen import jpeg_bytes, photo_like

from nbbanana.models import DEFAULT_MODEL, get_model

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
MODEL = DEFAULT_MODEL  # what nbbanana.studio() uses offline
PHOTO_SIZE = (4000, 3000)

sync_api = require_browser()
pytest.importorskip("voila", reason="voila is not installed (it is in the [dev] extra)")
pytest.importorskip("notebook", reason="notebook 7 is not installed (it is in the [dev] extra)")

from _jupyter import (  # noqa: E402
    JupyterLab,
    start_notebook7,
    start_voila,
    stop_jupyterlab,
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-voila-nb7")


@pytest.fixture(scope="module")
def photo(work: Path) -> Path:
    """A 12 MP photo-like JPEG of a few MB: larger than the model's fitting side."""
    path = work / "photo.jpg"
    path.write_bytes(jpeg_bytes(photo_like(*PHOTO_SIZE, seed=5), 95))
    assert path.stat().st_size > 2_000_000
    return path


@pytest.fixture
def voila(work: Path) -> Iterator[JupyterLab]:
    server = start_voila(work / "voila", HERE / "studio.ipynb")
    try:
        yield server
    finally:
        stop_jupyterlab(server)


@pytest.fixture
def notebook7(work: Path) -> Iterator[JupyterLab]:
    server = start_notebook7(work / "notebook7", [HERE / "studio.ipynb"])
    try:
        yield server
    finally:
        stop_jupyterlab(server)


def _upload_and_run(page: Any, photo: Path, name: str) -> None:
    """Upload ``photo``, check its gauge, run one edit and wait for the after-image."""
    expect = sync_api.expect
    studio = page.locator(".nbb-studio")
    expect(studio).to_be_visible()
    expect(studio.locator("button.nbb-upload-pick")).to_be_visible()
    expect(studio.locator(".nbb-where")).to_contain_text("offline emulator")

    studio.locator(".nbb-upload-input").set_input_files(str(photo))
    item = studio.locator(".nbb-item")
    expect(item).to_have_count(1)
    expect(item).to_have_class("nbb-item nbb-state-ready")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    expect(item).to_have_attribute("data-sha256", digest)  # every byte arrived
    width, height = PHOTO_SIZE
    side = get_model(MODEL).fit_max_side
    gauge = item.locator(".nbb-gauge")
    expect(gauge).to_contain_text(f"{width}×{height}")
    expect(gauge).to_contain_text(f"fitted: {side}×{side * height // width} JPEG")

    studio.locator(".nbb-prompt textarea").fill("Make the sky violet")
    studio.locator("button.nbb-run").click()
    after = studio.locator("img.nbb-after-img")
    # Aspect "auto": an edit keeps the input's 4:3 shape at the model's output size.
    out_width, out_height = get_model(MODEL).output_size("4:3")
    expect(after).to_have_attribute("data-width", str(out_width))
    expect(after).to_have_attribute("data-height", str(out_height))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=after.element_handle()
    )
    expect(studio.locator(".nbb-status")).to_contain_text("Done in")
    expect(studio.locator("button.nbb-turn")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_studio_in_voila(voila: JupyterLab, photo: Path) -> None:
    def steps(page: Any) -> None:
        # Voila runs the notebook when the page is requested and streams the outputs.
        page.goto(f"{voila.url}/")
        _upload_and_run(page, photo, "studio-voila")

    in_browser("studio-voila", steps, local_only=True)


def test_studio_in_notebook7(notebook7: JupyterLab, photo: Path) -> None:
    expect = sync_api.expect

    def steps(page: Any) -> None:
        page.goto(notebook7.notebook_url("studio.ipynb"))
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        # Notebook 7 has no "| Idle" status text: its toolbar indicator carries the state.
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        expect(idle.first).to_be_visible()
        _run_all_cells(page)
        # Notebook 7 may still ask which kernel to use if the session was not ready: accept.
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        expect(accept.or_(page.locator(".nbb-studio")).first).to_be_visible()
        if accept.count():
            accept.click()
        _upload_and_run(page, photo, "studio-notebook7")

    in_browser("studio-notebook7", steps, local_only=True)


def _run_all_cells(page: Any) -> None:
    """Run > Run All Cells, until the cell is queued ("[*]" or a number in its prompt).

    Right after the page loads, Notebook 7 can take the click while the command is not yet
    enabled and do nothing; the click is repeated then. Once a run is queued it is not
    repeated, so the studio is shown once.
    """
    prompt = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first
    for _ in range(5):
        page.locator(".lm-MenuBar-itemLabel:text-is('Run')").click()
        page.locator(".lm-Menu-itemLabel:text-is('Run All Cells')").click()
        try:
            sync_api.expect(prompt).not_to_have_text(re.compile(r"\[\s*\]"), timeout=15_000)
            return
        except AssertionError:
            print(f"Run All Cells did not queue the cell (prompt {prompt.inner_text()!r}): again")
            page.keyboard.press("Escape")  # close the menu if it is still open
    raise AssertionError("Run All Cells never queued the notebook's cell")
