"""Where an export goes: a directory, a zip file or an S3 prefix, and the record of
what an earlier export wrote there (so a re-export removes only its own files)."""

from __future__ import annotations

import abc
import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from actor_maker.config import Settings
from actor_maker.errors import InputError, NotFoundError, PreconditionFailed, StoreError
from actor_maker.export.model import (
    _CONTENT_TYPES,
    _IMAGE_EXTENSIONS,
    _ZIP_DATE,
    CARD_MARK,
    RECORD,
)
from actor_maker.images import md5_hex
from actor_maker.store import open_s3_store
from actor_maker.store.base import ObjectStore, check_key

# --- destinations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where an export goes: a local path or ``s3://bucket/prefix``; ``is_zip`` by suffix."""

    out: str
    settings: Settings
    bucket: str | None = None
    prefix: str = ""

    @classmethod
    def parse(cls, out: str, settings: Settings) -> Destination:
        out = out.strip()
        if not out:
            raise InputError("--out: give a directory, a .zip path or s3://bucket/prefix/")
        if out.startswith("s3://"):
            bucket, _, prefix = out[len("s3://") :].partition("/")
            if len(bucket) < 3:
                raise InputError(f"--out {out}: bucket name is too short")
            prefix = prefix.strip("/")
            if prefix:
                check_key(prefix)
            return cls(out, settings, bucket, prefix)
        if "://" in out:
            raise InputError(f"--out {out}: give a directory, a .zip path or s3://bucket/prefix/")
        return cls(out, settings)

    @property
    def is_zip(self) -> bool:
        return self.out.lower().endswith(".zip")

    def tree_sink(self) -> Sink:
        if self.bucket is not None:
            return S3Sink(open_s3_store(self.settings, self.bucket, self.prefix))
        return DirSink(Path(self.out))

    @contextlib.contextmanager
    def zip_sink(self, name: str | None) -> Iterator[ZipSink]:
        """A zip: ``out`` itself, or ``name`` inside the directory or prefix ``out``."""
        if self.bucket is None:
            path = Path(self.out) / name if name else Path(self.out)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"--out {self.out}: cannot create {path.parent}: {exc}") from exc
            part = path.with_name(f".{path.name}.part")
            with _errors_as_input(path), ZipSink(part, str(path)) as sink:
                yield sink
            os.replace(part, path)
            return
        store = open_s3_store(self.settings, self.bucket, "")
        key = "/".join(p for p in (self.prefix, name) if p)
        if not key.lower().endswith(".zip"):
            raise InputError(f"--out {self.out}: name the zip, e.g. s3://bucket/dataset.zip")
        check_key(key)
        with tempfile.TemporaryDirectory(prefix="actor-maker-export-") as tmp:
            part = Path(tmp) / "export.zip"
            with ZipSink(part, f"s3://{self.bucket}/{key}") as sink:
                yield sink
            store.put_file(key, part, content_type="application/zip")


@contextlib.contextmanager
def _errors_as_input(path: Path) -> Iterator[None]:
    try:
        yield
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc}") from exc


