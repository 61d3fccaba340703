"""Export: each layout file by file, read back by the format's rules, to dirs, zips and S3."""

from __future__ import annotations

import io
import json
import tempfile
import tomllib
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from actor_maker.captions import caption_for, trigger_first
from actor_maker.cli import main
from actor_maker.config import Settings
from actor_maker.errors import InputError
from actor_maker.export import CARD_MARK, RECORD, Format, export
from actor_maker.layout import training_key
from actor_maker.manifest import Manifest, new_manifest, read_manifest, update_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore

from .apiserver import serve_in_thread
from .conftest import S3_REGION
from .helpers import local_settings, sample_image

ACTOR, NAME = "0012", "0012_european_30_male"
TRIGGER, CLASS = "amk0012", "man"
PROMPT = (
    "Cinematic film still: the man waits alone on a rain-soaked train platform at night. "
    "Close-up at eye level. Preserve the same face and identity as the reference."
)

#: index → (extension, category, verdict or None, extra entry fields)
SPEC: dict[int, tuple[str, str | None, str | None, dict[str, Any]]] = {
    0: ("jpg", "photoreal", "accepted", {}),
    1: ("png", "bw_stylized", None, {"caption": "amk0012 man, a hand-written caption"}),
    2: ("jpg", "color_stylized", "rejected", {}),
    3: ("jpg", "photoreal", "review", {}),
    4: ("jpg", "photoreal", "rejected", {"override": "accepted"}),
    5: ("webp", "color_stylized", "accepted", {"good": True}),
    6: ("jpg", "photoreal", "accepted", {"status": "missing"}),
    7: ("jpg", "photoreal", "accepted", {"no_object": True}),
    8: ("jpg", "photoreal", "accepted", {"foreign": True}),
}
USABLE = {0, 1, 4, 5}  # 7 is usable but its object is gone: a failed item
FORMATS: tuple[Format, ...] = ("kohya", "ai-toolkit", "replicate-zip")


def _entry(store: ObjectStore, name: str, index: int) -> dict[str, Any]:
    ext, category, verdict, extra = SPEC[index]
    filename = f"{name}_{index}.{ext}"
    key = training_key(name, index, ext)
    if not extra.get("no_object"):
        fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[ext]
        store.put_if_absent(key, sample_image((48, 40), fmt, seed=index))
    quality = None
    if verdict:
        quality = {"verdict": verdict, "reasons": [], "scores": {}, "checked_at": "x"}
        if "override" in extra:
            quality["override"] = {"verdict": extra["override"], "at": "x", "via": "cli"}
    entry: dict[str, Any] = {
        "filename": filename,
        "s3_url": None,
        "key": key,
        "status": extra.get("status", "synced"),
        "prompt": PROMPT,
        "prompt_id": f"photo-{index}",
        "category": category,
        "generation": {"provider": "replicate", "model": "other" if index % 2 else "flux"},
        "good": extra.get("good", False),
        "quality": quality,
        "caption": extra.get("caption"),
        "created_at": f"2026-01-0{1 + index}T10:00:00+00:00",
    }
    if extra.get("foreign"):
        entry["key"] = None
        entry["s3_url"] = f"https://elsewhere.s3.us-west-1.amazonaws.com/{key}"
    return entry


def make_actor(store: ObjectStore, actor_id: str = ACTOR, name: str = NAME) -> Manifest:
    entries = [_entry(store, name, i) for i in SPEC]

    def change(manifest: Manifest) -> bool:
        for entry in entries:
            manifest.add_entry(entry)
        return True

    def create() -> Manifest:
        return new_manifest(
            actor_id=actor_id, actor_name=name, actor_type="person", actor_sex="male"
        )

    return update_manifest(store, actor_id, change, create=create)


def settings(tmp_path: Path, **extra: Any) -> Settings:
    return local_settings(tmp_path, **{"provider": "preview", **extra})


