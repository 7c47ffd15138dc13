"""The local batch engine: many items through one Session, bounded, paced and journaled.

How it works, and why:

* **Bounded concurrency, bounded memory.** ``concurrency`` lanes (asyncio tasks) pull items
  from one shared iterator. An item's image is loaded and fitted (in a worker thread, so
  the event loop keeps serving the other lanes; at most one per CPU at a time) only when
  a lane takes it; the decoded original is dropped as soon as it is fitted, and the
  fitted bytes once the outputs are written. At most ``concurrency`` items' images are in
  memory at once, no matter how many items the job has.
* **Pacing.** ``rpm`` is enforced with an ``aiolimiter.AsyncLimiter`` of capacity one that
  refills every ``60 / rpm`` seconds: requests are spaced evenly and never burst, so no
  60-second window holds more than ``rpm + 1`` first attempts. Retries inside a call are
  the client's (``HttpRetryOptions`` in the SDK) and are not metered again.
* **Retries of the item** (see ``_retries``): a dropped connection, a 5xx or 429 that
  outlasted the client's retries, or a text-only answer is tried again by the engine, up
  to ``attempts`` times with exponential back-off (each new attempt is metered); requests
  that may have run although their answer was lost are counted as *possibly billed*.
* **Durability.** Outputs go to a staging folder, are moved into place atomically, and only
  then is the item's "done" record appended to the journal and fsync'd (see ``_journal``).
* **Failures** that remain (refusals, safety blocks, no image after the retries) are
  recorded with their error and do not stop the batch; they can be run again alone with
  ``retry_failed=True`` or ``only=[ids]``. A cost cap reached (``CostLimitExceeded``)
  stops taking new items.
* **One run per folder.** The output folder is checked (created, writable) and locked
  (``_lock``) before the journal is read: a second run on the same folder is refused at
  once, and a lock left by a killed run is taken over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import threading
import time
import warnings
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiolimiter import AsyncLimiter

from .._connect import connect
from .._files import prepare_folder, write_atomic
from .._format import format_usd
from .._types import ItemsLike
from ..errors import CostLimitExceeded, NbbananaError, NoImage, redact
from ..fit import fit_image
from ._journal import (
    JOURNAL_NAME,
    STAGING_DIR,
    Journal,
    commit_files,
    describe_damage,
    final_names,
    read_journal,
    staging_dir,
)
from ._lock import FolderLock
from ._manifest import BatchItem, ManifestError, check_params, normalise_items
from ._retries import (
    DEFAULT_ITEM_ATTEMPTS,
    RetryCounter,
    backoff_seconds,
    current_item,
    is_transient,
    possibly_billed,
)

if TYPE_CHECKING:
    from ..fit import FittedImage
    from ..result import Result
    from ..session import Session

__all__ = ["DEFAULT_CONCURRENCY", "BatchError", "BatchReport", "run_batch", "run_batch_async"]

#: Lanes working at once. With ~1 s per call plus the client's retry back-off, 8 lanes
#: keep a 120-rpm limit busy; raise it for slower models or higher limits.
DEFAULT_CONCURRENCY = 8


class BatchError(NbbananaError):
    """The batch cannot start as asked (e.g. its output folder holds another run)."""


@dataclass
class BatchReport:
    """What a batch run did. ``str(report)`` is a short summary."""

    outdir: Path
    #: Items in the job (the manifest or list given).
    total: int
    #: Items completed in this run.
    done: int = 0
    #: Items that failed in this run (their errors are in ``failures`` and the journal).
    failed: int = 0
    #: Items already done by an earlier run, not sent again.
    skipped: int = 0
    #: Items selected but not started (a cost cap stopped the run, or it was interrupted).
    not_started: int = 0
    #: Items this local run set out to do (0: nothing to do; None: not a local run).
    pending: int | None = None
    #: Retry attempts: the client's (announced) and the engine's (see ``_retries``).
    retries: int = 0
    #: USD spent by this run, from the answers' token usage (text-only answers included).
    spent_usd: float = 0.0
    #: Estimated USD of requests whose answer was lost (dropped connection, timeout):
    #: they may have run, and been billed, on the server. Each is estimated at one output
    #: image: how many images an answer holds is the model's choice (a prompt may ask for
    #: several, and no request parameter sets it), so a lost answer that held several cost
    #: more than this, one that never ran nothing.
    possibly_billed_usd: float = 0.0
    #: How many such requests there were.
    possibly_billed: int = 0
    elapsed_s: float = 0.0
    #: id → error message, for items failed in this run.
    failures: dict[str, str] = field(default_factory=dict)
    #: id → output files, for every item done (in this run or before).
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    #: Why the run stopped early, when it did.
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """True when every item of the job is done."""
        return len(self.outputs) == self.total

    def summary(self, *, flags: bool = False) -> str:
        """What happened, in a few lines; ``flags``: name the command line's options
        (``--retry-failed``) rather than Python's (``retry_failed=True``)."""
        retry_failed = "--retry-failed" if flags else "retry_failed=True"
        if self.pending == 0:
            done = len(self.outputs)
            left = self.total - done
            rest = "" if left == 0 else f"; {left} others are not done and were not selected"
            return f"Nothing to do: {done}/{self.total} items are done in {self.outdir}{rest}."
        rate = self.done / self.elapsed_s * 60 if self.elapsed_s > 0 else 0.0
        spent = f"{format_usd(self.spent_usd)} spent"
        if self.possibly_billed:
            # Not "up to": the figure counts one image per answer, and the model may have
            # put several in one (see ``possibly_billed_usd``).
            spent += (
                f" (+ possibly billed: {self.possibly_billed} "
                f"request{'s' if self.possibly_billed != 1 else ''} whose answer was lost, "
                f"≈ {format_usd(self.possibly_billed_usd)} at one image each, "
                "more for any that held several)"
            )
        lines = [
            f"{len(self.outputs)}/{self.total} items done in {self.outdir} "
            f"({self.done} this run, {self.skipped} before); {self.failed} failed; "
            f"{self.retries} retries; {spent}; "
            f"{self.elapsed_s:.1f} s ({rate:.1f} items/min)"
        ]
        if self.not_started:
            lines.append(f"{self.not_started} items not started.")
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}")
        for item_id, message in list(self.failures.items())[:10]:
            lines.append(f"  failed {item_id}: {message}")
        if len(self.failures) > 10:
            lines.append(f"  … and {len(self.failures) - 10} more (see {JOURNAL_NAME})")
        if self.failures:
            lines.append(f"Run again with {retry_failed} to retry only the failed items.")
        return "\n".join(lines)

    __str__ = summary

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


