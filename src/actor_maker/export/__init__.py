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

from actor_maker.export.card import dataset_card
from actor_maker.export.model import (
    CARD_MARK,
    FORMATS,
    RECORD,
    ActorExport,
    ExportReport,
    Format,
    Options,
    Skipped,
)
from actor_maker.export.run import export
from actor_maker.export.sinks import Destination

__all__ = [
    "CARD_MARK",
    "FORMATS",
    "RECORD",
    "ActorExport",
    "Destination",
    "ExportReport",
    "Format",
    "Options",
    "Skipped",
    "dataset_card",
    "export",
]
