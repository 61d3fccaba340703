"""The FastAPI application: ``create_app(runtime)`` wires services, middleware and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from actor_maker import __version__, web
from actor_maker.api import errors
from actor_maker.api.actor_index import ActorIndex, ChangesRefreshIndex
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
from actor_maker.jobs.runner import JobRunner, Runner
from actor_maker.runtime import Runtime


def create_app(runtime: Runtime, *, bind_host: str | None = None) -> FastAPI:
    """The application over ``runtime`` (the process's store, records and pipelines; the
    application closes it when it stops). ``bind_host``: the address the server listens on
    (it joins the allowed host names)."""
    settings = runtime.settings
    token = settings.checked_api_token()  # a token too short to resist guessing stops here
    services = Services(
        runtime=runtime,
        jobs=_runner(runtime),
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

    for module in (meta, actors, files, quality, datasets, jobs, trainings, compat, apidocs):
        app.include_router(module.router)
    app.include_router(web.router)  # the web UI's pages
    app.mount(apidocs.ASSETS_URL, StaticFiles(directory=apidocs.ASSETS_DIR), name="apidocs")
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    # The last added runs first: the browser guard (Host, Origin, security headers); then
    # CORS answers preflights (which carry no token) and puts its headers on every answer,
    # 401s included; then the token; then body limits; then the actor list's refresh.
    app.add_middleware(ChangesRefreshIndex, index=services.index)
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


def _runner(runtime: Runtime) -> Runner:
    """Where jobs run: on the queue's workers when one is configured (records in Redis),
    else in this process."""
    settings = runtime.settings
    if settings.redis_url:
        from actor_maker.queue.broker import make_broker
        from actor_maker.queue.dispatch import QueueRunner

        return QueueRunner(records=runtime.records, broker=make_broker(settings))
    return JobRunner(
        records=runtime.records,
        pipelines=runtime.pipeline,
        lease_ttl_s=settings.job_lease_s,
        watch_interval_s=max(0.5, settings.job_lease_s / 3),
    )