# --------------------------------------------------------------------------- public API


async def run_batch_async(
    items: ItemsLike,
    outdir: str | os.PathLike[str],
    *,
    session: Session | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    only: Iterable[str] | None = None,
    progress: bool = True,
    model: str | None = None,
    attempts: int = DEFAULT_ITEM_ATTEMPTS,
) -> BatchReport:
    """Run every item through ``session`` (``nbbanana.connect()`` when omitted), writing
    ``OUTDIR/<id>.png`` + ``<id>.json`` and the journal ``OUTDIR/journal.jsonl``.

    Use this form in a notebook cell: ``report = await run_batch_async(...)``.

    ``items`` is a manifest path (``.jsonl`` / ``.csv``) or a list of :class:`BatchItem`
    or dicts with the manifest's keys. Everything is checked before anything is sent.
    ``resume`` continues a run in ``outdir`` (done items are skipped, failed and unstarted
    ones run); ``retry_failed`` runs only the items that failed; ``only`` runs only the
    given ids. ``model`` is the default for items that name none.

    ``concurrency`` bounds the items in progress (and so the memory: inputs are read
    only when their item starts); ``rpm`` spaces requests evenly. Retries of
    429/5xx/timeouts within a request are the Session's client's (``HttpRetryOptions``);
    an item whose request still fails that way, loses its connection or gets a
    text-only answer is tried again, up to ``attempts`` times in all. The progress bar
    shows done, failed, *retrying* (items in progress that needed a retry) and the USD
    spent. Only one run at a time may use ``outdir`` (a second is refused at once).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1.")
    if attempts < 1:
        raise ValueError("attempts must be at least 1.")
    if rpm is not None and rpm <= 0:
        raise ValueError("rpm must be a positive number of requests per minute (or None).")
    if session is None:
        session = connect(model=model) if model else connect()
    default_model = model or session.model
    job = normalise_items(items, default_model=default_model)
    _check_defaults(job, default_model)

    out = Path(outdir)
    _prepare_outdir(out)
    with FolderLock(out) as lock:
        if lock.took_over:
            warnings.warn(
                f"{out}: took over the lock left by {lock.took_over}, which is no longer running.",
                UserWarning,
                stacklevel=2,
            )
        plan = _plan(job, out, resume=resume, retry_failed=retry_failed, only=only)
        if not plan.pending:
            return plan.report  # nothing to do: no journal record, no empty progress bar
        engine = _Engine(
            session=session,
            outdir=out,
            model=default_model,
            concurrency=concurrency,
            rpm=rpm,
            progress=progress,
            report=plan.report,
            attempts=attempts,
        )
        await engine.run(plan.pending)
    return plan.report


def _prepare_outdir(outdir: Path) -> None:
    """The output folder, checked (created, writable) before any request is paid for;
    one line when it cannot be used."""
    problem = prepare_folder(outdir)
    if problem is None:
        return
    if problem.kind == "not-a-folder":
        raise BatchError(
            f"{outdir} exists and is not a folder; give the output folder another name."
        )
    raise BatchError(
        f"Cannot use {outdir} as the output folder ({problem.detail}); choose another one."
    )


def run_batch(
    items: ItemsLike,
    outdir: str | os.PathLike[str],
    *,
    session: Session | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    only: Iterable[str] | None = None,
    progress: bool = True,
    model: str | None = None,
    attempts: int = DEFAULT_ITEM_ATTEMPTS,
) -> BatchReport:
    """:func:`run_batch_async` for scripts, and for notebooks that prefer not to ``await``.

    Inside a running event loop (a Jupyter cell), ``asyncio.run`` is impossible, so the
    batch runs on its own event loop in a worker thread while this call waits; an
    interrupt (Kernel → Interrupt, Ctrl-C) cancels it cleanly: finished items stay in
    the journal, unfinished ones run again on ``resume=True``.
    ``await run_batch_async(...)`` avoids the thread. The options are
    :func:`run_batch_async`'s.
    """
    batch = run_batch_async(
        items,
        outdir,
        session=session,
        concurrency=concurrency,
        rpm=rpm,
        resume=resume,
        retry_failed=retry_failed,
        only=only,
        progress=progress,
        model=model,
        attempts=attempts,
    )
    return run_sync(batch)


_T = TypeVar("_T")


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to its end and return its value, from plain code or from a cell.

    Without a running event loop this is ``asyncio.run``. Inside one (a Jupyter cell)
    that is impossible, so ``coro`` runs on its own event loop in a worker thread while
    this call waits; an interrupt (Kernel → Interrupt, Ctrl-C) cancels it cleanly.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _run_in_thread(coro)


def _run_in_thread(coro: Coroutine[Any, Any, _T]) -> _T:
    loop = asyncio.new_event_loop()
    result: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def work() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(coro)
            holder["task"] = task
            started.set()
            result.set_result(loop.run_until_complete(task))
        except BaseException as exc:  # handed to the waiting thread
            result.set_exception(exc)
        finally:
            started.set()
            loop.close()

    holder: dict[str, asyncio.Task[_T]] = {}
    started = threading.Event()
    thread = threading.Thread(target=work, name="nbbanana-batch", daemon=True)
    thread.start()
    try:
        return result.result()
    except KeyboardInterrupt:
        started.wait()
        task = holder.get("task")
        if task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    pending: list[BatchItem]
    report: BatchReport


def _check_defaults(job: Sequence[BatchItem], default_model: str) -> None:
    """Items that name no model are checked against the session's model."""
    problems = [
        (item.line, msg)
        for item in job
        if item.model is None
        for msg in check_params(
            default_model,
            item.aspect_ratio,
            item.image_size,
            thinking_level=item.thinking_level,
            include_thoughts=item.include_thoughts,
            grounding=item.grounding,
            images=len(item.images),
        )
    ]
    if problems:
        raise ManifestError("items", problems)


