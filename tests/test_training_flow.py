"""The training flow with the preview trainer on the local store and S3 (moto): plan, run,
re-attach, failure and cancel, bad input refused with nothing paid."""

from __future__ import annotations

import asyncio
import copy
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from actor_maker.config import Settings
from actor_maker.errors import BudgetError, ConfigError, InputError, NotFoundError
from actor_maker.manifest import read_manifest, update_manifest
from actor_maker.quality.identity import identity_available
from actor_maker.store.base import ObjectStore
from actor_maker.testing.fake_trainer import FakeTrainer
from actor_maker.training import models
from actor_maker.training.flow import cancel_training, plan_training, run_training
from actor_maker.training.params import TrainingOptions, params_for, steps_for

from .training_helpers import ACTOR, seed_actor

#: Fields every manifest write refreshes, and the training's own record.
TRAINING_FIELDS = {"custom_lora_models", "custom_lora_models_updated", "training_data_updated"}
PREVIEW = TrainingOptions(trainer="preview")
REPLICATE = TrainingOptions(trainer="replicate")


def settings_for(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        state_dir=tmp_path / "state",
        preview_training_s=0.6,
        poll_interval_s=0.05,
        **extra,
    )


def trainer_for(settings: Settings, **kw: Any) -> FakeTrainer:
    return FakeTrainer(settings.state_dir / "preview-trainer", duration_s=0.6, **kw)


def without_training(data: dict[str, Any]) -> dict[str, Any]:
    rest = copy.deepcopy(data)
    for name in TRAINING_FIELDS:
        rest.pop(name, None)
    return rest


@pytest.mark.parametrize(
    ("images", "steps"), [(10, 1000), (14, 1000), (15, 1500), (29, 1500), (30, 2000), (90, 2000)]
)
def test_steps_follow_the_table(images: int, steps: int) -> None:
    assert steps_for(images) == steps
    assert params_for(images).steps == steps


@pytest.mark.parametrize(
    "override", [{"steps": 99}, {"steps": 6001}, {"rank": 2}, {"rank": 256}, {"learning_rate": 0.5}]
)
def test_overrides_out_of_range_are_refused(override: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="out of range"):
        params_for(12, TrainingOptions(**override))


def test_fewer_than_ten_images_are_refused() -> None:
    with pytest.raises(InputError, match="at least 10"):
        steps_for(9)


