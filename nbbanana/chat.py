"""Multi-turn editing: "make it blue" … "now add a hat" … "go back two steps and try red".

A :class:`Chat` sends the whole history with every turn — including the model's
``thoughtSignature`` parts, which Gemini 3 image models need to keep editing the same
picture — through the session's request pipeline, like a single call. On top of it, a
chat keeps one :class:`~nbbanana.result.Result` per turn (:attr:`Chat.history`), fits
any new reference images to the room the history leaves in the request, books each turn
against the session's cost guard, and can :meth:`~Chat.branch` from an earlier turn: a
new chat whose history is this one's up to that turn.

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
from .result import Result, chat_html

if TYPE_CHECKING:
    from google.genai import types

    from ._types import ImageInput
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
        """Input tokens the history adds: the last turn's prompt and answer."""
        if not self._results:
            return 0
        last = self._results[-1].usage
        return last.prompt_tokens + last.output_tokens

    # ------------------------------------------------------------ turns

    def send(self, prompt: str, images: ImageInput | Sequence[ImageInput] = ()) -> Result:
        """Send one turn: ``prompt`` and optionally new reference images.

        The answer's image becomes part of the conversation: the next turn edits it.
        """
        sources = as_list(images) if images is not None else []
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
            return result

    async def send_async(
        self, prompt: str, images: ImageInput | Sequence[ImageInput] = ()
    ) -> Result:
        """:meth:`send` for ``asyncio`` (runs in a worker thread, so the event loop —
        e.g. a notebook's, with widgets — stays responsive). Turns still go one at a time."""
        return await asyncio.to_thread(self.send, prompt, images)

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
            )

    #: The first name of :meth:`send_async`, kept so that existing code keeps working.
    asend = send_async
