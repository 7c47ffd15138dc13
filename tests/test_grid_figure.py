"""Prompt-grid figures are readable on a projector, whatever the notebook's settings."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from PIL import Image

from nbbanana._connect import connect
from nbbanana.batch import prompt_grid
from nbbanana.emulator import Emulator


def test_grid_figure_is_drawn_for_a_projector(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 40), "red").save(path)
    low = {"figure.dpi": 60.0, "font.size": 8.0}  # what a notebook may have set
    with matplotlib.rc_context(low), Emulator() as emulator:
        session = connect(base_url=emulator.base_url, timeout=10)
        fig, report = prompt_grid(
            [path],
            {"violet": "Make the sky violet"},
            session=session,
            outdir=tmp_path / "grid",
            progress=False,
        )
    assert report.ok
    assert fig.dpi >= 100
    width_in, _ = fig.get_size_inches()
    assert width_in / 2 >= 3  # each of the two cells is about 3 inches wide
    for ax in fig.get_axes():
        assert ax.title.get_fontsize() >= 12
    assert fig.get_axes()[0].yaxis.label.get_fontsize() >= 12


def test_a_figure_format_the_notebook_chose_is_kept() -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats
    from matplotlib.figure import Figure

    from nbbanana.batch._grid import _show_figures_in_ipython

    shell = InteractiveShell.instance()
    try:
        select_figure_formats(shell, {"jpeg"})  # %config InlineBackend.figure_formats
        _show_figures_in_ipython()
        bare = Figure()
        bare.subplots()
        data, _ = shell.display_formatter.format(bare)
        assert "image/jpeg" in data and "image/png" not in data
    finally:
        InteractiveShell.clear_instance()
