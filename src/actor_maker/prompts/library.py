"""The prompt library: its templates and how a library file is read and validated.

A library is a JSON file ``{"version": 1, "prompts": [...]}``; each prompt has an ``id``
(kebab-case), a ``category`` (one of :data:`CATEGORIES`), a ``template`` that names the actor
as ``{subject}``, ``face_visible`` and ``tags``. :func:`load_library` reads and validates one
(the built-in ``library.json`` by default).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from actor_maker.errors import InputError

CATEGORIES = ("photoreal", "bw_stylized", "color_stylized")
MAX_TEMPLATE_CHARS = 2000
PLACEHOLDER = "{subject}"

_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PROMPT_KEYS = frozenset({"id", "category", "template", "face_visible", "tags"})


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    category: str
    template: str
    face_visible: bool
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScenePrompt:
    """A template rendered for one actor: the text sent to the image model."""

    id: str
    category: str
    text: str
    face_visible: bool


def load_library(path: str | os.PathLike[str] | None = None) -> list[PromptTemplate]:
    """Read and validate a prompt library; ``None`` means the built-in one."""
    if path is None:
        return list(_builtin_library())
    name = os.fspath(path)
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: cannot read prompt library: {exc}") from exc
    return _parse_library(raw, name)


@lru_cache(maxsize=1)
def _builtin_library() -> tuple[PromptTemplate, ...]:
    raw = (
        resources.files("actor_maker.prompts").joinpath("library.json").read_text(encoding="utf-8")
    )
    return tuple(_parse_library(raw, "library.json"))


def _parse_library(raw: str, name: str) -> list[PromptTemplate]:
    def fail(reason: str) -> InputError:
        return InputError(f"{name}: {reason}")

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if not isinstance(data, dict) or "prompts" not in data:
        raise fail('expected an object with a "prompts" list')
    if data.get("version", 1) != 1:
        raise fail(f"unsupported library version {data['version']!r} (expected 1)")
    entries = data["prompts"]
    if not isinstance(entries, list):
        raise fail('"prompts" must be a list')
    if not entries:
        raise fail("the library has no prompts")

    templates: list[PromptTemplate] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        template = _parse_entry(entry, index, fail)
        if template.id in seen:
            raise fail(f"duplicate prompt id {template.id!r}")
        seen.add(template.id)
        templates.append(template)
    return templates


def _parse_entry(entry: Any, index: int, fail: Callable[[str], InputError]) -> PromptTemplate:
    where = f"prompt #{index + 1}"
    if not isinstance(entry, dict):
        raise fail(f"{where} is not an object")
    if isinstance(entry.get("id"), str):
        where = f"prompt {entry['id']!r}"
    unknown = sorted(set(entry) - _PROMPT_KEYS)
    if unknown:
        raise fail(f"{where} has unknown field(s): {', '.join(unknown)}")

    prompt_id = entry.get("id")
    if not isinstance(prompt_id, str) or not _ID_RE.match(prompt_id):
        raise fail(f"{where}: id must be a kebab-case slug such as 'photo-rain-platform'")
    category = entry.get("category")
    if category not in CATEGORIES:
        raise fail(
            f"{where}: unknown category {category!r} (expected one of {', '.join(CATEGORIES)})"
        )
    text = entry.get("template")
    if not isinstance(text, str) or not text.strip():
        raise fail(f"{where}: template is missing or empty")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise fail(f"{where}: template is {len(text)} characters (at most {MAX_TEMPLATE_CHARS})")
    if PLACEHOLDER not in text:
        raise fail(f"{where}: template does not contain the {PLACEHOLDER} placeholder")
    face_visible = entry.get("face_visible", True)
    if not isinstance(face_visible, bool):
        raise fail(f"{where}: face_visible must be true or false")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise fail(f"{where}: tags must be a list of strings")
    return PromptTemplate(prompt_id, category, text.strip(), face_visible, tuple(tags))
