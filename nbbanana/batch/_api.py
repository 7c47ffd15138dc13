"""Google's Batch API: the same items as one server-side job, at half the price.

:func:`submit_batch` turns items into ``GenerateContentRequest`` s, one at a time (each
item's images loaded and fitted only when its request is built, all of one request's
references together in one request's budget (:func:`~nbbanana._pipeline.fit_inline`);
its options — sizes, thinking, thoughts, grounding — checked and configured by
:class:`RequestOptions`, as every interactive request's are). While the requests fit
in one inline ``batchGenerateContent`` call (:data:`INLINE_LIMIT` bytes for the whole
create request, per the Batch API guide) they are sent inline; past that, every request
is streamed to a JSONL file on disk, uploaded through the Files API and the job names the
file. Either way the job is created with the SDK's ``client.batches.create``.

:class:`BatchJob` is the handle: :meth:`~BatchJob.status`, :meth:`~BatchJob.wait` (with a
progress bar), and :meth:`~BatchJob.results`, which writes ``OUTDIR/<id>.png`` +
``<id>.json`` and the same journal as a local batch (under the same folder lock), so
``resume`` semantics and tools that read a batch folder work for both. Thought parts
stay in the sidecar, never among the images; a grounded answer's sources are recorded;
every image of an answer is costed, at the Batch API's half price. A job outlives the Python process: keep its
``name`` and re-attach with :meth:`BatchJob.attach`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.genai import types

from .._connect import connect
from .._options import RequestOptions
from .._pipeline import error_from_response, fit_inline
from .._types import ItemsLike
from ..budget import RequestBudget
from ..errors import DoesNotFitError, NbbananaError
from ..models import MB, ModelInfo, get_model
from ..result import Result
from ._engine import BatchError, BatchReport, _prepare_outdir, _write_outputs
from ._journal import JOURNAL_NAME, Journal, read_journal
from ._lock import FolderLock
from ._manifest import BatchItem, normalise_items

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["INLINE_LIMIT", "BatchJob", "submit_batch"]

#: Largest whole create request sent inline (Batch API guide: "up to 20 MB"; read as
#: 20·10⁶ bytes, the smaller meaning), less room for the JSON around the requests.
INLINE_LIMIT = 20 * MB - 64 * 1024

#: States after which a job changes no more.
TERMINAL_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)

_KEY = "key"


# --------------------------------------------------------------------------- building


def _request_parts(
    item: BatchItem,
    info: ModelInfo,
    budget: RequestBudget,
    config: types.GenerateContentConfig,
) -> list[types.Part]:
    """The prompt and the item's references, fitted together into one request's budget
    (the mechanism an interactive request without a Files API uses, not a copy of it)."""
    try:
        fitted = fit_inline(item.images, info, budget, item.prompt, config)
    except DoesNotFitError as exc:  # its text speaks of one image's share: say the item's
        limit = f" of {budget.limit:,} bytes" if budget.limit is not None else ""
        raise DoesNotFitError(
            f"Item {item.id!r} (line {item.line}): its prompt and {len(item.images)} reference "
            f"image(s) do not fit one Batch API request{limit}, not even at the smallest "
            "size. Shorten the prompt or give the item fewer references. Nothing was sent.",
            source=item.id,
        ) from exc
    parts = [types.Part.from_text(text=item.prompt)]
    parts.extend(types.Part.from_bytes(data=f.data, mime_type=f.mime) for f in fitted)
    return parts


def _options(item: BatchItem, model: str) -> RequestOptions:
    """The item's request options, checked against the job's model as every request's
    are (the manifest check has already refused what the model cannot do)."""
    info = get_model(model, warn=False)  # an unknown id: the server decides
    return RequestOptions(
        kind="edit" if item.images else "generate", model=model,
        aspect_ratio=item.aspect_ratio, image_size=item.image_size,
        thinking_level=item.thinking_level, include_thoughts=item.include_thoughts,
        grounding=item.grounding,
    ).checked(info)  # fmt: skip


#: ``GenerateContentConfig`` fields that the wire carries on the request itself, beside
#: ``generationConfig`` (grounding's ``tools`` among them): the SDK's own conversion of a
#: request (``_GenerateContentConfig_to_mldev``) moves the same ones.
_REQUEST_LEVEL = (
    "systemInstruction",
    "safetySettings",
    "tools",
    "toolConfig",
    "labels",
    "cachedContent",
)


def _rest_request(contents: types.Content, config: types.GenerateContentConfig) -> dict[str, Any]:
    """A ``GenerateContentRequest`` in the REST form (camelCase, bytes as base64), as a
    Batch API input file holds it."""
    generation = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    request: dict[str, Any] = {
        "contents": [contents.model_dump(mode="json", by_alias=True, exclude_none=True)]
    }
    for name in _REQUEST_LEVEL:
        if name in generation:
            request[name] = generation.pop(name)
    request["generationConfig"] = generation
    return request


def _jsonl_line(
    item: BatchItem, contents: types.Content, config: types.GenerateContentConfig
) -> str:
    """One line of a Batch API input file: ``{"key": id, "request": GenerateContentRequest}``."""
    request = _rest_request(contents, config)
    return json.dumps({_KEY: item.id, "request": request}, separators=(",", ":")) + "\n"


class _Requests:
    """Builds requests item by item; inline while they fit, else spilled to a JSONL file."""

    def __init__(self, model: str, inline_limit: int, budget: RequestBudget) -> None:
        self.model = model
        self.info = get_model(model, warn=False)  # an unknown id: the server decides
        self.inline_limit = inline_limit
        self.budget = budget
        self.inline: list[types.InlinedRequest] | None = []
        self._pending_lines: list[str] = []
        self.size = 0
        self.file: Path | None = None
        self._fh: Any = None

    def add(self, item: BatchItem) -> None:
        # The SDK moves the config's request-level fields (tools) up for inline requests.
        config = _options(item, self.model).config()
        parts = _request_parts(item, self.info, self.budget, config)
        contents = types.Content(role="user", parts=parts)
        line = _jsonl_line(item, contents, config)
        # Inline, each request also names the model and carries its key as metadata.
        self.size += len(line.encode("utf-8")) + len(self.model) + 64
        if self.inline is not None and self.size <= self.inline_limit:
            self.inline.append(
                types.InlinedRequest(contents=[contents], config=config, metadata={_KEY: item.id})
            )
            self._pending_lines.append(line)
            return
        if self._fh is None:
            self._open_file()
        self._fh.write(line)

    def _open_file(self) -> None:
        fd, name = tempfile.mkstemp(prefix="nbbanana-batch-", suffix=".jsonl")
        self.file = Path(name)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        self._fh.writelines(self._pending_lines)
        self._pending_lines = []
        self.inline = None  # over the inline limit: everything goes through the file

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def discard(self) -> None:
        self.close()
        if self.file is not None:
            self.file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- submitting


def submit_batch(
    items: ItemsLike,
    *,
    session: Session | None = None,
    display_name: str | None = None,
    model: str | None = None,
    inline_limit: int = INLINE_LIMIT,
) -> BatchJob:
    """Create a Gemini Batch API job for ``items`` and return its :class:`BatchJob`.

    ``items`` is a manifest path or a list of :class:`BatchItem` / dicts, checked like a
    local batch. A job runs one model: items that name different models are refused
    (submit one job per model). An item's references are fitted together into one
    request's budget (the session's endpoint's); an item that cannot fit even at the
    smallest size raises :class:`~nbbanana.errors.DoesNotFitError` naming it, before
    anything is sent. Costs half the interactive price; results may take hours
    (Google's target is 24 h; unfinished jobs expire after 48 h).
    """
    if session is None:
        session = connect(model=model) if model else connect()
    default_model = model or session.model
    job_items = normalise_items(items, default_model=default_model)
    models = {item.model or default_model for item in job_items}
    if len(models) > 1:
        raise BatchError(
            f"A Batch API job runs one model, but these items name {sorted(models)}; "
            "submit one job per model."
        )
    (job_model,) = models
    regional = [item.id for item in job_items if item.extra.get("region") or item.extra.get("mask")]
    if regional:  # the answer must be registered and blended back: only a local batch can
        raise BatchError(
            f"Items {regional[:5]} are regional edits ('region'/'mask'); run them with "
            "run_batch (locally), not as a Batch API job."
        )
    job_model = get_model(job_model, warn=False).id

    # The budget of one request line. Each line is one GenerateContentRequest that the
    # service runs as it runs generateContent, so it gets the Developer API's request
    # limit: the session's endpoint budget (100 MB of base64-measured inline data since
    # Jan 2026 for Google, tightened by any limit the endpoint has named). The inline
    # batch's 20 MB is a limit on the whole create call, not on one request: requests
    # past it go to the JSONL file (up to 2 GB), so it shrinks no request. References go
    # inline, never as Files API uploads: an upload expires 48 h after it is made, and a
    # queued job may run up to 48 h after it is created.
    requests = _Requests(job_model, inline_limit, session.pipeline.budget(job_model))
    try:
        for item in job_items:
            requests.add(item)
    except BaseException:
        requests.discard()  # nothing was sent: leave no half-written requests file
        raise
    finally:
        requests.close()
    name = display_name or f"nbbanana-{time.strftime('%Y%m%d-%H%M%S')}"
    config = types.CreateBatchJobConfig(display_name=name)
    if requests.inline is not None:
        src: Any = requests.inline
        transport = "inline"
    else:
        assert requests.file is not None
        try:
            uploaded = session.client.files.upload(
                file=requests.file,
                config=types.UploadFileConfig(mime_type="jsonl", display_name=f"{name}.jsonl"),
            )
        finally:
            requests.file.unlink(missing_ok=True)
        if not uploaded.name:
            raise BatchError("The Files API returned no name for the uploaded requests file.")
        src = uploaded.name
        transport = "file"
    created = session.client.batches.create(model=job_model, src=src, config=config)
    if not created.name:
        raise BatchError("The Batch API created a job without a name.")
    return BatchJob(
        created.name, items=job_items, session=session, model=job_model, transport=transport,
        job=created,
    )  # fmt: skip


# --------------------------------------------------------------------------- the handle


class BatchJob:
    """A Batch API job: poll it, wait for it, write its results."""

    def __init__(
        self,
        name: str,
        *,
        items: Sequence[BatchItem],
        session: Session,
        model: str,
        transport: str = "unknown",
        job: types.BatchJob | None = None,
    ) -> None:
        self.name = name
        self.items = list(items)
        self.session = session
        self.model = model
        #: "inline" or "file": how the requests were sent.
        self.transport = transport
        self._job = job

    @classmethod
    def attach(
        cls,
        name: str,
        items: ItemsLike,
        *,
        session: Session | None = None,
        model: str | None = None,
    ) -> BatchJob:
        """The handle of an existing job (e.g. after a kernel restart), given the same items."""
        if session is None:
            session = connect()
        job = session.client.batches.get(name=name)
        job_model = (job.model or model or session.model).removeprefix("models/")
        job_items = normalise_items(items, default_model=job_model)
        return cls(name, items=job_items, session=session, model=job_model, job=job)

    def __repr__(self) -> str:
        state = self._job.state if self._job is not None else None
        shown = getattr(state, "name", state) or "?"
        return f"<BatchJob {self.name} {shown}: {len(self.items)} items, {self.model}>"

    # ------------------------------------------------------------ polling

    def refresh(self) -> types.BatchJob:
        self._job = self.session.client.batches.get(name=self.name)
        return self._job

    def status(self) -> str:
        """The job's state, e.g. ``"JOB_STATE_RUNNING"`` (asks the server)."""
        return _state_name(self.refresh())

    @property
    def done(self) -> bool:
        return self._job is not None and _state_name(self._job) in TERMINAL_STATES

    def cancel(self) -> None:
        self.session.client.batches.cancel(name=self.name)

    def wait(
        self, *, poll_interval: float = 30.0, timeout: float | None = None, progress: bool = True
    ) -> str:
        """Poll until the job ends; return its final state. Raises ``TimeoutError`` after
        ``timeout`` seconds (the job keeps running on the server)."""
        # Loaded only when a bar is shown (tqdm.auto looks for a notebook front end).
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        with tqdm(
            total=len(self.items), desc=f"batch job {self.name}", unit="item", disable=not progress
        ) as bar:
            while True:
                job = self.refresh()
                state = _state_name(job)
                bar.set_postfix_str(state.removeprefix("JOB_STATE_").lower(), refresh=False)
                if state in TERMINAL_STATES:
                    if state == "JOB_STATE_SUCCEEDED":
                        bar.update(len(self.items) - bar.n)
                    else:
                        bar.refresh()
                    return state
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"Batch job {self.name} is still {state} after {timeout} s; it keeps "
                        "running on the server: call wait() again later."
                    )
                bar.refresh()
                time.sleep(poll_interval)

    async def wait_async(self, *, poll_interval: float = 30.0, timeout: float | None = None) -> str:
        """:meth:`wait` for a notebook cell (``await job.wait_async()``): the kernel stays
        responsive while the job runs. Returns the final state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._job = await self.session.client.aio.batches.get(name=self.name)
            state = _state_name(self._job)
            if state in TERMINAL_STATES:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Batch job {self.name} is still {state} after {timeout} s; it keeps "
                    "running on the server: wait again later."
                )
            await asyncio.sleep(poll_interval)

    # ------------------------------------------------------------ results

    def results(self, outdir: str | os.PathLike[str]) -> BatchReport:
        """Write each item's outputs (``<id>.png``, ``<id>.json``) and journal records to
        ``outdir``, as a local batch would. Items already done there are skipped, so it
        can be called again. Costs are Batch API prices (half)."""
        job = self._job if self._job is not None and self.done else self.refresh()
        state = _state_name(job)
        if state != "JOB_STATE_SUCCEEDED":
            raise BatchError(
                f"Batch job {self.name} is {state}; results exist only once it has "
                "succeeded (call wait() first)."
            )
        out = Path(outdir)
        started = time.monotonic()
        _prepare_outdir(out)
        # The lock a local run takes: a run (or another results() call) writing the same
        # folder at once would record items twice and race on their files.
        with FolderLock(out) as lock:
            if lock.took_over:
                warnings.warn(
                    f"{out}: took over the lock left by {lock.took_over}, which is no "
                    "longer running.",
                    UserWarning,
                    stacklevel=2,
                )
            report = self._write_results(job, out)
        report.elapsed_s = time.monotonic() - started
        return report

    def _write_results(self, job: types.BatchJob, out: Path) -> BatchReport:
        state_before = read_journal(out / JOURNAL_NAME)
        by_id = {item.id: item for item in self.items}
        report = BatchReport(outdir=out, total=len(self.items))
        with Journal(out) as journal:
            journal.append("run", items=len(self.items), model=self.model, batch_job=self.name)
            for key, response, error in self._responses(job):
                item = by_id.get(key)
                if item is None:
                    continue
                if state_before.is_done(item.id, out):
                    report.skipped += 1
                    files = state_before.done[item.id]["files"]
                    report.outputs[item.id] = [out / f for f in files]
                    continue
                self._record(item, response, error, journal, report)
        report.not_started = len(self.items) - len(report.outputs) - report.failed
        return report

    def _record(
        self,
        item: BatchItem,
        response: types.GenerateContentResponse | None,
        error: Mapping[str, Any] | None,
        journal: Journal,
        report: BatchReport,
    ) -> None:
        info = get_model(self.model)
        failure: str | None = None
        error_type = "BatchItemError"
        code = None
        if error is not None or response is None:
            failure = str((error or {}).get("message") or "no response for this item")
            code = (error or {}).get("code")
        else:
            problem = error_from_response(response, want_image=True)
            if problem is not None:
                failure, error_type = str(problem), type(problem).__name__
        if failure is None:
            assert response is not None
            options = _options(item, self.model)
            params = {**options.params(options.config()), "kind": "batch", "batch_job": self.name}
            # Thought parts (text, interim images) go to the result's thoughts, never
            # its images; grounding sources to its sources (and so to the sidecar).
            result = Result.from_response(
                response, model=info, prompt=item.prompt, params=params,
                offline=self.session.offline,
            )  # fmt: skip
            cost = result.usage.cost_usd(info, batch=True)  # every image of the answer
            result = dataclasses.replace(result, cost_usd=cost)
            try:
                files = _write_outputs(report.outdir, item, result)
            except NbbananaError as exc:
                failure, error_type = str(exc), type(exc).__name__
            else:
                journal.append(
                    "done", id=item.id, line=item.line, files=files, cost_usd=cost,
                    model=info.id, batch_job=self.name,
                )  # fmt: skip
                report.done += 1
                report.spent_usd += cost or 0.0  # None: price unknown
                report.outputs[item.id] = [report.outdir / f for f in files]
                return
        journal.append(
            "failed", id=item.id, line=item.line, batch_job=self.name,
            error={"type": error_type, "message": failure, "code": code},
        )  # fmt: skip
        report.failed += 1
        report.failures[item.id] = failure

    def _responses(
        self, job: types.BatchJob
    ) -> Iterator[tuple[str, types.GenerateContentResponse | None, Mapping[str, Any] | None]]:
        """(key, response, error) per request, from inline responses or the results file
        (downloaded to disk and read line by line, so memory stays bounded)."""
        dest = job.dest
        if dest is not None and dest.inlined_responses is not None:
            for index, inlined in enumerate(dest.inlined_responses):
                key = (inlined.metadata or {}).get(_KEY) or self.items[index].id
                error = inlined.error.model_dump(exclude_none=True) if inlined.error else None
                yield key, inlined.response, error
            return
        if dest is None or not dest.file_name:
            raise BatchError(f"Batch job {self.name} succeeded but names no results.")
        with tempfile.TemporaryDirectory(prefix="nbbanana-batch-") as tmp:
            path = Path(tmp) / "responses.jsonl"
            self.session.client.files.download(file=dest.file_name, destination=str(path))
            with path.open("r", encoding="utf-8") as fh:
                yield from _parse_result_lines(fh)


def _parse_result_lines(
    lines: Iterable[str],
) -> Iterator[tuple[str, types.GenerateContentResponse | None, Mapping[str, Any] | None]]:
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        record = json.loads(line)
        key = str(record.get(_KEY, index))
        response = record.get("response")
        parsed = (
            types.GenerateContentResponse._from_response(response=response, kwargs={})
            if isinstance(response, dict)
            else None
        )
        yield key, parsed, record.get("error") or (None if parsed else {"message": "no response"})


def _state_name(job: types.BatchJob) -> str:
    state = job.state
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")
