"""Batches that lose nothing: many items through one Session, or through Google's Batch API.

* :func:`run_batch` / :func:`run_batch_async` — a local batch: bounded concurrency, a
  requests-per-minute limit, progress, a journal and atomic outputs so that ``kill -9``
  loses nothing and ``resume=True`` finishes the job with every output written once;
  transient failures are retried, and one run at a time holds an output folder.
* :func:`submit_batch` — the same items as a Gemini Batch API job (half price, hours of
  turnaround); :class:`BatchJob` polls it and writes its results in the same layout.
* :func:`prompt_grid` — inputs × prompt variants × parameters in one labelled figure.

Items come from a JSONL or CSV manifest (:func:`load_manifest`) or a list of
:class:`BatchItem` / dicts; every problem is reported with its line number before
anything is sent.
"""

from __future__ import annotations

from ._api import BatchJob, submit_batch
from ._engine import DEFAULT_CONCURRENCY, BatchError, BatchReport, run_batch, run_batch_async
from ._grid import GridResult, prompt_grid, prompt_grid_async
from ._lock import FolderBusy
from ._manifest import BatchItem, ManifestError, load_manifest

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BatchError",
    "BatchItem",
    "BatchJob",
    "BatchReport",
    "FolderBusy",
    "GridResult",
    "ManifestError",
    "load_manifest",
    "prompt_grid",
    "prompt_grid_async",
    "run_batch",
    "run_batch_async",
    "submit_batch",
]