def _plan(
    job: Sequence[BatchItem],
    outdir: Path,
    *,
    resume: bool,
    retry_failed: bool,
    only: Iterable[str] | None,
) -> _Plan:
    state = read_journal(outdir / JOURNAL_NAME)
    damage = describe_damage(state, outdir / JOURNAL_NAME, outdir)
    if damage:
        warnings.warn(damage, UserWarning, stacklevel=3)
    if state.records and not (resume or retry_failed or only is not None):
        raise BatchError(
            f"{outdir} already holds a batch journal ({len(state.done)} done, "
            f"{len(state.failed)} failed). Resume it (--resume / resume=True), retry only "
            "its failures (--retry-failed), or choose another output folder."
        )
    report = BatchReport(outdir=outdir, total=len(job))
    pending: list[BatchItem] = []
    changed: list[str] = []
    for item in job:
        if state.is_done(item.id, outdir):
            record = state.done[item.id]
            report.skipped += 1
            report.outputs[item.id] = [outdir / f for f in record["files"]]
            if record.get("fingerprint", item.fingerprint()) != item.fingerprint():
                changed.append(item.id)
        else:
            pending.append(item)
    if changed:
        shown = ", ".join(changed[:10]) + (" …" if len(changed) > 10 else "")
        warnings.warn(
            f"{len(changed)} items changed (prompt, images or parameters) since they were "
            f"done, and are kept as they are: {shown}. Delete an item's output files (or "
            "give it a new id) to run it again.",
            UserWarning,
            stacklevel=3,
        )
    if retry_failed:
        pending = [item for item in pending if item.id in state.failed]
    if only is not None:
        wanted = set(only)
        known = {item.id for item in job}
        unknown = sorted(wanted - known)
        if unknown:
            raise BatchError(f"No items with the ids {unknown} in this job.")
        pending = [item for item in pending if item.id in wanted]
    report.pending = len(pending)
    return _Plan(pending=pending, report=report)


