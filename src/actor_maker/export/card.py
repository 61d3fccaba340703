"""The trainers' config files and the dataset card written beside the images."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime

from actor_maker.export.model import (
    AI_TOOLKIT_RESOLUTIONS,
    CAPTION_DROPOUT_RATE,
    CARD_MARK,
    KOHYA_RESOLUTION,
    ActorExport,
    Options,
)
from actor_maker.manifest import Entry, Manifest
from actor_maker.quality import effective_verdict

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
