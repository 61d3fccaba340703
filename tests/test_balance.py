"""Balance: the report, what --fill picks, the command line and the API, end to end."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from actor_maker import actors as actor_ops
from actor_maker.balance import (
    OTHER,
    Target,
    base_prompt_id,
    fill_items,
    format_mix,
    parse_mix,
    report,
)
from actor_maker.cli import main
from actor_maker.errors import InputError
from actor_maker.manifest import Manifest, new_manifest, require_manifest, update_manifest
from actor_maker.prompts import CATEGORIES, ScenePrompt, load_library
from actor_maker.store.local import LocalStore

from .apiserver import serve_in_thread
from .conftest import STANDIN_TOKEN
from .helpers import local_settings, sample_image

# --------------------------------------------------------------------------- the target


def test_parse_mix():
    assert parse_mix("65/20/15") == {"photoreal": 0.65, "bw_stylized": 0.2, "color_stylized": 0.15}
    assert parse_mix(" 50 / 50 / 0 ") == {"photoreal": 0.5, "bw_stylized": 0.5, "color_stylized": 0}
    assert sum(parse_mix("33.33/33.33/33.34").values()) == pytest.approx(1)
    assert format_mix(parse_mix("62.5/37.5/0")) == "62.5/37.5/0"
    for bad in (
        "65/20",
        "65/20/15/0",
        "a/b/c",
        "-5/55/50",
        "60/20/15",
        "nan/50/50",
        "",
        "65-20-15",
    ):
        with pytest.raises(InputError):
            parse_mix(bad)


def test_target_refuses_bad_sizes_and_categories():
    for size in (0, -1, 1001):
        with pytest.raises(InputError):
            Target(size=size)
    with pytest.raises(InputError):
        Target(mix={"photoreal": 0.5, "sepia": 0.5})
    with pytest.raises(InputError):
        Target(mix={"photoreal": 0.5, "bw_stylized": 0.2, "color_stylized": 0.2})


def test_wanted_is_rounded_by_largest_remainder():
    assert Target().wanted() == {"photoreal": 16, "bw_stylized": 5, "color_stylized": 3}
    assert Target(size=10).wanted() == {"photoreal": 7, "bw_stylized": 2, "color_stylized": 1}
    assert Target(size=25).wanted() == {"photoreal": 16, "bw_stylized": 5, "color_stylized": 4}
    # ties go in category order
    thirds = parse_mix("33.33/33.33/33.34")
    assert Target(size=2, mix=thirds).wanted() == {
        "photoreal": 1,
        "bw_stylized": 0,
        "color_stylized": 1,
    }
    for mix in ("65/20/15", "33.33/33.33/33.34", "100/0/0", "10/45/45", "1/1/98"):
        for size in range(1, 60):
            assert sum(Target(size=size, mix=parse_mix(mix)).wanted().values()) == size


# --------------------------------------------------------------------------- the report


def entry(n, prompt_id, category, verdict="accepted", **extra):
    quality = None if verdict is None else {"verdict": verdict, "reasons": [], "scores": {}}
    return {
        "filename": f"0900_balance_{n}.jpg",
        "status": "synced",
        "prompt_id": prompt_id,
        "category": category,
        "quality": quality,
        **extra,
    }


def manifest_with(*entries) -> Manifest:
    manifest = new_manifest(
        actor_id="0900", actor_name="0900_balance", actor_type="person", actor_sex="male"
    )
    manifest.training_data.extend(entries)
    return manifest


def test_report_counts_usable_images_per_category():
    manifest = manifest_with(
        entry(0, "photo-a", "photoreal"),
        entry(1, "photo-b", "photoreal"),
        entry(2, "photo-c", "photoreal", "rejected"),
        entry(3, "photo-d", "photoreal", "review"),
        entry(4, "photo-e", "photoreal", status="missing"),  # its object is gone
        entry(
            5,
            "photo-f",
            "photoreal",
            "rejected",
            quality={"verdict": "rejected", "override": {"verdict": "accepted"}},
        ),
        entry(6, "bw-a", "bw_stylized", None),  # never checked: counts, like old images
        entry(7, "custom-0123456789", None),
        entry(8, None, "sepia"),
        {"filename": "0900_balance_9.jpg", "status": "local_only"},
    )
    found = report(manifest, Target(size=10))
    rows = {r["category"]: r for r in found.to_json()["categories"]}
    assert rows["photoreal"] == {
        "category": "photoreal",
        "usable": 3,
        "review": 1,
        "rejected": 1,
        "wanted": 7,
        "missing": 4,
    }
    assert (rows["bw_stylized"]["usable"], rows["bw_stylized"]["missing"]) == (1, 1)
    assert (rows["color_stylized"]["usable"], rows["color_stylized"]["missing"]) == (0, 1)
    assert rows[OTHER] == {
        "category": OTHER,
        "usable": 2,
        "review": 0,
        "rejected": 0,
        "wanted": 0,
        "missing": 0,
    }
    assert found.missing == {"photoreal": 4, "bw_stylized": 1, "color_stylized": 1}
    body = found.to_json()
    assert (body["usable"], body["missing"], body["size"], body["target"]) == (6, 6, 10, "65/20/15")
    # more than wanted is not negative missing
    crowded = report(manifest, Target(size=1))
    assert crowded.missing == {"photoreal": 0, "bw_stylized": 0, "color_stylized": 0}


# --------------------------------------------------------------------------- what --fill picks

LIBRARY = [
    ScenePrompt("photo-a", "photoreal", "A photo of the man in the rain.", True),
    ScenePrompt("photo-b", "photoreal", "A photo of the man in a diner.", True),
    ScenePrompt("photo-c", "photoreal", "A photo of the man on a roof.", False),
    ScenePrompt("bw-a", "bw_stylized", "A charcoal sketch of the man.", True),
]


def test_fill_picks_unused_then_rejected_then_reuses_with_new_ids():
    manifest = manifest_with(
        entry(0, "photo-a", "photoreal"),
        entry(1, "photo-b", "photoreal", "rejected"),  # a near-duplicate, say
        entry(2, "bw-a", "bw_stylized"),
        entry(3, "bw-a~2", "bw_stylized"),
    )
    target = Target(size=8, mix=parse_mix("62.5/37.5/0"))  # 5 / 3 / 0
    found = report(manifest, target)
    assert found.missing == {"photoreal": 4, "bw_stylized": 1, "color_stylized": 0}
    items = fill_items(manifest, found, LIBRARY)
    assert [i.prompt_id for i in items] == [
        "photo-c",  # never used
        "photo-b~2",  # only a rejected image so far: made again
        "photo-a~2",  # then the used ones, least used first, with new ids
        "photo-c~2",
        "bw-a~3",  # bw-a~2 is taken
    ]
    assert [base_prompt_id(i.prompt_id) for i in items] == [
        "photo-c",
        "photo-b",
        "photo-a",
        "photo-c",
        "bw-a",
    ]
    by_id = {i.prompt_id: i for i in items}
    assert by_id["photo-c~2"].prompt == "A photo of the man on a roof."
    assert by_id["photo-c~2"].face_visible is False
    assert {i.category for i in items} == {"photoreal", "bw_stylized"}
    assert not manifest.prompt_ids() & set(by_id)  # none of them counts as "already done"
    # a category the library has no prompt of is left out
    found = report(manifest_with(), Target(size=10))  # 7 / 2 / 1
    assert len(fill_items(manifest_with(), found, LIBRARY)) == found.total_missing - 1
    # nothing missing, nothing picked
    assert fill_items(manifest, report(manifest, Target(size=1)), LIBRARY) == []


def test_base_prompt_id():
    assert base_prompt_id("photo-a~12") == "photo-a"
    assert base_prompt_id("photo-a") == "photo-a"
    assert base_prompt_id("photo~a") == "photo~a"
    assert base_prompt_id("~2") == "~2"


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def clean_env(clean_env, tmp_path):
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    clean_env.setenv("ACTOR_MAKER_PROVIDER", "preview")
    return clean_env


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture
def actor(clean_env, tmp_path):
    store = LocalStore(tmp_path / "store")
    actor_ops.create_actor(
        store,
        actor_id="0700",
        actor_name="0700_balance_cli",
        actor_sex="female",
        base_image=sample_image(),
        max_bytes=20 * 1024 * 1024,
        max_pixels=40_000_000,
    )
    return store


def categories(manifest):
    return [e["category"] for e in manifest.training_data]


def test_cli_reports_and_dry_run_spends_nothing(actor, capsys):
    code, out, err = cli(capsys, "balance", "0700", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert (body["usable"], body["missing"], body["target"], body["size"]) == (
        0,
        24,
        "65/20/15",
        24,
    )

    code, out, err = cli(capsys, "balance", "0700", "--size", "6")
    assert code == 0, err
    assert "photoreal" in out and "missing" in out and "6 missing" in out

    code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--fill", "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True and plan["total"] == 6
    assert require_manifest(actor, "0700").training_data == []

    code, _, err = cli(capsys, "balance", "0700", "--target", "65/20")
    assert code == 2 and "error: target" in err and "Traceback" not in err
    code, _, err = cli(capsys, "balance", "0799")
    assert code == 2 and "no manifest" in err


def test_cli_fill_adds_what_is_missing(actor, clean_env, standin, capsys):
    # real images from the Replicate stand-in: preview placeholders never count as usable
    clean_env.setenv("ACTOR_MAKER_PROVIDER", "replicate")
    clean_env.setenv("REPLICATE_API_TOKEN", STANDIN_TOKEN)
    clean_env.setenv("REPLICATE_BASE_URL", standin.base_url)
    clean_env.setenv("ACTOR_MAKER_POLL_INTERVAL", "0.05")
    clean_env.setenv("ACTOR_MAKER_IDENTITY", "false")  # the stand-in draws no face
    code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--fill", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["total"] == 6 and body["successful"] == 6
    manifest = require_manifest(actor, "0700")
    assert sorted(categories(manifest)) == sorted(
        ["photoreal"] * 4 + ["bw_stylized"] + ["color_stylized"]
    )
    for item in manifest.training_data:
        assert actor.head(item["key"]) is not None
    seeds = {e["generation"]["seed"] for e in manifest.training_data}
    assert len(seeds) == 6  # a seed of its own each
    after = report(manifest, Target(size=6))
    assert sum(r.usable + r.rejected + r.review for r in after.rows) == 6
    # whatever the checks rejected (a near-duplicate) is made again
    for _ in range(5):
        if report(require_manifest(actor, "0700"), Target(size=6)).total_missing == 0:
            break
        code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--fill", "--json")
        assert code == 0, err
    code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--fill")
    assert code == 0 and "nothing missing" in out, out + err
    code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--fill", "--json")
    assert code == 0 and json.loads(out)["missing"] == 0


def test_preview_placeholders_are_never_usable(actor, capsys):
    """Issue 12.11: filled with the preview provider, nothing is usable and all is missing."""
    code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--fill", "--json")
    assert code == 0, err
    assert json.loads(out)["successful"] == 6
    found = report(require_manifest(actor, "0700"), Target(size=6))
    assert found.total_usable == 0 and found.total_missing == 6
    assert sum(r.rejected for r in found.rows) == 6
    code, out, err = cli(capsys, "balance", "0700", "--size", "6", "--json")
    assert json.loads(out)["usable"] == 0


def test_cli_fill_reuses_prompts_when_the_library_runs_out(actor, capsys):
    bw = [t for t in load_library() if t.category == "bw_stylized"]

    def seed(manifest: Manifest) -> bool:
        manifest.training_data.extend(
            entry(1000 + n, t.id, "bw_stylized") for n, t in enumerate(bw)
        )
        return True

    update_manifest(actor, "0700", seed)
    code, _, err = cli(
        capsys, "balance", "0700", "--target", "0/100/0", "--size", str(len(bw) + 1), "--fill"
    )
    assert code == 0, err
    added = [e for e in require_manifest(actor, "0700").training_data if "generation" in e]
    assert [e["prompt_id"] for e in added] == [f"{bw[0].id}~2"]
    assert added[0]["category"] == "bw_stylized" and added[0]["prompt"]


# --------------------------------------------------------------------------- the API


def wait_finished(client, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_api_reports_and_fills(tmp_path, local_store):
    settings = local_settings(tmp_path, provider="preview", job_lease_s=3)
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        created = api.post(
            "/api/actors",
            data={"actor_id": "0800", "actor_name": "0800_balance_api", "actor_sex": "male"},
            files={"base_image": ("b.jpg", sample_image(), "image/jpeg")},
        )
        assert created.status_code == 201, created.text

        body = api.get("/api/actors/0800/balance", params={"size": 4}).json()
        assert (body["missing"], body["size"]) == (4, 4)
        assert [r["wanted"] for r in body["categories"]] == [3, 1, 0, 0]

        bad = api.get("/api/actors/0800/balance", params={"target": "90/20/15"})
        assert bad.status_code == 422 and "add up to 125" in bad.json()["detail"]
        assert api.get("/api/actors/0899/balance").status_code == 404
        # the preview provider costs nothing, so any ceiling holds
        started = api.post("/api/actors/0800/balance", json={"size": 4, "max_cost": 0})
        assert started.status_code == 201, started.text
        job = started.json()
        assert job["kind"] == "custom" and job["total"] == 4
        assert job["context"]["balance"] == {"target": "65/20/15", "size": 4}
        assert wait_finished(api, job["id"])["state"] == "succeeded"

        after = api.get("/api/actors/0800/balance", params={"size": 4}).json()
        rows = {r["category"]: r for r in after["categories"]}
        assert rows["photoreal"]["usable"] + rows["photoreal"]["rejected"] == 3
        assert rows["bw_stylized"]["usable"] + rows["bw_stylized"]["rejected"] == 1
        if after["missing"] == 0:
            done = api.post("/api/actors/0800/balance", json={"size": 4})
            assert done.status_code == 200 and done.json()["missing"] == 0
        assert len(list(local_store.list("system_actors/training_data/0800_balance_api/"))) == 4


def test_categories_are_the_librarys():
    assert CATEGORIES == ("photoreal", "bw_stylized", "color_stylized")
