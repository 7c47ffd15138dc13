"""Prompt grids for workshops: inputs × prompt variants × parameters, in one figure.

Every cell is one item of an ordinary batch (so grids get the journal, resume, pacing and
retries for free); the figure puts inputs in rows and prompt variants (× parameter sets)
in columns, with the input itself in the first column, and labels both. The figure is a
plain ``matplotlib.figure.Figure`` (no pyplot state): it shows itself in Jupyter and
``fig.savefig("grid.png")`` exports it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image

from .._types import InputSpec, PromptsSpec
from ._engine import DEFAULT_CONCURRENCY, BatchReport, run_batch_async, run_sync
from ._manifest import BatchItem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..session import Session

__all__ = ["GridResult", "prompt_grid", "prompt_grid_async"]

#: Long side, in pixels, of the images drawn in the grid (keeps figures light).
CELL_SIDE = 512
#: Drawn for a projector at the back of a room: a figure resolution that does not depend
#: on the notebook's settings, cells about 3 inches wide and labels at 13 pt.
GRID_DPI = 100
CELL_INCHES = 3.2
LABEL_FONT_SIZE = 13
NOTE_FONT_SIZE = 10
_LABEL_WIDTH = 30
#: What a grid's parameter sets may vary: every request option of a manifest line.
_PARAM_KEYS = (
    "model", "aspect_ratio", "image_size", "thinking_level", "include_thoughts", "grounding",
)  # fmt: skip


class GridResult(NamedTuple):
    """``fig, report = prompt_grid(...)``."""

    figure: Figure
    report: BatchReport


class _Layout(NamedTuple):
    items: list[BatchItem]
    row_labels: list[str]
    col_labels: list[str]
    inputs: list[tuple[Path, ...]]
    #: (row, column) → item id
    cells: dict[tuple[int, int], str]


def _plan(
    inputs: Sequence[InputSpec] | None, prompts: PromptsSpec, params: Sequence[Mapping[str, Any]]
) -> _Layout:
    if not prompts:
        raise ValueError("prompt_grid needs at least one prompt.")
    named = list(prompts.items()) if isinstance(prompts, Mapping) else [(p, p) for p in prompts]
    rows: list[tuple[Path, ...]] = []
    for spec in inputs if inputs else [None]:
        if spec is None:
            rows.append(())
        elif isinstance(spec, (str, os.PathLike)):
            rows.append((Path(spec),))
        else:
            rows.append(tuple(Path(p) for p in spec))
    param_sets = [dict(p) for p in params] or [{}]
    for p in param_sets:
        unknown = set(p) - set(_PARAM_KEYS)
        if unknown:
            raise ValueError(f"Unknown grid parameters {sorted(unknown)}; use {list(_PARAM_KEYS)}.")
    items: list[BatchItem] = []
    cells: dict[tuple[int, int], str] = {}
    col_labels: list[str] = []
    for j, (label, prompt) in enumerate(named):
        for k, p in enumerate(param_sets):
            col = len(col_labels)
            variant = ", ".join(_shown(key, value) for key, value in p.items())
            col_labels.append(f"{label}\n{variant}" if len(param_sets) > 1 else label)
            for i, images in enumerate(rows):
                # The id names the cell and what it holds, so a changed grid run into
                # the same folder never shows an old picture under a new label.
                cell = BatchItem(id="", prompt=prompt, images=images, **p)
                item_id = f"r{i:02d}-p{j:02d}-v{k:02d}-{cell.fingerprint()[:8]}"
                items.append(dataclasses.replace(cell, id=item_id, line=len(items) + 1))
                cells[(i, col)] = item_id
    row_labels = [", ".join(p.name for p in images) or "(no input)" for images in rows]
    return _Layout(items, row_labels, col_labels, rows, cells)


async def prompt_grid_async(
    inputs: Sequence[InputSpec] | None,
    prompts: PromptsSpec,
    *,
    params: Sequence[Mapping[str, Any]] = (),
    session: Session | None = None,
    outdir: str | os.PathLike[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    progress: bool = True,
    model: str | None = None,
) -> GridResult:
    """:func:`prompt_grid` for a notebook cell: ``fig, report = await prompt_grid_async(...)``."""
    layout = _plan(inputs, prompts, params)
    out = Path(outdir) if outdir is not None else Path(tempfile.mkdtemp(prefix="nbbanana-grid-"))
    report = await run_batch_async(
        layout.items,
        out,
        session=session,
        concurrency=concurrency,
        rpm=rpm,
        resume=resume,
        retry_failed=retry_failed,
        progress=progress,
        model=model,
    )
    return GridResult(_figure(layout, report), report)


def prompt_grid(
    inputs: Sequence[InputSpec] | None,
    prompts: PromptsSpec,
    *,
    params: Sequence[Mapping[str, Any]] = (),
    session: Session | None = None,
    outdir: str | os.PathLike[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    progress: bool = True,
    model: str | None = None,
) -> GridResult:
    """Run every input × prompt × parameter set as a batch and lay the results out.

    * ``inputs`` — image paths (or a list of paths per row for several references);
      ``None`` or ``[]`` for one row of pure generations.
    * ``prompts`` — the prompt variants, or a mapping ``{short label: prompt}`` for
      readable column titles.
    * ``params`` — parameter sets, e.g. ``[{"aspect_ratio": "1:1"}, {"aspect_ratio":
      "16:9"}]``; each multiplies the columns.
    * ``outdir`` — where the outputs and journal go (a temporary folder by default).
      Running the same grid into the same folder again resumes it: cells already done
      are not paid for twice (``resume=True``, the default here). The other options
      are :func:`run_batch`'s.

    Returns ``(figure, report)``; ``figure.savefig("grid.png", dpi=150)`` exports it.
    """
    # The async twin does the work (in a worker thread inside a notebook cell, as
    # run_batch does): the plan, the batch and the figure are written once.
    grid = prompt_grid_async(
        inputs, prompts, params=params, session=session, outdir=outdir,
        concurrency=concurrency, rpm=rpm, resume=resume, retry_failed=retry_failed,
        progress=progress, model=model,
    )  # fmt: skip
    return run_sync(grid)


def _show_figures_in_ipython() -> None:
    """Let IPython display a bare ``Figure`` (as PNG, unless a format was chosen).

    IPython only learns to render figures when pyplot or ``%matplotlib inline`` sets up
    its formatters; a figure made without pyplot would otherwise print as
    ``<Figure size …>`` in a fresh kernel. Registering the PNG formatter is what
    ``%matplotlib inline`` does, without touching pyplot's global state.
    """
    try:  # IPython is there in a notebook, not necessarily in a script
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    # Keep the formats the notebook chose (%config InlineBackend.figure_formats =
    # ["jpeg"] keeps a notebook small): formatters already registered for figures, or
    # the inline backend's setting; PNG only when none was chosen.
    from matplotlib.figure import Figure

    for formatter in shell.display_formatter.formatters.values():
        try:
            formatter.lookup_by_type(Figure)
        except KeyError:
            continue
        return
    try:  # matplotlib-inline comes with the Jupyter kernel, not with nbbanana
        from matplotlib_inline.config import InlineBackend

        formats = set(InlineBackend.instance().figure_formats) or {"png"}
    except ImportError:
        formats = {"png"}
    select_figure_formats(shell, formats)  # type: ignore[no-untyped-call]


def _figure(layout: _Layout, report: BatchReport) -> Figure:
    # matplotlib loads only when a grid is drawn: it is the slowest import of all.
    from matplotlib.figure import Figure

    _show_figures_in_ipython()
    show_inputs = any(layout.inputs)
    n_rows = len(layout.row_labels)
    n_cols = len(layout.col_labels) + (1 if show_inputs else 0)
    fig = Figure(
        figsize=(CELL_INCHES * n_cols, CELL_INCHES * n_rows + 0.8),
        dpi=GRID_DPI,
        layout="constrained",
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    offset = 1 if show_inputs else 0
    for i in range(n_rows):
        if show_inputs:
            ax = axes[i][0]
            if layout.inputs[i]:
                ax.imshow(_thumbnail(layout.inputs[i][0]))
            if i == 0:
                ax.set_title("input", fontsize=LABEL_FONT_SIZE)
        for c in range(len(layout.col_labels)):
            ax = axes[i][c + offset]
            item_id = layout.cells[(i, c)]
            files = [f for f in report.outputs.get(item_id, []) if f.suffix == ".png"]
            if files:
                ax.imshow(_thumbnail(files[0]))
            else:
                message = report.failures.get(item_id, "not run")
                ax.text(
                    0.5, 0.5, textwrap.fill(f"failed: {message}", 30)[:200], ha="center",
                    va="center", fontsize=NOTE_FONT_SIZE, color="#a00", transform=ax.transAxes,
                    wrap=True,
                )  # fmt: skip
                ax.set_facecolor("#f2f2f2")
            if i == 0:
                ax.set_title(_wrap(layout.col_labels[c]), fontsize=LABEL_FONT_SIZE)
        axes[i][0].set_ylabel(_wrap(layout.row_labels[i]), fontsize=LABEL_FONT_SIZE)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _shown(key: str, value: Any) -> str:
    """A parameter value as a column title shows it ("16:9", "grounding", "no grounding")."""
    if isinstance(value, bool):
        return key.replace("_", " ") if value else f"no {key.replace('_', ' ')}"
    return str(value)


def _wrap(text: str) -> str:
    lines = text.splitlines() or [""]
    first = textwrap.shorten(lines[0], width=_LABEL_WIDTH * 2, placeholder="…")
    return "\n".join([textwrap.fill(first, _LABEL_WIDTH), *lines[1:]])


def _thumbnail(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (CELL_SIDE, CELL_SIDE))
        small = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    small.thumbnail((CELL_SIDE, CELL_SIDE))
    return small
