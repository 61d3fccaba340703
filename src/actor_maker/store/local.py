"""A directory as an object store (embedded mode).

Objects are plain files at ``root/key`` so people can browse them. Each object's
metadata, content type and cached version live in a sidecar JSON file under
``root/.meta/<key>.json``; per-key lock files live under ``root/.locks``. Both
trees are hidden from ``list``.

The version of an object is the hex MD5 of its bytes (what S3 reports as the
ETag of a single-part upload). Every write holds the key's exclusive lock,
writes the bytes to a hidden temporary file beside the final name, records the
sidecar, and only then moves the bytes into place, so readers never see partial
content and an object never exists without its metadata:

* ``put_if_absent`` hard-links the temporary file into place, which fails when
  the name is taken: nothing is ever overwritten, even by a writer that ignores
  the lock;
* ``put_if_version`` compares the current bytes' MD5 with the expected version
  and renames the temporary file over the object atomically.

The sidecar's cached version is trusted only while the file's inode, size and
mtime are the ones it was recorded for; otherwise the file is hashed. Lock files
are never deleted: removing one while another process waits on it would let two
writers hold "the" lock at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import portalocker

from actor_maker.errors import InputError, NotFoundError, PreconditionFailed, StoreError
from actor_maker.store.base import Attributes, ObjectInfo, ObjectStore, StoredObject, check_key

_META_DIR = ".meta"
_LOCK_DIR = ".locks"
_TMP_MARK = ".tmp-"
#: What reading a key that names no file raises.
_ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)

#: ``(st_ino, st_size, st_mtime_ns)``: identifies one version of one file.
_Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class _Sidecar:
    """What the sidecar file records about one object."""

    version: str = ""
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: The stamp of the file ``version`` was computed for.
    stamp: _Stamp | None = None


class LocalStore(ObjectStore):
    """Objects as files under ``root``; the directory is created on first write."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)
        self.description = f"directory {self._root}"

    # --- reads -------------------------------------------------------------------

    def get(self, key: str) -> StoredObject:
        path = self._path(key)
        with _os_errors(f"read {key!r}"):
            try:
                with path.open("rb") as fh:
                    data = fh.read()
                    st = os.fstat(fh.fileno())
            except _ABSENT as exc:
                raise NotFoundError(f"no object {key!r} in the local store") from exc
            sidecar = self._read_sidecar(key)
        return StoredObject(data, _info(key, st, _md5(data), sidecar))

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        with _os_errors(f"read {key!r}"):
            try:
                st = path.stat()
                if not stat.S_ISREG(st.st_mode):
                    return None
                sidecar = self._read_sidecar(key)
                version = _cached_version(sidecar, st) or _md5_file(path)
            except _ABSENT:
                return None
        return _info(key, st, version, sidecar)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        directory = self._list_dir(prefix)
        with _os_errors(f"list {prefix!r}"):
            keys = sorted(k for k in self._walk(directory) if k.startswith(prefix))
        for key in keys:
            info = self._head_listed(key)
            if info is not None:
                yield dataclasses.replace(info, metadata={}, content_type=None)

    # --- writes ------------------------------------------------------------------

    def _create(self, key: str, data: bytes, attributes: Attributes) -> ObjectInfo:
        path = self._path(key)
        with _os_errors(f"write {key!r}"), self._locked(key), _temp_file(path, data) as tmp:
            if os.path.lexists(path):
                raise PreconditionFailed(f"object {key!r} already exists")
            info = self._record(key, tmp, _md5(data), attributes)
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise PreconditionFailed(f"object {key!r} already exists") from exc
            return info

    def _replace(self, key: str, data: bytes, version: str, attributes: Attributes) -> ObjectInfo:
        path = self._path(key)
        with _os_errors(f"write {key!r}"), self._locked(key), _temp_file(path, data) as tmp:
            try:
                current = _md5_file(path)
            except _ABSENT as exc:
                raise PreconditionFailed(f"object {key!r} does not exist") from exc
            if current != version:
                raise PreconditionFailed(f"object {key!r} changed since it was read")
            info = self._record(key, tmp, _md5(data), attributes)
            os.replace(tmp, path)
            return info

    def _upload(self, key: str, path: Path, attributes: Attributes) -> ObjectInfo:
        final = self._path(key)
        with (
            _os_errors(f"write {key!r}"),
            self._locked(key),
            _temp_copy(final, path) as (tmp, version),
        ):
            info = self._record(key, tmp, version, attributes)
            os.replace(tmp, final)
            return info

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _os_errors(f"delete {key!r}"), self._locked(key):
            for victim in (path, self._sidecar_path(key)):
                with contextlib.suppress(*_ABSENT):
                    victim.unlink()

    # --- URLs: a directory has none ------------------------------------------------

    def location(self, key: str) -> str:
        """The path a person can open (``key`` may be a prefix ending in ``/``)."""
        check_key(key.rstrip("/"))
        return str((self._root / key).absolute())

    def presigned_url(self, key: str, expires_in: int = 900) -> str | None:
        return None

    def public_url(self, key: str) -> str | None:
        return None

    def key_for_url(self, url: str) -> str | None:
        return None

    # --- paths ---------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file of ``key``; refuses reserved names and paths resolving outside root."""
        check_key(key)
        if key.split("/", 1)[0] in (_META_DIR, _LOCK_DIR) or _is_temp(key.rsplit("/", 1)[-1]):
            raise InputError(f"invalid object key {key!r}: reserved by the local store")
        path = self._root / key
        root = os.path.realpath(self._root)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise InputError(f"invalid object key {key!r}: resolves outside the local store")
        return path

    def _sidecar_path(self, key: str) -> Path:
        return self._root / _META_DIR / f"{key}.json"

    def _list_dir(self, prefix: str) -> Path:
        """The deepest directory holding every key that starts with ``prefix``."""
        directory = prefix.rpartition("/")[0]
        return self._path(directory) if directory else self._root

    def _walk(self, directory: Path) -> Iterator[str]:
        """Keys of the files under ``directory``; hidden trees and temp files skipped."""
        for dirpath, dirnames, filenames in os.walk(directory):
            rel = Path(dirpath).relative_to(self._root).as_posix()
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d not in (_META_DIR, _LOCK_DIR)]
            for name in filenames:
                if not _is_temp(name):
                    yield name if rel == "." else f"{rel}/{name}"

    def _head_listed(self, key: str) -> ObjectInfo | None:
        """``head`` for a walked file; files whose names are not valid keys are skipped."""
        try:
            return self.head(key)
        except InputError:
            return None

    # --- locks and sidecars --------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the exclusive lock of ``key``, across threads and processes."""
        lock_path = self._root / _LOCK_DIR / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as fh:
            try:
                portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE)
            except portalocker.LockException as exc:
                raise StoreError(f"local store: cannot lock {key!r}: {type(exc).__name__}") from exc
            try:
                yield
            finally:
                portalocker.unlock(fh)

    def _record(self, key: str, tmp: Path, version: str, attributes: Attributes) -> ObjectInfo:
        """Write the sidecar for the bytes in ``tmp`` (at ``version``), about to become ``key``."""
        st = tmp.stat()
        sidecar = _Sidecar(version, attributes.content_type, attributes.metadata, _stamp(st))
        self._write_sidecar(key, sidecar)
        return _info(key, st, version, sidecar)

    def _write_sidecar(self, key: str, sidecar: _Sidecar) -> None:
        body = json.dumps(dataclasses.asdict(sidecar)).encode()
        sidecar_path = self._sidecar_path(key)
        with _temp_file(sidecar_path, body) as sidecar_tmp:
            os.replace(sidecar_tmp, sidecar_path)

    def _read_sidecar(self, key: str) -> _Sidecar:
        """The sidecar of ``key``; an empty one when it is missing or not valid JSON."""
        try:
            raw: Any = json.loads(self._sidecar_path(key).read_bytes())
        except (*_ABSENT, ValueError):
            return _Sidecar()
        if not isinstance(raw, dict):
            return _Sidecar()
        return _Sidecar(
            version=str(raw.get("version") or ""),
            content_type=raw.get("content_type"),
            metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
            stamp=_parse_stamp(raw.get("stamp")),
        )


