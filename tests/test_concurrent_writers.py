"""Invariant 2 under stress: several real processes append to one manifest at once."""

import subprocess

import pytest

from actor_maker.layout import index_of, training_prefix
from actor_maker.manifest import require_manifest

from .helpers import CLI, clean_environ, found, s3_environ, sample_image

ACTOR_ID, ACTOR_NAME = "0300", "0300_concurrent_actor"
PROMPTS = [
    "photo-rain-platform",
    "bw-charcoal-portrait",
    "color-oil-portrait",
    "photo-market-laughter",
    "bw-woodcut-field",
    "color-watercolor-cafe",
]


def run_writers(env, base, processes=4):
    """Each process generates all six prompts with --force, so every one appends six entries."""
    procs = [
        subprocess.Popen(
            [
                *CLI,
                "-q",
                "generate-all",
                ACTOR_ID,
                ACTOR_NAME,
                str(base),
                "person",
                "female",
                "--only",
                ",".join(PROMPTS),
                "--force",
                "--provider",
                "preview",
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    return processes * len(PROMPTS)


def check_invariants(store, expected):
    manifest = require_manifest(store, ACTOR_ID)
    entries = manifest.training_data
    filenames = [e["filename"] for e in entries]
    assert len(entries) == expected, "a manifest update was lost"
    assert len(set(filenames)) == expected, "a filename was used twice"
    objects = {o.key for o in store.list(training_prefix(ACTOR_NAME))}
    assert objects == {e["key"] for e in entries}, "objects and entries disagree"
    assert sorted(found(index_of(f)) for f in filenames) == list(range(expected))
    for entry in entries:  # no object was overwritten by another process
        assert store.head(entry["key"]).size == entry["size_bytes"]
    assert manifest.data["statistics"]["training_images_count"] == expected


@pytest.fixture
def env(tmp_path):
    base = tmp_path / "base.jpg"
    base.write_bytes(sample_image())
    env = clean_environ()
    env["ACTOR_MAKER_SLOT_DIR"] = str(tmp_path / "slots")
    env["MAX_CONCURRENT_REQUESTS"] = "8"
    return env, base


def test_processes_share_a_local_manifest(env, tmp_path, local_store):
    environ, base = env
    environ["ACTOR_MAKER_STORE"] = str(local_store._root)
    expected = run_writers(environ, base)
    check_invariants(local_store, expected)


def test_processes_share_an_s3_manifest(env, moto_server, s3_bucket, s3_store):
    environ, base = env
    environ.update(s3_environ(moto_server, s3_bucket))
    expected = run_writers(environ, base)
    check_invariants(s3_store, expected)
