"""The command line, end to end: real stores, the Replicate stand-in, exit codes, JSON shapes."""

import json
import os
import subprocess
import sys

import pytest

from actor_maker.cli import main
from actor_maker.layout import manifest_key
from actor_maker.manifest import require_manifest
from actor_maker.testing.replicate_server import Faults

from .conftest import S3_REGION, STANDIN_TOKEN
from .helpers import (
    MANIFESTS,
    PROMPT_METADATA,
    REPO,
    fixture_manifest,
    run_cli,
    sample_image,
)

TOKEN = STANDIN_TOKEN
THREE = "photo-rain-platform,bw-charcoal-portrait,color-oil-portrait"


@pytest.fixture
def s3_env(clean_env, moto_server, s3_bucket):
    clean_env.setenv("ACTOR_MAKER_STORE", f"s3://{s3_bucket}")
    clean_env.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    clean_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    clean_env.setenv("AWS_DEFAULT_REGION", S3_REGION)
    return clean_env


@pytest.fixture
def replicate_env(s3_env, standin):
    s3_env.setenv("REPLICATE_API_TOKEN", TOKEN)
    s3_env.setenv("REPLICATE_BASE_URL", standin.base_url)
    s3_env.setenv("ACTOR_MAKER_POLL_INTERVAL", "0.05")
    return s3_env


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.jpg"
    path.write_bytes(sample_image())
    return str(path)


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_generate_all_json_has_the_old_shape(replicate_env, standin, s3_store, base, capsys):
    standin.faults = Faults(flag_prompts_containing="charcoal")
    code, out, err = cli(
        capsys,
        "generate-all",
        "0012",
        "0012_european_30_male",
        base,
        "person",
        "male",
        "--only",
        THREE,
        "--json",
    )
    assert code == 1, err  # one item failed
    body = json.loads(out)
    assert body["success"] is True and body["total"] == 3
    assert body["successful"] == 2 and body["failed"] == 1
    ok = [r for r in body["results"] if "filename" in r]
    bad = [r for r in body["results"] if "error" in r]
    assert {tuple(sorted(r)) for r in ok} == {
        ("filename", "index", "key", "prompt_id", "prompt_preview", "quality", "s3_url")
    }
    assert bad[0]["prompt_id"] == "bw-charcoal-portrait" and "E005" in bad[0]["error"]
    for r in ok:
        assert r["s3_url"].startswith(os.environ["AWS_ENDPOINT_URL"]) and "?" not in r["s3_url"]
    assert body["cost"] == pytest.approx(0.08)
    manifest = require_manifest(s3_store, "0012")
    assert len(manifest.training_data) == 2
    assert {e["generation"]["provider"] for e in manifest.training_data} == {"replicate"}
    assert TOKEN not in out + err
    # a rerun only retries what is missing
    standin.faults = Faults()
    code, out, _ = cli(
        capsys, "generate-all", "0012", "0012_european_30_male", base, "--only", THREE, "--json"
    )
    assert code == 0 and json.loads(out)["total"] == 1


def test_generate_single_json(replicate_env, standin, base, capsys):
    code, out, err = cli(
        capsys,
        "generate-single",
        "0012",
        "0012_european_30_male",
        base,
        "The man waits on a rainy platform at night",
        "person",
        "male",
        "--aspect-ratio",
        "16:9",
        "--json",
    )
    assert code == 0, err
    body = json.loads(out)
    assert body["success"] is True and body["index"] == 0
    assert body["filename"] == "0012_european_30_male_0.jpg"
    assert body["prompt"].startswith("The man waits")
    prediction = list(standin.predictions.values())[-1]
    assert prediction["input"]["aspect_ratio"] == "16:9"


def test_dry_run_spends_and_writes_nothing(replicate_env, standin, s3_store, base, capsys):
    code, out, _ = cli(
        capsys, "generate-all", "0012", "0012_european_30_male", base, "--dry-run", "--json"
    )
    body = json.loads(out)
    assert code == 0 and body["dry_run"] and body["total"] >= 38
    assert body["estimated_cost"] == pytest.approx(body["total"] * 0.04)
    assert standin.create_attempts == 0 and list(s3_store.list("")) == []