class Sink(abc.ABC):
    """Where an export's files go: paths are ``/``-separated and relative."""

    #: Whether :meth:`folder_path` is absolute (a local directory), so configs may name it.
    absolute = False

    @abc.abstractmethod
    def write(self, path: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def where(self, folder: str) -> str:
        """``folder`` for a person: a path or a URL."""

    def folder_path(self, folder: str) -> str:
        """``folder`` as a trainer's config should name it."""
        return folder or "."

    def previous_export(self, folder: str) -> set[str]:
        """Files an earlier export wrote in ``folder`` (removed when not written again),
        as its record lists them; any other file there is left alone.

        ``InputError`` when ``folder`` holds files but no dataset card of ours.
        """
        return set()

    def record(self, folder: str, files: list[str]) -> None:
        """Remember ``files`` as what this export wrote in ``folder`` (a zip: nothing)."""
        return None

    def delete(self, path: str) -> None:  # pragma: no cover - only tree sinks have stale files
        raise NotImplementedError


class DirSink(Sink):
    absolute = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, path: str) -> Path:
        return self.root.joinpath(*path.split("/"))

    def write(self, path: str, data: bytes) -> None:
        target = self._path(path)
        with _errors_as_input(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.part")
            part.write_bytes(data)
            os.replace(part, target)

    def where(self, folder: str) -> str:
        return str(self._path(folder))

    def folder_path(self, folder: str) -> str:
        return str(self._path(folder).resolve())

    def previous_export(self, folder: str) -> set[str]:
        base = self._path(folder)
        if not base.exists():
            return set()
        if not base.is_dir():
            raise InputError(f"{base} exists and is not a directory")
        if not any(base.iterdir()):
            return set()
        card = base / "README.md"
        if not (card.is_file() and _is_card(card.read_bytes())):
            raise InputError(f"{base} is not empty and not an earlier export; choose another --out")
        record = base / RECORD
        return _read_record(folder, record.read_bytes() if record.is_file() else None)

    def record(self, folder: str, files: list[str]) -> None:
        self.write(_record_path(folder), _record_body(folder, files))

    def delete(self, path: str) -> None:
        target = self._path(path)
        with _errors_as_input(target):
            target.unlink(missing_ok=True)
            for parent in target.parents:
                if parent == self.root or not parent.is_relative_to(self.root):
                    break
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty


class S3Sink(Sink):
    """Objects under the destination prefix: created, or replaced when they differ."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def write(self, path: str, data: bytes) -> None:
        content_type = _CONTENT_TYPES.get(path.rpartition(".")[2].lower())
        try:
            self.store.put_if_absent(path, data, content_type=content_type)
        except PreconditionFailed:
            info = self.store.head(path)
            if info is None:
                self.store.put_if_absent(path, data, content_type=content_type)
            elif info.version != md5_hex(data):
                self.store.put_if_version(path, data, info.version, content_type=content_type)

    def where(self, folder: str) -> str:
        return f"{self.store.description.rstrip('/')}/{folder}"

    def previous_export(self, folder: str) -> set[str]:
        files = {info.key for info in self.store.list(f"{folder}/")}
        if not files:
            return set()
        card = f"{folder}/README.md"
        try:
            ours = card in files and _is_card(self.store.get(card).data)
        except NotFoundError:
            ours = False
        if not ours:
            raise InputError(
                f"{self.where(folder)} is not empty and not an earlier export; choose another --out"
            )
        try:
            body: bytes | None = self.store.get(_record_path(folder)).data
        except NotFoundError:
            body = None
        return _read_record(folder, body)

    def record(self, folder: str, files: list[str]) -> None:
        self.write(_record_path(folder), _record_body(folder, files))

    def delete(self, path: str) -> None:
        self.store.delete(path)


class ZipSink(Sink):
    """A zip file written member by member: stored images, deflated text, fixed metadata."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> ZipSink:
        self._zip = zipfile.ZipFile(self.path, "w")
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        assert self._zip is not None
        self._zip.close()
        if exc_type is not None:
            self.path.unlink(missing_ok=True)

    def write(self, path: str, data: bytes) -> None:
        assert self._zip is not None
        info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
        info.create_system = 3  # unix, so the permissions below are read
        info.external_attr = 0o100644 << 16
        image = path.rpartition(".")[2].lower() in _IMAGE_EXTENSIONS
        info.compress_type = zipfile.ZIP_STORED if image else zipfile.ZIP_DEFLATED
        self._zip.writestr(info, data)

    def where(self, folder: str) -> str:
        return f"{self.name}:{folder}/" if folder else self.name


def _is_card(data: bytes) -> bool:
    return data.startswith(CARD_MARK.encode())


def _record_path(folder: str) -> str:
    return f"{folder}/{RECORD}" if folder else RECORD


def _record_body(folder: str, files: list[str]) -> bytes:
    """The record: paths relative to ``folder``, sorted, so the same export gives the same
    bytes."""
    cut = len(folder) + 1 if folder else 0
    body = {"written_by": "actor-maker export", "files": sorted(f[cut:] for f in files)}
    return (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode()


def _read_record(folder: str, body: bytes | None) -> set[str]:
    """The files an earlier export's record lists, as sink paths. Without a readable record
    (an export older than records) nothing is taken for stale."""
    if body is None:
        return set()
    try:
        files = json.loads(body).get("files")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(files, list):
        return set()
    found = set()
    for name in files:
        if not isinstance(name, str):
            continue
        try:
            check_key(name)
        except InputError:
            continue  # never follow ../ or absolute paths out of the folder
        found.add(f"{folder}/{name}" if folder else name)
    return found
