import pytest

from actor_maker.errors import InputError
from actor_maker.validation import (
    check_actor_id,
    check_actor_name,
    check_aspect_ratio,
    check_prompt,
)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../0012",
        "a/b",
        "a\\b",
        "..",
        "x\x00y",
        "x\ny",
        "a" * 129,
        ".hidden",
        "-rf",
        "name with space",
        "ünïcode",
    ],
)
def test_bad_names_refused(bad):
    with pytest.raises(InputError):
        check_actor_name(bad)
    with pytest.raises(InputError):
        check_actor_id(bad)


@pytest.mark.parametrize("good", ["0012", "0012_european_30_male", "demo", "a.b-c_d", "a" * 128])
def test_good_names(good):
    assert check_actor_name(good) == good


@pytest.mark.parametrize("bad", ["", "   ", "x" * 2001, "bad\x07bell"])
def test_bad_prompts(bad):
    with pytest.raises(InputError):
        check_prompt(bad)


def test_prompt_is_stripped():
    assert check_prompt("  The man waits.  ") == "The man waits."


def test_aspect_ratios():
    assert check_aspect_ratio("16:9") == "16:9"
    with pytest.raises(InputError, match="1:1"):
        check_aspect_ratio("7:3")