# --------------------------------------------------------------------------- the engine


class _Engine:
    def __init__(
        self,
        *,
        session: Session,
        outdir: Path,
        model: str,
        concurrency: int,
        rpm: float | None,
        progress: bool,
        report: BatchReport,
        attempts: int = DEFAULT_ITEM_ATTEMPTS,
    ) -> None:
        self.session = session
        self.attempts = attempts
        # What the session had spent before: this run's spend is the difference, so that
        # answers that were paid for but not used (text only) are counted too.
        self._spent_before = session.spent
        self.outdir = outdir
        self.model = model
        self.concurrency = concurrency
        # Capacity one: evenly spaced requests, no burst (see the module docstring).
        self.limiter = AsyncLimiter(1, 60.0 / rpm) if rpm else None
        self.progress = progress
        self.report = report
        # Fitting is CPU work: more of it at once than there are CPUs only adds memory.
        self._preparing = asyncio.Semaphore(max(1, min(concurrency, os.cpu_count() or 1)))
        self.retries = RetryCounter()
        self.retries.on_retry = self._tick
        #: Ids of the items the lanes are working on.
        self.active: set[str] = set()
        self._stop: str | None = None
        self._bar: Any = None

    async def run(self, pending: Sequence[BatchItem]) -> None:
        started = time.monotonic()
        queue: Iterator[BatchItem] = iter(pending)
        self._bar = _progress_bar(len(pending), enabled=self.progress)
        try:
            with Journal(self.outdir) as journal, self.retries.installed():
                journal.append(
                    "run",
                    items=self.report.total,
                    pending=len(pending),
                    model=self.model,
                    concurrency=self.concurrency,
                    rpm=None if self.limiter is None else round(60.0 / self.limiter.time_period, 3),
                )
                lanes = [
                    asyncio.create_task(self._lane(queue, journal))
                    for _ in range(min(self.concurrency, len(pending)))
                ]
                try:
                    await asyncio.gather(*lanes)
                except BaseException:
                    for lane in lanes:
                        lane.cancel()
                    await asyncio.gather(*lanes, return_exceptions=True)
                    raise
        finally:
            self._bar.close()
            self.report.elapsed_s = time.monotonic() - started
            self.report.retries = self.retries.total
            attempted = self.report.done + self.report.failed
            self.report.not_started = len(pending) - attempted
            self.report.stopped = self._stop
            self.report.spent_usd = max(0.0, self.session.spent - self._spent_before)
            _remove_empty_staging(self.outdir)

    async def _lane(self, queue: Iterator[BatchItem], journal: Journal) -> None:
        for item in queue:
            if self._stop is not None:
                return
            await self._process(item, journal)

    async def _process(self, item: BatchItem, journal: Journal) -> None:
        current_item.set(item.id)
        self.active.add(item.id)
        model = item.model or self.model
        started = time.monotonic()
        try:
            images = await self._inputs(item, model)
            result = await self._request_with_retries(item, images, model, journal)
            files = await asyncio.to_thread(_write_outputs, self.outdir, item, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, CostLimitExceeded):
                self._stop = str(exc)
            message = redact(str(exc)) or type(exc).__name__
            journal.append(
                "failed",
                id=item.id,
                line=item.line,
                error={
                    "type": type(exc).__name__,
                    "message": message,
                    "code": getattr(exc, "code", None),
                },
                retries=self.retries.per_item.get(item.id, 0),
                seconds=round(time.monotonic() - started, 3),
            )
            self.report.failed += 1
            self.report.failures[item.id] = message
        else:
            journal.append(
                "done",
                id=item.id,
                line=item.line,
                files=files,
                cost_usd=result.cost_usd,
                model=result.model,
                fingerprint=item.fingerprint(),
                retries=self.retries.per_item.get(item.id, 0),
                seconds=round(time.monotonic() - started, 3),
            )
            self.report.done += 1
            self.report.outputs[item.id] = [self.outdir / f for f in files]
        finally:
            self.active.discard(item.id)
            self._tick()

    async def _inputs(self, item: BatchItem, model: str) -> list[Path | FittedImage]:
        """Load and fit the item's image now, in a worker thread, at most one per CPU at a
        time: the lanes waiting on the network then hold only the small fitted bytes, and
        the limiter's slots go to requests that are ready. Items with several images are
        fitted by the Session together (they share one request's budget)."""
        if len(item.images) != 1 or item.extra:  # regional edits cut their own crop
            return list(item.images)
        async with self._preparing:
            return [await asyncio.to_thread(_fit_one, item, model, self.session)]

    async def _request_with_retries(
        self,
        item: BatchItem,
        images: list[Path | FittedImage],
        model: str,
        journal: Journal,
    ) -> Result:
        """:meth:`_request`, tried again after transient failures (see ``_retries``), up
        to ``self.attempts`` times, each attempt metered by the limiter."""
        attempt = 1
        while True:
            if self.limiter is not None:
                await self.limiter.acquire()
            try:
                return await self._request(item, images, model)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if attempt >= self.attempts:
                    # The last attempt's answer may be lost too: it may have run as well.
                    self._count_possibly_billed(item, images, model, exc)
                    raise
                delay = backoff_seconds(attempt, exc)
                self._record_retry(item, images, model, exc, attempt, delay, journal)
            await asyncio.sleep(delay)
            attempt += 1

    def _record_retry(
        self,
        item: BatchItem,
        images: list[Path | FittedImage],
        model: str,
        exc: Exception,
        attempt: int,
        delay: float,
        journal: Journal,
    ) -> None:
        billed = self._count_possibly_billed(item, images, model, exc)
        journal.append(
            "retry",
            id=item.id,
            line=item.line,
            attempt=attempt,
            error={"type": type(exc).__name__, "message": redact(str(exc)) or None},
            possibly_billed_usd=round(billed, 6),
            wait_s=round(delay, 2),
        )
        self.retries.per_item[item.id] += 1
        self._tick()

    def _count_possibly_billed(
        self, item: BatchItem, images: list[Path | FittedImage], model: str, exc: Exception
    ) -> float:
        """Count a request whose answer ``exc`` lost, if it may have run; its estimate."""
        if not possibly_billed(exc):
            return 0.0
        billed = self._estimate_usd(item, images, model)
        self.report.possibly_billed += 1
        self.report.possibly_billed_usd += billed
        return billed

    def _estimate_usd(self, item: BatchItem, images: list[Path | FittedImage], model: str) -> float:
        try:
            # The image count is unknown before the answer (the model decides): the
            # library's estimate is then for one image (see BatchReport.possibly_billed_usd).
            estimate = self.session.estimate(
                item.prompt,
                list(images),
                model=model,
                image_size=item.image_size,
                output_images=None,
            )
        except Exception:  # an estimate must never fail the item
            return 0.0
        return estimate.usd or 0.0  # None: the price is unknown

    async def _request(
        self, item: BatchItem, images: list[Path | FittedImage], model: str
    ) -> Result:
        """One request through the Session's async API."""
        options: dict[str, Any] = {"model": model}
        if item.aspect_ratio is not None:
            options["aspect_ratio"] = item.aspect_ratio
        if item.image_size is not None:
            options["image_size"] = item.image_size
        features: dict[str, Any] = {}
        if item.thinking_level is not None:
            features["thinking_level"] = item.thinking_level
        if item.include_thoughts is not None:
            features["include_thoughts"] = item.include_thoughts
        if item.grounding:
            features["grounding"] = True
        if item.extra.get("region") or item.extra.get("mask"):
            from ..region import aedit_region

            return await aedit_region(self.session, images[0], item.prompt, **item.extra, **options)
        if images:
            return await self.session.edit_async(images, item.prompt, **options, **features)
        return await self.session.generate_async(item.prompt, **options, **features)

    def _tick(self) -> None:
        self.report.spent_usd = max(0.0, self.session.spent - self._spent_before)
        if self._bar is None:
            return
        finished = self.report.done + self.report.failed
        retrying = sum(1 for item_id in self.active if self.retries.per_item.get(item_id))
        self._bar.set_postfix_str(
            f"done={self.report.done} failed={self.report.failed} "
            f"retrying={retrying} spent={format_usd(self.report.spent_usd)}",
            refresh=False,
        )
        self._bar.update(finished - self._bar.n)


