"""Small text helpers shared by :mod:`.colors` and :mod:`.wording`.

Word lists, word edges that respect hyphens, "a"/"an" agreement, and :func:`_tidy`, which
clears the debris left after words are removed.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    """A word list written as one string: easier to read and edit than a list literal."""
    return frozenset(text.split())


# Word edges that also treat a hyphen as part of the word: "and" but not "salt-and-pepper".
_B, _E = r"(?<![\w-])", r"(?![\w-])"

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