# --- helpers ---------------------------------------------------------------------


@contextlib.contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Turn an ``OSError`` into a one-line ``StoreError``."""
    try:
        yield
    except OSError as exc:
        detail = exc.strerror or type(exc).__name__
        raise StoreError(f"local store: cannot {action}: {detail}") from exc


@contextlib.contextmanager
def _temp_file(final: Path, data: bytes) -> Iterator[Path]:
    """A new hidden file beside ``final`` holding ``data`` (flushed to disk); removed on exit.

    Move or link it into place inside the block; a file that was renamed away is
    simply no longer there to remove.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{_TMP_MARK}{secrets.token_hex(8)}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _temp_copy(final: Path, source: Path) -> Iterator[tuple[Path, str]]:
    """Like ``_temp_file``, copying ``source`` block by block; also yields its MD5."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{_TMP_MARK}{secrets.token_hex(8)}")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with source.open("rb") as src, open(tmp, "xb") as fh:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        yield tmp, digest.hexdigest()
    finally:
        tmp.unlink(missing_ok=True)


def _is_temp(name: str) -> bool:
    return name.startswith(".") and _TMP_MARK in name


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _parse_stamp(value: Any) -> _Stamp | None:
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value):
        return (value[0], value[1], value[2])
    return None


def _cached_version(sidecar: _Sidecar, st: os.stat_result) -> str | None:
    """The sidecar's version when it was recorded for exactly this file."""
    return sidecar.version if sidecar.version and sidecar.stamp == _stamp(st) else None


def _info(key: str, st: os.stat_result, version: str, sidecar: _Sidecar) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        version=version,
        modified=st.st_mtime,
        metadata=dict(sidecar.metadata),
        content_type=sidecar.content_type,
    )
