"""Writing one actor after another: choosing the usable entries, captions, images."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from actor_maker.balance import category_of
from actor_maker.captions import caption_for, class_word, trigger_first, trigger_word
from actor_maker.config import Settings
from actor_maker.decoding import decode_slot
from actor_maker.errors import InputError, NotFoundError
from actor_maker.export.card import _ai_toolkit_yaml, _kohya_toml, dataset_card
from actor_maker.export.model import (
    _AI_TOOLKIT_KEEP,
    _IMAGE_EXTENSIONS,
    FORMATS,
    ActorExport,
    ExportReport,
    Format,
    Options,
    Skipped,
)
from actor_maker.export.sinks import Destination, Sink
from actor_maker.layout import entry_key, index_of
from actor_maker.manifest import Entry, Manifest, read_many, require_manifest
from actor_maker.quality import PREVIEW_REASON, effective_verdict, is_preview, is_usable
from actor_maker.store.base import ObjectStore


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
        caption = _one_line(entry.get("caption")) or _one_line(caption_for(manifest, entry))
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(caption: object) -> str:
    """The caption as one line: line breaks become ``", "``, other control characters spaces.

    The trainers disagree on a caption file of several lines: sd-scripts reads only the
    first line, ai-toolkit the whole text with its line breaks, the ai-toolkit that
    Replicate's trainer pins joins the lines with commas. A manifest can hold such a caption
    (one written by hand or by an older tool; the CLI and API accept only one line). A
    caption that is blank gives ``""``: the one built from the prompt is used then."""
    if not isinstance(caption, str):
        return ""
    lines = (_CONTROL.sub(" ", line).strip() for line in caption.splitlines())
    return ", ".join(line for line in lines if line)


def _to_png(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img, decode_slot():  # a full frame: one of the slots
        img.load()
        converted = img if img.mode in ("RGB", "RGBA", "L", "LA") else img.convert("RGBA")
        buffer = io.BytesIO()
        converted.save(buffer, format="PNG")
    return buffer.getvalue()
