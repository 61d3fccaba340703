"""Regular expressions typed by people, compiled for RE2: matching time is linear in the text.

Python's ``re`` backtracks: ``(a+)+$`` on a 27-character caption runs for seconds while holding
the GIL, and every other request of the server waits. RE2 (``google-re2``) never backtracks,
so a pattern from a request cannot stall the process. The price: RE2 has no backreferences
(``\\1`` inside a pattern) and no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``); such
patterns are refused with a message that says so. Replacements may still use ``\\1`` and
``\\g<name>`` groups.
"""

from __future__ import annotations

import re
from typing import Any

import re2

from actor_maker.errors import InputError

__all__ = ["MAX_PATTERN_LENGTH", "compile_user_pattern"]

#: Longer patterns are refused before compiling (the API's field has the same limit).
MAX_PATTERN_LENGTH = 200
#: Memory RE2 may use for one compiled pattern (bounds ``a{1000}{1000}``-style blow-ups).
MAX_PATTERN_MEMORY = 8 << 20

_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]|\(\?P=")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


def _options(*, literal: bool) -> Any:
    options = re2.Options()
    options.literal = literal
    options.log_errors = False  # the refusal below says it once, not RE2 on stderr
    options.max_mem = MAX_PATTERN_MEMORY
    return options


def _reason(pattern: str, message: str) -> str:
    if _BACKREFERENCE.search(message) or "(?P=" in pattern:
        return "backreferences (\\1, (?P=name)) are not supported in patterns"
    if _LOOKAROUND.search(message):
        return "lookahead and lookbehind ((?=, (?!, (?<=, (?<!) are not supported"
    return message


def compile_user_pattern(pattern: str, *, literal: bool = False) -> Any:
    """``pattern`` compiled by RE2 (``literal``: the text itself, no metacharacters).

    Raises ``InputError`` naming the problem for an empty or too long pattern and for one
    RE2 cannot take (a syntax error, a backreference, lookaround, too large a program)."""
    if not pattern:
        raise InputError("the pattern must not be empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InputError(
            f"the pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}"
        )
    try:
        return re2.compile(pattern, _options(literal=literal))
    except re2.error as exc:
        raw = exc.args[0] if exc.args else exc
        message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise InputError(
            f"regular expression {pattern!r} refused: {_reason(pattern, message)} "
            "(patterns run on RE2, a linear-time engine)"
        ) from exc
