"""Export: an actor's usable images and captions as a dataset a LoRA trainer reads.

Three layouts (``docs/export.md`` shows each tree and how to start training with it):

* ``kohya`` — ``{actor_name}/img/{repeats}_{trigger} {class}/{stem}.{ext}`` with a
  same-stem ``.txt`` caption, plus ``{actor_name}/dataset.toml`` for sd-scripts'
  ``--dataset_config``;
* ``ai-toolkit`` — ``{actor_name}/{stem}.{jpg|png}`` (other formats converted to PNG) with
  ``.txt`` captions, plus ``{actor_name}/ai-toolkit.yaml``, a ``datasets:`` snippet;
* ``replicate-zip`` — one zip per actor, images and captions at its root, for Replicate's
  FLUX LoRA trainer (its ``trigger_word`` input is in the report).

Each actor also gets a dataset card, ``README.md``. Destinations: a directory, a ``.zip``
file, or ``s3://bucket/prefix/`` (see :class:`Destination`).

Only usable images are exported (:func:`~actor_maker.quality.is_usable`), one at a time:
memory holds one image whatever the size of the set. The output is deterministic: entries
in index order, zip members dated 1980-01-01 with fixed permissions, and the card dated by
the newest exported image rather than the clock, so the same command twice gives the same
bytes.
"""

from __future__ import annotations

import abc
import contextlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

from actor_maker.balance import category_of
from actor_maker.captions import caption_for, class_word, trigger_first, trigger_word
from actor_maker.config import Settings
from actor_maker.errors import InputError, NotFoundError, PreconditionFailed, StoreError
from actor_maker.images import md5_hex
from actor_maker.layout import entry_key, index_of
from actor_maker.manifest import Entry, Manifest, read_many, require_manifest
from actor_maker.quality import PREVIEW_REASON, effective_verdict, is_preview, is_usable
from actor_maker.store import open_s3_store
from actor_maker.store.base import ObjectStore, check_key

Format = Literal["kohya", "ai-toolkit", "replicate-zip"]
FORMATS: tuple[Format, ...] = get_args(Format)

#: The first line of every dataset card: how an earlier export is recognised.
CARD_MARK = "<!-- actor-maker dataset card -->"
#: Beside each actor's card in a directory or S3 export: the files that export wrote, so
#: the next export into the same place removes only those (never a trainer's caches).
RECORD = ".actor-maker-export.json"
#: What ai-toolkit is given as is; anything else is converted to PNG.
_AI_TOOLKIT_KEEP = frozenset({"jpg", "jpeg", "png"})
_IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp"})
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "toml": "application/toml",
    "yaml": "application/yaml",
    "zip": "application/zip",
}
#: ai-toolkit's defaults for FLUX (its config/examples/train_lora_flux_24gb.yaml).
AI_TOOLKIT_RESOLUTIONS = (512, 768, 1024)
CAPTION_DROPOUT_RATE = 0.05
KOHYA_RESOLUTION = 1024


@dataclass(frozen=True)
class Skipped:
    """An entry left out, and why; ``failed`` when it should have been exported."""

    filename: str
    reason: str
    failed: bool = False


@dataclass
class ActorExport:
    actor_id: str
    actor_name: str
    trigger_word: str
    class_word: str
    #: Where the actor's files are: a folder, a zip, an ``s3://`` URL.
    location: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    #: Paths written, relative to the destination (or to the zip's root).
    files: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(self.counts.values())


@dataclass
class ExportReport:
    format: Format
    out: str
    actors: list[ActorExport] = field(default_factory=list)
    #: Actors left out because their manifest cannot be read (``skip_unreadable``): id → why.
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def files_written(self) -> int:
        return sum(len(a.files) for a in self.actors)

    @property
    def failed(self) -> list[Skipped]:
        return [s for a in self.actors for s in a.skipped if s.failed]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "out": self.out,
            "files_written": self.files_written,
            "unreadable": dict(self.unreadable),
            "actors": [
                {
                    "actor_id": a.actor_id,
                    "actor_name": a.actor_name,
                    "trigger_word": a.trigger_word,
                    "class_word": a.class_word,
                    "location": a.location,
                    "images": a.images,
                    "counts": a.counts,
                    "skipped": [vars(s) for s in a.skipped],
                    "files": a.files,
                }
                for a in self.actors
            ],
        }


@dataclass(frozen=True)
class Options:
    fmt: Format
    include_review: bool
    good_only: bool
    repeats: int
    shuffle_caption: bool = False


