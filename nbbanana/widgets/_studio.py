"""The studio: uploader, prompt box, before/after view and history strip in one app.

Runs never block the kernel: each one is an ``asyncio`` task on the kernel's running
loop, awaiting :meth:`nbbanana.chat.Chat.send_async` (which keeps the blocking work off the
loop), so cells can be run while an image is being made. The session (and its API key) stays in Python: no widget trait holds it, so
nothing secret is saved with the notebook's widget state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .._spend import SpendSummary
from ..models import told_unknown
from ..region import RegistrationError
from ._answer import AnswerPanel, UnplacedExtras
from ._background import run_in_background
from ._choices import ModelListing, fetch_catalogue, listing_for
from ._compare import CompareView
from ._history import HistoryStrip
from ._prompt import PromptBox, RunRequest, describe_error, status_text, validate_request
from ._region import RegionPicker, RegionZoom, region_source, unplaced_message
from ._state import StudioState
from ._uploader import ImageUploader

if TYPE_CHECKING:
    from ..result import Result
    from ..session import Session

__all__ = ["Studio", "studio"]

#: Seconds between updates of the elapsed time while a request runs.
_TICK = 0.25


class Studio(w.VBox):  # type: ignore[misc]
    """Drop images, write a prompt, run, compare, iterate — in one widget."""

    def __init__(self, session: Session | None = None) -> None:
        if session is None:
            # Loaded only here: a studio given a session needs no connection code.
            from .._connect import connect

            session = connect()
        self.session = session
        self.state = StudioState(session)
        # The session's facts: a price set with connect(price_per_image=...) included.
        model_info = session.pipeline.model_info
        self.uploader = ImageUploader(
            model=session.model,
            endpoint=session.endpoint,
            base_url=session.limit_key,
            model_info=model_info,
        )
        self.prompt_box = PromptBox(model=session.model, model_info=model_info)
        self.compare = CompareView()
        # Hidden until there is a result: before that its Before picture would only
        # repeat the region tool's picture of the same upload.
        self.compare.layout.display = "none"
        self.region, self.zoom = RegionPicker(), RegionZoom()  # regional edits (issue 15)
        self.region.on_change(lambda _picker: self._update_gauge())
        self.answer = AnswerPanel()
        #: What came with a regional answer that could not be placed back (its thoughts
        #: and sources), under the before/after view that shows it; gone on the next run.
        self.unplaced = UnplacedExtras()
        self.history = HistoryStrip()
        #: Where the model picker's list came from, when the status line should say so.
        self.models_note = ""
        self.task: asyncio.Task[Result | None] | None = None

        where = (
            "offline emulator — nothing is billed, images are synthetic"
            if session.offline
            else "Gemini API"
        )
        header = w.HTML(f"<b>nbbanana studio</b> · <span class='nbb-where'>{escape(where)}</span>")
        self.prompt_box.on_model(self._model_chosen)
        self.prompt_box.prompt.observe(self._prompt_typed, names="value")
        self.uploader.on_change(self._uploads_changed)
        self.prompt_box.on_run(self._run_clicked)
        self.history.on_branch(self.branch)
        self.answer.on_pick(self.pick)
        super().__init__(
            children=[
                header,
                self.uploader,
                self.region,
                self.prompt_box,
                self.compare,
                self.unplaced,
                self.zoom,
                self.answer,
                w.HTML("<b>History</b> — every turn is kept; the next run edits the ● Current one"),
                self.history,
            ]
        )
        self.add_class("nbb-studio")
        # The cap and what is left are visible before the first run too.
        self._show_session_status()
        # The picker starts from the table and becomes what the endpoint serves once it
        # has answered (a worker thread in a kernel, so the widget appears at once).
        # Only the listing runs in the worker; the picker is built back on the kernel's
        # thread (it reads the model table and silences its "unknown model" warning).
        run_in_background(
            lambda: fetch_catalogue(session),
            lambda fetched: self._models_listed(listing_for(session, fetched, model_info)),
        )

    # ------------------------------------------------------------------ actions

    def run(self, request: RunRequest | None = None) -> asyncio.Task[Result | None] | Result | None:
        """Run ``request`` (default: what the prompt box says).

        In a kernel this returns at once with the :class:`asyncio.Task` doing the work;
        outside one (a script, a test) it runs to completion and returns the result.
        Returns ``None`` when the request is not ready (the box says why).
        """
        request = request or self.prompt_box.request()
        problems = validate_request(
            request.prompt,
            model=request.model,
            image_size=request.image_size,
            images=len(self.state.reference_images())
            if self.state.turns
            else len(self.uploader.images),
            uploads_busy=self.uploader.busy,
            upload_errors=len(self.uploader.errors),
        )
        problems += self.region.problems(0 if self.state.turns else len(self.uploader.images))
        self.prompt_box.show_problems(problems)
        if problems:
            return None
        self.state.set_inputs(self.uploader.images)
        self.prompt_box.set_running(True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run(request))
        self.task = loop.create_task(self._run(request))
        return self.task

    def pick(self, index: int) -> None:
        """Make image ``index`` (from 0) of the shown answer the After image and what
        the next run edits (an answer may hold several images)."""
        if self.prompt_box.run.disabled or not self.state.turns:
            return
        result = self.state.turns[-1]
        before = self._before_current()
        self.state.pick(index)
        self.unplaced.clear()  # the unplaced answer gives way to the picked image
        self.compare.show(result, before, index=index)
        self.answer.show(result, picked=index)
        self._show_region_source()  # draw on the picked image: the next run edits it
        self._update_gauge()
        self.prompt_box.show_status(
            f"Image {index + 1} of {len(result.images)} is the After image: the next run edits it."
        )

    def branch(self, turn: int) -> None:
        """Continue from turn ``turn`` (numbered from 1 in the order turns were made, as
        the history strip shows them): the next run edits that turn's image. The turns
        after it stay in the history, so you can come back to them."""
        if self.prompt_box.run.disabled:
            return  # a request is running; its result belongs to the current branch
        self.state.branch(turn)
        self.prompt_box.show_error(None)  # an error of the branch left behind
        self.unplaced.clear()
        turns = self.state.turns
        self.history.show(self.state.tree)
        self._update_gauge()
        self.compare.show(turns[-1], self._before_current())
        self.zoom.show(turns[-1])
        self.answer.show(turns[-1])
        self._show_region_source()
        self.prompt_box.show_status(
            f"Branched from turn {turn}: the next run edits its image "
            "(the other turns stay in the history)."
        )

    # ------------------------------------------------------------------ internals

    async def _run(self, request: RunRequest) -> Result | None:
        # The picker labelled a model nbbanana does not know "new, cost unknown": the
        # run's own look-ups (estimate, chat, pipeline; in this task and its worker
        # threads only) leave out the kernel's warning, which would be clutter under the
        # cell. The user's own later calls on that model still get it.
        with told_unknown(request.model):
            return await self._run_told(request)

    async def _run_told(self, request: RunRequest) -> Result | None:
        before = self.state.before_image()
        estimate = self._estimate(request)
        started = time.monotonic()

        async def tick() -> None:
            while True:
                self.prompt_box.show_status(
                    status_text(
                        state="running",
                        elapsed=time.monotonic() - started,
                        estimate_usd=estimate,
                        spent_usd=self.session.spent,
                        cap_usd=self.session.max_cost_usd,
                        offline=self.session.offline,
                    )
                )
                await asyncio.sleep(_TICK)

        ticker = asyncio.ensure_future(tick())
        self.prompt_box.show_error(None)
        self.unplaced.clear()
        result: Result | None = None
        cost: float | None = None
        outcome = "failed"
        try:
            selection = self.region.tool.selection()
            if selection:  # a regional edit of what the region was drawn on
                selection["source"] = self.region.tool.source
            result = await self.state.run(request, region=selection)
            outcome = "done"
            self.compare.show(result, before)
            self.compare.layout.display = ""
            self.zoom.show(result)
            self.answer.show(result)
            self._show_region_source()
            self.history.show(self.state.tree)
            self._update_gauge()
            cost = result.cost_usd
        except RegistrationError as exc:  # paid for but not placed: show it, say so
            cost = self._show_unplaced(exc)
        except Exception as exc:
            self.prompt_box.show_error(describe_error(exc))
        except asyncio.CancelledError:
            # Nothing changed (the state keeps a turn only once it is made): say so,
            # and let the cancellation go on to whoever awaits the task.
            outcome = "cancelled"
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self.prompt_box.set_running(False)
            self.prompt_box.show_status(
                status_text(
                    state=outcome,
                    elapsed=time.monotonic() - started,
                    cost_usd=cost,
                    spent_usd=self.session.spent,
                    cap_usd=self.session.max_cost_usd,
                    offline=self.session.offline,
                )
            )
        return result

    def _show_unplaced(self, exc: RegistrationError) -> float | None:
        """A regional answer that could not be placed back: show it unblended beside
        the crop that was sent, and say so. Nothing changes in the history: the next
        run edits the same picture (the region stays selected, to run again), and the
        answer panel stays the current turn's: its strip still picks what that run edits."""
        tool = self.region.tool
        answer = exc.answer
        self.prompt_box.show_error(unplaced_message(exc, tool.what))
        if answer is None or answer.image is None:
            return None
        try:
            crop = tool.crop()
        except Exception:  # the crop is context for the eye; the answer is what matters
            crop = None
        self.compare.show(answer, crop)
        self.compare.layout.display = ""
        self.unplaced.show(answer)  # its thoughts and sources: the panel stays the turn's
        self.zoom.show(None)
        return answer.cost_usd

    def _estimate(self, request: RunRequest) -> float | None:
        try:
            return self.session.estimate(
                request.prompt,
                self.state.reference_images(),
                model=request.model,
                image_size=request.image_size,
            ).usd
        except Exception:  # an estimate is a courtesy; the run reports real problems
            return None

    def _run_clicked(self, request: RunRequest) -> None:
        self.run(request)

    def _first_input(self) -> Any:
        return self.state.inputs[0].to_pil() if self.state.inputs else None

    def _before_current(self) -> Any:
        """What the current turn was made from: the turn before it, else the input."""
        turns = self.state.turns
        return turns[-2].image if len(turns) > 1 else self._first_input()

    def _show_session_status(self) -> None:
        spend = SpendSummary(self.session.spent, self.session.max_cost_usd, self.session.offline)
        self.prompt_box.show_status(
            " · ".join(p for p in ("Session " + spend.text(), self.models_note) if p)
        )

    def _models_listed(self, listing: ModelListing) -> None:
        self.prompt_box.set_models(listing)
        self.models_note = listing.note
        if not self.state.turns and not self.prompt_box.run.disabled:
            self._show_session_status()
        elif listing.note:
            self.prompt_box.show_status(listing.note)

    def _model_chosen(self, model: str) -> None:
        self.uploader.model = model

    def _prompt_typed(self, change: dict[str, Any]) -> None:
        self.uploader.prompt = change["new"]
        self._update_gauge()

    def _update_gauge(self) -> None:
        """Make the gauge describe what the next run sends: the uploads, or, once there
        are turns, the current turn's image (or the one picked of its answer)."""
        request = self.prompt_box.request()
        pipeline = self.session.pipeline
        region = self.region.summary(
            model=pipeline.model_info(request.model, warn=False),  # the picker says "new"
            budget=pipeline.budget(request.model),
            prompt=request.prompt, image_size=request.image_size, on_ready=self._update_gauge,
        )  # fmt: skip
        if region is not None:  # a region is selected: the run sends its crop
            self.uploader.summary = region
            return
        try:
            gauge = self.state.next_gauge(request)
        except Exception:  # a gauge is a courtesy; the run reports real problems
            gauge = None
        self.uploader.show_next(gauge)

    def _uploads_changed(self, uploader: ImageUploader) -> None:
        if uploader.busy:
            return
        if self.state.set_inputs(uploader.images):
            self.prompt_box.show_error(None)  # it was about the old inputs
            self.history.clear()
            self.answer.clear()
            self.unplaced.clear()
            self.uploader.show_next(None)
            self.compare.show_input(self._first_input())
            self.compare.layout.display = "none"  # until the new inputs have a result
            self.zoom.show(None)
            self._show_region_source()
        elif self.region.tool.selection():
            self._update_gauge()  # the uploads' summary was shown over the region's

    def _show_region_source(self) -> None:
        """Draw regions on what the next run edits (the selection starts empty)."""
        self.region.set_source(
            *region_source(
                self.state.turns,
                self.uploader.tracker.originals,
                self.state.tree.current,
                self.state.picked,
            )
        )


def studio(session: Session | None = None) -> Studio:
    """The nbbanana studio for ``session`` (default: :func:`nbbanana.connect`, which is
    the offline emulator when no API key is set). Display it as a cell's last value."""
    return Studio(session)
