"""generate-all / generate-single: the old scripts' arguments, one job model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from actor_maker.cli.output import ProgressReporter, plan_table, result_table
from actor_maker.cli.params import ActorArg, OnlyOpt, prompt_ids
from actor_maker.cli.run_options import RunOptions, run_options
from actor_maker.cli.state import State
from actor_maker.errors import ExitCode, InputError, InvalidImageError, error_class
from actor_maker.images import MIB
from actor_maker.jobs.models import DEDUPE_ALL, Job, JobKind
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.runner import run_plan
from actor_maker.pipeline import Actor, BaseImage, JobPlan, Pipeline
from actor_maker.providers.preview import NOTICE
from actor_maker.results import all_json, dry_run_json, single_json
from actor_maker.runtime import Runtime, open_records

ActorName = Annotated[str, typer.Argument(help="Actor name, e.g. 0012_european_30_male.")]
BaseImageArg = Annotated[
    str,
    typer.Argument(
        help="Base image: an http(s) URL, s3://bucket/key or the bucket's https URL "
        "(read through the configured store), or a local file path."
    ),
]
ActorType = Annotated[
    str | None,
    typer.Argument(
        help="person, human, creature, robot, anthropomorphic, mythical, character "
        "(default: from the manifest, else person)."
    ),
]
ActorSex = Annotated[
    str | None, typer.Argument(help="male or female (default: from the manifest).")
]


def base_image_ref(value: str, max_bytes: int) -> str | bytes:
    """A local file becomes its bytes; anything with a scheme is a URL for the pipeline."""
    if "://" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise InputError(f"base image {value!r} is neither a readable file nor a URL")
    if path.stat().st_size > max_bytes:
        raise InvalidImageError(f"base image {value} is larger than {max_bytes / MIB:.0f} MB")
    return path.read_bytes()


def build(
    state: State, provider: str | None, model: str | None, prompts_file: Path | None = None
) -> Pipeline:
    return Runtime(state.settings, provider=provider, prompts_file=prompts_file).pipeline(model)


def execute(
    state: State,
    pipeline: Pipeline,
    plan: JobPlan,
    base: str | BaseImage,
    run: RunOptions | None = None,
    *,
    single: bool = False,
    kind: JobKind = JobKind.all,
    dedupe_key: str | None = None,
) -> Job | None:
    """Check, then record the plan as a job and run it here with a progress bar; the job id
    works with ``actor-maker jobs watch``. Exit 1 when items failed. ``run`` gives
    --dry-run, --max-cost, --seed and --json (the plan already holds the rest)."""
    run = run or RunOptions()
    as_json, max_cost = run.as_json, run.max_cost
    ref = base_image_ref(base, state.settings.max_image_bytes) if isinstance(base, str) else base
    pipeline.check_base_image_ref(ref)
    pipeline.check_budget(plan, state.settings.max_job_cost if max_cost is None else max_cost)
    if run.dry_run:
        if as_json:
            print(json.dumps(dry_run_json(plan), indent=2))
        else:
            state.out.print(plan_table(plan))
            state.out.print(
                f"{len(plan.items)} image(s), estimated ${plan.estimated_cost:.2f} "
                f"with {plan.model}; "
                f"{len(plan.already_done)} prompt(s) already done. Nothing was generated."
            )
        return None
    if not plan.items:
        state.info(
            f"actor {plan.actor.actor_id} already has every prompt; nothing to do (--force to redo)"
        )
        if as_json:
            print(json.dumps(all_json(plan.to_job(provider=pipeline.provider.name)), indent=2))
        else:
            state.out.print(f"0 stored, 0 failed, {len(plan.already_done)} already present")
        return None
    if pipeline.provider.placeholder:
        state.err.print(f"[yellow]note:[/yellow] {NOTICE}")
    reporter = ProgressReporter(state.err, len(plan.items), enabled=not (state.quiet or as_json))
    records = open_records(state.settings)
    with reporter:
        job = asyncio.run(
            _run(records, pipeline, plan, ref, run.seed, reporter, kind=kind, dedupe_key=dedupe_key)
        )
    if as_json:
        print(json.dumps(single_json(job) if single else all_json(job), indent=2))
    else:
        if not state.quiet:
            state.out.print(result_table(job, reporter.entries))
        state.out.print(
            f"{job.succeeded} stored, {job.failed} failed, "
            f"{len(plan.already_done)} already present · cost ${job.cost:.2f} · job {job.id}"
        )
    if job.error:
        raise error_class(job.error_type)(job.error)
    if job.failed:
        raise typer.Exit(ExitCode.FAILED)
    return job


async def _run(
    records: JobRecords,
    pipeline: Pipeline,
    plan: JobPlan,
    ref: BaseImage,
    seed: int | None,
    reporter: ProgressReporter,
    *,
    kind: JobKind,
    dedupe_key: str | None,
) -> Job:
    try:
        return await run_plan(
            pipeline,
            plan,
            ref,
            records=records,
            seed=seed,
            kind=kind,
            dedupe_key=dedupe_key,
            on_event=reporter,
            lease_ttl_s=pipeline.settings.job_lease_s,
        )
    finally:
        await pipeline.provider.aclose()
        records.close()


def register(app: typer.Typer) -> None:
    @app.command("generate-all")
    @run_options()
    def generate_all(
        ctx: typer.Context,
        actor_id: ActorArg,
        actor_name: ActorName,
        base_image_url: BaseImageArg,
        actor_type: ActorType = None,
        actor_sex: ActorSex = None,
        only: OnlyOpt = None,
        force: Annotated[
            bool, typer.Option("--force", help="Generate prompts the actor already has again.")
        ] = False,
        prompts: Annotated[
            Path | None,
            typer.Option("--prompts", help="Your own prompt library (JSON, same format)."),
        ] = None,
        *,
        run: RunOptions,
    ) -> None:
        """Generate one image per library prompt the actor's manifest does not have yet."""
        state: State = ctx.obj
        pipeline = build(state, run.provider, run.model, prompts)
        ids = prompt_ids(only)
        actor = Actor(actor_id, actor_name, actor_type, actor_sex)
        plan = pipeline.plan_all(actor, only=ids, force=force, aspect_ratio=run.aspect_ratio)
        kind, dedupe_key = (JobKind.subset, None) if ids else (JobKind.all, DEDUPE_ALL)
        execute(state, pipeline, plan, base_image_url, run, kind=kind, dedupe_key=dedupe_key)

    @app.command("generate-single")
    @run_options()
    def generate_single(
        ctx: typer.Context,
        actor_id: ActorArg,
        actor_name: ActorName,
        base_image_url: BaseImageArg,
        prompt: Annotated[
            str,
            typer.Argument(help="The scene, e.g. 'The man waits on a rainy platform at night'."),
        ],
        actor_type: ActorType = None,
        actor_sex: ActorSex = None,
        *,
        run: RunOptions,
    ) -> None:
        """Generate one image from your own prompt."""
        state: State = ctx.obj
        pipeline = build(state, run.provider, run.model)
        actor = Actor(actor_id, actor_name, actor_type, actor_sex)
        plan = pipeline.plan_single(actor, prompt, aspect_ratio=run.aspect_ratio)
        execute(state, pipeline, plan, base_image_url, run, single=True, kind=JobKind.custom)