def export(
    store: ObjectStore,
    actor_ids: list[str],
    *,
    fmt: Format,
    out: str,
    settings: Settings,
    include_review: bool = False,
    good_only: bool = False,
    repeats: int = 10,
    skip_unreadable: bool = False,
    shuffle_caption: bool = False,
) -> ExportReport:
    """Write the actors' usable images and captions to ``out`` in the layout ``fmt``.

    ``out`` is a directory, a ``.zip`` path or ``s3://bucket/prefix/``. A kohya or
    ai-toolkit export into a zip holds the same tree as a directory export. replicate-zip
    writes one zip per actor: with one actor, ``out`` may name the zip; otherwise each
    goes into the directory or prefix ``out`` as ``{actor_name}.zip``. With
    ``skip_unreadable`` (``--all``), an actor whose manifest cannot be read is left out and
    listed in ``unreadable``; otherwise it stops the export before anything is written.

    ``shuffle_caption`` (kohya only) turns on sd-scripts' caption shuffling; it is off by
    default because sd-scripts refuses it with ``--cache_text_encoder_outputs`` (FLUX, SDXL).
    """
    if fmt not in FORMATS:
        raise InputError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not actor_ids:
        raise InputError("no actor to export")
    if not 1 <= repeats <= 10_000:
        raise InputError(f"repeats {repeats}: give a number from 1 to 10000")
    options = Options(fmt, include_review, good_only, repeats, shuffle_caption)
    if skip_unreadable:
        manifests, unreadable = read_many(store, actor_ids)
        if not manifests:
            raise InputError("no actor with a readable manifest to export")
    else:
        manifests, unreadable = [require_manifest(store, i) for i in actor_ids], {}
    for manifest in manifests:
        _refuse_previews_only(manifest, options)
    dest = Destination.parse(out, settings)
    report = ExportReport(fmt, out, unreadable=unreadable)
    if fmt == "replicate-zip":
        if dest.is_zip and len(manifests) > 1:
            raise InputError(
                f"--out {out}: replicate-zip writes one zip per actor; give a directory"
            )
        for manifest in manifests:
            name = None if dest.is_zip else f"{manifest.actor_name}.zip"
            with dest.zip_sink(name) as sink:
                report.actors.append(_write_actor(store, manifest, sink, "", options))
    elif dest.is_zip:
        with dest.zip_sink(None) as sink:
            for manifest in manifests:
                root = manifest.actor_name
                report.actors.append(_write_actor(store, manifest, sink, root, options))
    else:
        tree = dest.tree_sink()
        for manifest in manifests:
            report.actors.append(_write_actor(store, manifest, tree, manifest.actor_name, options))
    return report


# --- one actor -------------------------------------------------------------------------------


def _write_actor(
    store: ObjectStore, manifest: Manifest, sink: Sink, root: str, options: Options
) -> ActorExport:
    result = ActorExport(
        manifest.actor_id,
        manifest.actor_name,
        trigger_word(manifest),
        class_word(manifest),
        location=sink.where(root),
    )
    stale = sink.previous_export(root)
    trigger = result.trigger_word

    def write(path: str, data: bytes) -> None:
        full = f"{root}/{path}" if root else path
        sink.write(full, data)
        result.files.append(full)

    subdir = ""
    if options.fmt == "kohya":
        subdir = f"img/{options.repeats}_{result.trigger_word} {result.class_word}/"
    exported: list[Entry] = []
    stems: set[str] = set()
    for entry, key in _select(store, manifest, options, result.skipped):
        filename = str(entry["filename"])
        stem, ext = _split(filename)
        if stem.lower() in stems:
            result.skipped.append(Skipped(filename, "another image has the same name"))
            continue
        try:
            data = store.get(key).data
        except NotFoundError:
            result.skipped.append(Skipped(filename, f"object {key} is missing", failed=True))
            continue
        if options.fmt == "ai-toolkit" and ext not in _AI_TOOLKIT_KEEP:
            try:
                data, ext = _to_png(data), "png"
            except (OSError, ValueError) as exc:
                result.skipped.append(Skipped(filename, f"not convertible: {exc}", failed=True))
                continue
        stems.add(stem.lower())
        caption = str(entry.get("caption") or caption_for(manifest, entry)).strip()
        if options.fmt == "kohya":
            caption = trigger_first(caption, trigger)
        write(f"{subdir}{stem}.{ext}", data)
        del data
        write(f"{subdir}{stem}.txt", caption.encode("utf-8"))
        category = category_of(entry)
        result.counts[category] = result.counts.get(category, 0) + 1
        exported.append(entry)
    if options.fmt == "kohya":
        image_dir = subdir.rstrip("/")
        if sink.absolute:  # a directory: sd-scripts may then start from any folder
            image_dir = sink.folder_path(f"{root}/{image_dir}" if root else image_dir)
        write("dataset.toml", _kohya_toml(image_dir, sink.absolute, result, options).encode())
    elif options.fmt == "ai-toolkit":
        write("ai-toolkit.yaml", _ai_toolkit_yaml(sink.folder_path(root), result).encode())
    write("README.md", dataset_card(manifest, exported, result, options).encode("utf-8"))
    for path in sorted(stale - set(result.files)):
        sink.delete(path)
    sink.record(root, result.files)
    return result


