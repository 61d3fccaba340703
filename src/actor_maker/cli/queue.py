"""Distributed mode from the command line: worker, enqueue, jobs list / watch."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from actor_maker.cli.params import AllActorsOpt, JsonOpt, OnlyOpt, ProviderOpt, prompt_ids
from actor_maker.cli.state import State
from actor_maker.config import Settings
from actor_maker.errors import ConfigError, ExitCode, InputError
from actor_maker.jobs.models import DEDUPE_ALL, JobKind, JobState
from actor_maker.layout import BASE_IMAGE_PREFIX, actor_ids, base_key, base_keys
from actor_maker.manifest import Manifest, read_many
from actor_maker.pipeline import Actor, JobPlan, Pipeline
from actor_maker.runtime import Runtime, open_records
from actor_maker.validation import check_actor_id

jobs_app = typer.Typer(
    help="Jobs: list them, watch one (any machine, either mode).", no_args_is_help=True
)


def _need_queue(settings: Settings, what: str) -> None:
    if not settings.redis_url:
        raise ConfigError(
            f"{what} needs ACTOR_MAKER_QUEUE=redis://…; without a queue, use generate-all"
        )


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor's jobs.")] = None,
    state: Annotated[
        list[JobState] | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only jobs in this state: "
            + ", ".join(s.value for s in JobState)
            + ". Repeat for several.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="At most this many jobs (1-1000).")
    ] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Recent jobs, newest first."""
    st: State = ctx.obj
    records = open_records(st.settings)
    jobs = records.list(actor_id=actor, states=state, limit=limit)
    if as_json:
        print(json.dumps([j.model_dump(mode="json") for j in jobs], indent=2))
        return
    table = Table(title=f"{len(jobs)} job(s)", title_justify="left")
    for column in ("id", "actor", "state", "stored", "cost", "created (UTC)"):
        # ids are what people copy into `jobs watch`: never cut (fits 80 columns)
        table.add_column(column, no_wrap=True)
    for job in jobs:
        failed = f", {job.failed} failed" if job.failed else ""
        table.add_row(
            job.id,
            job.actor_id,
            job.state.value,
            f"{job.succeeded}/{job.total}{failed}",
            f"${job.cost:.2f}",
            job.created_at.strftime("%m-%d %H:%M"),
        )
    st.out.print(table)


