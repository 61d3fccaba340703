"""Tests for actor_maker.prompts: the built-in library, validation, subjects and rendering."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actor_maker.errors import InputError, UnknownActorTypeError
from actor_maker.prompts import (
    ACTOR_TYPES,
    CATEGORIES,
    COLOR_WORDS,
    PromptTemplate,
    ScenePrompt,
    clean_phrase,
    load_library,
    render,
    render_all,
    strip_color_words,
    subject_for,
)

from .helpers import MANIFESTS
from .helpers import REPO as REPO_ROOT

FIXTURE_ACTORS = ("0006", "0007", "0012", "0022")

# The hue words the brief names; COLOR_WORDS must hold at least these.
CORE_COLORS = frozenset(
    re.findall(
        r"\w+",
        """red blue navy green yellow orange purple pink brown maroon crimson teal turquoise
        lavender beige tan cognac burgundy magenta violet olive khaki gold golden cream blonde
        blond auburn ginger emerald scarlet""",
    )
)
BAD_FRAGMENTS = ("(", ")", "[", "]", "{", "}", ":1.1", "  ", " ,", ",,", "..", " .")

LIBRARY = load_library()
BY_ID = {template.id: template for template in LIBRARY}


def color_words_in(text: str) -> list[str]:
    return [word for word in re.findall(r"[a-z]+", text.lower()) if word in COLOR_WORDS]


def manifest_metadata(actor_id: str) -> dict[str, Any]:
    data = json.loads((MANIFESTS / f"{actor_id}_manifest.json").read_text(encoding="utf-8"))
    metadata: dict[str, Any] = data["metadata"]
    return metadata


def fixture_description(metadata: dict[str, Any]) -> str:
    # 0006 has no description; its face_prompt is the messiest text we have (weights, a name).
    description: str = metadata.get("description") or metadata["face_prompt"]
    return description


def outfit_core(outfit: str) -> str:
    """The outfit as it reads mid-sentence: first letter lowered, no final full stop."""
    return (outfit[0].lower() + outfit[1:]).strip().rstrip(".")


# --------------------------------------------------------------------------- built-in library


def test_builtin_library_size_and_categories() -> None:
    counts = Counter(template.category for template in LIBRARY)
    assert len(LIBRARY) >= 40
    assert counts["photoreal"] >= 22
    assert counts["bw_stylized"] >= 8
    assert counts["color_stylized"] >= 8
    assert set(counts) == set(CATEGORIES)


def test_builtin_ids_are_unique_prefixed_slugs() -> None:
    ids = [template.id for template in LIBRARY]
    assert len(ids) == len(set(ids))
    prefixes = {"photoreal": "photo-", "bw_stylized": "bw-", "color_stylized": "color-"}
    for template in LIBRARY:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", template.id), template.id
        assert template.id.startswith(prefixes[template.category]), template.id


@pytest.mark.parametrize("template", LIBRARY, ids=lambda t: t.id)
def test_builtin_template_shape(template: PromptTemplate) -> None:
    text = template.template
    assert "{subject}" in text
    # "the {subject}" everywhere keeps articles right for every subject noun.
    assert not re.search(r"\ban?\s+\{subject\}", text, re.I)
    assert 40 <= len(text.split()) <= 90, len(text.split())
    assert re.search(r"\b(identity|face)\b", text), "must ask to keep the identity"
    assert all(isinstance(tag, str) and tag for tag in template.tags)
    assert {char for char in text if not char.isascii()} <= {"é"}  # "café" is the one accent


@pytest.mark.parametrize(
    "template", [t for t in LIBRARY if t.category == "bw_stylized"], ids=lambda t: t.id
)
def test_bw_templates_have_no_color_words(template: PromptTemplate) -> None:
    assert color_words_in(template.template) == []
    words = set(re.findall(r"[a-z]+", template.template.lower()))
    assert words.isdisjoint(CORE_COLORS)
    assert strip_color_words(template.template) == template.template


def test_builtin_has_some_views_without_the_face() -> None:
    hidden = [t.id for t in LIBRARY if not t.face_visible]
    assert 2 <= len(hidden) <= 4
    assert all(t.category == "photoreal" for t in LIBRARY if not t.face_visible)


def test_builtin_framing_is_varied() -> None:
    tags = Counter(tag for template in LIBRARY for tag in template.tags)
    for framing in ("close-up", "full-body", "low-angle", "high-angle", "profile", "rear-view"):
        assert tags[framing] >= 1, framing
    for time_of_day in ("night", "dawn", "dusk", "midday"):
        assert tags[time_of_day] >= 1, time_of_day


def test_color_word_list_covers_the_named_hues_and_keeps_monochrome() -> None:
    assert set(CORE_COLORS) <= COLOR_WORDS
    assert COLOR_WORDS.isdisjoint({"black", "white", "grey", "gray", "silver", "charcoal"})


def test_load_library_returns_a_fresh_list() -> None:
    first = load_library()
    first.clear()
    assert len(load_library()) == len(LIBRARY)


def test_library_json_is_packaged() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"prompts/*.json"' in pyproject


# --------------------------------------------------------------------------- subjects


@pytest.mark.parametrize(
    ("actor_type", "actor_sex", "expected"),
    [
        ("person", "male", "man"),
        ("person", "female", "woman"),
        ("person", None, "person"),
        ("person", "nonbinary", "person"),
        ("human", "male", "man"),
        ("human", "female", "woman"),
        ("human", "", "person"),
        (" Person ", " MALE ", "man"),
        ("HUMAN", "Female", "woman"),
        ("creature", "male", "creature"),
        ("robot", None, "robot"),
        ("anthropomorphic", "female", "anthropomorphic character"),
        ("mythical", None, "mythical being"),
        ("character", "male", "character"),
        ("Robot ", None, "robot"),
    ],
)
def test_subject_for(actor_type: str, actor_sex: str | None, expected: str) -> None:
    assert subject_for(actor_type, actor_sex) == expected


@pytest.mark.parametrize("actor_type", ["alien", "", "people", "persons"])
def test_unknown_actor_type_is_refused_with_the_valid_list(actor_type: str) -> None:
    with pytest.raises(UnknownActorTypeError) as caught:
        subject_for(actor_type, "male")
    assert isinstance(caught.value, InputError)
    for valid in ACTOR_TYPES:
        assert valid in str(caught.value)


def test_render_refuses_unknown_actor_type() -> None:
    with pytest.raises(UnknownActorTypeError):
        render(LIBRARY[0], actor_type="dragon")


# --------------------------------------------------------------------------- rendering


def test_render_substitutes_the_subject_only() -> None:
    template = PromptTemplate(
        "x", "photoreal", "The {subject} holds {a} {0} and {{subject}}.", True
    )
    prompt = render(template, actor_sex="female")
    assert prompt == ScenePrompt("x", "photoreal", "The woman holds {a} {0} and {woman}.", True)


def test_render_makes_articles_agree_with_the_subject() -> None:
    template = PromptTemplate("x", "photoreal", "A {subject} waits; a {subject} leaves.", True)
    rendered = render(template, actor_type="anthropomorphic").text
    assert rendered.startswith("An anthropomorphic character waits; an anthropomorphic")
    assert render(template, actor_type="robot").text.startswith("A robot waits; a robot")


@pytest.mark.parametrize("actor_type", ACTOR_TYPES)
def test_every_builtin_renders_for_every_actor_type(actor_type: str) -> None:
    subject = subject_for(actor_type, "female")
    for prompt in render_all(LIBRARY, actor_type=actor_type, actor_sex="female"):
        assert "{subject}" not in prompt.text
        assert subject in prompt.text
        assert not re.search(r"\ba [aeiou]", prompt.text, re.I)


def test_render_without_looks_is_the_bare_template() -> None:
    template = BY_ID["photo-rain-platform"]
    assert render(template, actor_sex="male").text == template.template.replace("{subject}", "man")
    assert render(template, description="  ", outfit="").text == render(template).text


def test_render_all_keeps_order_and_metadata() -> None:
    prompts = render_all(LIBRARY, actor_sex="male", outfit="a grey suit")
    assert [p.id for p in prompts] == [t.id for t in LIBRARY]
    assert [(p.category, p.face_visible) for p in prompts] == [
        (t.category, t.face_visible) for t in LIBRARY
    ]
    assert all(p.text.endswith("He wears a grey suit.") for p in prompts)


@pytest.mark.parametrize(
    ("actor_type", "actor_sex", "expected"),
    [
        ("person", "male", "He wears a grey coat."),
        ("person", "female", "She wears a grey coat."),
        ("person", None, "They wear a grey coat."),
        ("robot", "male", "They wear a grey coat."),
    ],
)
def test_pronoun_follows_sex_and_type(
    actor_type: str, actor_sex: str | None, expected: str
) -> None:
    prompt = render(
        BY_ID["photo-studio-portrait"],
        actor_type=actor_type,
        actor_sex=actor_sex,
        outfit="Grey coat.",
    )
    assert prompt.text.endswith(expected)


def test_fixture_0012_reads_as_english() -> None:
    metadata = manifest_metadata("0012")
    kwargs = {
        "actor_sex": metadata["sex"],
        "description": metadata["description"],
        "outfit": metadata["outfit"],
    }
    photo = render(BY_ID["photo-rain-platform"], **kwargs).text
    assert photo.endswith(
        "He is a 30-year-old European man with short blonde balding hair and a goatee beard, "
        "and he wears casual tech startup attire with a red and black plaid button-up shirt, "
        "dark blue jeans, and brown leather desert boots."
    )
    bw = render(BY_ID["bw-charcoal-portrait"], **kwargs).text
    assert bw.endswith(
        "He is a 30-year-old European man with short balding hair and a goatee beard, "
        "and he wears casual tech startup attire with a black plaid button-up shirt, "
        "jeans, and leather desert boots."
    )


@pytest.mark.parametrize("actor_id", FIXTURE_ACTORS)
@pytest.mark.parametrize("template", LIBRARY, ids=lambda t: t.id)
def test_fixture_actor_renders_cleanly(actor_id: str, template: PromptTemplate) -> None:
    metadata = manifest_metadata(actor_id)
    outfit = metadata["outfit"]
    for description in (fixture_description(metadata), metadata["face_prompt"]):
        text = render(
            template, actor_sex=metadata["sex"], description=description, outfit=outfit
        ).text
        for fragment in BAD_FRAGMENTS:
            assert fragment not in text, (fragment, text)
        assert "|" not in text
        assert text.endswith(".")
        if template.category == "bw_stylized":
            assert color_words_in(text) == [], text
            assert outfit_core(strip_color_words(outfit)) in text
        else:
            assert outfit_core(outfit) in text
        # The extra sentence never repeats a stray "A" article or the stand-in names.
        for name in ("Sienna", "Halloway", "Peter", "Conings", "Karen", "Rebecca", "Tonya"):
            assert name not in text


@pytest.mark.parametrize(
    ("actor_id", "expected"),
    [
        (
            "0007",
            "He is a clean-shaven 55-year-old European man with very short straight silver hair.",
        ),
        (
            "0022",
            "She is a happy 95-year-old European woman with light grey hair in a bun, "
            "a wrinkled face, and makeup.",
        ),
        (
            "0006",
            "She is a gorgeous 20-year-old European woman with long blonde hair and little makeup.",
        ),
    ],
)
def test_fixture_descriptions_become_sentences(actor_id: str, expected: str) -> None:
    metadata = manifest_metadata(actor_id)
    text = render(
        BY_ID["photo-studio-portrait"],
        actor_sex=metadata["sex"],
        description=fixture_description(metadata),
    ).text
    assert text.endswith(expected)


def test_face_prompt_names_and_weights_are_dropped() -> None:
    metadata = manifest_metadata("0012")
    from_face_prompt = render(
        BY_ID["photo-rain-platform"], actor_sex="male", description=metadata["face_prompt"]
    )
    from_description = render(
        BY_ID["photo-rain-platform"], actor_sex="male", description=metadata["description"]
    )
    assert from_face_prompt == from_description


def test_long_sentences_are_split_and_sentences_kept() -> None:
    template = BY_ID["photo-studio-portrait"]
    text = render(
        template, actor_sex="male", description="He has a scar over one eye", outfit="A hat"
    ).text
    assert text.endswith("He has a scar over one eye. He wears a hat.")
    text = render(template, actor_sex="female", description="short hair, freckles, smiling").text
    assert text.endswith("She is smiling and has short hair and freckles.")


def test_a_name_after_the_age_becomes_the_subject() -> None:
    template = BY_ID["photo-studio-portrait"]
    named = render(
        template, actor_sex="male", description="35 year old Christopher, with curly hair"
    )
    assert named.text.endswith("He is a 35-year-old man with curly hair.")
    european = render(
        template, actor_sex="male", description="35 year old european, with curly hair"
    )
    assert european.text.endswith("He is a 35-year-old European with curly hair.")


def test_creature_description_uses_they() -> None:
    text = render(
        BY_ID["color-pop-art"],
        actor_type="robot",
        description="A small chrome robot with glowing eyes",
        outfit="a tattered canvas poncho.",
    ).text
    assert text.endswith(
        "They are a small chrome robot with glowing eyes, and they wear a tattered canvas poncho."
    )


def test_bw_render_keeps_monochrome_and_lookalike_words() -> None:
    text = render(
        BY_ID["bw-ink-park-bench"],
        actor_sex="male",
        description="A 40 year old man, dark hair, light grey beard, standing tall",
        outfit="Tailored charcoal suit with a red tie, navy blue socks and tan shoes.",
    ).text
    for survivor in ("charcoal", "light grey", "dark hair", "tailored", "standing"):
        assert survivor in text
    assert color_words_in(text) == []
    assert "a tie" in text


# --------------------------------------------------------------------------- colour stripping


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("a red and black plaid shirt, dark blue jeans", "a black plaid shirt, jeans"),
        ("navy blue tie with small silver stripes", "tie with small silver stripes"),
        ("crisp light blue dress shirt", "crisp dress shirt"),
        ("navy and silver patterned tie", "silver patterned tie"),
        ("black and gold jewelry", "black jewelry"),
        ("a blue-green scarf", "a scarf"),
        ("a red-haired woman", "a woman"),
        ("an orange hat", "a hat"),
        ("a red apron", "an apron"),
        ("an emerald dress", "a dress"),
        ("a red, white and blue flag", "a white flag"),
        ("with red, blue and green stripes", "with stripes"),
        ("Blonde hair and a beard", "Hair and a beard"),
        ("She is dressed in red.", "She is dressed."),
        ("dirty blonde hair", "hair"),
        ("strawberry blonde curls", "curls"),
        ("tan chinos, tanned skin", "chinos, tanned skin"),
        ("mustard yellow guayabera shirt", "guayabera shirt"),
        ("brown leather desert boots", "leather desert boots"),
        ("GOLDEN buttons", "Buttons"),
    ],
)
def test_strip_color_words(before: str, after: str) -> None:
    assert strip_color_words(before) == after


@pytest.mark.parametrize(
    "unchanged",
    [
        "charcoal coat",
        "light grey hair",
        "dark hair",
        "a light jacket",
        "a tailored suit",
        "standing at the credit union in Redmond",
        "a bluetooth headset",
        "a bright smile, pale skin and deep lines",
        "jet black hair, an off-white shirt and a silver-grey beard",
        "short salt-and-pepper hair",
        "",
    ],
)
def test_strip_color_words_leaves_other_words_alone(unchanged: str) -> None:
    assert strip_color_words(unchanged) == unchanged


def test_messy_random_input_never_leaks_brackets_or_colors() -> None:
    rng = random.Random(1234)
    vocabulary = [*sorted(COLOR_WORDS), "light", "dark", "navy", "and", "or", "with", "a", "an"]
    vocabulary += ["the", "in", "hair", "shirt", "black", "grey", ",", ".", ";", "-", "(", ")"]
    vocabulary += ["[", "]", "|", ":1.1", "{subject}", "{x}"]
    template = BY_ID["bw-woodcut-field"]
    for _ in range(300):
        messy = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 20)))
        text = render(template, actor_sex="male", description=messy, outfit=messy).text
        assert color_words_in(text) == [], messy
        for fragment in BAD_FRAGMENTS:
            assert fragment not in text, (fragment, messy)


def test_clean_phrase_tidies_messy_manifest_text() -> None:
    assert (
        clean_phrase("A man ([Peter McCintosh | Howard Conings] as a 30 year old european man),")
        == "a 30 year old european man"
    )
    assert (
        clean_phrase("Sienna Halloway as a gorgeous 20 year old woman, (long blonde hair:1.1).")
        == "a gorgeous 20 year old woman, long blonde hair"
    )
    assert clean_phrase("curly very short short hair..") == "curly very short hair"
    assert clean_phrase("a 16:9 frame") == "a 16:9 frame"


# --------------------------------------------------------------------------- custom libraries


def write_library(tmp_path: Path, prompts: Any, name: str = "mine.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "prompts": prompts}), encoding="utf-8")
    return path


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "photo-test",
        "category": "photoreal",
        "template": "The {subject} stands in a field. Keep the face.",
        "face_visible": True,
        "tags": ["field"],
    }
    base.update(overrides)
    return base


def test_custom_library_loads(tmp_path: Path) -> None:
    path = write_library(
        tmp_path,
        [entry(), entry(id="bw-test", category="bw_stylized", tags=[]), entry(id="c-1")],
    )
    templates = load_library(path)
    assert [t.id for t in templates] == ["photo-test", "bw-test", "c-1"]
    assert templates[0] == PromptTemplate(
        "photo-test",
        "photoreal",
        "The {subject} stands in a field. Keep the face.",
        True,
        ("field",),
    )
    assert load_library(str(path)) == templates


def test_custom_library_defaults(tmp_path: Path) -> None:
    minimal = {"id": "photo-min", "category": "photoreal", "template": "The {subject}."}
    (template,) = load_library(write_library(tmp_path, [minimal]))
    assert template.face_visible is True
    assert template.tags == ()


@pytest.mark.parametrize(
    ("prompts", "reason"),
    [
        ([entry(), entry()], "duplicate prompt id 'photo-test'"),
        ([entry(category="sepia")], "unknown category 'sepia'"),
        ([entry(template="A man stands in a field.")], "{subject}"),
        ([entry(template="The {subject} " + "waits " * 400)], "at most 2000"),
        ([entry(template="   ")], "missing or empty"),
        ([], "no prompts"),
        ([entry(id="Photo Test")], "kebab-case"),
        ([entry(face_visible="yes")], "face_visible"),
        ([entry(tags="rain")], "tags"),
        ([entry(colour="red")], "unknown field(s): colour"),
        (["The {subject} waits."], "not an object"),
        ({"id": "x"}, '"prompts" must be a list'),
    ],
)
def test_malformed_custom_library_is_refused(tmp_path: Path, prompts: Any, reason: str) -> None:
    path = write_library(tmp_path, prompts)
    with pytest.raises(InputError) as caught:
        load_library(path)
    message = str(caught.value)
    assert "mine.json" in message
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[]", '"prompts" list'),
        ('{"version": 2, "prompts": []}', "unsupported library version 2"),
        ("", "not valid JSON"),
    ],
)
def test_unparseable_custom_library_is_refused(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(reason)) as caught:
        load_library(path)
    assert "broken.json" in str(caught.value)


def test_missing_custom_library_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent\.json"):
        load_library(tmp_path / "absent.json")
