"""Files uploaded to the stand-in (``POST /v1/files``), kept in memory."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actor_maker.testing.replicate_server.common import FILE_TTL, iso, new_id


@dataclass
class _File:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: dict[str, Any]
    created: datetime


class FileBook:
    """The uploaded files; their URLs are ``{base_url}/v1/files/{id}``."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}

    def data(self) -> dict[str, bytes]:
        """id → uploaded bytes (a copy of the mapping)."""
        with self._lock:
            return {file_id: record.data for file_id, record in self._files.items()}

    def store(
        self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        record = _File(
            id=new_id(),
            name=name,
            content_type=content_type,
            data=data,
            metadata=metadata,
            created=datetime.now(UTC),
        )
        with self._lock:
            self._files[record.id] = record
        return self.view(record)

    def get(self, file_id: str) -> _File | None:
        with self._lock:
            return self._files.get(file_id)

    def delete(self, file_id: str) -> None:
        with self._lock:
            self._files.pop(file_id, None)

    def list_views(self) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self._files.values())
        return [self.view(r) for r in reversed(records)]

    def view(self, record: _File) -> dict[str, Any]:
        url = f"{self._base_url()}/v1/files/{record.id}"
        return {
            "id": record.id,
            "name": record.name,
            "content_type": record.content_type,
            "size": len(record.data),
            "etag": hashlib.md5(record.data).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(record.data).hexdigest(),
                "md5": hashlib.md5(record.data).hexdigest(),
            },
            "metadata": record.metadata,
            "created_at": iso(record.created),
            "expires_at": iso(record.created + FILE_TTL),
            "urls": {"get": url},
        }
