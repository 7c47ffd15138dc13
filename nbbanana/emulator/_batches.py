"""The Batch API as the google-genai SDK's ``client.batches`` speaks it (Developer API).

Wire shapes (from the SDK's ``batches.py``):

* create — ``POST /{v}/models/{model}:batchGenerateContent`` with
  ``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request":
  GenerateContentRequest, "metadata": {...}}]}}}}`` or ``"inputConfig": {"fileName":
  "files/…"}`` — a JSONL file uploaded through the Files API, one ``{"key", "request"}`` per
  line. The inline form is limited to 20 MB per create request (Batch API guide); a bad
  JSONL line or a missing file is refused at create time.
* get ``GET /{v}/batches/{id}``, list ``GET /{v}/batches?pageSize&pageToken`` →
  ``{"operations": [...], "nextPageToken"}``, cancel ``POST /{v}/batches/{id}:cancel`` →
  ``{}``, delete ``DELETE /{v}/batches/{id}`` → ``{}``.
* A job is an Operation: ``{"name": "batches/…", "done", "metadata": {"@type": …
  GenerateContentBatch, "model", "displayName", "state": "BATCH_STATE_…", "createTime",
  "updateTime", "endTime", "batchStats", "output"}, "response": output}``. The SDK maps
  ``metadata.state`` to ``JobState.JOB_STATE_*`` and ``metadata.output`` to ``dest``.

Behaviour: a job is ``BATCH_STATE_PENDING`` when created; one background thread takes
jobs in creation order, waits ``start_delay`` seconds, marks the job
``BATCH_STATE_RUNNING``, answers its requests one by one (``item_seconds`` each) exactly as
``generateContent`` would (same validation, same deterministic images; image sizes,
thinking levels and thought parts, grounding from the request's ``tools``, several
images when the prompt asks), then marks it
``BATCH_STATE_SUCCEEDED``. A request the service refuses becomes an entry with
``error`` (``{"code", "message", "status"}``) instead of ``response``; the job still
succeeds.
Results come back the way they went in: inline requests → ``output.inlinedResponses.
inlinedResponses`` (each with its ``metadata``); a JSONL file → ``output.responsesFile``,
a generated file (``source: GENERATED``, with ``downloadUri``) of ``{"key", "response"}``
or ``{"key", "error"}`` lines that ``client.files.download`` fetches. Cancel moves a
pending or running job to ``BATCH_STATE_CANCELLED`` without output; a job still
unfinished 48 hours after creation (on the emulator's clock) becomes
``BATCH_STATE_EXPIRED``.
"""

from __future__ import annotations

import json
import queue
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import ModelInfo
from . import _generate, _json
from ._files import FileStore, timestamp
from ._status import ApiError, bad_request, not_found

__all__ = ["BATCH_INLINE_LIMIT", "BATCH_TTL_SECONDS", "BatchStore"]

BATCH_INLINE_LIMIT = 20 * 1024 * 1024  # whole inline batch-create request [Batch API guide]
BATCH_TTL_SECONDS = 48 * 3600  # jobs not finished by then expire [Batch API guide]
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
_DONE = (
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
)

Parse = Callable[[Mapping[str, Any], ModelInfo, str], _generate.GenerateRequest]


@dataclass
class _Item:
    request: dict[str, Any]
    metadata: Any = None  # inline requests
    key: str | None = None  # JSONL lines


@dataclass
class _Job:
    id: str
    model: ModelInfo
    display_name: str | None
    items: list[_Item]
    from_file: bool
    created: float
    updated: float
    base_url: str
    version: str
    state: str = "BATCH_STATE_PENDING"
    ended: float | None = None
    succeeded: int = 0
    failed: int = 0
    output: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def resource(self) -> dict[str, Any]:
        done = self.state in _DONE
        metadata: dict[str, Any] = {
            "@type": _BATCH_TYPE,
            "name": f"batches/{self.id}",
            "model": f"models/{self.model.id}",
            "state": self.state,
            "createTime": timestamp(self.created),
            "updateTime": timestamp(self.updated),
            "batchStats": {
                "requestCount": str(len(self.items)),
                "successfulRequestCount": str(self.succeeded),
                "failedRequestCount": str(self.failed),
                "pendingRequestCount": str(len(self.items) - self.succeeded - self.failed),
            },
        }
        if self.display_name:
            metadata["displayName"] = self.display_name
        if self.ended is not None:
            metadata["endTime"] = timestamp(self.ended)
        operation: dict[str, Any] = {
            "name": f"batches/{self.id}",
            "metadata": metadata,
            "done": done,
        }
        if self.output is not None:
            metadata["output"] = self.output
            operation["response"] = {"@type": _OUTPUT_TYPE, **self.output}
        return operation


