"""The stored figures of the notebooks that plot (the fitting plots of 02, the prompt
grids of 06) are drawn large enough to read on a projector, and nothing offline is
shown as an error."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Narrowest stored figure that is still legible from the back of a room: a figure of
#: two or more panels at 100 dpi is wider than this (at 72 or 60 dpi it was not).
MIN_FIGURE_WIDTH = 900


def _figures(name: str) -> list[Image.Image]:
    cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        for output in cell.get("outputs", []):
            data: dict[str, Any] = output.get("data", {})
            # matplotlib figures are the outputs whose plain text is a Figure's repr.
            if "Figure" not in "".join(data.get("text/plain", "")):
                continue
            for mime in ("image/png", "image/jpeg"):
                if mime in data:
                    raw = base64.b64decode("".join(data[mime]))
                    out.append(Image.open(io.BytesIO(raw)))
    return out


@pytest.mark.parametrize("name", ["02_the_20mb_limit.ipynb", "06_prompt_workshop.ipynb"])
def test_notebook_figures_are_large_enough_for_a_projector(name: str) -> None:
    figures = _figures(name)
    assert figures, f"{name}: no stored figure"
    for figure in figures:
        assert figure.width >= MIN_FIGURE_WIDTH, f"{name}: a figure is {figure.size}"


@pytest.mark.parametrize("name", ["06_prompt_workshop.ipynb", "07_studio.ipynb"])
def test_the_offline_notice_is_not_stored_as_an_error(name: str) -> None:
    cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
    outputs = [o for cell in cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr" and "OFFLINE" in "".join(o["text"])]
    assert any(
        "nbbanana-notice" in "".join(o.get("data", {}).get("text/html", "")) for o in outputs
    )
