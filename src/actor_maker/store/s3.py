"""An S3 bucket (or any S3-compatible endpoint) as an object store.

Conditional writes do the concurrency work: ``put_if_absent`` sends
``If-None-Match: *`` and ``put_if_version`` sends ``If-Match: "<etag>"``. Versions
are ETags without their surrounding quotes. Every botocore error is translated
into the package's exception tree with a one-line message that names the object
but never credentials or signed query strings.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from actor_maker.errors import (
    ActorMakerError,
    ConfigError,
    InputError,
    NotFoundError,
    PreconditionFailed,
    StoreError,
)
from actor_maker.store.base import Attributes, ObjectInfo, ObjectStore, StoredObject, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Error codes S3 uses for "no such object" (HEAD has no body, so only the status).
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
#: Error codes of a conditional write that lost: 412, or 409 for a concurrent one.
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})


class S3Store(ObjectStore):
    """Objects under ``prefix/`` in ``bucket``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str = "us-west-1",
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        client: Any = None,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._region = region
        self._endpoint = endpoint_url.rstrip("/") if endpoint_url else None
        self._client: S3Client | None = client
        self._client_lock = threading.Lock()
        self._connect = functools.partial(
            _make_client, region, self._endpoint, access_key_id, secret_access_key, session_token
        )
        self.description = f"s3://{bucket}/{self._prefix}"

    @property
    def reachable_from_internet(self) -> bool:
        """AWS itself, or an https endpoint whose host is not local or private."""
        if self._endpoint is None:
            return True
        parts = urlsplit(self._endpoint)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or host == "localhost" or host.endswith((".local", ".internal")):
            return False
        try:
            return ipaddress.ip_address(host).is_global
        except ValueError:
            return "." in host  # a DNS name; assume it is public

    @property
    def client(self) -> S3Client:
        """The boto3 client, made on first use (building one takes a noticeable moment)."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = self._connect()
                except ValueError as exc:  # a malformed endpoint URL or region
                    raise ConfigError(f"cannot use {self.description}: {exc}") from exc
            return self._client

    # --- reads -------------------------------------------------------------------

    def get(self, key: str) -> StoredObject:
        full = self._full_key(key)
        with self._errors("get", full, missing=NotFoundError):
            resp = self.client.get_object(Bucket=self._bucket, Key=full)
            data = resp["Body"].read()
        return StoredObject(data, self._info(key, resp))

    def head(self, key: str) -> ObjectInfo | None:
        full = self._full_key(key)
        try:
            with self._errors("head", full, missing=NotFoundError):
                resp = self.client.head_object(Bucket=self._bucket, Key=full)
        except NotFoundError:
            return None
        return self._info(key, resp)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full_prefix = f"{self._prefix}/{prefix}" if self._prefix else prefix
        with self._errors("list", full_prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            pages = iter(paginator.paginate(Bucket=self._bucket, Prefix=full_prefix))
        while True:
            with self._errors("list", full_prefix):
                page = next(pages, None)
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    key=self._relative_key(obj["Key"]),
                    size=obj["Size"],
                    version=_unquote_etag(obj["ETag"]),
                    modified=obj["LastModified"].timestamp(),
                )

    # --- writes ------------------------------------------------------------------

    def _create(self, key: str, data: bytes, attributes: Attributes) -> ObjectInfo:
        return self._put(key, data, attributes, IfNoneMatch="*")

    def _replace(self, key: str, data: bytes, version: str, attributes: Attributes) -> ObjectInfo:
        return self._put(key, data, attributes, IfMatch=f'"{_unquote_etag(version)}"')

    def _upload(self, key: str, path: Path, attributes: Attributes) -> ObjectInfo:
        """boto3's managed transfer: one PUT for small files, multipart above 16 MB."""
        full = self._full_key(key)
        with self._errors("put", full):
            self.client.upload_file(
                os.fspath(path), self._bucket, full, ExtraArgs=_extra(attributes), Config=_TRANSFER
            )
        info = self.head(key)
        if info is None:  # pragma: no cover - deleted by someone else in between
            raise StoreError(f"S3 put s3://{self._bucket}/{full}: gone right after the upload")
        return info

    def delete(self, key: str) -> None:
        full = self._full_key(key)
        with self._errors("delete", full):
            self.client.delete_object(Bucket=self._bucket, Key=full)

    # --- URLs ----------------------------------------------------------------------

    def presigned_url(self, key: str, expires_in: int = 900) -> str | None:
        full = self._full_key(key)
        with self._errors("presign", full):
            url: str = self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": full},
                ExpiresIn=expires_in,
            )
        return url

    def public_url(self, key: str) -> str | None:
        path = quote(self._full_key(key))
        if self._endpoint:
            return f"{self._endpoint}/{self._bucket}/{path}"
        return f"https://{self._bucket}.s3.{self._region}.amazonaws.com/{path}"

    def key_for_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme == "s3":
            path = parts.path if parts.netloc == self._bucket else None
        elif parts.scheme in ("http", "https") and self._is_bucket_host(parts.hostname):
            path = parts.path
        else:
            path = self._endpoint_path(f"{parts.scheme}://{parts.netloc}{parts.path}")
        return self._key_in_prefix(unquote(path.lstrip("/"))) if path else None

    # --- keys ----------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def _relative_key(self, full_key: str) -> str:
        return full_key[len(self._prefix) + 1 :] if self._prefix else full_key

    def _key_in_prefix(self, full_key: str) -> str | None:
        """The store key of ``full_key``, or ``None`` when it is outside the prefix or invalid."""
        if self._prefix and not full_key.startswith(f"{self._prefix}/"):
            return None
        key = self._relative_key(full_key)
        try:
            return check_key(key)
        except InputError:
            return None

    def _is_bucket_host(self, host: str | None) -> bool:
        """Whether ``host`` is one of AWS's virtual-hosted names for this bucket."""
        pattern = rf"{re.escape(self._bucket)}\.s3(-accelerate|\.[a-z0-9-]+)?\.amazonaws\.com"
        return host is not None and re.fullmatch(pattern, host) is not None

    def _endpoint_path(self, url: str) -> str | None:
        """The object path of a path-style ``{endpoint}/{bucket}/...`` URL."""
        if not self._endpoint:
            return None
        stem = f"{self._endpoint}/{self._bucket}/"
        return url[len(stem) - 1 :] if url.startswith(stem) else None

    # --- requests ------------------------------------------------------------------

    def _put(self, key: str, data: bytes, attributes: Attributes, **condition: str) -> ObjectInfo:
        full = self._full_key(key)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": full, "Body": data}
        params.update(_extra(attributes), **condition)
        with self._errors("put", full, missing=PreconditionFailed):
            resp = self.client.put_object(**params)
        return ObjectInfo(
            key=key,
            size=len(data),
            version=_unquote_etag(resp["ETag"]),
            modified=time.time(),
            metadata=attributes.metadata,
            content_type=attributes.content_type,
        )

    def _info(self, key: str, resp: Mapping[str, Any]) -> ObjectInfo:
        """``ObjectInfo`` from a ``get_object`` or ``head_object`` response."""
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            version=_unquote_etag(resp["ETag"]),
            modified=resp["LastModified"].timestamp(),
            metadata=dict(resp.get("Metadata") or {}),
            content_type=resp.get("ContentType"),
        )

    @contextlib.contextmanager
    def _errors(
        self, action: str, full_key: str, *, missing: type[ActorMakerError] = StoreError
    ) -> Iterator[None]:
        """Translate botocore errors; ``missing`` is raised when the object does not exist."""
        where = f"s3://{self._bucket}/{full_key}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            if code in _MISSING_CODES:
                raise missing(f"S3 {action} {where}: no such object") from exc
            if code in _CONFLICT_CODES:
                raise PreconditionFailed(f"S3 {action} {where}: precondition failed") from exc
            message = _one_line(str(error.get("Message", "")))
            raise StoreError(f"S3 {action} {where} failed: {code} {message}".rstrip()) from exc
        except (BotoCoreError, Boto3Error) as exc:
            # boto3's transfers wrap the ClientError (S3UploadFailedError): one line either way
            raise StoreError(f"S3 {action} {where} failed: {_one_line(str(exc))}") from exc
        except OSError as exc:  # the file to upload cannot be read
            raise StoreError(f"S3 {action} {where} failed: {exc.strerror or exc}") from exc


#: Multipart above 16 MB, in 16 MB parts (S3 allows 10,000 parts: up to 160 GB).
_TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024
)


def _make_client(
    region: str,
    endpoint_url: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
) -> S3Client:
    """A client with standard retries and a pool big enough for concurrent jobs."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=64,
        signature_version="s3v4",
        # S3-compatible servers (moto, MinIO) are addressed path-style.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def _extra(attributes: Attributes) -> dict[str, Any]:
    """The request parameters that store ``attributes`` with an object."""
    extra: dict[str, Any] = {"Metadata": attributes.metadata}
    if attributes.content_type:
        extra["ContentType"] = attributes.content_type
    return extra


def _unquote_etag(etag: str) -> str:
    return etag.strip('"')


def _one_line(text: str) -> str:
    """The first line of ``text``, with any query string cut off (it may be signed)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"\?\S*", "", line)
