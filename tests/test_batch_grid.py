"""Prompt grids: one labelled figure for inputs × prompts × parameters."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

from nbbanana._connect import connect
from nbbanana.batch import prompt_grid
from nbbanana.emulator import Emulator


def test_grid_axes_labels_and_png_export(tmp_path: Path) -> None:
    inputs = []
    for colour in ("red", "blue"):
        path = tmp_path / f"{colour}.png"
        Image.new("RGB", (40, 40), colour).save(path)
        inputs.append(path)
    with Emulator() as emulator:
        session = connect(base_url=emulator.base_url, timeout=10)
        fig, report = prompt_grid(
            inputs,
            {"violet": "Make the sky violet", "snow": "Add falling snow"},
            params=[{"aspect_ratio": "1:1"}, {"aspect_ratio": "16:9"}],
            session=session,
            outdir=tmp_path / "grid",
            progress=False,
        )
        calls = sum(1 for r in emulator.requests if r.path.endswith(":generateContent"))
    assert report.ok and report.total == 8 and calls == 8
    axes = fig.get_axes()
    assert len(axes) == 2 * (1 + 2 * 2)  # rows: inputs; columns: the input + prompts × params
    titles = [ax.get_title() for ax in axes[:5]]
    assert titles == ["input", "violet\n1:1", "violet\n16:9", "snow\n1:1", "snow\n16:9"]
    assert [axes[0].get_ylabel(), axes[5].get_ylabel()] == ["red.png", "blue.png"]
    assert all(ax.get_images() for ax in axes)  # every cell shows an image
    # The wide column holds wide images.
    wide = axes[2].get_images()[0].get_array()
    assert wide.shape[1] > wide.shape[0]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "PNG"


def test_grid_without_inputs_shows_failures_in_place(tmp_path: Path) -> None:
    with Emulator() as emulator:
        session = connect(base_url=emulator.base_url, timeout=10)
        emulator.inject("prohibited", count=1)
        fig, report = prompt_grid(
            None, ["a banana", "two bananas"], session=session, outdir=tmp_path, concurrency=1,
            progress=False,
        )  # fmt: skip
    assert report.failed == 1
    axes = fig.get_axes()
    assert len(axes) == 2 and axes[0].get_ylabel() == "(no input)"
    assert axes[0].texts and axes[0].texts[0].get_text().startswith("failed:")
    assert axes[1].get_images()


def test_a_changed_grid_in_the_same_folder_runs_the_changed_cells(tmp_path: Path) -> None:
    with Emulator() as emulator:
        session = connect(base_url=emulator.base_url, timeout=10)
        first = prompt_grid(None, ["a cat"], session=session, outdir=tmp_path, progress=False)
        same = prompt_grid(None, ["a cat"], session=session, outdir=tmp_path, progress=False)
        changed = prompt_grid(None, ["a dog"], session=session, outdir=tmp_path, progress=False)
    assert first.report.done == 1
    assert same.report.done == 0 and same.report.skipped == 1  # resumed: not paid twice
    assert changed.report.done == 1  # a new prompt is a new cell, never the old picture


def test_grid_figure_displays_as_png_in_a_fresh_ipython_shell() -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    from nbbanana.batch._grid import _show_figures_in_ipython

    shell = InteractiveShell.instance()
    try:
        bare = Figure()
        bare.subplots()
        before, _ = shell.display_formatter.format(bare)
        assert "image/png" not in before  # a fresh shell prints "<Figure size …>"
        _show_figures_in_ipython()
        data, _ = shell.display_formatter.format(bare)
        png = data["image/png"]
        raw = base64.b64decode(png) if isinstance(png, str) else png
        assert raw.startswith(b"\x89PNG")
    finally:
        InteractiveShell.clear_instance()


def test_grid_figure_keeps_the_notebooks_figure_format() -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure
    from matplotlib_inline.config import InlineBackend

    from nbbanana.batch._grid import _show_figures_in_ipython

    shell = InteractiveShell.instance()
    backend = InlineBackend.instance()
    saved = backend.figure_formats
    try:
        backend.figure_formats = {"jpeg"}  # what %config InlineBackend.figure_formats does
        bare = Figure()
        bare.subplots()
        _show_figures_in_ipython()
        data, _ = shell.display_formatter.format(bare)
        assert "image/jpeg" in data and "image/png" not in data
    finally:
        backend.figure_formats = saved
        InteractiveShell.clear_instance()
