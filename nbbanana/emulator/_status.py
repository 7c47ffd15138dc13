"""Errors the emulator answers with, in the shape Google's APIs use (``google.rpc.Status``).

Every refusal is raised inside a route as :class:`ApiError` and turned into the JSON body
``{"error": {"code", "message", "status", "details"}}`` in one place, so each message is
written once. Wording follows what the real service says where it is known (the
reference table of the project); wording marked *emulator wording* is the emulator's own
best guess, and the ``live`` contract tests only compare code and status for those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ApiError",
    "bad_request",
    "field_violation",
    "file_not_found",
    "invalid_api_key",
    "missing_api_key",
    "model_not_found",
    "not_found",
]

_TYPE = "type.googleapis.com/google.rpc."

#: HTTP status code → canonical ``google.rpc.Code`` name.
STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ApiError(Exception):
    """A refusal to send back instead of a result.

    ``plain_text`` replaces the JSON body (some proxies answer with bare text).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        plain_text: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = list(details)
        self.plain_text = plain_text
        self.headers = dict(headers or {})

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, *, details: Sequence[Mapping[str, Any]] = ()) -> ApiError:
    return ApiError(400, message, details=details)


def field_violation(field: str, message: str) -> ApiError:
    """A 400 about one request field, with a ``BadRequest`` detail naming it."""
    detail = {
        "@type": _TYPE + "BadRequest",
        "fieldViolations": [{"field": field, "description": message}],
    }
    return ApiError(400, message, details=[detail])


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def model_not_found(model: str, version: str, method: str) -> ApiError:
    return ApiError(
        404,
        f"models/{model} is not found for API version {version}, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported "
        "methods.",
    )


def file_not_found(file_id: str) -> ApiError:
    # The Files API answers 403 (not 404) for a file that does not exist or has expired.
    return ApiError(
        403, f"You do not have permission to access the File {file_id} or it may not exist."
    )


def missing_api_key() -> ApiError:
    return ApiError(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def invalid_api_key() -> ApiError:
    message = "API key not valid. Please pass a valid API key."
    return ApiError(
        400,
        message,
        details=[
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
        ],
    )
