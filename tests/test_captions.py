"""Captions: scenes from real library prompts, the caption shape, and every way to edit them
(functions on both stores, the CLI in process, the API over real HTTP)."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from actor_maker import captions
from actor_maker.captions import (
    caption_for,
    class_word,
    generate_captions,
    replace_in_captions,
    scene_from_prompt,
    set_caption,
    set_trigger_word,
    trigger_word,
)
from actor_maker.cli import main
from actor_maker.config import Settings
from actor_maker.errors import InputError, NotFoundError
from actor_maker.manifest import Manifest, new_manifest, read_manifest, update_manifest
from actor_maker.prompts import load_library, render
from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore

from .apiserver import ServerProcess, serve_in_thread
from .helpers import cli_environ

LIBRARY = {t.id: t for t in load_library()}
DESCRIPTION = "a 35 year old man with short brown hair and a beard"
OUTFIT = "a grey wool coat and a red scarf"

#: prompt id -> words of the scene that must survive
KEY_WORDS = {
    "photo-rain-platform": ["rain-soaked train platform", "coat collar turned up", "empty track"],
    "photo-diner-morning": ["roadside diner booth", "coffee mug", "window"],
    "photo-studio-portrait": ["calm, neutral expression", "mottled backdrop"],
    "photo-candlelit-dinner": ["candlelit dinner table", "glass of wine"],
    "photo-harbor-rear-view": ["wooden pier", "fishing boats"],
    "photo-office-high-angle": ["cluttered desk", "empty office"],
    "bw-charcoal-portrait": ["charcoal sketch", "knowing smile"],
    "bw-pencil-storyboard": ["pencil storyboard frame", "dark warehouse"],
    "color-oil-portrait": ["oil painting", "high-backed chair"],
    "color-pop-art": ["pop art screen print", "winking"],
}
FORBIDDEN = ["keep", "preserve", "retain", "identity", "reference", "he is", "she is", "wears"]


def rendered(prompt_id: str, sex: str = "male", actor_type: str = "person") -> str:
    template = LIBRARY[prompt_id]
    prompt = render(
        template, actor_type=actor_type, actor_sex=sex, description=DESCRIPTION, outfit=OUTFIT
    )
    return prompt.text


# --- scenes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sex", ["male", "female"])
@pytest.mark.parametrize("prompt_id", sorted(KEY_WORDS))
def test_scene_keeps_the_scene_and_drops_instructions(prompt_id, sex):
    subject = "man" if sex == "male" else "woman"
    prompt = rendered(prompt_id, sex)
    assert "reference" in prompt and ("He is" in prompt or "She is" in prompt)
    scene = scene_from_prompt(prompt, subject=subject)
    lowered = scene.lower()
    for word in FORBIDDEN:
        assert not re.search(rf"\b{word}\b", lowered), (word, scene)
    assert not captions._FRAMING_RE.search(scene), scene
    assert "cinematic film still" not in lowered and "beard" not in lowered
    for words in KEY_WORDS[prompt_id]:
        assert words in scene, (words, scene)
    assert "  " not in scene and not scene.endswith((".", ",")) and ". " not in scene


def test_no_framing_term_survives_in_any_library_prompt():
    for prompt_id in LIBRARY:
        scene = scene_from_prompt(rendered(prompt_id), subject="man")
        assert scene, prompt_id
        assert not captions._FRAMING_RE.search(scene), (prompt_id, scene)
        assert not re.search(r"\b(?:identity|reference|keep|preserve)\b", scene, re.I), scene


def test_scene_exact_for_the_rain_platform():
    assert scene_from_prompt(rendered("photo-rain-platform"), subject="man") == (
        "the man waits alone on a rain-soaked train platform at night, coat collar turned up, "
        "glancing down the empty track, sodium lamps overhead, wet concrete glistening"
    )


def test_scene_keeps_the_medium_of_stylized_prompts_and_drops_framing_prefixes():
    scene = scene_from_prompt(rendered("bw-charcoal-portrait", "female"), subject="woman")
    assert scene.startswith("charcoal sketch, a portrait of the woman looking slightly past")
    assert "close-up" not in scene
    dinner = scene_from_prompt(rendered("photo-candlelit-dinner"), subject="man")
    assert dinner.startswith("the man at a candlelit dinner table")


def test_scene_of_a_custom_prompt():
    prompt = "A man feeding pigeons in a park. Close-up, 50mm lens, shallow depth of field."
    assert scene_from_prompt(prompt, subject="man") == "the man feeding pigeons in a park"
    assert scene_from_prompt("  ") == ""


# --- words and caption shape ------------------------------------------------------------------


def manifest_for(actor_id="0012", sex="male", actor_type="person") -> Manifest:
    return new_manifest(
        actor_id=actor_id,
        actor_name=f"{actor_id}_caption_actor",
        actor_type=actor_type,
        actor_sex=sex,
        description=DESCRIPTION,
        outfit=OUTFIT,
    )


def test_trigger_and_class_words():
    manifest = manifest_for("00-12_X")
    assert trigger_word(manifest) == "amk0012x"
    manifest.data["trigger_word"] = "zqxactor"
    assert trigger_word(manifest) == "zqxactor"
    assert class_word(manifest_for(sex="female")) == "woman"
    assert class_word(manifest_for(sex=None)) == "person"
    assert class_word(manifest_for(actor_type="creature")) == "creature"


def test_caption_shape():
    manifest = manifest_for()
    rain = caption_for(manifest, {"prompt": rendered("photo-rain-platform")})
    assert rain.startswith("amk0012 man waits alone on a rain-soaked train platform at night,")
    charcoal = caption_for(manifest, {"prompt": rendered("bw-charcoal-portrait")})
    assert charcoal.startswith("amk0012 man, charcoal sketch, a portrait of the man")
    assert caption_for(manifest, {"filename": "legacy_1.jpg"}) == "amk0012 man"
    assert caption_for(manifest, {"prompt": "Keep the identity from the reference."}) == (
        "amk0012 man"
    )


# --- writes, on both stores -------------------------------------------------------------------

PROMPT_IDS = ["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]


def seed(store: ObjectStore, actor_id: str = "0012") -> None:
    manifest = manifest_for(actor_id)
    for i, prompt_id in enumerate(PROMPT_IDS):
        manifest.add_entry(
            {
                "filename": f"{manifest.actor_name}_{i}.jpg",
                "prompt": rendered(prompt_id),
                "prompt_id": prompt_id,
                "category": LIBRARY[prompt_id].category,
                "caption": None,
            }
        )
    manifest.add_entry({"filename": f"{manifest.actor_name}_3.jpg", "caption": None})
    update_manifest(store, actor_id, lambda m: True, create=manifest.copy)


def stored_captions(store: ObjectStore, actor_id: str = "0012") -> list[str | None]:
    manifest = read_manifest(store, actor_id)
    assert manifest is not None
    return [e.get("caption") for e in manifest.training_data]


def test_generate_fills_missing_and_regenerate_replaces(store):
    seed(store)
    set_caption(store, "0012", "0012_caption_actor_1.jpg", "amk0012 man, hand written")
    assert generate_captions(store, "0012") == 3
    after = stored_captions(store)
    assert after[1] == "amk0012 man, hand written"
    assert after[0] and after[0].startswith("amk0012 man waits alone")
    assert after[3] == "amk0012 man"
    assert generate_captions(store, "0012") == 0
    assert generate_captions(store, "0012", regenerate=True) == 1
    assert (stored_captions(store)[1] or "").startswith("amk0012 man, charcoal sketch")
    with pytest.raises(NotFoundError):
        generate_captions(store, "9999")


def test_set_caption_validates(store):
    seed(store)
    entry = set_caption(store, "0012", "0012_caption_actor_0.jpg", "  amk0012 man, smiling  ")
    assert entry["caption"] == "amk0012 man, smiling" and entry["prompt_id"]
    for bad in ("", "   ", "x" * 1001, "line one\nline two", "bell\x07"):
        with pytest.raises(InputError):
            set_caption(store, "0012", "0012_caption_actor_0.jpg", bad)
    with pytest.raises(NotFoundError):
        set_caption(store, "0012", "no_such_file.jpg", "text")
    with pytest.raises(InputError):
        set_caption(store, "0012", "../escape.jpg", "text")


def test_replace_in_captions(store):
    seed(store)
    generate_captions(store, "0012")
    assert replace_in_captions(store, "0012", "amk0012 man", "amk0012 person") == 4
    assert all(c and c.startswith("amk0012 person") for c in stored_captions(store))
    assert replace_in_captions(store, "0012", r"\bperson\b(,?)", r"guy\1", regex=True) == 4
    assert replace_in_captions(store, "0012", "not there", "x") == 0
    assert replace_in_captions(store, "0012", "guy", r"\1") == 4  # literal without --regex
    assert all(c and c.startswith("amk0012 \\1") for c in stored_captions(store))
    before = stored_captions(store)
    for find, repl, regex in [
        ("(", "x", True),
        ("a", r"\9", True),
        (".*", "", True),
        ("", "x", False),
    ]:
        with pytest.raises(InputError):
            replace_in_captions(store, "0012", find, repl, regex=regex)
    assert stored_captions(store) == before


def test_set_trigger_word(store):
    seed(store)
    generate_captions(store, "0012")
    set_caption(store, "0012", "0012_caption_actor_3.jpg", "a photo of amk0012 man")
    assert set_trigger_word(store, "0012", "zqx12") == "zqx12"
    manifest = read_manifest(store, "0012")
    assert manifest is not None and manifest.data["trigger_word"] == "zqx12"
    texts = stored_captions(store)
    assert all(t and t.startswith("zqx12 man") for t in texts[:3])
    assert texts[3] == "a photo of amk0012 man"  # only a leading trigger is replaced
    for bad in ("ab", "Upper1", "has space", "x" * 33, "dash-ed"):
        with pytest.raises(InputError):
            set_trigger_word(store, "0012", bad)
    generate_captions(store, "0012", regenerate=True)
    assert stored_captions(store)[3] == "zqx12 man"


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def cli_store(clean_env, tmp_path):
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    store = LocalStore(tmp_path / "store")
    seed(store)
    return store


def cli(capsys, *args: str) -> tuple[int | str | None, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_cli_commands(cli_store, capsys):
    code, out, _ = cli(capsys, "captions", "generate", "0012")
    assert code == 0 and "4 caption(s)" in out
    code, out, _ = cli(capsys, "captions", "show", "0012", "--json")
    body = json.loads(out)
    assert code == 0 and body["trigger_word"] == "amk0012" and body["class_word"] == "man"
    assert body["captions"][0]["caption"].startswith("amk0012 man waits alone")
    code, out, _ = cli(capsys, "captions", "show", "0012")
    assert code == 0 and "0012_caption_actor_0.jpg" in out and "amk0012" in out
    code, out, _ = cli(
        capsys, "captions", "set", "0012", "0012_caption_actor_3.jpg", "amk0012 man, [bold]"
    )
    assert code == 0 and "[bold]" in out
    code, out, _ = cli(capsys, "captions", "show", "0012")
    assert code == 0 and "amk0012 man, [bold]" in out  # captions are not rich markup
    code, out, _ = cli(capsys, "captions", "replace", "0012", "man", "person")
    assert code == 0 and "4 caption(s) changed" in out
    code, out, _ = cli(capsys, "captions", "replace", "0012", r"\bperson\b", "man", "--regex")
    assert code == 0 and "4 caption(s) changed" in out
    code, out, _ = cli(capsys, "captions", "trigger", "0012", "newword1")
    assert code == 0 and "newword1" in out
    assert all(c and c.startswith("newword1 man") for c in stored_captions(cli_store))
    code, out, _ = cli(capsys, "captions", "generate", "0012", "--regenerate")
    assert code == 0 and all(c and c.startswith("newword1 man") for c in stored_captions(cli_store))


def test_cli_errors_are_one_line_exit_2(cli_store, capsys):
    for args in (
        ("captions", "replace", "0012", "(", "x", "--regex"),
        ("captions", "trigger", "0012", "BAD WORD"),
        ("captions", "set", "0012", "nope.jpg", "text"),
        ("captions", "show", "9999"),
    ):
        code, _, err = cli(capsys, *args)
        assert code == 2, args
        assert err.startswith("error: ") and "Traceback" not in err


# --- API ----------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path):
    store_dir = tmp_path / "store"
    seed(LocalStore(store_dir))
    settings = Settings(
        _env_file=None,
        store=str(store_dir),
        state_dir=tmp_path / "state",
        slot_dir=tmp_path / "slots",
        provider="preview",
    )
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, LocalStore(store_dir)


def test_api_routes(api):
    client, store = api
    response = client.post("/api/actors/0012/captions/generate")
    assert response.status_code == 200 and response.json() == {"changed": 4}
    response = client.post("/api/actors/0012/captions/generate", json={"regenerate": True})
    assert response.json() == {"changed": 0}
    response = client.put(
        "/api/actors/0012/training-data/0012_caption_actor_0.jpg/caption",
        json={"caption": "amk0012 man, on a platform"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["caption"] == "amk0012 man, on a platform"
    assert response.json()["warnings"] == []
    response = client.post(
        "/api/actors/0012/captions/replace",
        json={"find": r"platform$", "replace": "train platform", "regex": True},
    )
    assert response.json() == {"changed": 1, "warnings": []}
    response = client.put("/api/actors/0012/trigger-word", json={"trigger_word": "zqx0012"})
    assert response.json() == {"trigger_word": "zqx0012"}
    assert stored_captions(store)[0] == "zqx0012 man, on a train platform"


def test_api_errors_are_problems(api):
    client, _ = api
    cases = [
        ("put", "/api/actors/0012/training-data/nope.jpg/caption", {"caption": "x"}, 404),
        (
            "put",
            "/api/actors/0012/training-data/0012_caption_actor_0.jpg/caption",
            {"caption": "a\nb"},
            422,
        ),
        (
            "put",
            "/api/actors/0012/training-data/0012_caption_actor_0.jpg/caption",
            {"caption": "x" * 1001},
            422,
        ),
        (
            "post",
            "/api/actors/0012/captions/replace",
            {"find": "(", "replace": "", "regex": True},
            422,
        ),
        ("put", "/api/actors/0012/trigger-word", {"trigger_word": "Not Valid"}, 422),
        ("post", "/api/actors/9999/captions/generate", {}, 404),
    ]
    for method, path, body, status in cases:
        response = client.request(method.upper(), path, json=body)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == status


def test_api_warns_when_a_caption_loses_the_trigger_word(api):
    client, _ = api
    client.post("/api/actors/0012/captions/generate")
    response = client.put(
        "/api/actors/0012/training-data/0012_caption_actor_0.jpg/caption",
        json={"caption": "a man on a platform"},
    )
    assert response.status_code == 200
    (warning,) = response.json()["warnings"]
    assert "0012_caption_actor_0.jpg" in warning and "'amk0012'" in warning
    response = client.post(
        "/api/actors/0012/captions/replace", json={"find": "amk0012 ", "replace": ""}
    )
    body = response.json()
    assert body["changed"] == 3 and len(body["warnings"]) == 3


# --- the trigger word ----------------------------------------------------------------------------


def test_trigger_warnings_name_captions_without_the_word(store):
    seed(store)
    generate_captions(store, "0012")
    warnings: list[str] = []
    set_caption(store, "0012", "0012_caption_actor_0.jpg", "amk0012 man, fine", warnings=warnings)
    set_caption(store, "0012", "0012_caption_actor_1.jpg", "a man, smiling", warnings=warnings)
    set_caption(store, "0012", "0012_caption_actor_2.jpg", "amk00123 man", warnings=warnings)
    assert [w.split(":")[0] for w in warnings] == [
        "0012_caption_actor_1.jpg",
        "0012_caption_actor_2.jpg",  # a longer token is not the trigger word
    ]
    warnings.clear()
    assert replace_in_captions(store, "0012", "amk0012", "someone", warnings=warnings) == 3
    assert sorted(w.split(":")[0] for w in warnings) == [
        "0012_caption_actor_0.jpg",
        "0012_caption_actor_2.jpg",
        "0012_caption_actor_3.jpg",
    ]  # only the captions this change edited (actor_1 lacked the word already)


def test_cli_warns_on_stderr(cli_store, capsys):
    cli(capsys, "captions", "generate", "0012")
    code, out, err = cli(capsys, "captions", "set", "0012", "0012_caption_actor_0.jpg", "a man")
    assert code == 0 and "a man" in out
    assert err.startswith("warning: 0012_caption_actor_0.jpg: caption lacks the trigger word")
    code, _, err = cli(capsys, "captions", "replace", "0012", "amk0012 man", "amk0012 guy")
    assert code == 0 and err == ""
    code, out, err = cli(capsys, "captions", "replace", "0012", "amk0012 ", "")
    assert code == 0 and "3 caption(s) changed" in out
    assert err.count("warning: ") == 3


# --- linear-time patterns (#11.4) -----------------------------------------------------------------

#: A catastrophic pattern for a backtracking engine: ~2^26 steps on the caption below.
EVIL_PATTERN = "(a+)+$"
EVIL_CAPTION = "amk0012 man " + "a" * 26 + "!"


def test_refused_patterns_name_the_problem(store):
    seed(store)
    generate_captions(store, "0012")
    before = stored_captions(store)
    for find, word in [
        (r"(\w+) \1", "backreferences"),
        (r"(?P<w>man)(?P=w)", "backreferences"),
        (r"man(?= waits)", "lookahead"),
        (r"(?<!the )man", "lookahead and lookbehind"),
        ("(", "missing )"),
        ("a" * 201, "limit is 200"),
    ]:
        with pytest.raises(InputError, match=re.escape(word)):
            replace_in_captions(store, "0012", find, "x", regex=True)
    assert stored_captions(store) == before
    # a literal find of the same text is no pattern: it matches nothing and is fine
    assert replace_in_captions(store, "0012", r"(\w+) \1", "x") == 0


def test_cli_refuses_backreference_with_exit_2(cli_store, capsys):
    code, _, err = cli(capsys, "captions", "replace", "0012", r"(\w+) \1", "x", "--regex")
    assert code == 2 and err.startswith("error: ") and "backreferences" in err
    assert len(err.strip().splitlines()) == 1


def test_catastrophic_pattern_does_not_stall_the_server(tmp_path):
    """Over real HTTP, in a server process: ``(a+)+$`` on a long caption answers within 2 s
    while a thread hammering ``/healthz`` never waits 100 ms (a backtracking engine holds the
    GIL for 4+ s here, so every attempt stalls). The machine is shared, so a scheduling hiccup
    may spoil one attempt: up to three are made, and one clean attempt passes."""
    store = LocalStore(tmp_path / "store")
    seed(store)
    set_caption(store, "0012", "0012_caption_actor_0.jpg", EVIL_CAPTION)
    env = cli_environ(tmp_path, ACTOR_MAKER_PROVIDER="preview")
    server = ServerProcess(env, str(tmp_path))
    calls: list[tuple[float, float]] = []  # (start, end) of each /healthz
    done = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                calls.append((started, time.perf_counter()))
                time.sleep(0.005)

    def attempt(client: httpx.Client) -> tuple[float, float, int]:
        """(seconds the replace took, worst /healthz wait meanwhile, /healthz calls meanwhile)"""
        started = time.perf_counter()
        response = client.post(
            "/api/actors/0012/captions/replace",
            json={"find": EVIL_PATTERN, "replace": "x", "regex": True},
        )
        ended = time.perf_counter()
        time.sleep(0.1)
        assert response.status_code == 200, response.text
        assert response.json()["changed"] == 0  # the caption ends in "!", so no match
        meanwhile = [b - a for a, b in list(calls) if b > started and a < ended]
        return ended - started, max(meanwhile, default=0.0), len(meanwhile)

    thread = threading.Thread(target=hammer, daemon=True)
    results = []
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            client.get("/healthz")
            thread.start()
            time.sleep(0.2)
            for _ in range(3):
                results.append(attempt(client))
                elapsed, worst, _count = results[-1]
                if elapsed < 2.0 and worst < 0.1:
                    break
    finally:
        done.set()
        thread.join(timeout=30)
        server.stop()
    elapsed, worst, _count = results[-1]
    assert len(calls) > 10  # the hammer ran
    assert elapsed < 2.0, f"the replace took {elapsed:.1f} s ({results})"
    assert worst < 0.1, f"/healthz waited {worst * 1000:.0f} ms meanwhile ({results})"


def test_api_refuses_lookaround_with_a_problem(api):
    client, _ = api
    response = client.post(
        "/api/actors/0012/captions/replace",
        json={"find": "(?<=a)b", "replace": "", "regex": True},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "lookbehind" in response.text
