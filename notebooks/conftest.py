"""Run the notebooks in this folder as tests with nbval, with no extra flags.

``pytest`` (or ``pytest notebooks``) executes every notebook here top to bottom in a
fresh kernel and compares each cell's fresh output with the output stored in the
notebook, after the substitutions in ``nbval-sanitize.cfg`` (result ids, thumbnails,
timings, ports). Only this folder's notebooks are collected this way, so notebooks that
other tests drive (and whose outputs are not stored) stay out of it.

Defaults, each overridable on the command line:

* the kernel is the Python running pytest (``--nbval-current-env``), so a fresh clone
  needs no kernelspec; ``--nbval-kernel-name NAME`` picks another (the Binder test does);
* ``--nbval-sanitize-with`` is the file next to this one;
* ``--nbval-lax`` checks only that every cell runs: use it with an API key, where
  Gemini's answers differ from the emulator's (``make test-live``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nbval.plugin import IPyNbFile

SANITIZE = Path(__file__).resolve().parent / "nbval-sanitize.cfg"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if file_path.suffix != ".ipynb" or ".ipynb_checkpoints" in file_path.parts:
        return None
    option = parent.config.option
    if not option.nbval_kernel_name:
        option.nbval_current_env = True
    if option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(SANITIZE)
    if option.nbval or option.nbval_lax:
        return None  # nbval's own hook collects it
    return IPyNbFile.from_parent(parent, path=file_path)