class BatchStore:
    """Batch jobs and the background thread that runs them."""

    def __init__(
        self,
        *,
        files: FileStore,
        seed: int,
        clock: Callable[[], float],
        start_delay: float,
        item_seconds: float,
        parse: Parse,
    ) -> None:
        self._files = files
        self._seed = seed
        self._clock = clock
        self.start_delay = start_delay
        self.item_seconds = item_seconds
        self._parse = parse
        self._rng = random.Random(f"batches:{seed}")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="nbbanana-emulator-batches", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --------------------------------------------------------------- requests

    def create(
        self,
        model: ModelInfo,
        body: Mapping[str, Any],
        base_url: str,
        version: str,
        body_bytes: int,
    ) -> dict[str, Any]:
        batch = body.get("batch")
        if not isinstance(batch, Mapping):
            raise bad_request("* BatchGenerateContentRequest.batch: batch is required.")
        input_config = _generate.field_of(batch, "inputConfig") or {}
        file_name = _generate.field_of(input_config, "fileName")
        inline = (input_config.get("requests") or {}).get("requests")
        if (file_name is None) == (inline is None):
            raise bad_request(
                "* BatchGenerateContentRequest.batch.input_config: exactly one of requests or "
                "file_name must be set."
            )
        if inline is not None:
            if body_bytes > BATCH_INLINE_LIMIT:
                raise bad_request(
                    f"Request payload size exceeds the limit: {BATCH_INLINE_LIMIT} bytes."
                )
            if not isinstance(inline, list) or not inline:
                raise bad_request(
                    "* BatchGenerateContentRequest.batch.input_config.requests: empty."
                )
            for number, entry in enumerate(inline):
                if not isinstance(entry, dict) or not isinstance(entry.get("request") or {}, dict):
                    raise bad_request(  # emulator wording
                        f"* BatchGenerateContentRequest.batch.input_config.requests.requests"
                        f"[{number}]: expected an object with a request object."
                    )
            items = [
                _Item(dict(entry.get("request") or {}), entry.get("metadata")) for entry in inline
            ]
        else:
            items = self._read_jsonl(str(file_name))
        now = self._clock()
        with self._lock:
            job = _Job(
                id=self._new_id(),
                model=model,
                display_name=_generate.field_of(batch, "displayName"),
                items=items,
                from_file=file_name is not None,
                created=now,
                updated=now,
                base_url=base_url,
                version=version,
            )
            self._jobs[job.id] = job
            resource = job.resource()
        self._queue.put(job.id)
        return resource

    def _read_jsonl(self, file_name: str) -> list[_Item]:
        stored = self._files.get(file_name.removeprefix("files/"))
        items = []
        for number, line in enumerate(stored.data.decode("utf-8", "replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = _json.loads(line)
                request = entry["request"]
                if not isinstance(request, dict):
                    raise TypeError
            except (ApiError, KeyError, TypeError):
                raise bad_request(  # emulator wording
                    f"Invalid batch input file {file_name}: line {number} is not a JSON object "
                    'with a "request".'
                ) from None
            items.append(_Item(request, key=str(entry.get("key", number))))
        if not items:
            raise bad_request(f"Batch input file {file_name} has no requests.")
        return items

    def _job(self, name: str) -> _Job:
        job = self._jobs.get(name.removeprefix("batches/"))
        if job is None:
            raise not_found("Requested entity was not found.")
        self._expire(job)
        return job

    def _expire(self, job: _Job) -> None:
        """A job not finished 48 hours after creation expires (the worker then stops)."""
        now = self._clock()
        if job.state not in _DONE and now - job.created >= BATCH_TTL_SECONDS:
            job.state = "BATCH_STATE_EXPIRED"
            job.updated = job.ended = now

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._job(name).resource()

    def list(
        self, page_size: int, page_token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        size = max(1, min(page_size, 1000))
        start = int(page_token) if page_token and page_token.isdigit() else 0
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.created, j.id), reverse=True)
            for job in jobs:
                self._expire(job)
            page = [j.resource() for j in jobs[start : start + size]]
            more = start + size < len(jobs)
        return page, str(start + size) if more else None

    def cancel(self, name: str) -> None:
        with self._lock:
            job = self._job(name)
            if job.state not in _DONE:
                job.state = "BATCH_STATE_CANCELLED"
                job.updated = job.ended = self._clock()

    def delete(self, name: str) -> None:
        with self._lock:
            job = self._job(name)
            if job.state not in _DONE:
                job.state = "BATCH_STATE_CANCELLED"
            del self._jobs[job.id]

    # ----------------------------------------------------------------- worker

    def _new_id(self) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._rng.choice(alphabet) for _ in range(24))

    def _run(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            self._process(job_id)

    def _set_state(self, job: _Job, state: str) -> bool:
        """Move ``job`` to ``state`` unless it was cancelled or deleted meanwhile."""
        with self._lock:
            if job.state in _DONE or job.id not in self._jobs:
                return False
            job.state = state
            job.updated = self._clock()
            if state in _DONE:
                job.ended = job.updated
            return True

    def _process(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or self._stop.wait(self.start_delay):
            return
        if not self._set_state(job, "BATCH_STATE_RUNNING"):
            return
        for item in job.items:
            if self._stop.wait(self.item_seconds) or job.state != "BATCH_STATE_RUNNING":
                return
            entry = self._answer(job.model, item)
            with self._lock:
                job.results.append(entry)
                if "error" in entry:
                    job.failed += 1
                else:
                    job.succeeded += 1
                job.updated = self._clock()
        output = self._output(job)
        with self._lock:
            if job.state == "BATCH_STATE_RUNNING":
                job.output = output
        self._set_state(job, "BATCH_STATE_SUCCEEDED")

    def _answer(self, model: ModelInfo, item: _Item) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if item.key is not None:
            entry["key"] = item.key
        if item.metadata is not None:
            entry["metadata"] = item.metadata
        key = _generate.body_key(json.dumps(item.request, sort_keys=True).encode())
        try:
            request = self._parse(item.request, model, key)
            entry["response"] = _generate.respond(request, None, self._seed)
        except ApiError as error:
            # code, message and status only: the SDK reads item errors as JobError, whose
            # ``details`` are strings, so structured details would break its parsing.
            entry["error"] = {"code": error.code, "message": error.message, "status": error.status}
        return entry

    def _output(self, job: _Job) -> dict[str, Any]:
        if not job.from_file:
            return {"inlinedResponses": {"inlinedResponses": job.results}}
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in job.results)
        stored = self._files.add_generated(
            lines.encode(), "application/jsonl", f"batch-{job.id}-responses"
        )
        return {"responsesFile": f"files/{stored.id}"}
