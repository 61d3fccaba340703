"""Training captions: built from each entry's prompt, stored in the entry's ``caption``.

A caption is ``"{trigger} {class}, {scene}"`` — or ``"{trigger} {class} {rest}"`` when the
scene opens with "the {class}" ("amk0012 man waits alone on a rain-soaked train platform at
night, coat collar turned up, glancing down the empty track"). An entry without a prompt
(legacy images) gets ``"{trigger} {class}"``.

- The **trigger word** is the token a LoRA learns the actor's identity on: the manifest's
  top-level ``trigger_word`` when set, else ``"amk"`` + the actor id's letters and digits,
  lower-cased (``0012`` → ``amk0012``). Such a token is no English word and a tokenizer splits
  it into a few meaningless pieces (few BPE merges), so training does not fight a concept the
  base model already has (the old ``sks`` choice collided with a rifle).
- The **class word** is the noun the prompts name the actor with (man, woman, person,
  creature…): the trained images are tied to the class the base model already knows.
- The **scene** is the prompt without what was meant for the image model only
  (:func:`scene_from_prompt`).

Every write here is one :func:`~actor_maker.manifest.update_manifest` call.
"""

from __future__ import annotations

import re
from typing import Any

import re2

from actor_maker.errors import InputError, NotFoundError
from actor_maker.manifest import Entry, Manifest, update_manifest
from actor_maker.prompts import subject_for
from actor_maker.store.base import ObjectStore
from actor_maker.user_patterns import compile_user_pattern
from actor_maker.validation import check_actor_id, check_name

__all__ = [
    "MAX_CAPTION_LENGTH",
    "caption_for",
    "check_caption",
    "class_word",
    "default_trigger_word",
    "generate_captions",
    "has_trigger",
    "replace_in_captions",
    "scene_from_prompt",
    "set_caption",
    "set_trigger_word",
    "trigger_first",
    "trigger_warnings",
    "trigger_word",
]

MAX_CAPTION_LENGTH = 1000
TRIGGER_RE = re.compile(r"^[a-z0-9]{3,32}$")
TRIGGER_PREFIX = "amk"


# --------------------------------------------------------------------------- words


def default_trigger_word(actor_id: str) -> str:
    """``"amk"`` + the id's letters and digits, lower-cased, at most 32 characters."""
    return (TRIGGER_PREFIX + re.sub(r"[^a-z0-9]", "", actor_id.lower()))[:32]


def trigger_word(manifest: Manifest) -> str:
    """The actor's trigger word: the stored ``trigger_word``, else :func:`default_trigger_word`."""
    stored = manifest.data.get("trigger_word")
    if isinstance(stored, str) and TRIGGER_RE.match(stored):
        return stored
    return default_trigger_word(manifest.actor_id)


def class_word(manifest: Manifest) -> str:
    """The noun for the actor's kind: man, woman, person, creature, robot…"""
    return subject_for(manifest.actor_type, manifest.actor_sex)


# --------------------------------------------------------------------------- scenes

_ARTICLE = r"(?:(?:a|an|the)\s+)"
_H = r"[\s-]+"  # "close-up", "close up", "full-body"

#: Framing and camera directions: shot sizes, views, camera angles, lenses, focus.
#: A comma-separated part of the prompt that opens with one of these (and what follows is
#: only where it is shot from) is removed whole; one met elsewhere loses just the term.
FRAMING_TERMS: tuple[str, ...] = (
    rf"(?:medium{_H})?close{_H}?ups?(?:\s+shot)?",
    rf"(?:medium{_H}wide|medium|wide|full{_H}body|head{_H}and{_H}shoulders|long|establishing)"
    rf"{_H}(?:shot|view)",
    rf"full{_H}body",
    rf"(?:rear|side|overhead|over{_H}the{_H}shoulder|three{_H}quarter(?:\s+front)?|front|"
    rf"top{_H}down|aerial|bird'?s{_H}eye)\s+view",
    rf"(?:(?:low|high|side|dutch|front|three{_H}quarter)\s+)+angle",
    rf"eye{_H}level",
    r"(?:shallow\s+)?depth\s+of\s+field",
    r"\d+\s?mm(?:\s+lens)?",
    rf"(?:long|wide{_H}angle|telephoto|fisheye|macro)\s+lens",
    r"telephoto\s+compression",
    r"vanishing\s+point",
    r"foreshortening",
    r"camera\s+at\s+[\w-]+\s+height",
    r"focus\s+on\s+the\s+\w+",
)
_MODIFIERS = (
    r"(?:(?:very|extreme|tight|candid|dramatic|dynamic|steep|slight|slightly|symmetrical|"
    r"strong|wide|crisp)\s+)*"
)
_FRAMING = rf"{_MODIFIERS}(?:{'|'.join(FRAMING_TERMS)})\b"
_FRAMING_RE = re.compile(_FRAMING, re.I)
_FRAMING_LEAD = re.compile(rf"^{_ARTICLE}?(?:seen\s+from\s+{_ARTICLE}?)?{_FRAMING}", re.I)
_FRAMING_INLINE = re.compile(
    rf"\s*\b(?:in|from|at|with)\s+{_ARTICLE}?{_FRAMING}"
    r"(?:\s+looking\s+(?:down|up)|\s+slightly\s+(?:above|below))?",
    re.I,
)
_SEEN_FROM = re.compile(r"\s*\bseen\s+from\s+(?:behind|above|below)\b", re.I)

