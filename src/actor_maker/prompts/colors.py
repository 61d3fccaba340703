"""Hue words, and stripping them from black-and-white prompts.

:func:`strip_color_words` drops :data:`COLOR_WORDS` (with their shade words) so the model is
not asked for a "red shirt" in a charcoal sketch; black, white and greys stay.
"""

from __future__ import annotations

import re

from actor_maker.prompts._text import _B, _E, _tidy, _words

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
