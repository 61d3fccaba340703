"""A ``starting`` record left by a process that died while its training create was on the
way: the next run adopts the one training that create made (Replicate stand-in), and keeps
the old behaviour (fail it, start afresh, say why) when it cannot tell which one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

from actor_maker.manifest import Manifest, read_manifest, update_manifest
from actor_maker.store.local import LocalStore
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn
from actor_maker.training import models
from actor_maker.training.base import Dataset
from actor_maker.training.flow import _request, plan_training, run_training
from actor_maker.training.params import TrainingOptions
from actor_maker.training.replicate import ReplicateTrainer

from .conftest import STANDIN_TOKEN
from .helpers import CLI, cli_environ, run_cli, sample_image
from .test_training_finish import settings_for
from .training_helpers import ACTOR, seed_actor


def age_starting_record(store: LocalStore) -> None:
    """Fifteen minutes and more pass: the ``starting`` record goes stale."""

    def older(manifest: Manifest) -> bool:
        [record] = [m for m in models.models_of(manifest) if m["status"] == "starting"]
        record["started_ts"] -= models.STALE_START_S + 60
        return True

    update_manifest(store, ACTOR, older)


def records(store: LocalStore) -> list[dict[str, Any]]:
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None
    return models.models_of(manifest)


def test_killed_while_the_create_is_on_the_way_then_rerun_adopts_the_training(
    tmp_path: Path, standin: ReplicateStandIn
) -> None:
    store = LocalStore(tmp_path / "store")
    seed_actor(store)
    standin.faults = Faults(slow_create=60)  # the training exists; its answer is late
    environ = cli_environ(
        tmp_path,
        ACTOR_MAKER_POLL_INTERVAL="0.05",
        ACTOR_MAKER_TRAINING_OWNER="stand-in",
        REPLICATE_API_TOKEN=STANDIN_TOKEN,
        REPLICATE_BASE_URL=standin.base_url,
    )
    command = ["train", ACTOR, "--trainer", "replicate"]
    proc = subprocess.Popen(
        [*CLI, *command, "--steps", "250"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while standin.trainings_created < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert standin.trainings_created == 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    training_id = standin.book.list_views()[0]["id"]
    [left] = records(store)
    assert left["status"] == "starting" and not left["training_id"]
    age_starting_record(store)
    standin.faults = Faults()
    rerun = run_cli(environ, *command)
    assert rerun.returncode == 0, rerun.stderr
    assert f"adopted training {training_id}" in rerun.stderr
    assert standin.trainings_created == 1  # nothing started twice
    [final] = records(store)
    assert final["version"] == "V1" and final["training_id"] == training_id
    assert final["status"] in ("trained", "needs_review") and final["adopted"]
    assert "V1: " in rerun.stdout


async def test_two_matching_trainings_are_not_adopted_and_a_new_one_starts(
    tmp_path: Path, standin: ReplicateStandIn
) -> None:
    store = LocalStore(tmp_path / "store")
    seed_actor(store)
    settings = settings_for(tmp_path, standin)
    options = TrainingOptions(trainer="replicate", steps=333)
    plan = plan_training(store, settings, ACTOR, options)
    models.add_model(
        store,
        ACTOR,
        {
            "version": plan.version,
            "trainer": "replicate",
            "training_id": None,
            "trigger_word": plan.trigger_word,
            "dataset_sha256": plan.dataset_sha256,
            "image_count": plan.image_count,
            "params": vars(plan.params),
            "sample_prompts": list(plan.sample_prompts),
            "sample_seeds": list(plan.sample_seeds),
            "status": "starting",
            **models.created_fields(),
        },
    )
    archive = tmp_path / "given.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for i in range(10):
            zipped.writestr(f"a_{i}.jpg", sample_image((256, 256), seed=i))
    trainer = ReplicateTrainer.from_settings(settings)
    try:
        request = _request(settings, plan, Dataset(archive, 10, plan.dataset_sha256))
        twins = {await trainer.start(request) for _ in range(2)}
        age_starting_record(store)
        again = plan_training(store, settings, ACTOR, options)
        assert again.stale_start is not None and again.version == "V2"
        record = await run_training(store, settings, trainer, again)
    finally:
        await trainer.aclose()
    assert standin.trainings_created == 3  # the two, and the new one
    first, second = records(store)
    assert first["status"] == "failed" and "2 trainings" in first["reason"]
    assert all(t in first["reason"] for t in twins)
    assert second["version"] == "V2" == record["version"]
    assert record["status"] in ("trained", "needs_review")


def test_the_api_reports_an_adopted_training_under_its_own_version(
    tmp_path: Path, standin: ReplicateStandIn
) -> None:
    """After an adoption the run trains the earlier record's version, not the plan's."""
    from actor_maker.api.trainings import TrainingRun

    store = LocalStore(tmp_path / "store")
    seed_actor(store)
    plan = plan_training(
        store, settings_for(tmp_path, standin), ACTOR, TrainingOptions(trainer="replicate")
    )
    run = TrainingRun(ACTOR, plan)
    assert run.to_json()["version"] == plan.version
    run.add("training_adopted", {"training_id": "t-earlier", "version": "V0"})
    assert run.to_json()["version"] == "V0" and run.training_id == "t-earlier"