def _progress_bar(total: int, *, enabled: bool) -> Any:
    # Loaded only when a bar is shown (tqdm.auto looks for a notebook front end).
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="batch", unit="item", disable=not enabled, dynamic_ncols=True)


# --------------------------------------------------------------------------- per item work


def _fit_one(item: BatchItem, model: str, session: Session) -> FittedImage:
    """Fit a single-image item's input as the Session would: alone in its request, so it
    must fit inline (runs in a worker thread)."""
    budget = session.budget()
    if budget.files_api and budget.limit is not None:
        budget = dataclasses.replace(budget, files_api=False)
    return fit_image(item.images[0], model=model, budget=budget, prompt=item.prompt)


def _write_outputs(outdir: Path, item: BatchItem, result: Result) -> list[str]:
    """Save the result's files under the item's name, atomically (runs in a worker thread)."""
    if not result.images:
        raise NoImage("The model answered without an image.", text=result.text)
    stage = staging_dir(outdir, item.stem)
    staged = result.save(stage)
    names = final_names(item.stem, staged)
    for path in staged:
        if path.suffix == ".json":
            sidecar = json.loads(path.read_text(encoding="utf-8"))
            sidecar["files"] = [n for n in names if not n.endswith(".json")]
            sidecar["batch_item"] = {"id": item.id, "line": item.line}
            text = json.dumps(sidecar, indent=2, ensure_ascii=False, default=str) + "\n"
            write_atomic(path, text.encode("utf-8"))
    return commit_files(outdir, item.stem, staged)


def _remove_empty_staging(outdir: Path) -> None:
    staging = outdir / STAGING_DIR
    with contextlib.suppress(OSError):  # not empty: an item was interrupted mid-write
        staging.rmdir()