def expected(store: ObjectStore, indices: set[int], *, convert: bool = False) -> dict[str, Any]:
    """stem → (image bytes, caption) for the entries ``indices``, as the manifest says."""
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None
    found = {}
    for entry in manifest.training_data:
        stem, _, ext = entry["filename"].rpartition(".")
        if int(stem.rsplit("_", 1)[1]) in indices:
            data = store.get(entry["key"]).data
            if convert and ext == "webp":
                data = pixels(data)
            found[stem] = (data, entry.get("caption") or caption_for(manifest, entry))
    return found


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def files_under(root: Path, *, records: bool = False) -> dict[str, bytes]:
    """The files under ``root``; export records only when ``records``."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and (records or p.name != RECORD)
    }


def zip_files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


# --- read back with each trainer's rules ----------------------------------------------------


def read_kohya(files: dict[str, bytes], actor_dir: str) -> dict[str, Any]:
    config = tomllib.loads(files[f"{actor_dir}/dataset.toml"].decode())
    ext = config["general"]["caption_extension"]
    (subset,) = config["datasets"][0]["subsets"]
    image_dir = f"{actor_dir}/{subset['image_dir']}/"  # relative in a zip
    images = {
        p: d
        for p, d in files.items()
        if p.startswith(image_dir) and p.rsplit(".", 1)[1] in ("jpg", "jpeg", "png", "webp")
    }
    return {
        p[len(image_dir) :].rsplit(".", 1)[0]: (
            d,
            files[p.rsplit(".", 1)[0] + ext].decode(),
        )
        for p, d in images.items()
    }


def read_ai_toolkit(files: dict[str, bytes], actor_dir: str) -> dict[str, Any]:
    config = yaml.safe_load(files[f"{actor_dir}/ai-toolkit.yaml"])
    (dataset,) = config["datasets"]
    ext = dataset["caption_ext"]
    found = {}
    for path, data in files.items():
        folder, _, name = path.rpartition("/")
        stem, _, suffix = name.rpartition(".")
        if folder == actor_dir and suffix in ("jpg", "jpeg", "png"):
            found[stem] = (data, files[f"{folder}/{stem}.{ext}"].decode())
    return found


def read_replicate(files: dict[str, bytes]) -> dict[str, Any]:
    assert all("/" not in name for name in files)
    return {
        name.rsplit(".", 1)[0]: (data, files[name.rsplit(".", 1)[0] + ".txt"].decode())
        for name, data in files.items()
        if name.rsplit(".", 1)[1] in ("jpg", "jpeg", "png", "webp")
    }


# --- layouts ----------------------------------------------------------------------------------


def test_kohya_layout(local_store, tmp_path):
    make_actor(local_store)
    out = tmp_path / "datasets"
    report = export(local_store, [ACTOR], fmt="kohya", out=str(out), settings=settings(tmp_path))
    folder = f"{NAME}/img/10_{TRIGGER} {CLASS}"
    files = files_under(out)
    stems = [f"{NAME}_{i}" for i in sorted(USABLE)]
    exts = {0: "jpg", 1: "png", 4: "jpg", 5: "webp"}
    assert set(files) == {
        f"{NAME}/dataset.toml",
        f"{NAME}/README.md",
        *(f"{folder}/{NAME}_{i}.{exts[i]}" for i in USABLE),
        *(f"{folder}/{s}.txt" for s in stems),
    }
    assert files[f"{folder}/{NAME}_1.txt"] == b"amk0012 man, a hand-written caption"
    caption = files[f"{folder}/{NAME}_0.txt"].decode()
    assert caption.startswith(f"{TRIGGER} {CLASS}") and "identity" not in caption
    config = tomllib.loads(files[f"{NAME}/dataset.toml"].decode())
    assert config["general"] == {
        "shuffle_caption": False,  # sd-scripts refuses it with --cache_text_encoder_outputs
        "caption_extension": ".txt",
        "keep_tokens": 1,
    }
    (dataset,) = config["datasets"]
    assert dataset["resolution"] == 1024 and dataset["batch_size"] == 1
    image_dir = str((out / folder).resolve())  # absolute: sd-scripts may start anywhere
    assert dataset["subsets"] == [
        {"image_dir": image_dir, "num_repeats": 10, "class_tokens": "amk0012 man"}
    ]
    assert Path(image_dir).is_absolute() and Path(image_dir).is_dir()
    (actor,) = report.actors
    assert actor.counts == {"photoreal": 2, "bw_stylized": 1, "color_stylized": 1}
    assert actor.trigger_word == TRIGGER and actor.class_word == CLASS
    reasons = {s.filename.rsplit("_", 1)[1]: (s.reason, s.failed) for s in actor.skipped}
    assert reasons == {
        "2.jpg": ("rejected by the checks", False),
        "3.jpg": ("awaiting review", False),
        "6.jpg": ("status missing", False),
        "7.jpg": (f"object {training_key(NAME, 7, 'jpg')} is missing", True),
        "8.jpg": ("not in this store", False),
    }
    assert [s.filename for s in report.failed] == [f"{NAME}_7.jpg"]
    assert report.files_written == len(files)
    card = files[f"{NAME}/README.md"].decode()
    assert card.startswith(CARD_MARK)
    for text in ("| photoreal | 2 |", "| flux | 2 |", "| photo-5 | 1 |", "| accepted | 3 |"):
        assert text in card
    assert "| unchecked | 1 |" in card and "1 decided by a person" in card
    assert "2026-01-06T10:00:00Z" in card  # the newest exported image (index 5), not today


def test_kohya_repeats_and_custom_trigger(local_store, tmp_path):
    make_actor(local_store)

    def set_trigger(manifest: Manifest) -> bool:
        manifest.data["trigger_word"] = "zqx"
        return True

    update_manifest(local_store, ACTOR, set_trigger)
    export(
        local_store,
        [ACTOR],
        fmt="kohya",
        out=str(tmp_path / "o"),
        settings=settings(tmp_path),
        repeats=3,
    )
    config = tomllib.loads((tmp_path / "o" / NAME / "dataset.toml").read_text())
    subset = config["datasets"][0]["subsets"][0]
    folder = tmp_path / "o" / NAME / "img" / "3_zqx man"
    assert subset["image_dir"] == str(folder.resolve()) and subset["num_repeats"] == 3
    assert folder.is_dir()


def test_kohya_zip_is_relative_and_shuffling_is_an_option(local_store, tmp_path):
    make_actor(local_store)
    out = tmp_path / "k.zip"
    export(
        local_store,
        [ACTOR],
        fmt="kohya",
        out=str(out),
        settings=settings(tmp_path),
        shuffle_caption=True,
    )
    text = zip_files(out.read_bytes())[f"{NAME}/dataset.toml"].decode()
    config = tomllib.loads(text)
    assert config["general"]["shuffle_caption"] is True
    assert config["datasets"][0]["subsets"][0]["image_dir"] == f"img/10_{TRIGGER} {CLASS}"
    assert "image_dir is relative" in text


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("amk0012 man, on a bridge", "amk0012 man, on a bridge"),
        ("a man on a bridge", "amk0012 a man on a bridge"),
        ("a man, amk0012, on a bridge", "amk0012 a man, on a bridge"),
        ("amk0012, on a bridge", "amk0012, on a bridge"),
        ("", "amk0012"),
        ("amk00123 man", "amk0012 amk00123 man"),  # a longer word is not the trigger
    ],
)
def test_trigger_first(caption, expected):
    assert trigger_first(caption, TRIGGER) == expected


def test_kohya_captions_start_with_the_trigger(local_store, tmp_path):
    """A caption edited to drop the trigger is exported with it first (kohya only)."""
    make_actor(local_store)

    def edit(manifest: Manifest) -> bool:
        manifest.training_data[0]["caption"] = "a man on a rainy platform"
        return True

    update_manifest(local_store, ACTOR, edit)
    cfg = settings(tmp_path)
    export(local_store, [ACTOR], fmt="kohya", out=str(tmp_path / "k"), settings=cfg)
    folder = tmp_path / "k" / NAME / "img" / f"10_{TRIGGER} {CLASS}"
    for caption in folder.glob("*.txt"):
        assert caption.read_text().split()[0] == TRIGGER, caption.name
    assert (folder / f"{NAME}_0.txt").read_text() == f"{TRIGGER} a man on a rainy platform"
    # ai-toolkit and Replicate add the trigger themselves: the caption is kept as written
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(tmp_path / "a"), settings=cfg)
    assert (tmp_path / "a" / NAME / f"{NAME}_0.txt").read_text() == "a man on a rainy platform"


@pytest.mark.parametrize("fmt", FORMATS)
def test_captions_are_written_as_one_line(local_store, tmp_path, fmt):
    """sd-scripts reads only a caption file's first line (ai-toolkit reads it all): a caption
    of several lines in a manifest is written as one, its lines joined with commas. One that
    is blank gets the caption built from the prompt."""
    make_actor(local_store)

    def edit(manifest: Manifest) -> bool:
        manifest.training_data[0]["caption"] = (
            "amk0012 man at the seaside\r\n\n wind\tin his hair \novercast"
        )
        manifest.training_data[1]["caption"] = " \n "
        return True

    update_manifest(local_store, ACTOR, edit)
    out = tmp_path / "out.zip"
    export(local_store, [ACTOR], fmt=fmt, out=str(out), settings=settings(tmp_path))
    files = zip_files(out.read_bytes())
    read = {
        "kohya": lambda: read_kohya(files, NAME),
        "ai-toolkit": lambda: read_ai_toolkit(files, NAME),
        "replicate-zip": lambda: read_replicate(files),
    }[fmt]()
    captions = {stem: caption for stem, (_, caption) in read.items()}
    assert captions[f"{NAME}_0"] == "amk0012 man at the seaside, wind in his hair, overcast"
    manifest = read_manifest(local_store, ACTOR)
    assert manifest is not None
    assert captions[f"{NAME}_1"] == caption_for(manifest, manifest.training_data[1])
    assert not any("\n" in c or "\r" in c or "\t" in c for c in captions.values())


def test_ai_toolkit_layout_converts_webp_to_png(local_store, tmp_path):
    make_actor(local_store)
    out = tmp_path / "ai"
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(out), settings=settings(tmp_path))
    files = files_under(out)
    assert set(files) == {
        f"{NAME}/ai-toolkit.yaml",
        f"{NAME}/README.md",
        f"{NAME}/{NAME}_0.jpg",
        f"{NAME}/{NAME}_1.png",
        f"{NAME}/{NAME}_4.jpg",
        f"{NAME}/{NAME}_5.png",  # was webp
        *(f"{NAME}/{NAME}_{i}.txt" for i in USABLE),
    }
    with Image.open(io.BytesIO(files[f"{NAME}/{NAME}_5.png"])) as img:
        assert img.format == "PNG" and img.size == (48, 40)
    config = yaml.safe_load(files[f"{NAME}/ai-toolkit.yaml"])
    assert config["trigger_word"] == TRIGGER
    assert config["datasets"] == [
        {
            "folder_path": str((out / NAME).resolve()),
            "caption_ext": "txt",
            "caption_dropout_rate": 0.05,
            "shuffle_tokens": False,
            "cache_latents_to_disk": True,
            "resolution": [512, 768, 1024],
        }
    ]


def test_replicate_zip_layout(local_store, tmp_path):
    make_actor(local_store)
    out = tmp_path / "0012.zip"
    report = export(
        local_store, [ACTOR], fmt="replicate-zip", out=str(out), settings=settings(tmp_path)
    )
    files = zip_files(out.read_bytes())
    assert set(files) == {
        "README.md",
        f"{NAME}_0.jpg",
        f"{NAME}_1.png",
        f"{NAME}_4.jpg",
        f"{NAME}_5.webp",
        *(f"{NAME}_{i}.txt" for i in USABLE),
    }
    assert report.actors[0].trigger_word == TRIGGER
    assert report.actors[0].location == str(out)
    assert not list(tmp_path.glob(".*.part"))


# --- round trips: export, read back by the trainer's rules ----------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("options", "indices"),
    [
        ({}, USABLE),
        ({"include_review": True}, USABLE | {3}),
        ({"good_only": True}, {5}),
    ],
    ids=["usable", "include-review", "good-only"],
)
def test_round_trip(local_store, tmp_path, fmt, options, indices):
    make_actor(local_store)
    out = tmp_path / "export.zip"
    export(local_store, [ACTOR], fmt=fmt, out=str(out), settings=settings(tmp_path), **options)
    files = zip_files(out.read_bytes())
    if fmt == "kohya":
        found = read_kohya(files, NAME)
    elif fmt == "ai-toolkit":
        found = read_ai_toolkit(files, NAME)
        found = {
            stem: (pixels(d) if stem.endswith("_5") else d, c) for stem, (d, c) in found.items()
        }
    else:
        found = read_replicate(files)
    assert found == expected(local_store, indices, convert=fmt == "ai-toolkit")


def test_same_command_twice_gives_the_same_bytes(local_store, tmp_path):
    make_actor(local_store)
    make_actor(local_store, "0013", "0013_other_actor")
    cfg = settings(tmp_path)
    for fmt in FORMATS:
        target = tmp_path / "out" / fmt
        outputs = []
        for _ in range(2):
            if fmt == "replicate-zip":
                export(local_store, [ACTOR, "0013"], fmt=fmt, out=str(target), settings=cfg)
            else:
                export(local_store, [ACTOR, "0013"], fmt=fmt, out=f"{target}.zip", settings=cfg)
                export(local_store, [ACTOR, "0013"], fmt=fmt, out=str(target), settings=cfg)
            outputs.append(files_under(tmp_path / "out"))
        assert outputs[0] == outputs[1], fmt
    with zipfile.ZipFile(tmp_path / "out" / "replicate-zip" / f"{NAME}.zip") as zf:
        infos = zf.infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    names = [i.filename for i in infos]
    assert names[-1] == "README.md" and names[0] == f"{NAME}_0.jpg"


def test_a_new_export_replaces_an_earlier_one(local_store, tmp_path):
    make_actor(local_store)
    out = tmp_path / "ds"
    cfg = settings(tmp_path)
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(out), settings=cfg)
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(out), settings=cfg, good_only=True)
    assert set(files_under(out / NAME)) == {
        "README.md",
        "ai-toolkit.yaml",
        f"{NAME}_5.png",
        f"{NAME}_5.txt",
    }
    export(local_store, [ACTOR], fmt="kohya", out=str(out), settings=cfg)
    assert (out / NAME / "dataset.toml").is_file()
    assert not (out / NAME / "ai-toolkit.yaml").exists()


def test_a_new_export_leaves_the_trainers_files_alone(local_store, tmp_path):
    """ai-toolkit writes its latent cache and size index into the dataset folder: a new
    export removes only what the earlier export wrote (its record lists them)."""
    make_actor(local_store)
    out = tmp_path / "ds"
    cfg = settings(tmp_path)
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(out), settings=cfg)
    folder = out / NAME
    record = json.loads((folder / RECORD).read_text())
    assert set(record["files"]) == set(files_under(folder))
    (folder / "_latent_cache").mkdir()
    (folder / "_latent_cache" / f"{NAME}_0_abc.safetensors").write_bytes(b"latents")
    (folder / ".aitk_size.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(out), settings=cfg, good_only=True)
    assert set(files_under(folder)) == {
        "README.md",
        "ai-toolkit.yaml",
        f"{NAME}_5.png",
        f"{NAME}_5.txt",
        f"_latent_cache/{NAME}_0_abc.safetensors",
        ".aitk_size.json",
        "notes.txt",
    }
    assert (folder / "_latent_cache" / f"{NAME}_0_abc.safetensors").read_bytes() == b"latents"
    # a record that names paths outside the folder is not followed
    (tmp_path / "outside.txt").write_text("keep")
    (folder / RECORD).write_text(json.dumps({"files": ["../../outside.txt", "/etc/x"]}))
    export(local_store, [ACTOR], fmt="ai-toolkit", out=str(out), settings=cfg)
    assert (tmp_path / "outside.txt").read_text() == "keep"


def test_refuses_a_folder_that_is_not_an_export(local_store, tmp_path):
    make_actor(local_store)
    (tmp_path / "ds" / NAME).mkdir(parents=True)
    (tmp_path / "ds" / NAME / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an earlier export"):
        export(
            local_store, [ACTOR], fmt="kohya", out=str(tmp_path / "ds"), settings=settings(tmp_path)
        )
    assert (tmp_path / "ds" / NAME / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "diffusers"}, "format"),
        ({"out": ""}, "--out"),
        ({"out": "ftp://x/y"}, "--out"),
        ({"repeats": 0}, "repeats"),
        ({"fmt": "replicate-zip", "out": "x.zip", "ids": [ACTOR, "0013"]}, "one zip per actor"),
    ],
)
def test_bad_input(local_store, tmp_path, kwargs, message):
    make_actor(local_store)
    make_actor(local_store, "0013", "0013_other_actor")
    args: dict[str, Any] = {"fmt": "kohya", "out": str(tmp_path / "o"), **kwargs}
    ids = args.pop("ids", [ACTOR])
    with pytest.raises(InputError, match=message):
        export(local_store, ids, settings=settings(tmp_path), **args)


# --- S3 destinations --------------------------------------------------------------------------


def s3_settings(tmp_path, moto_server):
    return settings(
        tmp_path,
        aws_endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret-key",
        aws_region=S3_REGION,
    )


def s3_files(moto_server, bucket: str, prefix: str) -> dict[str, bytes]:
    client = moto_server.client
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def test_s3_destination(local_store, tmp_path, moto_server, s3_bucket):
    make_actor(local_store)
    make_actor(local_store, "0013", "0013_other_actor")
    cfg = s3_settings(tmp_path, moto_server)
    out = f"s3://{s3_bucket}/datasets/"
    report = export(local_store, [ACTOR, "0013"], fmt="kohya", out=out, settings=cfg)
    uploaded = s3_files(moto_server, s3_bucket, "datasets/")
    export(local_store, [ACTOR, "0013"], fmt="kohya", out=str(tmp_path / "d"), settings=cfg)
    local = files_under(tmp_path / "d", records=True)
    toml = f"{NAME}/dataset.toml"
    assert {k: v for k, v in uploaded.items() if not k.endswith("dataset.toml")} == {
        k: v for k, v in local.items() if not k.endswith("dataset.toml")
    }
    # in a bucket image_dir is relative (the files are copied down before training)
    subset = tomllib.loads(uploaded[toml].decode())["datasets"][0]["subsets"][0]
    assert subset["image_dir"] == f"img/10_{TRIGGER} {CLASS}"
    assert report.actors[0].location == f"s3://{s3_bucket}/datasets/{NAME}"
    # again, with fewer images: replaced, and what is no longer exported is removed;
    # what the export did not write stays
    moto_server.client.put_object(
        Bucket=s3_bucket, Key=f"datasets/{NAME}/_latent_cache/x.safetensors", Body=b"x"
    )
    export(local_store, [ACTOR], fmt="kohya", out=out, settings=cfg, good_only=True)
    again = s3_files(moto_server, s3_bucket, f"datasets/{NAME}/")
    assert set(again) == {
        "README.md",
        RECORD,
        "_latent_cache/x.safetensors",
        "dataset.toml",
        f"img/10_{TRIGGER} {CLASS}/{NAME}_5.txt",
        f"img/10_{TRIGGER} {CLASS}/{NAME}_5.webp",
    }

    # replicate-zip for several actors: one zip each under the prefix (uploaded from a temp file)
    zips = f"s3://{s3_bucket}/zips"
    export(local_store, [ACTOR, "0013"], fmt="replicate-zip", out=zips, settings=cfg)
    found = s3_files(moto_server, s3_bucket, "zips/")
    assert set(found) == {"0013_other_actor.zip", f"{NAME}.zip"}
    assert read_replicate(zip_files(found[f"{NAME}.zip"])) == expected(local_store, USABLE)
    # kohya into one zip on S3
    export(local_store, [ACTOR], fmt="kohya", out=f"s3://{s3_bucket}/k.zip", settings=cfg)
    (body,) = s3_files(moto_server, s3_bucket, "k.zip").values()
    assert read_kohya(zip_files(body), NAME) == expected(local_store, USABLE)


# --- memory -------------------------------------------------------------------------------------


def test_large_export_keeps_memory_flat(tmp_path):
    store = LocalStore(tmp_path / "big")
    name, count = "0099_big_actor", 200
    entries = []
    rng = np.random.default_rng(1)
    for i in range(count):
        noise = Image.fromarray(rng.integers(0, 256, (300, 330, 3), dtype=np.uint8), "RGB")
        buffer = io.BytesIO()
        noise.save(buffer, "PNG", compress_level=0)
        key = training_key(name, i, "png")
        store.put_if_absent(key, buffer.getvalue())
        entries.append({"filename": f"{name}_{i}.png", "key": key, "status": "synced"})
    assert len(buffer.getvalue()) > 290_000

    def change(manifest: Manifest) -> bool:
        manifest.training_data.extend(entries)
        return True

    update_manifest(
        store,
        "0099",
        change,
        create=lambda: new_manifest(
            actor_id="0099", actor_name=name, actor_type="person", actor_sex="female"
        ),
    )
    out = tmp_path / "big.zip"
    tracemalloc.start()
    try:
        report = export(store, ["0099"], fmt="kohya", out=str(out), settings=settings(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.actors[0].images == count
    assert out.stat().st_size > count * 290_000
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(clean_env, tmp_path):
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    return clean_env


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_cli_export(clean_env, tmp_path, capsys):
    store = LocalStore(tmp_path / "store")
    make_actor(store)
    make_actor(store, "0013", "0013_other_actor")
    code, out, err = cli(
        capsys, "export", ACTOR, "--format", "replicate-zip", "--out", str(tmp_path / "a.zip")
    )
    assert code == 1, err  # index 7's object is missing
    assert f"trigger_word for {ACTOR}: {TRIGGER}" in out
    assert f"{NAME}_7.jpg" in err and "missing" in err
    assert read_replicate(zip_files((tmp_path / "a.zip").read_bytes())) == expected(store, USABLE)

    code, out, err = cli(
        capsys,
        *("export", "--all", "--format", "kohya", "--out", "sets", "--good-only", "--json"),
        "--shuffle-caption",
    )
    assert code == 0, err
    toml = (tmp_path / "sets" / NAME / "dataset.toml").read_text()
    assert tomllib.loads(toml)["general"]["shuffle_caption"] is True
    body = json.loads(out)
    assert [a["actor_id"] for a in body["actors"]] == [ACTOR, "0013"]
    assert [a["images"] for a in body["actors"]] == [1, 1]
    assert (tmp_path / "sets" / "0013_other_actor" / "dataset.toml").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "kohya", "--out", "x"],  # no actor
        [ACTOR, "--all", "--format", "kohya", "--out", "x"],
        [ACTOR, "--format", "onnx", "--out", "x"],
        ["nobody", "--format", "kohya", "--out", "x"],
    ],
)
def test_cli_bad_input_exits_2(clean_env, tmp_path, capsys, args):
    make_actor(LocalStore(tmp_path / "store"))
    code, _, err = cli(capsys, "export", *args)
    assert code == 2 and err.startswith("error:") and "Traceback" not in err


# --- API ----------------------------------------------------------------------------------------


def test_api_export_zip(local_store, tmp_path, monkeypatch):
    make_actor(local_store)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with (
        serve_in_thread(settings(tmp_path), store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        response = api.post(f"/api/actors/{ACTOR}/exports", json={"format": "replicate-zip"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/zip"
        assert (
            response.headers["content-disposition"]
            == f'attachment; filename="{NAME}-replicate-zip.zip"'
        )
        assert response.headers["x-trigger-word"] == TRIGGER
        assert read_replicate(zip_files(response.content)) == expected(local_store, USABLE)

        response = api.post(
            f"/api/actors/{ACTOR}/exports", json={"format": "kohya", "good_only": True}
        )
        assert response.status_code == 200
        assert read_kohya(zip_files(response.content), NAME) == expected(local_store, {5})

        assert api.post("/api/actors/0404/exports", json={"format": "kohya"}).status_code == 404
        assert api.post(f"/api/actors/{ACTOR}/exports", json={"format": "x"}).status_code == 422
    assert list(temp.iterdir()) == []  # every temporary zip was deleted
