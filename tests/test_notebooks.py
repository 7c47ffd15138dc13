"""House rules for the committed notebooks (running them is nbval's job: notebooks/conftest.py).

nbval can only compare what is stored, and a notebook is documentation people download:
so each one must be executed with its outputs stored, small, free of machine paths and
keys, and listed in the folder's README in order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 300_000
#: Things that must never be stored in an output: machine paths (they differ on every
#: machine and leak the author's) and anything shaped like a Google API key.
FORBIDDEN = re.compile(r"/tmp/|/home/|/root/|/Users/|/work/|AIza[0-9A-Za-z_-]{20,}")
_DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _code_cells(path: Path) -> list[dict[str, Any]]:
    return [cell for cell in _load(path)["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks_and_their_numbers_are_unique() -> None:
    numbers = [path.name[:2] for path in PATHS]
    assert len(numbers) >= 4
    assert len(numbers) == len(set(numbers)), numbers


def test_readme_lists_every_notebook_in_order() -> None:
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\(([0-9][0-9]_[a-z0-9_]+\.ipynb)\)", readme)
    assert linked == [path.name for path in PATHS]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_small(path: Path) -> None:
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: strip large outputs, show thumbnails"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_was_executed_top_to_bottom_with_outputs_stored(path: Path) -> None:
    counts = [cell["execution_count"] for cell in _code_cells(path)]
    assert None not in counts, f"{path.name}: some cells were not run"
    assert counts == sorted(counts) and counts[0] == 1, f"{path.name}: not run in order"
    assert any(cell["outputs"] for cell in _code_cells(path))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_metadata_is_portable(path: Path) -> None:
    metadata = _load(path)["metadata"]
    assert metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in metadata, f"{path.name}: saved widget state (store_widget_state=False)"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_outputs_hold_no_machine_paths_or_keys(path: Path) -> None:
    for number, cell in enumerate(_code_cells(path)):
        for output in cell["outputs"]:
            data = {k: v for k, v in output.get("data", {}).items() if not k.startswith("image/")}
            text = json.dumps([output.get("text", ""), data])
            text = _DATA_URI.sub("data:…", text)  # base64 can spell anything
            found = FORBIDDEN.search(text)
            assert found is None, f"{path.name} cell {number}: {found.group(0)!r} in an output"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_cell_ran_into_an_error(path: Path) -> None:
    for number, cell in enumerate(_code_cells(path)):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{path.name} cell {number}: {errors[0]['ename']}"
