"""The scene-prompt library: loading, validating and rendering prompts for one actor.

A library is a JSON file ``{"version": 1, "prompts": [...]}``; each prompt has an ``id``
(kebab-case), a ``category`` (one of :data:`CATEGORIES`), a ``template`` that names the actor
as ``{subject}``, ``face_visible`` and ``tags``. :func:`load_library` reads and validates one
(the built-in ``library.json`` by default); :func:`render` turns a template into the text
sent to the image model, working the actor's description and outfit in as one extra sentence.

Descriptions in old manifests are messy (stray parentheses, ``(hair:1.1)`` weights,
``[Name | Name]`` alternations); :func:`clean_phrase` tidies them before use, and for
black-and-white prompts :func:`strip_color_words` drops hue words so the model is not asked
for a "red shirt" in a charcoal sketch.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from actor_maker.errors import InputError, UnknownActorTypeError

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

CATEGORIES = ("photoreal", "bw_stylized", "color_stylized")
ACTOR_TYPES = ("person", "human", "creature", "robot", "anthropomorphic", "mythical", "character")
MAX_TEMPLATE_CHARS = 2000
PLACEHOLDER = "{subject}"


def _words(text: str) -> frozenset[str]:
    """A word list written as one string: easier to read and edit than a list literal."""
    return frozenset(text.split())


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


# --------------------------------------------------------------------------- loading


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
    raw = resources.files(__name__).joinpath("library.json").read_text(encoding="utf-8")
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


@dataclass(frozen=True)
class _Pronoun:
    subject: str  # he / she / they
    be: str  # is / are
    have: str  # has / have
    wear: str  # wears / wear
    possessive: str  # his / her / their


_HE = _Pronoun("he", "is", "has", "wears", "his")
_SHE = _Pronoun("she", "is", "has", "wears", "her")
_THEY = _Pronoun("they", "are", "have", "wear", "their")


def _pronoun_for(actor_type: str, actor_sex: str | None) -> _Pronoun:
    if _norm_type(actor_type) not in ("person", "human"):
        return _THEY
    return {"male": _HE, "female": _SHE}.get(_norm_sex(actor_sex) or "", _THEY)


# --------------------------------------------------------------------------- colour words

#: Hue words removed from black-and-white prompts. Black, white, grey/gray, silver and
#: charcoal are deliberately absent: they are fine in a monochrome image.
COLOR_WORDS = _words(
    """
    red blue navy green yellow orange purple pink brown maroon crimson teal turquoise
    lavender beige tan cognac burgundy magenta violet olive khaki gold golden cream
    blonde blond auburn ginger emerald scarlet indigo cyan aqua amber bronze copper coral
    peach rust mustard mauve lilac plum ochre ocher sapphire ruby jade chartreuse fuchsia
    vermilion cerulean azure cobalt tangerine hazel caramel chestnut mahogany brunette
    sepia taupe umber sienna saffron lime cerise periwinkle
    reddish bluish blueish greenish yellowish orangey brownish pinkish purplish
    """
)
# Words that only go when they modify a colour word: "light blue", "dirty blonde".
_SHADES = _words(
    "light dark pale deep bright navy sky royal baby hot lime mint sea forest hunter electric "
    "powder steel midnight neon pastel dusty muted vivid ice blood cherry wine brick burnt "
    "dirty sandy honey ash platinum strawberry mustard olive rose bottle"
)
# Monochrome colours that stay, with their own shade words: "light grey", "off-white".
_KEPT = (
    r"(?:(?:light|dark|pale|deep|bright|jet|pure|off)[\s-]+)?"
    r"(?:black|white|gr[ae]y|silver|charcoal)"
)

# Word edges that also treat a hyphen as part of the word: "and" but not "salt-and-pepper".
_B, _E = r"(?<![\w-])", r"(?![\w-])"
_COLOR = "|".join(sorted(COLOR_WORDS, key=len, reverse=True))
_SHADE = "|".join(sorted(_SHADES))
# One colour with its shade words and hyphenated compounds: "navy blue", "blue-green", "red-haired".
_UNIT = rf"{_B}(?:(?:{_SHADE})[\s-]+)*(?:[A-Za-z]+-)*(?:{_COLOR})(?:-[A-Za-z]+)*{_E}"
_SEP = r"(?:\s*,\s*(?:(?:and|or|&)\s+)?|\s+(?:and|or|&)\s+)"
_GROUP = rf"{_UNIT}(?:{_SEP}{_UNIT})*"
_COLOR_RULES = [
    # "black and red plaid" -> "black plaid"
    (re.compile(rf"{_B}({_KEPT})\s*,?\s+(?:and|or|&)\s+{_GROUP}", re.I), r"\1"),
    # "red and black plaid" -> "black plaid"; "navy and silver tie" -> "silver tie"
    (re.compile(rf"{_GROUP}\s*,?\s+(?:and|or|&)\s+(?={_KEPT}{_E})", re.I), ""),
    # "dressed in red." -> "dressed."
    (re.compile(rf"{_B}(?:in|of|wearing)\s+{_GROUP}(?=\s*(?:[,.;:!?]|$))", re.I), ""),
    (re.compile(_GROUP, re.I), ""),
]


def strip_color_words(text: str) -> str:
    """Remove hue words (with their shade words) and tidy what is left.

    "a red and black plaid shirt, dark blue jeans" -> "a black plaid shirt, jeans";
    "charcoal", "light grey hair", "dark hair", "tailored" and "standing" are untouched.
    """
    result = text
    for pattern, replacement in _COLOR_RULES:
        result = pattern.sub(replacement, result)
    if result == text:
        return text
    result = _tidy(result)
    if text[:1].isupper() and result[:1].islower():
        result = result[0].upper() + result[1:]
    return result


# --------------------------------------------------------------------------- tidying

_VOWEL_SOUND_EXCEPTIONS = re.compile(r"^(?:uni|use|usu|ura|uro|eu|ewe|one|once)", re.I)
_SILENT_H = re.compile(r"^(?:hour|honest|honou?r|heir)", re.I)


def _article_for(word: str) -> str:
    if word[:1].isdigit():
        return "an" if re.match(r"^(?:8|11|18)(?!\d)|^8\d", word) else "a"
    if _VOWEL_SOUND_EXCEPTIONS.match(word):
        return "a"
    return "an" if word[:1].lower() in "aeiou" or _SILENT_H.match(word) else "a"


def _fix_articles(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        article, space, word = match.group(1), match.group(2), match.group(3)
        if len(word) > 1 and word.isupper():  # acronyms: "an FBI agent" is the writer's call
            return match.group(0)
        wanted = _article_for(word)
        if article[0].isupper():
            wanted = wanted.capitalize()
        return f"{wanted}{space}{word}"

    return re.sub(r"\b([Aa]n?)(\s+)([A-Za-z0-9][\w-]*)", fix, text)


_CONJUNCTION = rf"{_B}(?:and|or){_E}|&"
_DANGLING = rf"{_B}(?:with|a|an|the){_E}|{_CONJUNCTION}"


def _tidy(text: str) -> str:
    """Collapse the debris left by removing words: spaces, commas, dangling conjunctions."""
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"\s{2,}", " ", text)
        text = re.sub(r"\s+([,.;:!?])", r"\1", text)
        text = re.sub(r",(?:\s*,)+", ",", text)
        text = re.sub(r"([.;:!?])[,.;:]+", r"\1", text)
        text = re.sub(rf"{_B}(and|or)\s+(?:and|or){_E}", r"\1", text, flags=re.I)
        text = re.sub(rf"{_B}(a|an|the|with|in|of|and|or)\s*,\s*", r"\1 ", text, flags=re.I)
        text = re.sub(rf",?\s*(?:{_DANGLING})\s*(?=[.;:!?]|$)", "", text, flags=re.I)
        text = re.sub(r",\s*(?=[.;:!?]|$)", "", text)
        text = re.sub(rf"^\s*(?:[,;:.!?]|{_CONJUNCTION})\s*", "", text, flags=re.I)
        text = text.strip()
    return _fix_articles(text)


# --------------------------------------------------------------------------- descriptions

_NAME_AS = re.compile(
    r"^[^,]{0,80}?\bas\s+(?=an?\s+(?:[\w-]+\s+){0,6}?(?:\d+[\s-]+years?[\s-]+old|"
    r"man|woman|person|boy|girl|lady|gentleman)\b)",
    re.I,
)


def clean_phrase(text: str) -> str:
    """Tidy a description or outfit taken from a manifest or a user.

    Removes ``[A | B]`` alternations, ``(words:1.1)`` weights, every bracket and
    parenthesis (keeping the words inside), a leading "Some Name as" and doubled
    punctuation; the result has no trailing full stop.
    """
    text = re.sub(r"\[[^\[\]]*\|[^\[\]]*\]", " ", text)  # [Name | Name]
    text = re.sub(r"(?<!\d):\s*-?\d+(?:\.\d+)?\b", "", text)  # (hair:1.1), but not 16:9
    text = re.sub(r"[()\[\]{}<>|]", " ", text)
    text = re.sub(r"(?<!\w)-+|-+(?!\w)", " ", text)  # hyphens that join nothing
    text = re.sub(r"\s+", " ", text).strip()
    text = _NAME_AS.sub("", text)
    text = re.sub(r"\b(\w+)(?:\s+\1\b)+", r"\1", text, flags=re.I)  # "short short hair"
    text = _tidy(text)
    return text.rstrip(" .,;:").strip()


_PERSON_NOUNS = _words(
    "man woman person boy girl gentleman lady guy child kid teenager teen adult male female "
    "creature robot android being character"
)
_ADJECTIVES = _words(
    """
    happy sad smiling serious cheerful friendly stern tired calm confident shy grumpy
    clean-shaven unshaven stubbled bearded bald balding tall short petite slim slender thin
    muscular athletic stocky heavyset plump chubby freckled tanned pale elderly young old
    middle-aged handsome beautiful gorgeous pretty attractive rugged weathered wrinkled
    lanky wiry curvy broad-shouldered
    """
)
_COUNTABLE = _words(
    """
    face beard goatee mustache moustache scar tattoo nose smile grin jaw jawline chin forehead
    bun ponytail braid complexion build figure frame expression look gaze mole birthmark
    piercing earring hairstyle haircut fringe mohawk afro mullet bob cap hat head
    """
)
_UNCOUNTABLE = _words(
    """
    attire clothing clothes wear apparel garb gear armor armour outerwear sportswear
    streetwear workwear knitwear loungewear sleepwear swimwear formalwear footwear regalia
    finery uniform-style
    """
)
_DETERMINERS = _words(
    "a an the his her their its some one two three this that these those no matching"
)
_DEMONYMS = _words(
    """
    european asian african american hispanic latino latina indian chinese japanese korean
    arab caucasian irish italian french german british english scottish mexican brazilian
    nigerian russian spanish greek nordic scandinavian mediterranean filipino vietnamese
    thai persian turkish polish jewish egyptian ethiopian kenyan australian canadian
    """
)
_SENTENCE_START = re.compile(r"^(?:he|she|they|it|his|her|their|its|the)\b", re.I)
_FINITE_VERB = re.compile(r"\b(?:is|are|was|were|has|have|wears|wear|looks)\b", re.I)
_BODY_NOUNS = _words(
    """
    hair eye eyes beard goatee mustache moustache stubble face skin nose smile grin jaw chin
    mouth lips teeth brow brows eyebrows lashes eyelashes cheek cheeks dimples freckles
    wrinkles lines scar scars tattoo tattoos glasses makeup build figure physique posture
    complexion ear ears neck shoulders arms hands legs curls bun ponytail braid braids
    hairstyle haircut horn horns scales fur feathers wings tail claws paws fangs tusks beak
    snout muzzle mane whiskers antennae plating head
    """
)


def _polish_description(text: str) -> str:
    text = re.sub(r"\b(\d+)[\s-]+years?[\s-]+old\b", r"\1-year-old", text, flags=re.I)
    text = re.sub(r"\bclean[\s-]+shaven\b", "clean-shaven", text, flags=re.I)
    text = re.sub(r"\bmiddle[\s-]+eastern\b", "Middle Eastern", text, flags=re.I)
    return re.sub(
        r"\b[a-z]+\b",
        lambda m: m.group(0).capitalize() if m.group(0).lower() in _DEMONYMS else m.group(0),
        text,
        flags=re.I,
    )


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first.isupper():
        return text
    return text[:1].lower() + text[1:]


def _split_items(text: str) -> list[str]:
    """Split on commas, re-joining "a charming, lopsided grin"-style adjective lists."""
    items: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        words = items[-1].split() if items else []
        if len(words) >= 2 and words[-2].lower() in ("a", "an") and words[-1] not in _COUNTABLE:
            items[-1] = f"{items[-1]}, {part}"
        else:
            items.append(part)
    return items


def _is_adjectival(phrase: str) -> bool:
    words = [w for w in phrase.lower().split() if w not in ("and", "very", "quite", "slightly")]
    return bool(words) and all(w in _ADJECTIVES for w in words)


def _head_noun(phrase: str) -> str:
    """The last word before any preposition: "light grey hair in a bun" -> "hair"."""
    words = re.split(r"\s+(?:in|with|of|on|at|over|under)\s+", phrase, maxsplit=1)[0].split()
    return words[-1].lower() if words else ""


def _with_article(item: str) -> str:
    words = item.split()
    if not words or words[0].lower() in _DETERMINERS or " and " in item:
        return item
    return f"a {item}" if _head_noun(item) in _COUNTABLE else item


def _join(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _describe(description: str, pronoun: _Pronoun, subject: str) -> tuple[str, bool]:
    """One clause about the actor's looks; the flag says whether it is a whole sentence."""
    text = _polish_description(description)
    # "35-year-old Christopher, with ..." -> "35-year-old man, with ..." (a name, not "European")
    text = re.sub(
        r"^(\d+-year-old)\s+([A-Z][a-z]+)\b(?=,|\s+with\s|$)",
        lambda m: m.group(0) if m.group(2).lower() in _DEMONYMS else f"{m.group(1)} {subject}",
        text,
    )
    if _SENTENCE_START.match(text) or _FINITE_VERB.search(text):
        return text[0].upper() + text[1:], True

    head_match = re.match(r"^(?P<head>[^,]*?)(?=,|\s+with\s|$)", text, re.I)
    head = head_match.group("head").strip() if head_match else ""
    head_words = head.lower().split()
    has_head = bool(head_words) and (
        head_words[0] in ("a", "an", "the")
        or head_words[0].endswith("-year-old")
        or head_words[-1] in _PERSON_NOUNS
        or head_words[-1] == subject.split()[-1]
    )
    rest = text[len(head) :].lstrip(" ,") if has_head else text

    adjectives: list[str] = []
    features: list[str] = []
    for item in _split_items(rest):
        lead, _, trail = item.partition(" with ")
        if _is_adjectival(item):
            adjectives.append(item.lower())
        elif trail and _is_adjectival(lead):  # "tall and lanky with a crooked nose"
            adjectives.append(lead.lower())
            features.append(_with_article(trail))
        else:
            features.append(_with_article(re.sub(r"^with\s+", "", item, flags=re.I)))

    who = pronoun.subject.capitalize()
    if has_head:
        noun_phrase = re.sub(r"^(?:a|an|the)\s+", "", _lower_first(head), flags=re.I)
        if adjectives:
            noun_phrase = f"{', '.join(adjectives)} {noun_phrase}"
        clause = f"{who} {pronoun.be} a {noun_phrase}"
        if features:
            clause += f" with {_join(features)}"
        return _fix_articles(clause), False
    if not all(_head_noun(f) in _BODY_NOUNS for f in features):
        looks = _lower_first(text)
        return f"{pronoun.possessive.capitalize()} appearance: {looks}", True
    parts = []
    if adjectives:
        parts.append(f"{pronoun.be} {_join(adjectives)}")
    if features:
        parts.append(f"{pronoun.have} {_join([_lower_first(f) for f in features])}")
    return f"{who} {' and '.join(parts)}", False


def _outfit_phrase(outfit: str) -> str:
    text = re.sub(r"^(?:wearing|wears|dressed in)\s+", "", outfit.strip(), flags=re.I)
    text = _lower_first(text)
    words = text.split()
    if not words or words[0].lower() in _DETERMINERS:
        return text
    first_chunk = re.split(r",|\s+(?:with|featuring|and|in|over|under)\s+", text, maxsplit=1)[0]
    head = first_chunk.split()[-1].lower()
    plural = head.endswith("s") and not head.endswith(("ss", "us"))
    if plural or head in _UNCOUNTABLE or head.endswith("wear"):
        return text
    return _fix_articles(f"a {text}")


def _appearance_sentence(
    subject: str,
    pronoun: _Pronoun,
    description: str | None,
    outfit: str | None,
    monochrome: bool,
) -> str:
    """The sentence (two when one would run long) about the actor's looks and clothes."""

    def prepare(value: str | None) -> str:
        if not value:
            return ""
        cleaned = clean_phrase(value)
        return clean_phrase(strip_color_words(cleaned)) if monochrome else cleaned

    looks, wearing = prepare(description), prepare(outfit)
    wear = f"{pronoun.wear} {_outfit_phrase(wearing)}" if wearing else ""
    if not looks:
        return f"{pronoun.subject.capitalize()} {wear}." if wear else ""
    clause, whole_sentence = _describe(looks, pronoun, subject)
    if not wear:
        return f"{clause}."
    if whole_sentence or "," in clause:
        return f"{clause}. {pronoun.subject.capitalize()} {wear}."
    return f"{clause}, and {pronoun.subject} {wear}."


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