def _refuse_previews_only(manifest: Manifest, options: Options) -> None:
    """``InputError`` when nothing but preview placeholders would be exported: a dataset of
    them would teach a LoRA the "PREVIEW" stamp, not the actor."""
    entries = manifest.training_data
    if any(_left_out(e, options) is None for e in entries):
        return
    if any(is_preview(e) and e.get("status") in (None, "synced") for e in entries):
        actor = manifest.actor_id
        raise InputError(
            f"actor {actor} has only preview placeholder images, which are not training data: "
            f"run `actor-maker clean-previews {actor}`, then generate real ones with "
            f"`actor-maker generate-all {actor} --provider replicate` (REPLICATE_API_TOKEN set)"
        )


def _select(
    store: ObjectStore, manifest: Manifest, options: Options, skipped: list[Skipped]
) -> Iterator[tuple[Entry, str]]:
    """The entries to export with their keys, in index order; the rest go to ``skipped``."""
    for entry in sorted(manifest.training_data, key=_order):
        filename = str(entry["filename"])
        reason = _left_out(entry, options)
        if reason:
            skipped.append(Skipped(filename, reason))
            continue
        if not _safe_filename(filename):
            skipped.append(Skipped(filename, "not a plain image filename"))
            continue
        key = entry_key(store, entry, manifest.actor_name)
        if key is None:
            outside = bool(entry.get("key")) or bool(
                entry.get("s3_url") and store.key_for_url(str(entry["s3_url"]))
            )
            why = "outside the actor's own prefix" if outside else "not in this store"
            skipped.append(Skipped(filename, why))
            continue
        yield entry, key


def _order(entry: Entry) -> tuple[bool, int, str]:
    """Index order; filenames without an index last, by name."""
    filename = str(entry["filename"])
    index = index_of(filename)
    return index is None, index or 0, filename


def _left_out(entry: Entry, options: Options) -> str | None:
    if is_preview(entry):
        return PREVIEW_REASON
    if not is_usable(entry, include_review=options.include_review):
        if entry.get("status") not in (None, "synced"):
            return f"status {entry.get('status')}"
        verdict = effective_verdict(entry)
        return "awaiting review" if verdict == "review" else f"{verdict} by the checks"
    if options.good_only and entry.get("good") is not True:
        return "not marked good"
    return None


def _safe_filename(filename: str) -> bool:
    name = PurePosixPath(filename).name
    stem, ext = _split(filename)
    return (
        name == filename
        and "\\" not in filename
        and not filename.startswith(".")
        and bool(stem)
        and ext in _IMAGE_EXTENSIONS
        and not any(ord(c) < 32 for c in filename)
    )


def _split(filename: str) -> tuple[str, str]:
    stem, _, ext = filename.rpartition(".")
    return stem, ext.lower()


def _to_png(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        converted = img if img.mode in ("RGB", "RGBA", "L", "LA") else img.convert("RGBA")
        buffer = io.BytesIO()
        converted.save(buffer, format="PNG")
    return buffer.getvalue()


# --- configs and the dataset card --------------------------------------------------------------


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group(0)):04x}", escaped)
    return f'"{escaped}"'


