"""The emulator's Files API store: resumable uploads, metadata, expiry, downloads.

The upload protocol is the one google-genai 3.x speaks:

1. ``POST /upload/{version}/files`` with ``X-Goog-Upload-Protocol: resumable``,
   ``X-Goog-Upload-Command: start``, ``X-Goog-Upload-Header-Content-Length`` and
   ``-Content-Type``, body ``{"file": {"displayName", "mimeType", "sizeBytes", "name"?}}``
   → ``X-Goog-Upload-URL`` (absolute; the SDK posts to it as is) and
   ``X-Goog-Upload-Status: active``;
2. one ``POST`` to that URL per 8 MiB chunk with ``X-Goog-Upload-Command: upload`` and
   ``X-Goog-Upload-Offset``; the last says ``upload, finalize`` and gets
   ``X-Goog-Upload-Status: final`` with ``{"file": File}``. The SDK sends no API key on
   these (the upload id in the URL is the credential), so none is required.

Files live in memory and expire 48 hours after creation, measured on an injectable clock.
A missing or expired file answers 403 ``PERMISSION_DENIED``, as the real service does.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._status import ApiError, bad_request, file_not_found

__all__ = ["FILE_TTL_SECONDS", "FileStore", "StoredFile", "UploadSession", "timestamp"]

FILE_TTL_SECONDS = 48 * 3600
MAX_FILE_BYTES = 2 * 1024**3  # 2 GB per file [files]


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with microseconds, as Google's JSON APIs write times."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    id: str
    display_name: str | None
    mime_type: str
    data: bytes
    created: float
    source: str = "UPLOADED"  # or "GENERATED" (batch results)

    def resource(self, base_url: str, version: str) -> dict[str, Any]:
        hexdigest = hashlib.sha256(self.data).hexdigest()
        resource: dict[str, Any] = {
            "name": f"files/{self.id}",
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": timestamp(self.created),
            "updateTime": timestamp(self.created),
            "expirationTime": timestamp(self.created + FILE_TTL_SECONDS),
            "sha256Hash": base64.b64encode(hexdigest.encode()).decode(),
            "uri": f"{base_url}/{version}/files/{self.id}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.display_name:
            resource["displayName"] = self.display_name
        if self.source == "GENERATED":
            resource["downloadUri"] = f"{base_url}/{version}/files/{self.id}:download?alt=media"
        return resource


@dataclass
class UploadSession:
    token: str
    file_id: str
    display_name: str | None
    mime_type: str
    size: int
    received: bytearray = field(default_factory=bytearray)


class FileStore:
    """Thread-safe in-memory files and upload sessions."""

    def __init__(self, *, clock: Callable[[], float], seed: int) -> None:
        self._clock = clock
        self._rng = random.Random(f"files:{seed}")
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, UploadSession] = {}
        self._lock = threading.Lock()

    def _new_id(self, length: int = 12) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        while True:
            candidate = "".join(self._rng.choice(alphabet) for _ in range(length))
            if candidate not in self._files:
                return candidate

    # ----------------------------------------------------------------- uploads

    def start_upload(
        self, meta: Mapping[str, Any], *, size: int | None, mime_type: str | None
    ) -> UploadSession:
        if size is None or size < 0:
            raise bad_request(
                "X-Goog-Upload-Header-Content-Length is required for a resumable upload."
            )
        if size > MAX_FILE_BYTES:
            raise bad_request(f"File size {size} exceeds the maximum of {MAX_FILE_BYTES} bytes.")
        mime = mime_type or meta.get("mimeType") or meta.get("mime_type")
        if not mime:
            raise bad_request(
                "The file's MIME type is required (X-Goog-Upload-Header-Content-Type)."
            )
        display = meta.get("displayName") or meta.get("display_name")
        with self._lock:
            requested = str(meta.get("name") or "").removeprefix("files/")
            if requested:
                if self._live(requested) is not None:
                    raise ApiError(409, f"File files/{requested} already exists.")
                file_id = requested
            else:
                file_id = self._new_id()
            token = self._new_id(24)
            session = UploadSession(token, file_id, display, str(mime), size)
            self._uploads[token] = session
            return session

    def upload_chunk(
        self, token: str, *, offset: int, data: bytes, finalize: bool
    ) -> StoredFile | None:
        """Append a chunk; returns the file once ``finalize`` completes it."""
        with self._lock:
            session = self._uploads.get(token)
            if session is None:
                raise ApiError(404, "Upload session not found or already finalized.")
            if offset != len(session.received):
                raise bad_request(
                    f"Upload offset {offset} does not match the {len(session.received)} "
                    "bytes received so far."
                )
            session.received += data
            if len(session.received) > session.size:
                del self._uploads[token]
                raise bad_request(
                    f"Received {len(session.received)} bytes, more than the declared {session.size}."
                )
            if not finalize:
                return None
            del self._uploads[token]
            if len(session.received) != session.size:
                raise bad_request(
                    f"Upload finalized after {len(session.received)} of the declared "
                    f"{session.size} bytes."
                )
            stored = StoredFile(
                session.file_id,
                session.display_name,
                session.mime_type,
                bytes(session.received),
                self._clock(),
            )
            self._files[stored.id] = stored
            return stored

    # --------------------------------------------------------------- resources

    def _live(self, file_id: str) -> StoredFile | None:
        stored = self._files.get(file_id)
        if stored is not None and self._clock() >= stored.created + FILE_TTL_SECONDS:
            del self._files[file_id]  # expired files are gone for good
            return None
        return stored

    def get(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self._live(file_id)
        if stored is None:
            raise file_not_found(file_id)
        return stored

    def delete(self, file_id: str) -> None:
        with self._lock:
            if self._live(file_id) is None:
                raise file_not_found(file_id)
            del self._files[file_id]

    def list(self, page_size: int, page_token: str | None) -> tuple[list[StoredFile], str | None]:
        page_size = max(1, min(page_size or 10, 100))
        with self._lock:
            ids = sorted(self._files, key=lambda i: (self._files[i].created, i), reverse=True)
            live = [f for i in ids if (f := self._live(i)) is not None]
        start = int(page_token) if page_token and page_token.isdigit() else 0
        page = live[start : start + page_size]
        more = start + page_size < len(live)
        return page, str(start + page_size) if more else None

    def add_generated(self, data: bytes, mime_type: str, display_name: str) -> StoredFile:
        with self._lock:
            stored = StoredFile(
                self._new_id(), display_name, mime_type, data, self._clock(), "GENERATED"
            )
            self._files[stored.id] = stored
            return stored

    def resolve_uri(self, uri: str) -> StoredFile:
        """The file a ``fileData.fileUri`` names (any host: only ``files/{id}`` matters)."""
        _, sep, tail = uri.partition("files/")
        file_id = tail.split("?")[0].split(":")[0].strip("/")
        if not sep or not file_id:
            raise bad_request(f"Invalid file URI: {uri}")
        return self.get(file_id)
