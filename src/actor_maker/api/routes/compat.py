"""The old frontend's routes: same paths, request bodies and response shapes.

Generating (each request becomes a job through ``Services.start_job``):

- ``POST /api/actors/{actor_id}/training-data/generate-all-prompts`` — every library prompt
  the actor lacks; waits and answers the CLI's ``generate-all --json`` object (200, ``failed``
  counts failed items). With ``Prefer: respond-async``: 202, the job, ``Location``.
- ``POST /api/actors/{actor_id}/training-data/generate-single`` — one prompt; waits and
  answers the CLI's ``generate-single --json`` object.
- ``POST /api/actors/{actor_id}/training-data/recreate`` — a new image for an entry's prompt
  under a new filename, put in the old entry's place; the old object goes to the trash.
- ``POST /api/training-data/generate`` — images for actor ``styleId``; answers the job (201).

Images and flags:

- ``GET /api/actors/{actor_id}/training-data``
- ``POST /api/actors/{actor_id}/training-data/delete`` and ``…/delete-all`` (to the trash)
- ``POST /api/actors/{actor_id}/training-data/{filename}/toggle-good``,
  ``POST /api/actors/{actor_id}/toggle-good``, ``POST /api/training/training-data/toggle-good``

Prompts:

- ``GET /api/actors/{actor_id}/training-prompts`` (old category names, subject filled in)
- ``GET /api/actors/{actor_id}/prompt-usage``, ``GET /api/actors/{actor_id}/training-data/prompts``

Failures of the three waiting routes are problem+json with the old ``success: false`` and
``error`` added, never HTTP 200. Inputs pass the CLI's checks (actor_maker.validation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator

from actor_maker import actors as actor_ops
from actor_maker import prompts as prompt_lib
from actor_maker.api.errors import ProblemWithFields
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.cli.output import all_json, single_json
from actor_maker.errors import ActorMakerError, InputError, NotFoundError
from actor_maker.jobs.models import ItemState, Job, JobItem, JobKind
from actor_maker.manifest import (
    BASE_IMAGE_PREFIX,
    Entry,
    Manifest,
    index_of,
    read_manifest,
    training_prefix,
    update_manifest,
)
from actor_maker.pipeline import Actor, ItemResult, JobPlan, JobResult
from actor_maker.pipeline import JobItem as PlanItem
from actor_maker.trash import TrashRecord, object_key_of
from actor_maker.validation import (
    MAX_NAME_LENGTH,
    MAX_PROMPT_LENGTH,
    check_actor_id,
    check_actor_name,
)

router = APIRouter(tags=["old frontend"])

VIA = "api"
#: How often a waiting route looks at its job's record.
WAIT_POLL_S = 0.2
#: Our category names → the old frontend's.
OLD_CATEGORIES = {"photoreal": "photorealistic"}
_LABEL_PREFIXES = ("photo", "bw", "color")

Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
Url = Annotated[str, Field(max_length=2048)]
Prompt = Annotated[str, Field(max_length=MAX_PROMPT_LENGTH)]
Ratio = Annotated[str, Field(max_length=20)]
Word = Annotated[str, Field(max_length=40)]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("an actor id is a string or a number")
    return value


#: An actor id in a body: the old frontend sends "0012" or sometimes a number.
ActorRef = Annotated[
    int | Annotated[str, Field(max_length=MAX_NAME_LENGTH)], BeforeValidator(_no_bool)
]


# --- bodies -------------------------------------------------------------------------------


class ForActor(BaseModel):
    actor_name: Name

    def actor(self, actor_id: str) -> Actor:
        return Actor(check_actor_id(actor_id), self.actor_name)


class GenerateAllBody(ForActor):
    #: Optional here: without it the base image recorded in the manifest is used.
    base_image_url: Url | None = None
    actor_type: Word | None = None
    actor_sex: Word | None = None

    def actor(self, actor_id: str) -> Actor:
        kind, sex = self.actor_type or None, self.actor_sex or None
        return Actor(check_actor_id(actor_id), self.actor_name, kind, sex)


class GenerateSingleBody(GenerateAllBody):
    prompt: Prompt
    aspect_ratio: Ratio = "1:1"


class RecreateBody(ForActor):
    filename: Name
    prompt: Prompt | None = None
    aspect_ratio: Ratio | None = None
    base_image_url: Url | None = None


class DeleteBody(ForActor):
    filename: Name
    #: Accepted for compatibility; the filename names the entry.
    s3_url: Url | None = None


class ActorRefBody(BaseModel):
    actor_id: ActorRef = Field(alias="actorId")


class ImageRequest(BaseModel):
    prompt: Prompt | None = None
    prompt_id: Annotated[str, Field(max_length=100)] | None = None
    aspect_ratio: Ratio | None = None

    @model_validator(mode="after")
    def _some_prompt(self) -> ImageRequest:
        if not (self.prompt or self.prompt_id):
            raise ValueError("each image needs a prompt or a prompt_id")
        return self


class GenerateSettings(BaseModel):
    """What the job uses; any other members are only recorded."""

    model_config = ConfigDict(extra="allow")

    aspect_ratio: Ratio | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    model: Annotated[str, Field(max_length=200)] | None = None


class GenerateImagesBody(BaseModel):
    images: list[ImageRequest] = Field(min_length=1, max_length=100)
    workflow: JsonValue = None
    settings: GenerateSettings | None = None
    style_id: ActorRef = Field(alias="styleId")


# --- shared bits --------------------------------------------------------------------------


@contextmanager
def _old_style_errors() -> Iterator[None]:
    """Our errors, answered with the old frontend's ``success: false`` and ``error`` added."""
    try:
        yield
    except ProblemWithFields:
        raise
    except ActorMakerError as exc:
        raise _failure(str(exc), exc.status, type(exc).__name__) from exc