def test_cost_ceiling_refuses_the_job(replicate_env, standin, s3_store, base, capsys):
    code, _, err = cli(
        capsys, "generate-all", "0012", "0012_european_30_male", base, "--max-cost", "0.5"
    )
    assert code == 2 and "over the ceiling" in err and len(err.strip().splitlines()) == 1
    assert standin.create_attempts == 0 and list(s3_store.list("")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate-all", "../0012", "n", "BASE"], "path separators"),
        (["generate-all", "0012", "a/b", "BASE"], "path separators"),
        (["generate-all", "0012", "n", "BASE", "dragon"], "person"),
        (["generate-all", "0012", "n", "file:///etc/passwd"], "scheme"),
        (["generate-all", "0012", "n", "http://127.0.0.1:1/x.jpg"], "private"),
        (["generate-all", "0012", "n", "http://[::ffff:127.0.0.1]:1/x.jpg"], "private"),
        (["generate-all", "0012", "n", "NOTIMAGE"], "not a readable image"),
        (["generate-all", "0012", "n", "BASE", "--only", "nope"], "unknown prompt"),
        (["generate-single", "0012", "n", "BASE", "x" * 2001], "2000"),
        (["generate-single", "0012", "n", "BASE", "   "], "empty"),
        (["generate-single", "0012", "n", "BASE", "ok", "--aspect-ratio", "7:5"], "aspect ratio"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    replicate_env, standin, s3_store, base, tmp_path, capsys, args, message
):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    args = [base if a == "BASE" else str(not_image) if a == "NOTIMAGE" else a for a in args]
    code, _, err = cli(capsys, *args)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert standin.create_attempts == 0
    assert list(s3_store.list("")) == []


def test_corrupt_manifest_is_named_and_left_untouched(replicate_env, s3_store, base, capsys):
    s3_store.put_if_absent(manifest_key("0012"), b"{ broken")
    code, _, err = cli(capsys, "generate-all", "0012", "0012_european_30_male", base)
    assert code == 2 and "0012_manifest.json is not valid JSON" in err
    assert s3_store.get(manifest_key("0012")).data == b"{ broken"


def test_preview_notice_and_local_store(clean_env, base, capsys, tmp_path):
    code, _, err = cli(
        capsys, "generate-all", "0100", "0100_x", base, "--only", "photo-rain-platform"
    )
    assert code == 0
    assert "not training data" in err
    assert (tmp_path / "data/store/system_actors/training_data/0100_x/0100_x_0.jpg").is_file()


def test_prompts_list_json(clean_env, capsys):
    code, out, _ = cli(capsys, "prompts", "list", "person", "female", "--json")
    prompts = json.loads(out)
    assert code == 0 and len(prompts) >= 38
    assert set(prompts[0]) == {"id", "category", "face_visible", "prompt"}
    assert all("{subject}" not in p["prompt"] for p in prompts)
    assert any("woman" in p["prompt"] for p in prompts)


def test_manifest_show(clean_env, base, capsys):
    cli(capsys, "generate-all", "0100", "0100_x", base, "--only", "photo-rain-platform")
    code, out, _ = cli(capsys, "manifest", "show", "0100")
    assert code == 0 and "0100_x_0.jpg" in out and "photo-rain-platform" in out
    code, out, _ = cli(capsys, "manifest", "show", "0100", "--json")
    assert json.loads(out)["character_id"] == "0100"
    code, _, err = cli(capsys, "manifest", "show", "9999")
    assert code == 2 and "no manifest" in err


def test_import_legacy_is_safe_twice(s3_env, s3_store, tmp_path, capsys):
    actors = tmp_path / "actors"
    for meta in PROMPT_METADATA.glob("*.json"):
        (actors / meta.stem).mkdir(parents=True)
        (actors / meta.stem / "prompt_metadata.json").write_bytes(meta.read_bytes())
    code, out, _ = cli(capsys, "import-legacy", str(MANIFESTS), "--prompt-metadata", str(actors))
    assert code == 0 and "10 manifest(s) imported" in out
    first = {o.key: o.version for o in s3_store.list("system_actors/manifests/")}
    manifest = require_manifest(s3_store, "0007")
    legacy = json.loads((MANIFESTS / "0007_manifest.json").read_text())
    prompts = json.loads((PROMPT_METADATA / "0007_european_55_male.json").read_text())["images"]
    for entry, old in zip(manifest.training_data, legacy["training_data"], strict=True):
        assert {k: v for k, v in entry.items() if k != "prompt"} == old
        if entry["filename"] in prompts:
            assert entry["prompt"] == prompts[entry["filename"]]["prompt"]
    assert any("prompt" in e for e in manifest.training_data)
    code, out, _ = cli(capsys, "import-legacy", str(MANIFESTS), "--prompt-metadata", str(actors))
    assert code == 0 and "0 manifest(s) imported, 10 already" in out
    assert {o.key: o.version for o in s3_store.list("system_actors/manifests/")} == first
    assert not [o for o in s3_store.list("") if not o.key.startswith("system_actors/manifests/")]


def test_doctor(replicate_env, capsys):
    code, out, _ = cli(capsys, "doctor")
    assert code == 0, out
    assert "token valid" in out and "writable" in out and TOKEN not in out


def test_doctor_reports_a_bad_token(replicate_env, capsys):
    replicate_env.setenv("REPLICATE_API_TOKEN", "wrong")
    code, out, _ = cli(capsys, "doctor")
    assert code == 2 and "FAIL provider" in out and "wrong" not in out


def test_version_and_help(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.startswith("actor-maker ")
    code, out, _ = cli(capsys, "generate-all", "--help")
    assert code == 0 and "--dry-run" in out and "--max-cost" in out


def test_invalid_setting_is_a_one_line_error(clean_env, capsys):
    clean_env.setenv("MAX_CONCURRENT_REQUESTS", "lots")
    code, _, err = cli(capsys, "generate-all", "0100", "n", "x.jpg", "--dry-run")
    assert (code == 2 and "max_concurrent_requests" in err.lower()) or "MAX_CONCURRENT" in err


@pytest.mark.parametrize(
    ("script", "extra"),
    [
        ("generate_all_prompt_images_s3.py", ["person", "male", "--only", "photo-rain-platform"]),
        ("generate_single_training_image_s3.py", ["The man reads a map", "person", "male"]),
    ],
)
def test_old_script_paths_still_work(clean_env, base, tmp_path, script, extra):
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/training_data" / script),
            "0012",
            "0012_european_30_male",
            base,
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["success"] is True
    assert "filename" in body or body["successful"] == 1


def test_doctor_checks_redis_when_configured(clean_env, capsys):
    clean_env.setenv("ACTOR_MAKER_QUEUE", "redis://127.0.0.1:6379/15")
    code, out, _ = cli(capsys, "doctor")
    assert code == 0 and "ok   queue: Redis answers" in out
    clean_env.setenv("ACTOR_MAKER_QUEUE", "redis://127.0.0.1:1/0")
    code, out, _ = cli(capsys, "doctor")
    assert code == 2 and "FAIL queue" in out


def test_own_prompt_library(clean_env, base, tmp_path, capsys):
    library = tmp_path / "mine.json"
    library.write_text(
        json.dumps(
            {
                "version": 1,
                "prompts": [
                    {
                        "id": "photo-my-scene",
                        "category": "photoreal",
                        "template": "The {subject} feeds pigeons in a quiet square at noon.",
                    }
                ],
            }
        )
    )
    code, out, err = cli(
        capsys, "generate-all", "0100", "0100_x", base, "--prompts", str(library), "--json"
    )
    assert code == 0, err
    body = json.loads(out)
    assert [r["prompt_id"] for r in body["results"]] == ["photo-my-scene"]
    library.write_text("{ nope")
    code, _, err = cli(capsys, "generate-all", "0100", "0100_x", base, "--prompts", str(library))
    assert code == 2 and "mine.json" in err


def test_a_malformed_list_setting_is_one_line(clean_env, capsys):
    clean_env.setenv("ACTOR_MAKER_CORS_ORIGINS", "https://x")
    code, _, err = cli(capsys, "manifest", "show", "0001")
    assert (
        code == 2
        and err.startswith("error: invalid setting")
        and len(err.strip().splitlines()) == 1
    )


# --- errors and help (#12.15) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["https://x", "https://x,https://y", '"https://x"', '["https://x/"]', "[1, 2", '["*"]'],
)
def test_a_bad_cors_origins_names_the_variable_and_its_form(clean_env, capsys, value):
    clean_env.setenv("ACTOR_MAKER_CORS_ORIGINS", value)
    code, out, err = cli(capsys, "manifest", "show", "0001")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: invalid setting ACTOR_MAKER_CORS_ORIGINS:")
    assert "JSON list of origins" in err and '["https://studio.example"' in err


def test_good_cors_origins_are_accepted(clean_env, capsys):
    clean_env.setenv("ACTOR_MAKER_CORS_ORIGINS", '["https://a.example", "http://127.0.0.1:5173"]')
    code, _, err = cli(capsys, "manifest", "show", "0001")
    assert code == 2 and "no manifest" in err  # got past the settings


def _commands(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_shows_flags_without_a_value_type(clean_env, capsys):
    from actor_maker.cli import click_command

    clean_env.setenv("COLUMNS", "100")
    paths = list(_commands(click_command()))
    assert ("jobs", "list") in paths and len(paths) > 20
    for path in paths:
        code, out, _ = cli(capsys, *path, "--help")
        assert code == 0 and "--help" in out, path
        assert "<bool>" not in out, (path, out)


def test_jobs_list_help_documents_limit_and_lists_states_unbroken(clean_env, capsys):
    clean_env.setenv("COLUMNS", "80")
    code, out, _ = cli(capsys, "jobs", "list", "--help")
    assert code == 0
    limit = next(line for line in out.splitlines() if "--limit" in line)
    assert "At most" in limit
    for state in ("queued", "running", "succeeded", "partially_failed", "failed", "canceled"):
        assert state in out, state  # each on one line, never cut mid-word
    assert "list[" not in out


def test_reconcile_counts_read_as_words(clean_env, capsys, tmp_path):
    from actor_maker.store.local import LocalStore

    store = LocalStore(tmp_path / "data" / "store")
    one = {
        "character_id": "0700",
        "character_name": "0700_one",
        "training_data": [
            {"filename": "0700_one_1.jpg", "s3_url": None, "status": "local_only"},
        ],
    }
    for data in (fixture_manifest("0006"), one):
        assert isinstance(data["character_id"], str)
        store.put_if_absent(manifest_key(data["character_id"]), json.dumps(data).encode())
    store.put_if_absent("system_actors/training_data/0700_one/0700_one_5.jpg", sample_image())
    code, out, _ = cli(capsys, "reconcile", "--all")
    assert code == 1
    assert "(y/ies)" not in out and "(s)" not in out
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert "23 external entries kept as they are" in lines["0006 0006_european_20_female"]
    assert "1 external entry kept as it is" in lines["0700 0700_one"]
    assert "found 1 orphan," in lines["0700 0700_one"] and "orphans" not in lines["0700 0700_one"]
    assert "2 actors:" in out


def test_manifest_show_piped_keeps_filenames_whole_and_in_index_order(clean_env, tmp_path):
    from actor_maker.store.local import LocalStore

    name = "0701_a_rather_long_actor_name_that_would_wrap_in_a_narrow_table"
    data = {
        "character_id": "0701",
        "character_name": name,
        "training_data": [
            {"filename": f"{name}_{i}.jpg", "status": "synced", "prompt_id": f"p{i}"}
            for i in (10, 2, 1, 33)
        ],
    }
    LocalStore(tmp_path / "data" / "store").put_if_absent(
        manifest_key("0701"), json.dumps(data).encode()
    )
    env = {**os.environ, "COLUMNS": "60", "PYTHONPATH": str(REPO / "src")}
    proc = run_cli(env, "manifest", "show", "0701", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if f"{name}_" in line]
    assert [row.split()[1] for row in rows] == [f"{name}_{i}.jpg" for i in (1, 2, 10, 33)]