def test_plan_leaves_out_rejected_and_preview_images(store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(store, usable=12, rejected=2, preview=3)
    settings = settings_for(tmp_path, training_owner="acme")
    plan = plan_training(store, settings, ACTOR, REPLICATE)
    assert plan.image_count == 12
    assert plan.left_out == {"rejected": 2, "preview placeholder": 3}
    assert plan.params.steps == 1000
    assert 0 < plan.estimated_cost < settings.max_job_cost
    # Only the preview trainer (which learns nothing) may take preview placeholders.
    assert plan_training(store, settings, ACTOR, PREVIEW).image_count == 15


def test_dataset_hash_names_exactly_what_is_trained(store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(store)
    settings = settings_for(tmp_path, training_owner="acme")
    first = plan_training(store, settings, ACTOR, REPLICATE).dataset_sha256

    def recaption(manifest: Any) -> bool:
        manifest.training_data[0]["caption"] = "amk0012 woman, another caption"
        return True

    update_manifest(store, ACTOR, recaption)
    assert plan_training(store, settings, ACTOR, REPLICATE).dataset_sha256 != first


def test_train_stores_weights_samples_and_score(store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(store, usable=12, rejected=1, preview=0)
    settings = settings_for(tmp_path)
    trainer = trainer_for(settings)
    plan = plan_training(store, settings, ACTOR, PREVIEW)
    events: list[str] = []
    record = asyncio.run(
        run_training(store, settings, trainer, plan, on_event=lambda n, d: events.append(n))
    )
    assert len(trainer.started()) == 1
    # What the trainer got is exactly the planned images: the rejected one is not there.
    [training] = trainer.started()
    trained = sorted(p.name for p in (trainer.state_dir / training / "images").iterdir())
    assert len(trained) == 12 and "0012_european_30_female_12.jpg" not in trained
    key = models.weights_key("0012_european_30_female", "V1")
    assert record["key"] == key and store.head(key) is not None
    assert record["size_bytes"] == len(store.get(key).data)
    assert record["training_id"] == training
    assert record["dataset_sha256"] == plan.dataset_sha256 and record["image_count"] == 12
    assert len(record["samples"]) == 6
    assert all(store.head(s["key"]) is not None for s in record["samples"])
    assert events[0] == "plan" and events[-1] == "training_finished" and "progress" in events
    assert identity_available()  # the [quality] extra is part of the test environment
    assert record["score"]["share"] == 1.0
    assert record["score"]["median_distance"] < record["score"]["threshold"]
    assert record["status"] == "trained"
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None and "lora_model" not in manifest.data  # never good by itself
    good = models.mark_good(store, ACTOR, "V1")
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None and good["status"] == "good"
    lora = manifest.data["lora_model"]
    assert set(models.LEGACY_FIELDS) <= set(lora)
    assert lora["filename"] == "0012_european_30_female_V1.safetensors"
    assert lora["md5_hash"] == record["md5_hash"] and manifest.data["lora_model_updated"]


def test_below_threshold_needs_review(local_store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(local_store)
    settings = settings_for(tmp_path, training_min_pass=1.0, identity_threshold=0.01)
    plan = plan_training(local_store, settings, ACTOR, PREVIEW)
    record = asyncio.run(run_training(local_store, settings, trainer_for(settings), plan))
    assert record["status"] == "needs_review" and record["score"]["share"] < 1.0


def test_failed_training_changes_only_its_record(store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(store)
    settings = settings_for(tmp_path)
    before = read_manifest(store, ACTOR)
    assert before is not None
    trainer = trainer_for(settings, fail=True)
    plan = plan_training(store, settings, ACTOR, PREVIEW)
    record = asyncio.run(run_training(store, settings, trainer, plan))
    assert record["status"] == "failed" and "out of memory" in record["reason"]
    after = read_manifest(store, ACTOR)
    assert after is not None
    assert without_training(after.data) == without_training(before.data)
    assert [m["status"] for m in models.models_of(after)] == ["failed"]
    assert list(store.list(models.LORA_PREFIX)) == []


def test_canceled_training_changes_only_its_record(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    seed_actor(local_store)
    settings = settings_for(tmp_path)
    before = read_manifest(local_store, ACTOR)
    assert before is not None
    trainer = FakeTrainer(settings.state_dir / "preview-trainer", duration_s=30)
    plan = plan_training(local_store, settings, ACTOR, PREVIEW)

    async def scenario() -> dict[str, Any]:
        run = asyncio.create_task(run_training(local_store, settings, trainer, plan))
        while not trainer.started():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        await cancel_training(local_store, trainer, ACTOR)
        return await run

    record = asyncio.run(scenario())
    assert record["status"] == "canceled"
    after = read_manifest(local_store, ACTOR)
    assert after is not None
    assert without_training(after.data) == without_training(before.data)


def test_rerun_reattaches_instead_of_starting_another(store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(store)
    settings = settings_for(tmp_path)
    trainer = FakeTrainer(settings.state_dir / "preview-trainer", duration_s=1.5)
    plan = plan_training(store, settings, ACTOR, PREVIEW)

    async def die_after_start() -> None:
        run = asyncio.create_task(run_training(store, settings, trainer, plan))
        while True:
            manifest = read_manifest(store, ACTOR)
            record = models.active_model(manifest) if manifest else None
            if record and record.get("training_id"):
                break
            await asyncio.sleep(0.02)
        run.cancel()  # the process goes away while waiting
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(die_after_start())
    again = plan_training(store, settings, ACTOR, PREVIEW)
    assert again.reattach is not None and again.version == "V1"
    record = asyncio.run(run_training(store, settings, trainer, again))
    assert len(trainer.started()) == 1
    assert record["status"] in ("trained", "needs_review") and record["key"]


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown", NotFoundError, "unknown actor"),
        ("few", InputError, "at least 10"),
        ("steps", InputError, "out of range"),
        ("trigger", InputError, "no spaces"),
        ("budget", BudgetError, "over the ceiling"),
        ("owner", ConfigError, "ACTOR_MAKER_TRAINING_OWNER"),
    ],
)
def test_bad_input_is_refused_with_nothing_paid(
    store: ObjectStore, tmp_path: Path, case: str, error: type[Exception], message: str
) -> None:
    seed_actor(store, usable=9 if case == "few" else 12, preview=0)
    if case == "trigger":
        update_manifest(store, ACTOR, lambda m: m.data.update(trigger_word="amk x") or True)
    before = read_manifest(store, ACTOR)
    settings = settings_for(tmp_path, training_owner=None if case == "owner" else "acme")
    kwargs: dict[str, Any] = {"trainer": "replicate"}
    if case == "steps":
        kwargs["steps"] = 50
    if case == "budget":
        kwargs["max_cost"] = 0.5
    with pytest.raises(error, match=message):
        plan_training(
            store, settings, "9999" if case == "unknown" else ACTOR, TrainingOptions(**kwargs)
        )
    after = read_manifest(store, ACTOR)
    assert before is not None and after is not None and after.data == before.data
    assert not (settings.state_dir / "trainings").exists()


def test_replicate_zip_holds_the_planned_images(local_store: ObjectStore, tmp_path: Path) -> None:
    from actor_maker.training.dataset import export_dataset, select

    seed_actor(local_store, usable=11, rejected=1, preview=2)
    manifest = read_manifest(local_store, ACTOR)
    assert manifest is not None
    selection = select(local_store, manifest)
    dataset = export_dataset(
        local_store,
        settings_for(tmp_path),
        manifest,
        selection,
        fmt="replicate-zip",
        workdir=tmp_path / "w",
    )
    with zipfile.ZipFile(io.BytesIO(dataset.path.read_bytes())) as archive:
        images = [n for n in archive.namelist() if n.endswith(".jpg")]
    assert sorted(images) == sorted(e["filename"] for e in selection.entries)
    assert dataset.images == 11 and dataset.sha256 == selection.sha256


def test_without_the_identity_extra_the_score_is_empty_and_says_why(
    local_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actor_maker.training import scoring

    monkeypatch.setattr(scoring, "identity_available", lambda: False)
    seed_actor(local_store)
    settings = settings_for(tmp_path)
    plan = plan_training(local_store, settings, ACTOR, PREVIEW)
    record = asyncio.run(run_training(local_store, settings, trainer_for(settings), plan))
    assert record["status"] == "needs_review"
    assert record["score"]["share"] is None and record["score"]["median_distance"] is None
    assert "actor-maker[quality]" in record["score"]["note"] and record["reason"]


def test_a_taken_weights_key_is_never_replaced(local_store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(local_store)
    taken = models.weights_key("0012_european_30_female", "V1")
    local_store.put_if_absent(taken, b"someone else's weights")
    settings = settings_for(tmp_path)
    plan = plan_training(local_store, settings, ACTOR, PREVIEW)
    assert plan.version == "V2"
    record = asyncio.run(run_training(local_store, settings, trainer_for(settings), plan))
    assert record["key"].endswith("_V2.safetensors")
    assert local_store.get(taken).data == b"someone else's weights"