#: "Cinematic film still:" and the like: photoreal is the look the trigger alone should give,
#: so these go. Other labels name a medium ("Charcoal sketch:") and stay, lower-cased, so a
#: LoRA learns the style from the caption instead of folding it into the trigger word.
_PHOTO_LABEL = re.compile(
    r"^(?:(?:cinematic|photorealistic|realistic|professional|candid|studio)\s+)*"
    r"(?:film\s+still|still|photo|photograph|photography|portrait|shot)$",
    re.I,
)
_LABEL = re.compile(r"^\s*([^:.;!?]{2,120}?):\s+(?=\S)")

#: Sentences and clauses meant for the model: identity keeping and "change only …".
_INSTRUCTION = re.compile(r"\b(?:identity|identical|reference(?:\s+image)?)\b", re.I)
_IMPERATIVE = re.compile(
    r"^(?:keep|preserve|retain|maintain|reproduce|change|place|put|redraw|draw|render|make|"
    r"ensure|use|avoid|do\s+not|don't)\b",
    re.I,
)
_ONLY_CHANGE = re.compile(r"^only\s+the\b.*\b(?:change|changes|is\s+new|are\s+new)$", re.I)
_NEW_THINGS = re.compile(r"^new(?:\s+[\w-]+,?){1,5}$", re.I)
#: The appended sentence about the actor's looks and clothes ("He is … and he wears …").
_APPEARANCE = re.compile(
    r"^(?:(?:he|she|they|it)\s+(?:is|are|was|were|has|have|wears?|looks?)\b|"
    r"(?:his|her|their|its)\s+appearance\b)",
    re.I,
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym or CamelCase."""
    first = text.split(" ", 1)[0]
    if any(c.isupper() for c in first[1:]):
        return text
    return text[:1].lower() + text[1:]


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,;:.!?])", r"\1", text)
    text = re.sub(r"([,;])(?:\s*[,;])+", r"\1", text)
    return text.strip(" ,;:.!?")


def _is_instruction(clause: str) -> bool:
    clause = clause.strip()
    return bool(
        _INSTRUCTION.search(clause)
        or _IMPERATIVE.match(clause)
        or _ONLY_CHANGE.match(clause)
        or _NEW_THINGS.match(clause)
    )


def _without_framing(part: str) -> str:
    """One comma-separated part of a sentence, its framing directions removed."""
    part = part.strip()
    lead = _FRAMING_LEAD.match(part)
    if lead:
        rest = part[lead.end() :]
        of = re.match(r"\s+(?:of|from\s+behind)\s+", rest, re.I)
        if of:  # "extreme close-up of the man at …" -> "the man at …"
            part = rest[of.end() :]
        elif re.match(r"\s+(?:portrait|profile)\b", rest, re.I):  # "a close-up portrait"
            article = re.match(_ARTICLE, part, re.I)
            part = (article.group(0) if article else "") + rest.strip()
        else:  # "Medium shot from a three-quarter angle", "camera at hip height"
            return ""
    part = _SEEN_FROM.sub("", part)
    part = _FRAMING_INLINE.sub("", part)
    part = _FRAMING_RE.sub("", part)
    return _tidy(part) if re.search(r"[A-Za-z]", part) else ""


def _sentence_parts(sentence: str) -> list[str]:
    kept: list[str] = []
    for clause in re.split(r";\s*", sentence):
        if not clause.strip() or _is_instruction(clause):
            continue
        parts = (_without_framing(p) for p in clause.split(","))
        kept.extend(p for p in parts if p)
    return kept


def scene_from_prompt(prompt: str, *, subject: str | None = None) -> str:
    """The scene a prompt describes, without what was meant for the image model only.

    Removed: sentences and clauses about keeping the face, features or identity of the
    reference image and "change only …" (any clause naming identity or the reference, or
    opening with an imperative such as keep/preserve/redraw); the appended sentence about
    the actor's looks and clothes ("He is …", "She wears …"), which the trigger word should
    absorb; a leading photographic label ("Cinematic film still:"); and framing directions
    (:data:`FRAMING_TERMS`). A leading medium label ("Charcoal sketch:") stays, lower-cased,
    so the caption names the style. Mentions of the subject ("the man") stay: they are the
    class word. With ``subject``, a scene opening "A man …" opens "the man …" instead.

    The result is one comma list with no full stop at the end: "the man waits alone on a
    rain-soaked train platform at night, coat collar turned up, …".
    """
    text = " ".join(prompt.split())
    label = ""
    found = _LABEL.match(text)
    if found:
        text = text[found.end() :]
        if not _PHOTO_LABEL.match(found.group(1).strip()):
            label = _lower_first(found.group(1).strip())
    parts: list[str] = []
    for sentence in _SENTENCE_SPLIT.split(text):
        sentence = sentence.strip().rstrip(".!?")
        if _APPEARANCE.match(sentence):
            break  # the appended looks-and-clothes sentence(s) come last
        parts.extend(_sentence_parts(sentence))
    scene = ", ".join(_lower_first(p) for p in parts)
    if subject:
        scene = re.sub(rf"^(?:a|an)\s+{re.escape(subject)}\b", f"the {subject}", scene, flags=re.I)
    if label:
        scene = f"{label}, {scene}" if scene else label
    return _tidy(scene)


def caption_for(manifest: Manifest, entry: Entry) -> str:
    """The generated caption of one entry (see the module docstring for its shape)."""
    trigger, noun = trigger_word(manifest), class_word(manifest)
    prompt = entry.get("prompt")
    scene = scene_from_prompt(prompt, subject=noun) if isinstance(prompt, str) else ""
    if not scene:
        return f"{trigger} {noun}"
    opening = re.match(rf"the\s+{re.escape(noun)}\b(?!')", scene, re.I)
    if opening:
        return _tidy(f"{trigger} {noun}{scene[opening.end() :]}")
    return f"{trigger} {noun}, {scene}"


# --------------------------------------------------------------------------- validation


def check_caption(text: str) -> str:
    """A caption from a person: stripped, not empty, at most 1000 characters, one line."""
    caption = text.strip() if isinstance(text, str) else ""
    if not caption:
        raise InputError("caption must not be empty")
    if len(caption) > MAX_CAPTION_LENGTH:
        raise InputError(f"caption is {len(caption)} characters; the limit is {MAX_CAPTION_LENGTH}")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in caption):
        raise InputError("caption contains control characters (captions are one line)")
    return caption


def _check_trigger(word: str) -> str:
    if not isinstance(word, str) or not TRIGGER_RE.match(word):
        raise InputError(
            f"trigger word {word!r} must be 3 to 32 lower-case letters and digits, e.g. amk0012"
        )
    return word


def _word(trigger: str) -> str:
    """A pattern for ``trigger`` as a whole word (not part of a longer token)."""
    return rf"(?<![A-Za-z0-9]){re.escape(trigger)}(?![A-Za-z0-9])"


def has_trigger(caption: str, trigger: str) -> bool:
    """Whether ``caption`` names ``trigger`` as a whole word."""
    return re.search(_word(trigger), caption) is not None


def trigger_first(caption: str, trigger: str) -> str:
    """``caption`` opening with ``trigger``: moved to the front when it is elsewhere, added
    when it is missing. What the kohya export writes: sd-scripts trains a caption as it is
    and keeps its first token in place (``keep_tokens = 1``)."""
    if re.match(_word(trigger), caption):
        return caption
    rest = re.sub(_word(trigger) + r",?\s*", "", caption)
    rest = re.sub(r"\s+", " ", rest).strip().lstrip(",").strip()
    return f"{trigger} {rest}" if rest else trigger


def trigger_warnings(manifest: Manifest, filenames: set[str]) -> list[str]:
    """One line for each caption of ``filenames`` that lacks the actor's trigger word."""
    trigger = trigger_word(manifest)
    return [
        f"{entry['filename']}: caption lacks the trigger word {trigger!r} "
        "(the kohya export puts it first; ai-toolkit and Replicate add it)"
        for entry in manifest.training_data
        if entry.get("filename") in filenames
        and isinstance(entry.get("caption"), str)
        and not has_trigger(entry["caption"], trigger)
    ]


def _retrigger(caption: str, old: str, new: str) -> str:
    """``caption`` with a leading ``old`` trigger (a whole word) replaced by ``new``."""
    if re.match(rf"{re.escape(old)}(?![A-Za-z0-9])", caption):
        return new + caption[len(old) :]
    return caption


# --------------------------------------------------------------------------- writes


def generate_captions(store: ObjectStore, actor_id: str, *, regenerate: bool = False) -> int:
    """Fill every missing caption (with ``regenerate``, rewrite all) in one manifest update;
    returns how many captions changed."""
    changed = 0

    def change(manifest: Manifest) -> bool:
        nonlocal changed
        changed = 0
        for entry in manifest.training_data:
            current = entry.get("caption")
            if not regenerate and isinstance(current, str) and current.strip():
                continue
            caption = caption_for(manifest, entry)
            if caption != current:
                entry["caption"] = caption
                changed += 1
        return changed > 0

    update_manifest(store, check_actor_id(actor_id), change)
    return changed


def set_caption(
    store: ObjectStore,
    actor_id: str,
    filename: str,
    text: str,
    *,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Set one entry's caption by hand; returns the entry. ``NotFoundError`` for a filename
    the actor does not have. ``warnings`` gets a line when the caption lacks the trigger
    word (:func:`trigger_warnings`)."""
    check_actor_id(actor_id)
    check_name(filename, "filename")
    caption = check_caption(text)

    def change(manifest: Manifest) -> bool:
        entry = manifest.find(filename)
        if entry is None:
            raise NotFoundError(f"actor {actor_id} has no training image {filename!r}")
        if entry.get("caption") == caption:
            return False
        entry["caption"] = caption
        return True

    written = update_manifest(store, actor_id, change)
    entry = written.find(filename)
    assert entry is not None
    if warnings is not None:
        warnings.extend(trigger_warnings(written, {filename}))
    return entry


def replace_in_captions(
    store: ObjectStore,
    actor_id: str,
    find: str,
    replace: str,
    *,
    regex: bool = False,
    warnings: list[str] | None = None,
) -> int:
    """Find and replace in every stored caption in one manifest update; returns how many
    changed. With ``regex``, ``find`` is a regular expression in RE2 syntax (linear-time: no
    backreferences or lookaround, see :mod:`actor_maker.user_patterns`) and ``replace`` may use
    ``\1`` groups. A result that would not be a valid caption refuses the whole change.
    ``warnings`` gets a line per changed caption that lacks the trigger word."""
    if not find:
        raise InputError("the text to find must not be empty")
    pattern = compile_user_pattern(find, literal=not regex)
    changed = 0
    edited: set[str] = set()

    def change(manifest: Manifest) -> bool:
        nonlocal changed
        changed = 0
        edited.clear()
        for entry in manifest.training_data:
            current = entry.get("caption")
            if not isinstance(current, str) or not current:
                continue
            try:
                result = pattern.sub(replace if regex else lambda _: replace, current)
            except (re2.error, re.error, IndexError) as exc:
                raise InputError(f"invalid replacement {replace!r}: {exc}") from exc
            if result == current:
                continue
            try:
                entry["caption"] = check_caption(result)
            except InputError as exc:
                raise InputError(f"{entry['filename']}: {exc}; nothing was changed") from exc
            if entry["caption"] != current:
                changed += 1
                edited.add(str(entry["filename"]))
        return changed > 0

    written = update_manifest(store, check_actor_id(actor_id), change)
    if warnings is not None:
        warnings.extend(trigger_warnings(written, edited))
    return changed


def set_trigger_word(store: ObjectStore, actor_id: str, word: str) -> str:
    """Store the actor's trigger word (``^[a-z0-9]{3,32}$``) at the manifest's top level;
    captions that open with the old trigger word get the new one. Returns the word."""
    _check_trigger(word)

    def change(manifest: Manifest) -> bool:
        old = trigger_word(manifest)
        if manifest.data.get("trigger_word") == word and old == word:
            return False
        manifest.data["trigger_word"] = word
        if old != word:
            for entry in manifest.training_data:
                current = entry.get("caption")
                if isinstance(current, str):
                    entry["caption"] = _retrigger(current, old, word)
        return True

    update_manifest(store, check_actor_id(actor_id), change)
    return word
