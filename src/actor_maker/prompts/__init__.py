"""The scene-prompt library: loading, validating and rendering prompts for one actor.

:func:`load_library` reads and validates a library (the built-in ``library.json`` by
default); :func:`render` turns a template into the text sent to the image model, working the
actor's description and outfit in as one extra sentence. Descriptions in old manifests are
messy; :func:`clean_phrase` tidies them before use, and for black-and-white prompts
:func:`strip_color_words` drops hue words so the model is not asked for a "red shirt" in a
charcoal sketch.

This module picks the subject noun and pronoun and renders; the rest lives in
:mod:`.library` (templates, reading and validating a library file), :mod:`.colors` (hue
words), :mod:`.wording` (tidying and the sentence about the actor's looks and clothes) and
``_text`` (small helpers those share). Every public name imports from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from actor_maker.errors import UnknownActorTypeError
from actor_maker.prompts._text import _article_for
from actor_maker.prompts.colors import COLOR_WORDS, strip_color_words
from actor_maker.prompts.library import (
    CATEGORIES,
    MAX_TEMPLATE_CHARS,
    PLACEHOLDER,
    PromptTemplate,
    ScenePrompt,
    load_library,
)
from actor_maker.prompts.wording import (
    _HE,
    _SHE,
    _THEY,
    _appearance_sentence,
    _Pronoun,
    clean_phrase,
)

__all__ = [
    "ACTOR_TYPES",
    "CATEGORIES",
    "COLOR_WORDS",
    "MAX_TEMPLATE_CHARS",
    "PromptTemplate",
    "ScenePrompt",
    "clean_phrase",
    "load_library",
    "render",
    "render_all",
    "strip_color_words",
    "subject_for",
]

ACTOR_TYPES = ("person", "human", "creature", "robot", "anthropomorphic", "mythical", "character")


# --------------------------------------------------------------------------- subjects

_SUBJECTS = {
    "creature": "creature",
    "robot": "robot",
    "anthropomorphic": "anthropomorphic character",
    "mythical": "mythical being",
    "character": "character",
}
_MALE = frozenset({"male", "m", "man"})
_FEMALE = frozenset({"female", "f", "woman"})


def _norm_type(actor_type: str) -> str:
    key = actor_type.strip().lower()
    if key not in ACTOR_TYPES:
        raise UnknownActorTypeError(
            f"unknown actor type {actor_type!r}; valid types: {', '.join(ACTOR_TYPES)}"
        )
    return key


def _norm_sex(actor_sex: str | None) -> str | None:
    key = (actor_sex or "").strip().lower()
    return "male" if key in _MALE else "female" if key in _FEMALE else None


def subject_for(actor_type: str, actor_sex: str | None) -> str:
    """The noun a template's ``{subject}`` becomes, e.g. ``("person", "male") -> "man"``."""
    key = _norm_type(actor_type)
    if key in ("person", "human"):
        return {"male": "man", "female": "woman"}.get(_norm_sex(actor_sex) or "", "person")
    return _SUBJECTS[key]


def _pronoun_for(actor_type: str, actor_sex: str | None) -> _Pronoun:
    if _norm_type(actor_type) not in ("person", "human"):
        return _THEY
    return {"male": _HE, "female": _SHE}.get(_norm_sex(actor_sex) or "", _THEY)


# --------------------------------------------------------------------------- rendering


def _substitute(template: str, subject: str) -> str:
    """Replace ``{subject}`` (and only that), making "a {subject}" agree: "an anthropomorphic…"."""
    article = _article_for(subject)

    def agree(match: re.Match[str]) -> str:
        wanted = article.capitalize() if match.group(1) == "A" else article
        return f"{wanted}{match.group(2)}{PLACEHOLDER}"

    text = re.sub(r"\b([Aa])n?(\s+)\{subject\}", agree, template)
    return text.replace(PLACEHOLDER, subject)


def render(
    template: PromptTemplate,
    *,
    actor_type: str = "person",
    actor_sex: str | None = None,
    description: str | None = None,
    outfit: str | None = None,
) -> ScenePrompt:
    """Fill in ``{subject}`` and append a sentence about the actor's looks and clothes.

    For ``bw_stylized`` templates the description and outfit lose their colour words first.
    """
    subject = subject_for(actor_type, actor_sex)
    text = _substitute(template.template, subject).strip()
    extra = _appearance_sentence(
        subject,
        _pronoun_for(actor_type, actor_sex),
        description,
        outfit,
        monochrome=template.category == "bw_stylized",
    )
    if extra:
        if text[-1:] not in ".!?":
            text += "."
        text = f"{text} {extra}"
    return ScenePrompt(template.id, template.category, text, template.face_visible)


def render_all(
    templates: Iterable[PromptTemplate],
    *,
    actor_type: str = "person",
    actor_sex: str | None = None,
    description: str | None = None,
    outfit: str | None = None,
) -> list[ScenePrompt]:
    """:func:`render` every template with the same actor."""
    return [
        render(
            template,
            actor_type=actor_type,
            actor_sex=actor_sex,
            description=description,
            outfit=outfit,
        )
        for template in templates
    ]
