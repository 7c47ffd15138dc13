"""JSON text from clients, parsed as the service parses it: malformed or absurdly nested
text is a 400 ``INVALID_ARGUMENT``, never a crash.

Google's front end parses request JSON into protocol buffers, whose parser stops at
100 levels of nesting; no real request comes close (a ``generateContent`` body is about
eight deep). Without a bound, ``[[[[…`` a few thousand levels deep makes Python's
``json`` raise ``RecursionError``, and a parsed structure just under that limit would
do the same later in whatever walks it.
"""

from __future__ import annotations

import json
from typing import Any

from ._status import bad_request

__all__ = ["MAX_DEPTH", "loads"]

#: Deepest nesting of objects and arrays accepted (the protobuf JSON parser's limit).
MAX_DEPTH = 100


def loads(text: bytes | str, *, what: str = "JSON payload") -> Any:
    """Parse ``text``; raises a 400 :class:`ApiError` for invalid or too deeply nested JSON."""
    try:
        value = json.loads(text)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer too long to convert
        raise bad_request(f"Invalid {what} received. Unexpected token.") from None
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_DEPTH:
        raise bad_request(  # emulator wording
            f"Invalid {what} received. Nesting is deeper than {MAX_DEPTH} levels."
        )
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion (a scalar is 0 deep)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        pending.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest
