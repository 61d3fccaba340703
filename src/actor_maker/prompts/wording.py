"""Wording: an actor's description and outfit, tidied and turned into a sentence.

Descriptions in old manifests are messy (stray parentheses, ``(hair:1.1)`` weights,
``[Name | Name]`` alternations); :func:`clean_phrase` tidies them. ``_appearance_sentence``
then works the description and outfit into one sentence (two when one would run long) with
the actor's pronoun.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from actor_maker.prompts._text import _fix_articles, _tidy, _words
from actor_maker.prompts.colors import strip_color_words


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


@functools.lru_cache(maxsize=4096)  # pure; every prompt of an actor asks the same
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
