"""What an export is asked for and what it reports: formats, options, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

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
