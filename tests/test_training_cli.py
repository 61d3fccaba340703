"""`actor-maker train` and `models` as real processes, on the local store and S3 (moto):
the whole loop, bad input refused with nothing paid, kill -9 mid-training then re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from actor_maker.manifest import read_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore
from actor_maker.training import models

from .helpers import CLI, cli_environ, run_cli, s3_environ
from .training_helpers import ACTOR, seed_actor


@pytest.fixture(params=["local", "s3"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[dict[str, str], ObjectStore, Path]:
    environ = cli_environ(
        tmp_path,
        ACTOR_MAKER_POLL_INTERVAL="0.05",
        ACTOR_MAKER_PREVIEW_TRAINING_S="0.5",
        COLUMNS="200",
    )
    store: ObjectStore
    if request.param == "local":
        store = LocalStore(tmp_path / "store")
    else:
        store = request.getfixturevalue("s3_store")
        moto, bucket = request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket")
        environ.update(s3_environ(moto, bucket))
    seed_actor(store)
    return environ, store, tmp_path / "state"


def started(state: Path) -> list[str]:
    folder = state / "preview-trainer"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_train_list_mark_good(setup: tuple[dict[str, str], ObjectStore, Path]) -> None:
    environ, store, state = setup
    dry = run_cli(environ, "train", ACTOR, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan: dict[str, Any] = json.loads(dry.stdout)
    assert plan["image_count"] == 13 and plan["params"]["steps"] == 1000  # preview trainer
    assert started(state) == []  # a dry run pays nothing
    run = run_cli(environ, "train", ACTOR)
    assert run.returncode == 0, run.stderr
    assert "V1: trained" in run.stdout and "6/6 passed" in run.stdout
    listed = run_cli(environ, "models", "list", ACTOR)
    assert listed.returncode == 0 and "6/6 passed" in listed.stdout and "trained" in listed.stdout
    good = run_cli(environ, "models", "mark-good", ACTOR, "V1")
    assert good.returncode == 0, good.stderr
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None
    assert manifest.data["lora_model"]["filename"] == "0012_european_30_female_V1.safetensors"
    assert store.head(models.weights_key("0012_european_30_female", "V1")) is not None
    assert len(started(state)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "50"], "--steps 50 is out of range"),
        (["--trainer", "kohya"], "--trainer kohya"),
        (["--trainer", "replicate"], "needs"),
    ],
)
def test_bad_input_exits_2_with_nothing_paid(
    setup: tuple[dict[str, str], ObjectStore, Path], args: list[str], message: str
) -> None:
    environ, store, state = setup
    before = read_manifest(store, ACTOR)
    proc = run_cli(environ, "train", ACTOR, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    after = read_manifest(store, ACTOR)
    assert before is not None and after is not None and after.data == before.data
    assert started(state) == []


def test_unknown_actor_exits_2(setup: tuple[dict[str, str], ObjectStore, Path]) -> None:
    environ, _, state = setup
    proc = run_cli(environ, "train", "9999")
    assert proc.returncode == 2 and "unknown actor 9999" in proc.stderr
    assert started(state) == []


def test_kill_9_mid_training_then_rerun_reattaches(
    setup: tuple[dict[str, str], ObjectStore, Path],
) -> None:
    environ, store, state = setup
    environ["ACTOR_MAKER_PREVIEW_TRAINING_S"] = "5"
    proc = subprocess.Popen(
        [*CLI, "train", ACTOR],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    record = None
    while time.monotonic() < deadline:
        manifest = read_manifest(store, ACTOR)
        record = models.active_model(manifest) if manifest else None
        if record and record.get("training_id"):
            break
        time.sleep(0.05)
    assert record and record["status"] == "training"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    rerun = run_cli(environ, "train", ACTOR)
    assert rerun.returncode == 0, rerun.stderr
    assert f"re-attached to training {record['training_id']}" in rerun.stderr
    assert started(state) == [record["training_id"]]  # one training paid for
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None
    [final] = models.models_of(manifest)
    assert final["status"] == "trained" and final["training_id"] == record["training_id"]


def test_ai_toolkit_trainer_end_to_end_with_its_standin(
    setup: tuple[dict[str, str], ObjectStore, Path], tmp_path: Path
) -> None:
    environ, store, _ = setup
    toolkit = tmp_path / "ai-toolkit"
    toolkit.mkdir()
    standin = f"{sys.executable} -m actor_maker.testing.ai_toolkit_standin"
    environ.update(ACTOR_MAKER_AI_TOOLKIT_DIR=str(toolkit), ACTOR_MAKER_AI_TOOLKIT_COMMAND=standin)
    dry = run_cli(environ, "train", ACTOR, "--trainer", "ai-toolkit", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["image_count"] == 12  # the preview placeholder is left out
    assert json.loads(dry.stdout)["estimated_cost"] == 0
    run = run_cli(environ, "train", ACTOR, "--trainer", "ai-toolkit", "--steps", "100")
    assert run.returncode == 0, run.stderr
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None
    [record] = models.models_of(manifest)
    assert record["trainer"] == "ai-toolkit" and record["params"]["steps"] == 100
    assert record["status"] in ("trained", "needs_review") and len(record["samples"]) == 6
    assert store.head(record["key"]) is not None


def test_demo_train_runs_the_whole_loop_offline(tmp_path: Path) -> None:
    environ = cli_environ(
        tmp_path, ACTOR_MAKER_PREVIEW_TRAINING_S="0.5", ACTOR_MAKER_POLL_INTERVAL="0.05"
    )
    proc = run_cli(environ, "-q", "demo", "--train", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "demo V1:" in proc.stdout
    manifest = read_manifest(LocalStore(tmp_path / "store"), "demo")
    assert manifest is not None
    [record] = models.models_of(manifest)
    assert record["trainer"] == "preview" and record["key"] and len(record["samples"]) == 6
    assert record["status"] in ("trained", "needs_review")  # never good by itself
