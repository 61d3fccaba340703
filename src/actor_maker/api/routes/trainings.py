"""LoRA trainings and models of an actor, and Replicate's webhook."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from actor_maker.api import sse
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.trainings import Trainings
from actor_maker.errors import ActorMakerError, NotFoundError
from actor_maker.manifest import read_manifest
from actor_maker.training import models
from actor_maker.training.factory import make_trainer
from actor_maker.training.flow import cancel_training
from actor_maker.training.params import (
    LEARNING_RATE_RANGE,
    RANK_RANGE,
    STEPS_RANGE,
    TrainingOptions,
)
from actor_maker.training.webhooks import verify_webhook
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["trainings"])

#: Largest webhook body read (Replicate's training objects are small; logs are capped).
MAX_WEBHOOK_BYTES = 1024 * 1024


class Unauthorized(ActorMakerError):
    status = 401


class TrainingBody(BaseModel):
    """What to train; every field optional (the table in docs/training.md decides)."""

    trainer: str | None = Field(default=None, max_length=20)
    steps: int | None = Field(default=None, ge=STEPS_RANGE[0], le=STEPS_RANGE[1])
    rank: int | None = Field(default=None, ge=RANK_RANGE[0], le=RANK_RANGE[1])
    learning_rate: float | None = Field(
        default=None, ge=LEARNING_RATE_RANGE[0], le=LEARNING_RATE_RANGE[1]
    )
    max_cost: float | None = Field(default=None, ge=0)
    dry_run: bool = False

    def options(self) -> TrainingOptions:
        return TrainingOptions(**self.model_dump(exclude={"dry_run"}))


def _trainings(request: Request) -> Trainings:
    trainings: Trainings = request.app.state.trainings
    return trainings


@router.post("/api/actors/{actor_id}/trainings", status_code=202)
async def start_training(
    actor_id: str, body: TrainingBody, request: Request, response: Response, services: ServicesDep
) -> dict[str, Any]:
    """Start the actor's training in the background (or, with `dry_run`, only plan it:
    dataset size, parameters, estimated cost and time). Bad input is refused before
    anything is paid. A training already running in this server answers 200 with it; one
    recorded in the manifest (a restarted server) is re-attached to, not started again."""
    check_actor_id(actor_id)
    if body.dry_run:
        from actor_maker.training.flow import plan_training

        plan = await asyncio.to_thread(
            plan_training, services.store, services.settings, actor_id, body.options()
        )
        response.status_code = 200
        return plan.to_json()
    run, created = await _trainings(request).start(actor_id, body.options())
    if not created:
        response.status_code = 200
    return run.to_json()


@router.get("/api/actors/{actor_id}/trainings/current")
async def current_training(actor_id: str, request: Request) -> dict[str, Any] | None:
    """The training this server runs (or last ran) for the actor; `null` when none (the actor
    page asks on every load: "none" is an answer, not an error)."""
    run = _trainings(request).get(check_actor_id(actor_id))
    return run.to_json() if run is not None else None


@router.post("/api/actors/{actor_id}/trainings/cancel")
async def cancel_training_route(actor_id: str, services: ServicesDep) -> dict[str, str]:
    """Ask the trainer to cancel the actor's running training. The run that waits on it
    records `canceled` (only the model record changes); 404 when none is running."""
    check_actor_id(actor_id)
    manifest = await asyncio.to_thread(read_manifest, services.store, actor_id)
    record = models.active_model(manifest) if manifest else None
    if record is None or not record.get("training_id"):
        raise NotFoundError(f"actor {actor_id} has no training running")
    trainer = make_trainer(services.settings, str(record.get("trainer")))
    try:
        training_id = await cancel_training(services.store, trainer, actor_id)
    finally:
        await trainer.aclose()
    return {"training_id": training_id, "state": "canceling"}


@router.get("/api/actors/{actor_id}/trainings/events", **sse.ROUTE)
async def training_events(
    actor_id: str,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events of the actor's training: `plan`, `dataset_exported`,
    `training_started` or `training_reattached` (after `training_adopted` for an adopted
    stale start), `progress` (state, 0..1, log tail),
    `weights_stored`, `samples_stored` (or `finish_waiting`: another process finishes it),
    then `training_finished` (the model record) or
    `training_failed` (the error), after which the stream ends. Without `Last-Event-ID`
    the stream starts at the first event the server keeps."""
    run = _trainings(request).get(check_actor_id(actor_id))
    if run is None:
        raise NotFoundError(f"no training of actor {actor_id} in this server")

    async def newer(after: int) -> list[sse.Event]:
        return [e for e in run.events if e[0] > after]

    return sse.respond(
        sse.follow(
            request.is_disconnected,
            newer,
            after=sse.resume_after(last_event_id, 0),
            final={"training_finished", "training_failed"},
            done=lambda: run.done,
        )
    )


@router.get("/api/actors/{actor_id}/models")
async def list_models(actor_id: str, services: ServicesDep) -> list[dict[str, Any]]:
    """Every trained model of the actor with its status, score and sample images (URLs a
    browser can load)."""
    manifest = await asyncio.to_thread(read_manifest, services.store, check_actor_id(actor_id))
    if manifest is None:
        raise NotFoundError(f"unknown actor {actor_id}: it has no manifest")
    good = manifest.data.get("lora_model") or {}
    out = []
    for record in models.models_of(manifest):
        item = {k: v for k, v in record.items() if k not in ("sample_prompts", "sample_seeds")}
        item["is_lora_model"] = bool(good) and good.get("key") == record.get("key")
        item["samples"] = [
            {**s, "url": services.browser_url(s.get("key"))} for s in record.get("samples") or []
        ]
        out.append(item)
    return out


@router.post("/api/actors/{actor_id}/models/{version}/mark-good")
async def mark_good(actor_id: str, version: str, services: ServicesDep) -> dict[str, Any]:
    """Make the model the actor's LoRA: `lora_model` (the old shape) and `lora_model_updated`."""
    check_actor_id(actor_id)
    return await asyncio.to_thread(models.mark_good, services.store, actor_id, version)


@router.post("/api/webhooks/replicate", status_code=204)
async def replicate_webhook(request: Request, services: ServicesDep) -> Response:
    """Replicate's completion webhook, verified with the signing secret (Standard
    Webhooks); a verified one makes the waiting training poll at once. Polling stays the
    source of truth: a lost webhook only costs a poll interval."""
    secret = services.settings.replicate_webhook_secret
    if secret is None:
        raise NotFoundError("webhooks are not configured (ACTOR_MAKER_WEBHOOK_SECRET)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            raise Unauthorized("webhook body too large")
    if not verify_webhook(secret.get_secret_value(), dict(request.headers), body):
        raise Unauthorized("webhook signature is not valid")
    try:
        training_id = str(json.loads(body).get("id") or "")
    except (ValueError, AttributeError):
        training_id = ""
    if training_id:
        _trainings(request).wake(training_id)
    return Response(status_code=204)