@jobs_app.command("watch")
def jobs_watch(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    poll: Annotated[float, typer.Option("--poll", help="Seconds between looks.")] = 0.5,
) -> None:
    """Follow a job to its end with a progress bar; exit 0 if every item succeeded, else 1."""
    st: State = ctx.obj
    records = open_records(st.settings)
    job = records.get(job_id)
    if job is None:
        raise InputError(f"no job {job_id}")
    seen = 0
    with Progress(
        TextColumn(f"[bold]{job_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=st.err,
        disable=st.quiet,
    ) as bar:
        task = bar.add_task("job", total=job.total, note="")
        while True:
            for event in records.events_since(job_id, seen):
                seen = event.seq
                if event.name == "item_failed":
                    st.err.print(
                        f"[red]✗[/red] {event.data.get('prompt_id')}: {event.data.get('error')}"
                    )
            job = records.get(job_id)
            assert job is not None
            counts = job.counts()
            bar.update(
                task, completed=counts["done"], note=f"{job.state.value}, {job.failed} failed"
            )
            if job.state.finished:
                break
            time.sleep(poll)
    st.out.print(
        f"{job_id}: {job.state.value} · {job.succeeded}/{job.total} stored · ${job.cost:.2f}"
    )
    if job.state != JobState.succeeded:
        raise typer.Exit(ExitCode.FAILED)


#: How many skipped actors ``enqueue`` names before it only counts them.
SKIPPED_SHOWN = 20


def _plans(
    pipeline: Pipeline, ids: list[str], only: list[str] | None
) -> tuple[list[tuple[JobPlan, str]], list[str]]:
    """Each actor's plan and base image key, read and planned 32 at a time (10,000 actors
    are 10,000 manifest reads and base image checks), each manifest read once. Named actors
    must all be readable; with ``--all`` an unreadable one is skipped. Returns the plans
    with something to do, and the skipped actors with why."""
    store = pipeline.store
    for actor_id in ids:
        check_actor_id(actor_id)
    manifests, unreadable = read_many(store, ids or actor_ids(store), workers=32)
    if ids and unreadable:
        raise InputError("; ".join(list(unreadable.values())[:10]))

    # One listing of the base images instead of a HEAD per actor (10,000 actors: 10 LIST
    # requests on S3 rather than 10,000 HEADs).
    stored = {o.key for o in store.list(BASE_IMAGE_PREFIX)} if len(manifests) > 50 else None

    def plan_one(manifest: Manifest) -> tuple[JobPlan, str] | str:
        key = (
            base_key(store, manifest.base_images)
            if stored is None
            else next((k for k in base_keys(store, manifest.base_images) if k in stored), None)
        )
        if key is None:
            return f"{manifest.actor_id} (no base image in the store)"
        actor = Actor(manifest.actor_id, manifest.actor_name)
        return pipeline.plan_all(actor, only=only, manifest=manifest), key

    with ThreadPoolExecutor(32) as pool:
        found = list(pool.map(plan_one, manifests))
    skipped = [f"{i} ({why})" for i, why in unreadable.items()]
    skipped += [f for f in found if isinstance(f, str)]
    return [f for f in found if not isinstance(f, str) and f[0].items], skipped


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")

    @app.command("worker")
    def worker_cmd(
        ctx: typer.Context,
        concurrency: Annotated[
            int,
            typer.Option(
                "--concurrency", min=1, max=256, help="Items this process works on at once."
            ),
        ] = 8,
        provider: ProviderOpt = None,
    ) -> None:
        """Work on queued items (ACTOR_MAKER_QUEUE); run as many as you like, anywhere."""
        st: State = ctx.obj
        _need_queue(st.settings, "worker")
        from actor_maker.queue.worker import run_worker

        st.info(
            f"worker: {concurrency} at a time; global limit {st.settings.max_concurrent_requests} "
            f"requests, {st.settings.create_rate_per_minute} creates/min; Ctrl-C or SIGTERM to stop"
        )
        run_worker(st.settings, concurrency=concurrency, provider=provider)

    @app.command("enqueue")
    def enqueue_cmd(
        ctx: typer.Context,
        actor_ids: Annotated[list[str] | None, typer.Argument(help="Actor ids (or --all).")] = None,
        all_actors: AllActorsOpt = False,
        only: OnlyOpt = None,
        max_cost: Annotated[
            float | None, typer.Option("--max-cost", help="Ceiling for the whole batch (USD).")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show the plan and its cost only.")
        ] = False,
        provider: ProviderOpt = None,
    ) -> None:
        """Queue what each actor is missing; the base image comes from its manifest."""
        st: State = ctx.obj
        settings = st.settings
        if bool(actor_ids) == all_actors:
            raise InputError("give actor ids or --all (not both)")
        pipeline = Runtime(settings, provider=provider).pipeline()
        ids = prompt_ids(only)
        plans, skipped = _plans(pipeline, list(actor_ids or []), ids)
        total = round(sum(p.estimated_cost for p, _ in plans), 4)
        images = sum(len(p.items) for p, _ in plans)
        ceiling = settings.max_job_cost if max_cost is None else max_cost
        st.out.print(
            f"{len(plans)} actor(s), {images} image(s), estimated ${total:.2f} "
            f"(ceiling ${ceiling:.2f})"
        )
        for line in skipped[:SKIPPED_SHOWN]:
            st.err.print(f"[yellow]skipped[/yellow] {line}")
        if len(skipped) > SKIPPED_SHOWN:
            st.err.print(f"[yellow]skipped[/yellow] … and {len(skipped) - SKIPPED_SHOWN} more")
        if total > ceiling + 1e-9:
            raise InputError(
                f"estimated ${total:.2f} is over the ceiling ${ceiling:.2f}; raise --max-cost"
            )
        if dry_run or not plans:
            return
        _need_queue(settings, "enqueue")
        kind = JobKind.subset if ids else JobKind.all
        queued = asyncio.run(_submit(settings, plans, pipeline.provider.name, kind))
        images = sum(len(p.items) for p in queued)
        busy = len(plans) - len(queued)
        note = f"; {busy} actor(s) skipped: a job of theirs is already running" if busy else ""
        st.out.print(f"queued {images} image(s) in {len(queued)} job(s){note}")
        st.info("follow with: actor-maker jobs list")


async def _submit(
    settings: Settings, plans: list[tuple[JobPlan, str]], provider: str, kind: JobKind
) -> list[JobPlan]:
    """Queue the plans; returns those queued (actors with a running job are skipped)."""
    from actor_maker.queue.broker import make_broker
    from actor_maker.queue.dispatch import QueueRunner

    records = open_records(settings)
    runner = QueueRunner(records=records, broker=make_broker(settings))
    queued = []
    try:
        for plan, key in plans:
            if await runner.active_job(plan.actor.actor_id) is not None:
                continue  # already being worked on
            _, created = await runner.submit(
                plan.to_job(
                    kind=kind,
                    provider=provider,
                    base_image_key=key,
                    dedupe_key=DEDUPE_ALL if kind == JobKind.all else None,
                    context={"via": "enqueue"},
                )
            )
            if created:
                queued.append(plan)
    finally:
        records.close()
    return queued