def _failure(message: str, status: int, error_type: str, **fields: Any) -> ProblemWithFields:
    return ProblemWithFields(
        message,
        status=status,
        error_type=error_type,
        fields={"success": False, "error": message, **fields},
    )


async def _manifest(services: Services, actor_id: str) -> Manifest:
    return await asyncio.to_thread(actor_ops.load_actor, services.store, actor_id)


def _same_name(manifest: Manifest, actor_name: str) -> None:
    check_actor_name(actor_name)
    if manifest.actor_name and manifest.actor_name != actor_name:
        raise InputError(
            f"actor {manifest.actor_id} is named {manifest.actor_name!r}, not {actor_name!r}"
        )


def _resolve_actor_id(services: Services, value: int | str) -> str:
    """A body's actor id: the string as given. A JSON number ``n`` is ``str(n)``, or
    ``f"{n:04d}"`` when only that actor has a manifest (the old ids are "0012")."""
    plain = check_actor_id(str(value))
    if isinstance(value, int) and value >= 0 and read_manifest(services.store, plain) is None:
        padded = f"{value:04d}"
        if read_manifest(services.store, padded) is not None:
            return padded
    return plain


def _wants_async(prefer: str | None) -> bool:
    tokens = (part.split(";")[0].strip().lower() for part in (prefer or "").split(","))
    return "respond-async" in tokens


