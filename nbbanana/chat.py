"""Multi-turn editing: "make it blue" … "now add a hat" … "go back two steps and try red".

A :class:`Chat` sends the whole history with every turn — including the model's
``thoughtSignature`` parts, which Gemini 3 image models need to keep editing the same
picture — through the session's request pipeline, like a single call. On top of it, a
chat keeps one :class:`~nbbanana.result.Result` per turn (:attr:`Chat.history`), fits
any new reference images to the room the history leaves in the request, books each turn
against the session's cost guard, and can :meth:`~Chat.branch` from an earlier turn: a
new chat whose history is this one's up to that turn.

A turn may also be a regional edit (``region=`` or ``mask=``): only that part of the
current picture is cut, sent and blended back at full resolution (see
:mod:`nbbanana.region`); the full-size composite is the turn's result, and the next turn
edits it (it joins the history as the picture the conversation continues from).

A turn that fails (an error, a blocked answer, no image) leaves the chat as it was, so
turns and :attr:`history` always line up.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._options import RequestOptions
from ._pipeline import as_list
from .budget import base64_size
from .errors import InvalidRequest
from .models import text_tokens
from .result import Result, chat_html

if TYPE_CHECKING:
    from google.genai import types

    from ._types import ImageInput
    from .region import MaskSource
    from .session import Session

__all__ = ["Chat"]

#: JSON framing bytes counted per history part on top of its payload (generous: the
#: real framing of an inline image part is about 50 bytes).
_PART_FRAMING = 96


class Chat:
    """A conversation with an image model. Create one with :meth:`Session.chat`.

    Turns are numbered from 1 in the order they were sent (``len(chat)`` is the last);
    turn 0 is the empty start. :meth:`branch` takes those numbers.
    """

    def __init__(
        self,
        session: Session,
        *,
        model: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
        _results: Sequence[Result] = (),
        _turns: Sequence[list[types.Content]] = (),
        _tokens: Sequence[int] | None = None,
    ) -> None:
        self.session = session
        info = session.pipeline.model_info(model or session.model)
        # Checked now, so a chat a model cannot hold fails before its first turn.
        self._options = RequestOptions(
            kind="chat", model=info.id, aspect_ratio=aspect_ratio, image_size=image_size,
            thinking_level=thinking_level, include_thoughts=include_thoughts,
            grounding=grounding,
        ).checked(info)  # fmt: skip
        self.model = info.id
        self.aspect_ratio = self._options.aspect_ratio
        self.image_size = self._options.image_size
        self.thinking_level = self._options.thinking_level
        self.include_thoughts = self._options.include_thoughts
        self.grounding = self._options.grounding
        self._results: list[Result] = list(_results)
        #: The contents (user turn + model answer) of each turn, in order.
        self._turns: list[list[types.Content]] = [list(t) for t in _turns]
        #: Input tokens the history holds after each turn (see :meth:`_history_tokens`).
        self._tokens: list[int] = (
            list(_tokens)
            if _tokens is not None
            else [r.usage.prompt_tokens + r.usage.output_tokens for r in self._results]
        )
        self._lock = threading.Lock()

    # ------------------------------------------------------------ history

    @property
    def history(self) -> list[Result]:
        """One result per successful turn, oldest first."""
        return list(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        return f"<nbbanana.Chat {self.model}: {len(self._results)} turn(s)>"

    def _repr_html_(self) -> str:
        """The turns as numbered thumbnails with their prompts, and what they cost."""
        return chat_html(self.model, self.history)

    def _history_bytes(self) -> int:
        """About how many bytes the history adds to the next request body."""
        total = 0
        for turn in self._turns:
            for content in turn:
                for part in content.parts or []:
                    total += _PART_FRAMING
                    if part.inline_data is not None and part.inline_data.data:
                        total += base64_size(len(part.inline_data.data))
                    if part.text:
                        total += len(part.text.encode("utf-8")) * 2  # JSON escapes, generously
                    if part.thought_signature:
                        total += base64_size(len(part.thought_signature))
                    if part.file_data is not None and part.file_data.file_uri:
                        total += len(part.file_data.file_uri)
        return total

    def _history_tokens(self) -> int:
        """Input tokens the history adds: the last turn's prompt and answer (a regional
        turn's crop request is not part of the history: its picture and words are)."""
        return self._tokens[-1] if self._tokens else 0

    # ------------------------------------------------------------ turns

    def send(
        self,
        prompt: str,
        images: ImageInput | Sequence[ImageInput] = (),
        *,
        region: object = None,
        mask: MaskSource | None = None,
    ) -> Result:
        """Send one turn: ``prompt`` and optionally new reference images.

        The answer's image becomes part of the conversation: the next turn edits it.

        ``region`` (a box ``(left, top, right, bottom)`` in the upright picture's pixels)
        or ``mask`` makes the turn a regional edit of the current picture — the last
        turn's image, or the one image in ``images`` — at full resolution, through
        :func:`nbbanana.region.edit_region` with this chat's model and image size (the
        answer keeps the crop's shape, whatever the chat's aspect ratio). The result is a
        :class:`~nbbanana.region.RegionResult` (the full-size composite), and the next
        turn edits that composite.
        """
        sources = as_list(images) if images is not None else []
        if region is not None or mask is not None:
            return self._send_region(prompt, sources, region, mask)
        with self._lock:
            pipeline = self.session.pipeline
            call = pipeline.prepare(
                self._options,
                prompt,
                sources,
                history=[content for turn in self._turns for content in turn],
                history_bytes=self._history_bytes(),
                history_tokens=self._history_tokens(),
            )
            sent = pipeline.run(call)
            result = sent.result
            self._turns.append([sent.user] + ([sent.answer] if sent.answer else []))
            if result.parent is None and self._results:
                result.parent = self._results[-1]
            self._results.append(result)
            self._tokens.append(result.usage.prompt_tokens + result.usage.output_tokens)
            return result

    def _send_region(
        self, prompt: str, sources: list[ImageInput], region: object, mask: MaskSource | None
    ) -> Result:
        """A regional turn: the crop goes out as one edit of its own (the model needs no
        history to redraw a crop); the composite then joins the history as a user image,
        fitted like any reference, so the following turns see and edit it."""
        # Imported here: the regional machinery loads only for regional edits.
        from .region import edit_region

        with self._lock:
            if len(sources) > 1:
                raise InvalidRequest(
                    f"A regional turn (region= or mask=) changes one image; got {len(sources)}."
                )
            if sources:
                image: object = sources[0]
            elif self._results and self._results[-1].image_data:
                image = self._results[-1]
            else:
                raise InvalidRequest(
                    "A regional turn edits the chat's current picture and there is none yet: "
                    "pass the image to edit (images=...) with region= or mask=."
                )
            # The composite must fit in the history: refuse now, before the crop is paid
            # for, when the history alone leaves no room (the same check as any turn's).
            self.session.pipeline.prepare(
                self._options, prompt, history_bytes=self._history_bytes()
            )
            result = edit_region(
                self.session, image, prompt, region=region, mask=mask,
                image_size=self.image_size, model=self.model,
                thinking_level=self.thinking_level, include_thoughts=self.include_thoughts,
                grounding=self.grounding,
            )  # fmt: skip
            # The picture as it now is, in the history: fitted into the room left.
            words = (
                f"[Only the region {result.params.get('region', '')} of the picture was edited: "
                f"{prompt}] This is the whole picture now."
            )
            assert result.image is not None  # a composite always has its image
            call = self.session.pipeline.prepare(
                self._options,
                words,
                [result.image],
                history_bytes=self._history_bytes(),
            )
            fitted = call.inputs[0].sent
            user = _user_content(words, fitted.data, fitted.mime)
            self._turns.append([user])
            if result.parent is None and self._results:
                result.parent = self._results[-1]
            self._results.append(result)
            self._tokens.append(self._history_tokens() + fitted.tokens + text_tokens(words))
            return result

    async def send_async(
        self,
        prompt: str,
        images: ImageInput | Sequence[ImageInput] = (),
        *,
        region: object = None,
        mask: MaskSource | None = None,
    ) -> Result:
        """:meth:`send` for ``asyncio`` (runs in a worker thread, so the event loop —
        e.g. a notebook's, with widgets — stays responsive). Turns still go one at a time."""
        return await asyncio.to_thread(self.send, prompt, images, region=region, mask=mask)

    def branch(self, turn: int) -> Chat:
        """A new chat that continues from after turn ``turn`` (1-based; 0 = from the
        start). This chat is left unchanged."""
        with self._lock:
            if not 0 <= turn <= len(self._results):
                raise InvalidRequest(
                    f"turn must be between 0 and {len(self._results)} (this chat has "
                    f"{len(self._results)} turn(s)); got {turn}."
                )
            return Chat(
                self.session,
                model=self.model,
                aspect_ratio=self.aspect_ratio,
                image_size=self.image_size,
                thinking_level=self.thinking_level,
                include_thoughts=self.include_thoughts,
                grounding=self.grounding,
                _results=self._results[:turn],
                _turns=self._turns[:turn],
                _tokens=self._tokens[:turn],
            )

    #: The first name of :meth:`send_async`, kept so that existing code keeps working.
    asend = send_async


def _user_content(text: str, data: bytes, mime: str) -> types.Content:
    """A user content of ``text`` and one inline image."""
    # The SDK's types are loaded by the pipeline already; imported here for the runtime
    # (the module-level import is for type checking only).
    from google.genai import types

    return types.Content(
        role="user",
        parts=[types.Part.from_text(text=text), types.Part.from_bytes(data=data, mime_type=mime)],
    )
