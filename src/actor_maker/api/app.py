"""The FastAPI application: ``create_app(settings)`` wires services, middleware and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from actor_maker import __version__, web
from actor_maker.api import errors
from actor_maker.api.actor_index import ActorIndex
from actor_maker.api.auth import BodyLimitMiddleware, TokenMiddleware
from actor_maker.api.browser import BrowserGuard, HostPolicy
from actor_maker.api.routes import (
    actors,
    apidocs,
    compat,
    datasets,
    files,
    jobs,
    meta,
    quality,
    trainings,
)
from actor_maker.api.services import Services
from actor_maker.api.sessions import Sessions
from actor_maker.api.trainings import Trainings
from actor_maker.config import Settings
from actor_maker.fetch import AddressPolicy
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.runner import Runner
from actor_maker.runtime import Runtime
from actor_maker.store import ObjectStore


def create_app(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    records: JobRecords | None = None,
    provider: str | None = None,
    policy: AddressPolicy | None = None,
    runtime: Runtime | None = None,
    bind_host: str | None = None,
) -> FastAPI:
    """``bind_host``: the address the server listens on (it joins the allowed host names)."""
    token = settings.checked_api_token()  # a token too short to resist guessing stops here
    runtime = runtime or Runtime(
        settings, store=store, records=records, provider=provider, policy=policy
    )
    runner: Runner | None = None
    if settings.redis_url:  # distributed mode: records in Redis, items on the queue
        from actor_maker.queue.broker import make_broker
        from actor_maker.queue.dispatch import QueueRunner

        runner = QueueRunner(records=runtime.records, broker=make_broker(settings))
    services = Services(
        runtime=runtime,
        runner=runner,
        sessions=Sessions(token, runtime.store) if token else None,
        index=ActorIndex(
            runtime.store,
            max_age_s=settings.index_max_age_s,
            snapshot=settings.state_dir / "actor-index.json",
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services.sessions is not None:
            await services.sessions.prepare()
        await services.jobs.start()
        try:
            yield
        finally:
            await app.state.trainings.aclose()
            await services.aclose()

    app = FastAPI(
        title="Actor Maker",
        version=__version__,
        summary="LoRA training sets for storyboard actors: actors, prompts, jobs, live progress.",
        lifespan=lifespan,
        docs_url=None,  # apidocs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.state.services = services
    app.state.trainings = Trainings(runtime)
    errors.install(app)

    @app.middleware("http")
    async def changes_refresh_the_actor_list(request: Request, call_next: Any) -> Any:
        """A state-changing request may change an actor: the next listing reads it again
        (or lists the store again when the path names no actor)."""
        response = await call_next(request)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            parts = request.url.path.split("/")
            named = len(parts) > 3 and parts[1:3] == ["api", "actors"] and parts[3]
            services.index.invalidate(parts[3] if named else None)
        return response

    for module in (meta, actors, files, quality, datasets, jobs, trainings, compat, apidocs):
        app.include_router(module.router)
    app.include_router(web.router)  # the web UI's pages
    app.mount(apidocs.ASSETS_URL, StaticFiles(directory=apidocs.ASSETS_DIR), name="apidocs")
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    # The last added runs first: the browser guard (Host, Origin, security headers); then
    # CORS answers preflights (which carry no token) and puts its headers on every answer,
    # 401s included; then the token; then body limits.
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_body_bytes,
        upload_limit=settings.max_image_bytes + 64 * 1024,
    )
    app.add_middleware(TokenMiddleware, sessions=services.sessions)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Prefer", "Last-Event-ID"],
            expose_headers=["Link", "X-Total-Count", "Location", "Retry-After"],
        )
    app.add_middleware(
        BrowserGuard,
        hosts=HostPolicy(settings.allowed_hosts, bind_host),
        cors_origins=settings.cors_origins,
    )
    return app
