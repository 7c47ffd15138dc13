"""Run the notebooks in this folder as tests with nbval, with no extra flags.

``pytest`` (or ``pytest notebooks``) executes every notebook here top to bottom in a
fresh kernel and compares each cell's fresh output with the output stored in the
notebook, after the substitutions in ``nbval-sanitize.cfg`` (result ids, thumbnails,
timings, ports). Only this folder's notebooks are collected this way, so notebooks that
other tests drive (and whose outputs are not stored) stay out of it.

The stored outputs come from the offline emulator, so in this strict mode the kernels
start without ``GEMINI_API_KEY``/``GOOGLE_API_KEY`` even when they are set: a test run
never spends money. Defaults, each overridable on the command line:

* the kernel is the Python running pytest (``--nbval-current-env``), so a fresh clone
  needs no kernelspec; ``--nbval-kernel-name NAME`` picks another (the Binder test does);
* ``--nbval-sanitize-with`` is the file next to this one;
* ``--nbval-lax`` runs the notebooks against Gemini when a key is set, checking only
  that every cell runs, since Gemini's answers differ from the emulator's
  (``pytest --nbval-lax notebooks``, as ``make test-live`` does).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from nbval.plugin import IPyNbFile

SANITIZE = Path(__file__).resolve().parent / "nbval-sanitize.cfg"
_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


@contextmanager
def _without_api_keys() -> Iterator[None]:
    """Hide the API keys while a kernel starts (it copies the environment at launch)."""
    saved = {name: os.environ.pop(name) for name in _KEY_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class OfflineNotebook(IPyNbFile):
    """A notebook whose kernel runs offline, so its outputs match the stored ones."""

    def setup(self) -> None:
        with _without_api_keys():
            super().setup()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if file_path.suffix != ".ipynb" or ".ipynb_checkpoints" in file_path.parts:
        return None
    option = parent.config.option
    if not option.nbval_kernel_name:
        option.nbval_current_env = True
    if option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(SANITIZE)
    if option.nbval or option.nbval_lax:
        return None  # nbval's own hook collects it (and keeps the keys: live runs)
    return OfflineNotebook.from_parent(parent, path=file_path)