async def _finished(services: Services, job_id: str, request: Request) -> Job:
    """The job once it has finished, or as it is when the client has gone away (the job
    goes on regardless). Reads the record, so a job another process resumed counts too."""
    while True:
        job = await asyncio.to_thread(services.records.get, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        if job.state.finished or await request.is_disconnected():
            return job
        await asyncio.sleep(WAIT_POLL_S)


def _result_of(job: Job) -> JobResult:
    """A job record as the pipeline's result, for the CLI's JSON shapes."""
    items = [
        ItemResult(
            i.prompt_id,
            i.prompt,
            i.category,
            state=i.state.value,
            index=i.index,
            filename=i.filename,
            key=i.key,
            s3_url=i.s3_url,
            error=i.error,
            cost=i.cost,
            seed=i.seed,
        )
        for i in job.items
    ]
    actor = Actor(job.actor_id, job.actor_name, job.actor_type, job.actor_sex)
    started = (job.started_at or job.created_at).isoformat()
    finished = job.finished_at.isoformat() if job.finished_at else None
    return JobResult(job.id, actor, items, started_at=started, finished_at=finished)


def _plan_of(job: Job, library_ids: Sequence[str]) -> JobPlan:
    """A job record as its plan; a "generate all" skipped the library prompts it lacks."""
    items = tuple(PlanItem(i.prompt_id, i.prompt, i.category, i.face_visible) for i in job.items)
    asked = {i.prompt_id for i in job.items}
    skipped = tuple(p for p in library_ids if p not in asked) if job.kind == JobKind.all else ()
    price = job.estimated_cost / len(items) if items else 0.0
    actor = Actor(job.actor_id, job.actor_name, job.actor_type, job.actor_sex)
    return JobPlan(actor, items, job.model, price, job.aspect_ratio, skipped)


def _check_ran(job: Job) -> None:
    """A job that stopped as a whole (no base image, the provider refused the token)."""
    if job.error:
        raise _failure(job.error, 502, "JobFailed", job_id=job.id)


def _only_item(job: Job) -> JobItem:
    _check_ran(job)
    item = job.items[0]
    if item.state != ItemState.succeeded:
        reason = item.error or item.state.value
        status, kind = (
            (409, "Canceled") if item.state == ItemState.canceled else (502, "ItemFailed")
        )
        raise _failure(reason, status, kind, job_id=job.id, prompt=item.prompt)
    return item


async def _one_image(
    services: Services,
    request: Request,
    actor: Actor,
    prompt: str,
    aspect_ratio: str,
    base_image_url: str | None,
) -> tuple[Job, JobItem]:
    """A custom job with one prompt, run to its end; its item when it succeeded."""
    job, _ = await services.start_job(
        actor,
        kind=JobKind.custom,
        prompts=[prompt],
        aspect_ratio=aspect_ratio,
        base_image=base_image_url,
        context={"route": "old frontend"},
    )
    job = await _finished(services, job.id, request)
    return job, _only_item(job)


# --- generating ---------------------------------------------------------------------------


@router.post(
    "/api/actors/{actor_id}/training-data/generate-all-prompts",
    responses={202: {"model": Job, "description": "With `Prefer: respond-async`: the job."}},
)
async def generate_all_prompts(
    actor_id: str,
    body: GenerateAllBody,
    request: Request,
    response: Response,
    services: ServicesDep,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Every library prompt the actor lacks. Waits and answers the CLI's `generate-all --json`
    object; an actor's job already running is answered instead of starting another."""
    with _old_style_errors():
        job, _ = await services.start_job(
            body.actor(actor_id),
            kind=JobKind.all,
            base_image=body.base_image_url,
            context={"route": "old frontend"},
        )
        if _wants_async(prefer):
            response.status_code = 202
            response.headers["Location"] = f"/api/jobs/{job.id}"
            return job.model_dump(mode="json")
        job = await _finished(services, job.id, request)
        _check_ran(job)
        library = [t.id for t in services.pipeline(job.model).library]
        return all_json(_result_of(job), _plan_of(job, library))


@router.post("/api/actors/{actor_id}/training-data/generate-single")
async def generate_single(
    actor_id: str, body: GenerateSingleBody, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """One image from your prompt (`{subject}` is filled in). Waits; a failure is a 4xx/5xx
    with `success: false` and `error`."""
    with _old_style_errors():
        actor = body.actor(actor_id)
        job, _ = await _one_image(
            services, request, actor, body.prompt, body.aspect_ratio, body.base_image_url
        )
        return single_json(_result_of(job))


@router.post("/api/actors/{actor_id}/training-data/recreate")
async def recreate(
    actor_id: str, body: RecreateBody, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """A new image for the entry's prompt (or `prompt`) under a new filename; it takes the old
    entry's place once stored, and the old object goes to the trash."""
    with _old_style_errors():
        manifest = await _manifest(services, actor_id)
        _same_name(manifest, body.actor_name)
        old = manifest.find(actor_ops.check_filename(body.filename))
        if old is None:
            raise NotFoundError(f"actor {actor_id} has no image {body.filename}")
        prompt = body.prompt or old.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"prompt: {body.filename} has no recorded prompt; give one")
        ratio = body.aspect_ratio or str(old.get("aspect_ratio") or "1:1")
        actor = body.actor(actor_id)
        job, item = await _one_image(services, request, actor, prompt, ratio, body.base_image_url)
        same_prompt = prompt.strip() == str(old.get("prompt") or "").strip()
        new, record = await asyncio.to_thread(
            _put_in_place, services, manifest.actor_id, old, str(item.filename), same_prompt
        )
    return {
        "success": True,
        "filename": new["filename"],
        "s3_url": new.get("s3_url"),
        "index": item.index,
        "prompt": new.get("prompt"),
        "replaced": old["filename"],
        "key": new.get("key"),
        "url": services.browser_url(new.get("key")),
        "prompt_id": new.get("prompt_id"),
        "trash_id": record.trash_id,
        "job_id": job.id,
    }


def _put_in_place(
    services: Services, actor_id: str, old: Entry, new_filename: str, same_prompt: bool
) -> tuple[Entry, TrashRecord]:
    """Move the job's new entry (appended at the end) into the old one's place. When that
    fails, the new entry goes back to the end: the image was paid for."""
    store = services.store
    new = _take_out(services, actor_id, new_filename)
    if same_prompt and old.get("prompt_id"):  # still the library prompt it was made from
        new["prompt_id"], new["category"] = old["prompt_id"], old.get("category")
    try:
        record = actor_ops.replace_entry(store, actor_id, str(old["filename"]), new, via=VIA)
    except ActorMakerError:
        update_manifest(store, actor_id, lambda m: m.add_entry(dict(new)))
        raise
    return new, record


def _take_out(services: Services, actor_id: str, filename: str) -> Entry:
    taken: list[Entry] = []

    def change(manifest: Manifest) -> bool:
        taken.clear()
        entry = manifest.find(filename)
        if entry is None:
            raise NotFoundError(f"the new image {filename} left the manifest; nothing replaced")
        manifest.training_data.remove(entry)
        taken.append(entry)
        return True

    update_manifest(services.store, actor_id, change)
    return taken[0]


@router.post("/api/training-data/generate", status_code=201)
async def generate_images(body: GenerateImagesBody, services: ServicesDep) -> Job:
    """A job for actor `styleId` (a number is padded to "0012" when only that exists).
    Library `prompt_id`s (and prompts whose text is a library prompt rendered for the actor)
    make a subset job; any free prompt makes the whole request one custom job, with the
    library prompts as their rendered text. `workflow` and `settings` are recorded in the
    job's `context`; `settings` may set `aspect_ratio`, `seed` and `model`."""
    settings = body.settings or GenerateSettings()
    actor_id = await asyncio.to_thread(_resolve_actor_id, services, body.style_id)
    manifest = await _manifest(services, actor_id)
    ratio = _one_ratio(body.images, settings.aspect_ratio)
    library = services.pipeline(settings.model).library
    kind, ids, texts = _job_items(library, manifest, body.images)
    job, _ = await services.start_job(
        Actor(actor_id, manifest.actor_name),
        kind=kind,
        prompt_ids=ids,
        prompts=texts,
        aspect_ratio=ratio,
        seed=settings.seed,
        model=settings.model,
        context={
            "route": "old frontend",
            "workflow": body.workflow,
            "settings": settings.model_dump(mode="json"),
        },
    )
    return job


def _one_ratio(images: Sequence[ImageRequest], default: str | None) -> str:
    ratios = {image.aspect_ratio or default or "1:1" for image in images}
    if len(ratios) > 1:
        raise InputError(
            f"images: one request makes one job with one aspect ratio; got {sorted(ratios)}"
        )
    return ratios.pop()


def _job_items(
    library: Sequence[prompt_lib.PromptTemplate],
    manifest: Manifest,
    images: Sequence[ImageRequest],
) -> tuple[JobKind, list[str] | None, list[str] | None]:
    rendered = {p.id: p.text for p in _rendered(library, manifest)}
    by_text = {text: prompt_id for prompt_id, text in rendered.items()}
    chosen: list[tuple[str | None, str]] = []  # (library id or None, text)
    for image in images:
        if image.prompt_id:
            if image.prompt_id not in rendered:
                raise InputError(f"images: unknown prompt id {image.prompt_id!r}")
            chosen.append((image.prompt_id, rendered[image.prompt_id]))
        else:
            text = str(image.prompt).strip()
            chosen.append((by_text.get(text), text))
    chosen = list(dict.fromkeys(chosen))  # the same prompt twice is one item
    if all(prompt_id for prompt_id, _ in chosen):
        return JobKind.subset, [str(prompt_id) for prompt_id, _ in chosen], None
    return JobKind.custom, None, [text for _, text in chosen]


def _rendered(
    library: Sequence[prompt_lib.PromptTemplate], manifest: Manifest
) -> list[prompt_lib.ScenePrompt]:
    return prompt_lib.render_all(
        library,
        actor_type=manifest.actor_type,
        actor_sex=manifest.actor_sex,
        description=manifest.description,
        outfit=manifest.outfit,
    )


# --- images and flags -----------------------------------------------------------------------


@router.get("/api/actors/{actor_id}/training-data")
async def training_data(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """The actor's training images; `url` (and `base_image`) are what a browser can load,
    also for a local store, where `s3_url` is null."""
    manifest = await _manifest(services, actor_id)
    entries = manifest.training_data
    base = manifest.base_images[0] if manifest.base_images else None
    base_key = object_key_of(services.store, base, BASE_IMAGE_PREFIX) if base else None
    return {
        "actor_id": manifest.actor_id or actor_id,
        "actor_name": manifest.actor_name,
        "training_images": [_image(services, manifest, n, e) for n, e in enumerate(entries)],
        "base_image_url": base.get("s3_url") if base else None,
        "base_image": services.browser_url(base_key),
        "base_thumbnail": services.thumbnail_url(base_key),
        "has_base_image": base is not None,
        "total_count": len(entries),
        "manifest_updated": manifest.data.get("training_data_updated"),
    }


def _image(services: Services, manifest: Manifest, position: int, entry: Entry) -> dict[str, Any]:
    filename = str(entry["filename"])
    index = index_of(filename)
    key = object_key_of(services.store, entry, training_prefix(manifest.actor_name))
    return {
        "index": position if index is None else index,
        "filename": filename,
        "s3_url": entry.get("s3_url"),
        "status": entry.get("status"),
        "size_mb": entry.get("size_mb"),
        "modified_date": entry.get("modified_date"),
        "good": bool(entry.get("good")),
        "prompt": entry.get("prompt"),
        "prompt_id": entry.get("prompt_id"),
        "aspect_ratio": entry.get("aspect_ratio"),
        "key": key,
        "url": services.browser_url(key),
        "thumbnail": services.thumbnail_url(key),
    }


@router.post("/api/actors/{actor_id}/training-data/delete")
async def delete_image(actor_id: str, body: DeleteBody, services: ServicesDep) -> dict[str, Any]:
    """Remove one entry and move its object to the trash; statistics are recomputed."""
    manifest = await _manifest(services, actor_id)
    _same_name(manifest, body.actor_name)
    record = await asyncio.to_thread(
        actor_ops.delete_image, services.store, manifest.actor_id, body.filename, via=VIA
    )
    return _deleted(record)


@router.post("/api/actors/{actor_id}/training-data/delete-all")
async def delete_all_images(actor_id: str, body: ForActor, services: ServicesDep) -> dict[str, Any]:
    """Remove every entry and move their objects to the trash; the actor stays."""
    manifest = await _manifest(services, actor_id)
    _same_name(manifest, body.actor_name)
    record = await asyncio.to_thread(
        actor_ops.delete_all_images, services.store, manifest.actor_id, via=VIA
    )
    return _deleted(record)


def _deleted(record: TrashRecord) -> dict[str, Any]:
    return {
        "success": True,
        "deleted": [str(e["filename"]) for e in record.entries],
        "trash_id": record.trash_id,
    }


@router.post("/api/actors/{actor_id}/training-data/{filename}/toggle-good")
async def toggle_image_good(actor_id: str, filename: str, services: ServicesDep) -> dict[str, bool]:
    """Toggle a training image's `good` flag."""
    good = await asyncio.to_thread(
        actor_ops.set_good, services.store, check_actor_id(actor_id), filename
    )
    return {"good": good}


@router.post("/api/actors/{actor_id}/toggle-good")
async def toggle_actor_good(actor_id: str, services: ServicesDep) -> dict[str, bool]:
    """Toggle the actor's `good` flag."""
    good = await asyncio.to_thread(
        actor_ops.toggle_actor_good, services.store, check_actor_id(actor_id)
    )
    return {"good": good}


@router.post("/api/training/training-data/toggle-good")
async def toggle_training_data_good(body: ActorRefBody, services: ServicesDep) -> dict[str, bool]:
    """Toggle the manifest's `training_data_good`. `actorId` is a string ("0012") or a number
    (12: actor "12", or "0012" when only that one exists)."""
    actor_id = await asyncio.to_thread(_resolve_actor_id, services, body.actor_id)
    good = await asyncio.to_thread(actor_ops.toggle_training_data_good, services.store, actor_id)
    return {"good": good}


# --- prompts ----------------------------------------------------------------------------------


@router.get("/api/actors/{actor_id}/training-prompts")
async def training_prompts(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """The prompt library with the actor's subject filled in, in the old category names
    (`photorealistic`, `bw_stylized`, `color_stylized`); `descriptor` is the subject word."""
    manifest = await _manifest(services, actor_id)
    descriptor = prompt_lib.subject_for(manifest.actor_type, manifest.actor_sex)
    prompts = [
        {
            "id": p.id,
            "category": OLD_CATEGORIES.get(p.category, p.category),
            "label": _label(p.id),
            "prompt": p.text,
        }
        for p in _rendered(services.pipeline().library, manifest)
    ]
    return {"descriptor": descriptor, "prompts": prompts}


def _label(prompt_id: str) -> str:
    """ "photo-rain-platform" → "Rain Platform"."""
    words = prompt_id.split("-")
    if len(words) > 1 and words[0] in _LABEL_PREFIXES:
        words = words[1:]
    return " ".join(words).title()


@router.get("/api/actors/{actor_id}/prompt-usage")
async def prompt_usage(actor_id: str, services: ServicesDep) -> dict[str, dict[str, int]]:
    """Prompt text → how many of the actor's images were made from it."""
    manifest = await _manifest(services, actor_id)
    return {"prompt_usage": actor_ops.prompt_usage(manifest)}


@router.get("/api/actors/{actor_id}/training-data/prompts")
async def training_data_prompts(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """Each image's prompt (null when unknown) and aspect ratio, as objects ("recreate"
    needs the filename with the prompt)."""
    manifest = await _manifest(services, actor_id)
    prompts = [
        {
            "filename": e["filename"],
            "prompt": e.get("prompt"),
            "aspect_ratio": e.get("aspect_ratio"),
        }
        for e in manifest.training_data
    ]
    return {"prompts": prompts}