def _kohya_toml(image_dir: str, absolute: bool, result: ActorExport, options: Options) -> str:
    """A ``--dataset_config`` file for sd-scripts (its docs/config_README-en.md).

    ``shuffle_caption`` is off unless asked for: sd-scripts' FLUX and SDXL scripts assert
    it is off when caching text encoder outputs (``--cache_text_encoder_outputs``)."""
    where = (
        "# image_dir is absolute: start training from any folder."
        if absolute
        else "# image_dir is relative: start training from the folder this file is in."
    )
    return "\n".join(
        [
            f"# sd-scripts dataset config for actor {result.actor_id} ({result.actor_name}).",
            where,
            "[general]",
            f"shuffle_caption = {'true' if options.shuffle_caption else 'false'}",
            'caption_extension = ".txt"',
            "keep_tokens = 1",
            "",
            "[[datasets]]",
            f"resolution = {KOHYA_RESOLUTION}",
            "batch_size = 1",
            "enable_bucket = true",
            "",
            "  [[datasets.subsets]]",
            f"  image_dir = {_toml_str(image_dir)}",
            f"  num_repeats = {options.repeats}",
            f"  class_tokens = {_toml_str(f'{result.trigger_word} {result.class_word}')}",
            "",
        ]
    )


def _ai_toolkit_yaml(folder_path: str, result: ActorExport) -> str:
    """Keys for one process of an ai-toolkit job (its config/examples/train_lora_*.yaml)."""
    resolutions = ", ".join(str(r) for r in AI_TOOLKIT_RESOLUTIONS)
    return "\n".join(
        [
            f"# ai-toolkit: for actor {result.actor_id} ({result.actor_name}). Copy these keys",
            "# into config.process[0] of a training config (trigger_word is optional: it is",
            "# added to captions that lack it).",
            f"trigger_word: {json.dumps(result.trigger_word, ensure_ascii=False)}",
            "datasets:",
            f"  - folder_path: {json.dumps(folder_path, ensure_ascii=False)}",
            '    caption_ext: "txt"',
            f"    caption_dropout_rate: {CAPTION_DROPOUT_RATE}",
            "    shuffle_tokens: false",
            "    cache_latents_to_disk: true",
            f"    resolution: [{resolutions}]",
            "",
        ]
    )


def _timestamp(entry: Entry) -> datetime | None:
    for name in ("created_at", "modified_date"):
        value = entry.get(name)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    stamp = entry.get("modified_timestamp")
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, UTC)
    return None


def dataset_card(
    manifest: Manifest, exported: list[Entry], result: ActorExport, options: Options
) -> str:
    """The README of an export. Its date is the newest exported image's, not the clock's."""
    stamps = [s for s in (_timestamp(e) for e in exported) if s is not None]
    date = max(stamps).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if stamps else "unknown"
    models = Counter(str((e.get("generation") or {}).get("model") or "unknown") for e in exported)
    prompts = Counter(str(e.get("prompt_id") or "none") for e in exported)
    verdicts = Counter(str(effective_verdict(e) or "unchecked") for e in exported)
    overridden = sum(
        1 for e in exported if isinstance((e.get("quality") or {}).get("override"), dict)
    )
    reasons = Counter(s.reason for s in result.skipped)
    filters = ["usable images (accepted, approved or never checked)"]
    if options.include_review:
        filters.append("and those awaiting review")
    if options.good_only:
        filters.append("marked good only")
    lines = [
        CARD_MARK,
        f"# {result.actor_name}",
        "",
        f"- Actor: {result.actor_id} ({result.actor_name}), {manifest.actor_type}",
        f"- Format: {options.fmt}",
        f"- Trigger word: `{result.trigger_word}`; class word: `{result.class_word}`",
        f"- Images: {result.images} ({', '.join(filters)})",
        f"- Date: {date} (the newest exported image)",
        "",
        "## Images per category",
        "",
        *_table(("category", "images"), sorted(result.counts.items())),
        "",
        "## Models",
        "",
        *_table(("model", "images"), sorted(models.items())),
        "",
        "## Prompts",
        "",
        *_table(("prompt id", "images"), sorted(prompts.items())),
        "",
        "## Checks",
        "",
        *_table(("verdict", "images"), sorted(verdicts.items())),
        "",
        f"{overridden} decided by a person.",
        "",
        "## Left out",
        "",
        *_table(("reason", "images"), sorted(reasons.items())),
        "",
    ]
    return "\n".join(lines)


def _table(header: tuple[str, str], rows: list[tuple[str, int]]) -> list[str]:
    if not rows:
        return ["None."]
    cells = [f"| {header[0]} | {header[1]} |", "|---|---:|"]
    return cells + [f"| {name.replace('|', '/')} | {count} |" for name, count in rows]


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


__all__ = [
    "CARD_MARK",
    "FORMATS",
    "ActorExport",
    "Destination",
    "ExportReport",
    "Format",
    "Skipped",
    "dataset_card",
    "export",
]
