"""The object store seam.

A store offers primitives only; behaviour built on them (the manifest's
read-modify-write loop, create-only uploads with the next free index) lives
once, above the store, in ``manifest.py`` and ``pipeline.py``.

Keys are ``/``-separated, relative to the store's root (a directory, or a
bucket plus optional prefix). Every key is checked with ``check_key`` before
use: no empty segments, no ``.``/``..``, no backslashes or control characters.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from actor_maker.errors import InputError, StoreError

#: S3 allows 2 KB of user metadata; the local store enforces the same budget.
MAX_METADATA_BYTES = 2048


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head``/``list`` tell about one object."""

    key: str
    size: int
    #: Opaque version token: the S3 ETag, or the local store's content hash.
    version: str
    #: Seconds since the epoch.
    modified: float
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes plus the version they were read at."""

    data: bytes
    info: ObjectInfo


def check_key(key: str) -> str:
    """Refuse keys that could escape the store root or confuse a backend."""
    if not key or len(key) > 1024:
        raise InputError(f"invalid object key {key!r}: empty or over 1024 characters")
    if key.startswith("/") or "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InputError(f"invalid object key {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InputError(f"invalid object key {key!r}")
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Metadata is small ASCII key/value pairs (S3's rules, applied everywhere)."""
    meta = dict(metadata or {})
    size = 0
    for k, v in meta.items():
        if not k.isascii() or not str(v).isascii():
            raise InputError(f"object metadata must be ASCII: {k!r}")
        if not k.replace("-", "").replace("_", "").isalnum() or k.lower() != k:
            raise InputError(f"object metadata keys are lower-case alphanumerics and '-': {k!r}")
        size += len(k) + len(str(v))
    if size > MAX_METADATA_BYTES:
        raise InputError(f"object metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
    return {k: str(v) for k, v in meta.items()}


@dataclass(frozen=True)
class Attributes:
    """What a write stores beside the bytes: content type and (checked) metadata."""

    content_type: str | None
    metadata: dict[str, str]

    @classmethod
    def checked(cls, content_type: str | None, metadata: Mapping[str, str] | None) -> Attributes:
        return cls(content_type, check_metadata(metadata))


class ObjectStore(abc.ABC):
    """Primitives every store offers. Implementations: ``LocalStore``, ``S3Store``."""

    #: A short human description ("directory /x/y", "s3://bucket/prefix").
    description: str

    @abc.abstractmethod
    def get(self, key: str) -> StoredObject:
        """Bytes and version of ``key``; ``NotFoundError`` when absent."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, version and metadata of ``key``; ``None`` when absent."""

    def put_if_absent(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Create ``key``; ``PreconditionFailed`` when it already exists. Never overwrites."""
        return self._create(key, data, Attributes.checked(content_type, metadata))

    def put_if_version(
        self,
        key: str,
        data: bytes,
        version: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Replace ``key`` only if it is still at ``version``; else ``PreconditionFailed``.

        A missing key also fails with ``PreconditionFailed``. Readers never see a
        half-written object.
        """
        return self._replace(key, data, version, Attributes.checked(content_type, metadata))

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Create or replace ``key`` with the content of the file ``path``, streamed from
        disk (never whole in memory; multipart on S3). Readers never see a half-written
        object.

        Unconditional: for artefacts one writer owns (an export's zip), never for training
        images or manifests, which go through ``put_if_absent``/``put_if_version``.
        """
        return self._upload(key, Path(path), Attributes.checked(content_type, metadata))

    # The write primitives a backend supplies behind the three ``put`` methods above; a
    # store that leaves them out is read-only.

    def _create(self, key: str, data: bytes, attributes: Attributes) -> ObjectInfo:
        """``put_if_absent``."""
        raise StoreError(f"{self.description} is read-only")

    def _replace(self, key: str, data: bytes, version: str, attributes: Attributes) -> ObjectInfo:
        """``put_if_version``."""
        raise StoreError(f"{self.description} is read-only")

    def _upload(self, key: str, path: Path, attributes: Attributes) -> ObjectInfo:
        """``put_file``."""
        raise StoreError(f"{self.description} is read-only")

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (metadata not filled in)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""

    @abc.abstractmethod
    def presigned_url(self, key: str, expires_in: int = 900) -> str | None:
        """A short-lived URL a browser or a provider can GET, or ``None`` when the
        store cannot make one (the local store). Never log or store it."""

    @abc.abstractmethod
    def public_url(self, key: str) -> str | None:
        """The plain, unsigned URL recorded in manifests (``s3_url``), or ``None``
        for the local store, whose entries record the key instead."""

    @abc.abstractmethod
    def key_for_url(self, url: str) -> str | None:
        """The key of an object of this store named by ``url`` (``s3://bucket/key``,
        the bucket's https URL, ``{endpoint}/{bucket}/{key}``), else ``None``."""

    @property
    def reachable_from_internet(self) -> bool:
        """Whether a presigned URL of this store can be fetched by a hosted model."""
        return False

    def location(self, key: str) -> str:
        """Where a person finds ``key``: a path for the local store, a URL for S3.

        ``key`` may also be a folder, a prefix ending in ``/``."""
        name = key.rstrip("/")
        check_key(name)
        url = self.public_url(name)
        if url is None:
            return f"{self.description}: {key}"
        return f"{url}/" if key.endswith("/") else url

    def check_writable(self) -> None:  # pragma: no cover - overridden where cheaper
        """Raise ``StoreError`` unless a write, read and delete round trip works."""
        key = "system_actors/.doctor/probe"
        self.delete(key)
        self.put_if_absent(key, b"ok")
        self.get(key)
        self.delete(key)
