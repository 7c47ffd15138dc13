"""Widgets for Jupyter, JupyterLab, Notebook 7 and Voila — and the studio that joins them.

Each widget is a thin view over plain, tested logic in this package:

* :class:`ImageUploader` — chunked uploads (no 10 MiB websocket limit) and the size gauge
  (:mod:`._gauge`), fitting in a worker thread;
* :class:`PromptBox` — prompt, model (what the endpoint serves, :mod:`._choices`),
  aspect ratio, image size, thinking, thoughts and grounding where the model takes them,
  Run, status and errors (rules in :mod:`._prompt`);
* :class:`CompareView` — before/after side by side, a slider when shapes match, Save;
* :class:`~._answer.AnswerPanel` — the answer's thoughts (collapsed), sources, search
  suggestions, and a strip to pick one of several images;
* :class:`HistoryStrip` — one thumbnail per chat turn, click to branch;
* the region tool (:mod:`._region`) — draw a box or paint a mask for a regional edit at
  full resolution; the gauge then describes the crop, the result adds a zoomed view;
* :func:`studio` — the four together (state in :mod:`._state`).
"""

from __future__ import annotations

from ._compare import CompareView
from ._history import HistoryStrip
from ._prompt import PromptBox
from ._studio import Studio, studio
from ._uploader import ImageUploader

__all__ = ["CompareView", "HistoryStrip", "ImageUploader", "PromptBox", "Studio", "studio"]
