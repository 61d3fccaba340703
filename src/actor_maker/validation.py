"""Checks on user input that must pass before anything is written or spent."""

from __future__ import annotations

import re
from collections.abc import Collection

from actor_maker.errors import InputError

MAX_NAME_LENGTH = 128
MAX_PROMPT_LENGTH = 2000

#: The aspect ratios FLUX Kontext accepts (plus "match_input_image").
ASPECT_RATIOS = (
    "match_input_image",
    "1:1",
    "16:9",
    "9:16",
    "4:3",
    "3:4",
    "3:2",
    "2:3",
    "4:5",
    "5:4",
    "21:9",
    "9:21",
    "2:1",
    "1:2",
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(value: str, what: str) -> str:
    """An actor id or name: becomes part of object keys, so no separators or traversal."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InputError(f"{what} is {len(value)} characters; the limit is {MAX_NAME_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{what} contains control characters")
    if "/" in value or "\\" in value or ".." in value:
        raise InputError(f"{what} {value!r} must not contain path separators or '..'")
    if not _NAME_RE.match(value):
        raise InputError(
            f"{what} {value!r} may only use letters, digits, '.', '_' and '-' "
            "and must start with a letter or digit"
        )
    return value


def check_actor_id(value: str) -> str:
    return check_name(value, "actor id")


def is_actor_id(value: str) -> bool:
    try:
        check_actor_id(value)
    except InputError:
        return False
    return True


def check_actor_name(value: str) -> str:
    return check_name(value, "actor name")


def check_prompt(value: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InputError("the prompt is empty")
    if len(text) > MAX_PROMPT_LENGTH:
        raise InputError(f"the prompt is {len(text)} characters; the limit is {MAX_PROMPT_LENGTH}")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InputError("the prompt contains control characters")
    return text


def check_aspect_ratio(value: str) -> str:
    if value not in ASPECT_RATIOS:
        raise InputError(
            f"unknown aspect ratio {value!r}; choose one of {', '.join(ASPECT_RATIOS)}"
        )
    return value


_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}/[a-z0-9][a-z0-9._-]{0,99}$")


def check_model(value: str, known: Collection[str]) -> str:
    """A Replicate model ``owner/name`` that has a price (``ACTOR_MAKER_PRICES``): anything
    else is refused before a provider or pipeline is built for it."""
    if not _MODEL_RE.match(value):
        raise InputError(f"model {value[:120]!r} must look like owner/name (lowercase)")
    if value not in known:
        raise InputError(
            f"no price known for model {value}; known: {', '.join(sorted(known)) or 'none'} "
            '(add it to ACTOR_MAKER_PRICES as JSON, e.g. {"owner/name": 0.05})'
        )
    return value
