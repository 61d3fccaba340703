import asyncio
import json

import pytest

from actor_maker.config import Settings
from actor_maker.errors import BudgetError, InputError, InvalidImageError, UnknownActorTypeError
from actor_maker.layout import index_of, manifest_key, training_key, training_prefix
from actor_maker.manifest import require_manifest
from actor_maker.pipeline import Actor, Pipeline
from actor_maker.providers.base import UNTRACKED
from actor_maker.slots import ProcessSlots

from .fakes import CountingProvider
from .helpers import fixture_manifest, found, sample_image

ACTOR = Actor("0100", "0100_test_actor", "person", "male")
BASE = sample_image()


def make(store, provider=None, limit=4, prices=None):
    settings = Settings(_env_file=None, prices=prices or {"fake/model": 0.04})
    return Pipeline(
        settings=settings,
        store=store,
        provider=provider or CountingProvider(),
        slots=ProcessSlots(limit),
    )


def keys(store):
    return sorted(o.key for o in store.list(""))


async def test_generate_all_creates_manifest_and_entries(store):
    pipeline = make(store)
    plan = pipeline.plan_all(
        ACTOR, only=["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]
    )
    result = await pipeline.run(plan, BASE)
    assert [i.state for i in result.items] == ["succeeded"] * 3
    manifest = require_manifest(store, ACTOR.actor_id)
    assert manifest is not None
    assert manifest.actor_type == "person" and manifest.actor_sex == "male"
    assert len(manifest.base_images) == 1
    assert store.head(manifest.base_images[0]["key"]) is not None
    entries = manifest.training_data
    assert sorted(found(index_of(e["filename"])) for e in entries) == [0, 1, 2]
    assert {e["prompt_id"] for e in entries} == set(plan_ids(plan))
    for entry in entries:
        assert entry["status"] == "synced"
        assert entry["generation"]["seed"] is not None
        assert entry["good"] is False and entry["quality"] is None  # make() runs no checks
        assert entry["caption"].startswith("amk0100 man")  # trigger word and class word
        assert entry["category"] in ("photoreal", "bw_stylized", "color_stylized")
        head = store.head(entry["key"])
        assert head is not None and head.size == entry["size_bytes"]
        assert head.metadata["prompt-id"] == entry["prompt_id"]
        assert head.metadata["job-id"] == result.id
        assert head.metadata["seed"] == str(entry["generation"]["seed"])
    assert manifest.data["statistics"]["training_images_count"] == 3


def plan_ids(plan):
    return [i.prompt_id for i in plan.items]


async def test_rerun_generates_only_what_is_missing(local_store):
    provider = CountingProvider()
    pipeline = make(local_store, provider)
    only = ["photo-rain-platform", "bw-charcoal-portrait"]
    await pipeline.run(pipeline.plan_all(ACTOR, only=only[:1]), BASE)
    plan = pipeline.plan_all(ACTOR, only=only)
    assert plan_ids(plan) == ["bw-charcoal-portrait"] and plan.already_done == (
        "photo-rain-platform",
    )
    await pipeline.run(plan, BASE)
    assert pipeline.plan_all(ACTOR, only=only).items == ()
    forced = pipeline.plan_all(ACTOR, only=only, force=True)
    await pipeline.run(forced, BASE)
    manifest = require_manifest(local_store, ACTOR.actor_id)
    assert len(manifest.training_data) == 4
    assert len({e["filename"] for e in manifest.training_data}) == 4
    assert provider.calls == 4


async def test_legacy_manifest_is_extended_after_its_highest_index(s3_store):
    legacy = fixture_manifest("0006")
    actor = Actor(legacy["character_id"], legacy["character_name"])
    s3_store.put_if_absent(manifest_key(actor.actor_id), json.dumps(legacy).encode())
    pipeline = make(s3_store)
    plan = pipeline.plan_all(actor, only=["photo-rain-platform"])
    result = await pipeline.run(plan, BASE)
    manifest = require_manifest(s3_store, actor.actor_id)
    old_highest = max(found(index_of(e["filename"])) for e in legacy["training_data"])
    assert result.items[0].index == old_highest + 1
    assert manifest.training_data[: len(legacy["training_data"])] == legacy["training_data"]
    assert manifest.base_images == legacy["base_images"]  # kept, not replaced
    assert manifest.data["training_data_good"] == legacy["training_data_good"]
    new = manifest.training_data[-1]
    assert new["s3_url"] == f"{s3_store.public_url(new['key'])}"
    assert "?" not in new["s3_url"]
    # sex came from the legacy metadata and the prompt uses it
    assert "woman" in new["prompt"]


async def test_orphan_object_at_next_index_is_never_overwritten(local_store):
    pipeline = make(local_store)
    await pipeline.run(pipeline.plan_all(ACTOR, only=["photo-rain-platform"]), BASE)
    orphan = training_key(ACTOR.actor_name, 1, "jpg")
    local_store.put_if_absent(orphan, b"paid for, manifest update lost")
    await pipeline.run(pipeline.plan_all(ACTOR, only=["bw-charcoal-portrait"]), BASE)
    assert local_store.get(orphan).data == b"paid for, manifest update lost"
    filenames = {e["filename"] for e in require_manifest(local_store, ACTOR.actor_id).training_data}
    assert filenames == {f"{ACTOR.actor_name}_0.jpg", f"{ACTOR.actor_name}_2.jpg"}


async def test_a_failed_item_does_not_block_the_others(local_store):
    pipeline = make(local_store, CountingProvider(flag="charcoal"))
    plan = pipeline.plan_all(
        ACTOR, only=["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]
    )
    result = await pipeline.run(plan, BASE)
    states = {i.prompt_id: i.state for i in result.items}
    assert states["bw-charcoal-portrait"] == "failed"
    assert "E005" in next(i.error for i in result.items if i.state == "failed")
    assert result.succeeded == 2
    manifest = require_manifest(local_store, ACTOR.actor_id)
    assert {e["prompt_id"] for e in manifest.training_data} == {
        "photo-rain-platform",
        "color-oil-portrait",
    }
    # the failed prompt is still missing, so a rerun picks it up
    assert plan_ids(pipeline.plan_all(ACTOR, only=plan_ids(plan))) == ["bw-charcoal-portrait"]


async def test_concurrency_is_bounded(local_store):
    provider = CountingProvider(latency=0.05)
    pipeline = make(local_store, provider, limit=3)
    result = await pipeline.run(pipeline.plan_all(ACTOR), BASE)
    assert result.succeeded == len(result.items) > 10
    assert provider.peak == 3


@pytest.mark.parametrize(
    ("actor", "kwargs", "error"),
    [
        (Actor("../x", "n"), {}, InputError),
        (Actor("1", "a/b"), {}, InputError),
        (Actor("1", "n", "dragonfly"), {}, UnknownActorTypeError),
        (ACTOR, {"only": ["no-such-prompt"]}, InputError),
        (ACTOR, {"aspect_ratio": "5:7"}, InputError),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(local_store, actor, kwargs, error):
    with pytest.raises(error):
        make(local_store).plan_all(actor, **kwargs)
    assert keys(local_store) == []


def test_budget_ceiling(local_store):
    pipeline = make(local_store)
    plan = pipeline.plan_all(ACTOR)
    with pytest.raises(BudgetError, match="over the ceiling"):
        pipeline.check_budget(plan, max_cost=0.10)
    pipeline.check_budget(plan, max_cost=plan.estimated_cost)


async def test_non_image_base_is_refused_before_any_prediction(local_store):
    provider = CountingProvider()
    pipeline = make(local_store, provider)
    with pytest.raises(InvalidImageError):
        await pipeline.run(pipeline.plan_all(ACTOR), b"<html>not an image</html>")
    assert provider.calls == 0 and keys(local_store) == []


async def test_base_image_read_through_the_store(s3_store, s3_bucket):
    s3_store.put_if_absent("uploads/base.jpg", BASE)
    pipeline = make(s3_store)
    ref = f"s3://{s3_bucket}/uploads/base.jpg"
    pipeline.check_base_image_ref(ref)
    result = await pipeline.run(pipeline.plan_all(ACTOR, only=["photo-rain-platform"]), ref)
    assert result.items[0].state == "succeeded"
    with pytest.raises(InputError, match="not in the configured store"):
        pipeline.check_base_image_ref("s3://some-other-bucket/base.jpg")


async def test_cancel_keeps_what_finished_and_cancels_the_rest(local_store):
    provider = CountingProvider(latency=0.3)
    pipeline = make(local_store, provider, limit=2)
    plan = pipeline.plan_all(
        ACTOR, only=["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]
    )
    task = asyncio.create_task(pipeline.run(plan, BASE))
    while provider.calls < 3:  # two done, the third in flight
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.canceled == 1
    for _ in range(100):  # images already generated are still being stored
        manifest = require_manifest(local_store, ACTOR.actor_id)
        if len(manifest.training_data) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(manifest.training_data) == 2
    assert (
        len([k for k in keys(local_store) if k.startswith(training_prefix(ACTOR.actor_name))]) == 2
    )


def test_single_prompt_plan(local_store):
    pipeline = make(local_store)
    plan = pipeline.plan_single(ACTOR, "  The {subject} waits on a rainy platform at night  ")
    assert plan.items[0].prompt.startswith("The man waits on a rainy platform at night")
    assert plan.items[0].prompt_id.startswith("custom-")
    with pytest.raises(InputError):
        pipeline.plan_single(ACTOR, "x" * 2001)


async def test_public_store_hands_the_provider_a_presigned_url_never_stored(s3_store, monkeypatch):
    monkeypatch.setattr(type(s3_store), "reachable_from_internet", property(lambda self: True))
    provider = CountingProvider()
    pipeline = make(s3_store, provider)
    await pipeline.run(pipeline.plan_all(ACTOR, only=["photo-rain-platform"]), BASE)
    (url,) = provider.image_urls
    assert url is not None and "Signature=" in url
    raw = s3_store.get(manifest_key(ACTOR.actor_id)).data.decode()
    assert "Signature=" not in raw


async def test_a_rejected_token_stops_the_job(local_store):
    from actor_maker.errors import ConfigError

    class Refusing(CountingProvider):
        async def generate(self, image, params, tracking=UNTRACKED):
            self.calls += 1
            raise ConfigError("Replicate rejected REPLICATE_API_TOKEN (HTTP 401)")

    provider = Refusing()
    pipeline = make(local_store, provider, limit=1)
    result = await pipeline.run(pipeline.plan_all(ACTOR), BASE)
    assert result.error_type == "ConfigError" and result.state == "failed"
    assert provider.calls == 1
    assert {i.state for i in result.items} == {"failed", "canceled"}


def test_one_entry_per_job_item_however_many_runs_store_it(local_store):
    """A run that took over a lapsed claim and the starved run it took it from may both get
    as far as storing: the manifest keeps one entry for the item (invariant 8)."""
    from actor_maker.manifest import new_manifest, read_manifest, update_manifest
    from actor_maker.pipeline.storing import EntryAppender

    update_manifest(
        local_store,
        "0100",
        lambda m: False,
        create=lambda: new_manifest(
            actor_id="0100", actor_name="0100_test_actor", actor_type="person", actor_sex="male"
        ),
    )
    appender = EntryAppender(local_store, "0100")

    def entry(filename: str) -> dict[str, object]:
        return {
            "filename": filename,
            "prompt_id": "photo-rain-platform",
            "prompt": "rain",
            "md5_hash": "x",
            "generation": {"job_id": "job_1", "provider": "fake"},
            "caption": "amk0100 man",
        }

    first = appender.append(entry("0100_test_actor_0.jpg"))
    second = appender.append(entry("0100_test_actor_1.jpg"))
    assert first["filename"] == second["filename"] == "0100_test_actor_0.jpg"
    manifest = read_manifest(local_store, "0100")
    assert manifest is not None and len(manifest.training_data) == 1


async def test_only_an_item_some_run_claimed_is_looked_up_before_paying(local_store, monkeypatch):
    """The check for an image an earlier run stored (and did not record) reads the manifest.
    An item no run has claimed cannot have one, so a fresh job reads no manifest per item;
    an item claimed by a run that died after storing is found and not paid for again."""
    from datetime import timedelta

    from actor_maker.jobs import items as job_items
    from actor_maker.jobs.memory import MemoryJobRecords
    from actor_maker.jobs.models import ItemState, JobState, now

    lookups: list[str] = []
    real = job_items.stored_by_job

    def counted(store, job, prompt_id):
        lookups.append(prompt_id)
        return real(store, job, prompt_id)

    monkeypatch.setattr(job_items, "stored_by_job", counted)
    records, provider = MemoryJobRecords(), CountingProvider()
    pipeline = make(local_store, provider)
    plan = pipeline.plan_all(ACTOR, only=["photo-rain-platform", "bw-charcoal-portrait"])
    job = await pipeline.run(plan, BASE, records=records)
    assert lookups == [] and provider.calls == 2
    assert [i.attempts for i in job.items] == [1, 1]

    prompt_id = job.items[0].prompt_id

    def died_after_storing(stored):
        item = stored.item(prompt_id)
        item.state, item.claimed_by = ItemState.running, "dead-run"
        item.claimed_at = now() - timedelta(hours=1)
        stored.state = JobState.running
        return True

    records.modify(job.id, died_after_storing)
    session = await pipeline.open_session(records, found(records.get(job.id)), owner="next")
    assert await pipeline.run_item(session, prompt_id)
    assert lookups == [prompt_id] and provider.calls == 2  # found in the manifest, not paid
    after = records.get(job.id)
    assert after is not None and found(after.item(prompt_id)).state == ItemState.succeeded
