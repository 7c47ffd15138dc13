"""Telling the user something that is not an error: the offline notice.

In a notebook, text on stderr is drawn as a pink box that reads as an error; an
information banner is shown instead (an HTML display with a plain-text twin). On a
terminal, in a script or the CLI, the notice stays one plain line on stderr, where it
does not mix with output that may be piped.
"""

from __future__ import annotations

import html
import sys

__all__ = ["in_notebook", "notice_bundle", "show_notice"]


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel that can display HTML."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    # A kernel's shell has a display publisher that sends to the front end; a terminal
    # IPython's does not (it prints text).
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def notice_bundle(note: str) -> dict[str, str]:
    """The notice as a display bundle: an information banner and its plain text."""
    banner = (
        '<div class="nbbanana-notice" role="status" style="font-family:sans-serif;'
        "border-left:4px solid #1976d2;background:rgba(25,118,210,.08);"
        'padding:6px 10px;margin:2px 0;border-radius:2px">'
        f"ℹ︎ {html.escape(note)}</div>"
    )
    return {"text/html": banner, "text/plain": note}


def show_notice(note: str) -> None:
    """Show ``note`` once as information: a banner in a notebook, a line on stderr elsewhere."""
    if in_notebook():
        # IPython is already loaded (in_notebook checked it); display is its public API.
        from IPython.display import display

        display(notice_bundle(note), raw=True)  # type: ignore[no-untyped-call]
        return
    print(note, file=sys.stderr, flush=True)
