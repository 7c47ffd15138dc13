"""One JupyterLab for every studio browser test (test_studio*_e2e.py).

Starting JupyterLab takes seconds each time: the studio tests share one, started once
per test session with every notebook they open. Each test still opens its own notebook
(its own copy: two tests never share a kernel or a workspace) and starts its own kernel,
and no kernel outlives its test. Notebook 7 and Voila start their own servers
(test_studio_voila_notebook7.py): they are other applications.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _browser import close_browser
from _jupyter import JupyterLab, start_jupyterlab, stop_jupyterlab

HERE = Path(__file__).resolve().parent

#: Every notebook the studio tests open, by the name each test opens it under.
STUDIO_NOTEBOOKS = {
    "studio.ipynb": HERE / "studio.ipynb",  # test_studio_e2e.py
    "studio_gemini3.ipynb": HERE / "studio.ipynb",  # test_studio_gemini3_e2e.py
    "studio_region.ipynb": HERE / "studio_region.ipynb",  # test_studio_region_e2e.py
}


@pytest.fixture(scope="session")
def studio_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """The JupyterLab serving :data:`STUDIO_NOTEBOOKS`; use :func:`lab` in tests."""
    work = tmp_path_factory.mktemp("e2e-lab")
    notebooks = work / "notebooks"
    notebooks.mkdir()
    for name, source in STUDIO_NOTEBOOKS.items():
        shutil.copy(source, notebooks / name)
    server = start_jupyterlab(work / "jupyter", sorted(notebooks.iterdir()))
    try:
        yield server
    finally:
        stop_jupyterlab(server)


@pytest.fixture
def lab(studio_lab: JupyterLab) -> Iterator[JupyterLab]:
    """The shared JupyterLab, with no kernel running when the test starts or ends."""
    studio_lab.shut_down_kernels()
    yield studio_lab
    studio_lab.shut_down_kernels()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last browser test, close the Chromium they share (see ``_browser``)."""
    if nextitem is None or HERE not in nextitem.path.parents:
        close_browser()
