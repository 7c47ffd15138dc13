"""The offline notice: an information banner in a notebook (not a pink stderr box), a
plain line elsewhere, and only once per process."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from nbbanana._notice import in_notebook, notice_bundle

ROOT = Path(__file__).resolve().parents[1]


def test_notice_bundle_is_an_information_banner_with_plain_text() -> None:
    bundle = notice_bundle("nbbanana: OFFLINE session - <synthetic> images")
    assert 'role="status"' in bundle["text/html"]
    assert "&lt;synthetic&gt;" in bundle["text/html"]  # escaped
    assert bundle["text/plain"] == "nbbanana: OFFLINE session - <synthetic> images"
    assert "\n" not in bundle["text/plain"]


def test_not_a_notebook_outside_a_kernel() -> None:
    assert in_notebook() is False


def test_notice_in_a_kernel_is_shown_once_as_html_not_stderr() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import nbbanana\ns = nbbanana.connect()"),
        nbformat.v4.new_code_cell("t = nbbanana.connect()"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel copies this process's environment
    try:
        NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    first, second = (cell.outputs for cell in notebook.cells)
    assert not any(out.get("name") == "stderr" for out in first + second)
    banners = [out for out in first if out.output_type == "display_data"]
    assert len(banners) == 1
    assert "nbbanana-notice" in banners[0].data["text/html"]
    assert "OFFLINE session" in banners[0].data["text/plain"]
    assert second == []
