"""train, models list, models mark-good: an actor's LoRA from its dataset (issue 13)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from actor_maker.cli.params import ActorArg, JsonOpt
from actor_maker.cli.state import State
from actor_maker.errors import ExitCode
from actor_maker.manifest import require_manifest
from actor_maker.store import ObjectStore, open_store
from actor_maker.training import models
from actor_maker.training.factory import TRAINERS, make_trainer
from actor_maker.training.flow import TrainingPlan, plan_training, run_training
from actor_maker.training.params import TrainingOptions
from actor_maker.validation import check_actor_id


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Dataset size, parameters, cost and time only.")
        ] = False,
        trainer: Annotated[
            str | None, typer.Option("--trainer", help=f"One of: {', '.join(TRAINERS)}.")
        ] = None,
        steps: Annotated[int | None, typer.Option("--steps", help="100 to 6000.")] = None,
        rank: Annotated[int | None, typer.Option("--rank", help="LoRA rank, 4 to 128.")] = None,
        learning_rate: Annotated[
            float | None, typer.Option("--learning-rate", help="1e-5 to 1e-2.")
        ] = None,
        max_cost: Annotated[
            float | None,
            typer.Option("--max-cost", help="Ceiling in USD for training + samples."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Train the actor's LoRA: export → train → store weights → samples → identity score."""
        state: State = ctx.obj
        store = open_store(state.settings)
        options = TrainingOptions(
            trainer=trainer, steps=steps, rank=rank, learning_rate=learning_rate, max_cost=max_cost
        )
        plan = plan_training(store, state.settings, check_actor_id(actor_id), options)
        if dry_run:
            if as_json:
                print(json.dumps(plan.to_json(), indent=2))
            else:
                _print_plan(state, plan)
            return
        record = train(state, store, plan, as_json=as_json)
        if record.get("status") in ("failed", "canceled"):
            raise typer.Exit(ExitCode.FAILED)

    models_app = typer.Typer(help="An actor's trained LoRA models.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def models_list(ctx: typer.Context, actor_id: ActorArg, as_json: JsonOpt = False) -> None:
        """Every model of the actor with its status and score."""
        state: State = ctx.obj
        manifest = require_manifest(open_store(state.settings), actor_id)
        records = models.models_of(manifest)
        if as_json:
            print(json.dumps(records, indent=2, ensure_ascii=False))
            return
        table = Table(title=f"models of {actor_id}", title_justify="left")
        for column in (
            "version",
            "status",
            "trainer",
            "images",
            "steps",
            "score",
            "cost",
            "created",
        ):
            table.add_column(column)
        for record in records:
            table.add_row(
                str(record.get("version", "-")),
                str(record.get("status", "-")),
                str(record.get("trainer", "-")),
                str(record.get("image_count", "-")),
                str((record.get("params") or {}).get("steps", "-")),
                score_text(record),
                _cost(record),
                str(record.get("created") or record.get("created_date") or "-"),
            )
        state.out.print(table)

    @models_app.command("mark-good")
    def models_mark_good(
        ctx: typer.Context,
        actor_id: ActorArg,
        version: Annotated[str, typer.Argument(help="Model version, e.g. V2.")],
    ) -> None:
        """Make VERSION the actor's LoRA (lora_model, in the old shape)."""
        state: State = ctx.obj
        record = models.mark_good(open_store(state.settings), check_actor_id(actor_id), version)
        state.out.print(f"{actor_id} {version} is the actor's model: {record.get('key')}")


def score_text(record: dict[str, Any]) -> str:
    """``5/6 passed, median 0.31``; or why there is none."""
    score = record.get("score")
    if not isinstance(score, dict):
        return "-"
    if score.get("share") is None:
        return str(score.get("note") or "no score")
    text = f"{score.get('passed')}/{score.get('total')} passed"
    if score.get("median_distance") is not None:
        text += f", median {score['median_distance']:.2f}"
    return text


def _cost(record: dict[str, Any]) -> str:
    cost = record.get("cost") or {}
    if cost.get("actual") is not None:
        return f"${cost['actual']:.2f}"
    return f"~${cost['estimated']:.2f}" if cost.get("estimated") is not None else "-"


def _print_plan(state: State, plan: TrainingPlan) -> None:
    if plan.reattach:
        state.out.print(
            f"{plan.actor_id}: a {plan.trainer} training is running "
            f"({plan.reattach.get('training_id')}, version {plan.version}); "
            "train re-attaches to it"
        )
        return
    left = ", ".join(f"{n} {why}" for why, n in sorted(plan.left_out.items())) or "none"
    minutes = plan.estimated_seconds / 60
    params = plan.params
    for line in (
        f"actor:       {plan.actor_id} ({plan.actor_name}), model {plan.version}",
        f"trainer:     {plan.trainer}",
        f"dataset:     {plan.image_count} images (left out: {left})",
        f"             sha256 {plan.dataset_sha256}",
        f"trigger:     {plan.trigger_word}",
        f"parameters:  {params.steps} steps, rank {params.rank}, "
        f"learning rate {params.learning_rate:g}",
        f"samples:     {len(plan.sample_prompts)}",
        f"estimate:    ${plan.estimated_cost:.2f} (ceiling ${plan.max_cost:.2f}), "
        f"about {minutes:.0f} min",
    ):
        state.out.print(line)


def train(
    state: State,
    store: ObjectStore,
    plan: TrainingPlan,
    *,
    as_json: bool = False,
) -> dict[str, Any]:
    """Run the plan with a progress bar on stderr; prints the final record's summary."""
    settings = state.settings
    trainer = make_trainer(settings, plan.trainer)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=state.err,
        disable=state.quiet or as_json,
    )
    task = progress.add_task(f"training {plan.actor_id} {plan.version}", total=1.0)

    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == "progress":
            progress.update(
                task,
                completed=data.get("progress") or 0.0,
                description=f"{plan.actor_id} {plan.version}: {data.get('state')}",
            )
        elif name in ("training_started", "training_reattached"):
            verb = "started" if name == "training_started" else "re-attached to"
            progress.console.print(f"{verb} training {data['training_id']}")
        elif name == "weights_stored":
            progress.console.print(f"weights stored: {data['key']}")
        elif name == "training_adopted":
            progress.console.print(
                f"adopted training {data['training_id']} (version {data['version']}), which an "
                "interrupted run had started"
            )
        elif name == "finish_waiting":
            progress.console.print(
                f"another process ({data.get('holder')}) is finishing {plan.version}; waiting "
                "for its record"
            )
        elif name == "samples_stored":
            progress.update(task, description=f"{plan.actor_id} {plan.version}: scoring")

    async def run() -> dict[str, Any]:
        try:
            return await run_training(store, settings, trainer, plan, on_event=on_event)
        finally:
            await trainer.aclose()

    with progress:
        record = asyncio.run(run())
    if as_json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        status = record.get("status")
        state.out.print(f"{plan.actor_id} {record.get('version', plan.version)}: {status}")
        if record.get("reason"):
            state.out.print(f"reason:  {record['reason']}")
        if record.get("key"):
            state.out.print(f"weights: {store.location(str(record['key']))}")
            state.out.print(f"score:   {score_text(record)}")
            state.out.print(f"next:    actor-maker models mark-good {plan.actor_id} {plan.version}")
    return record
