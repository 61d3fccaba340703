"""prompts, manifest, import-legacy, doctor and demo."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from actor_maker import prompts as prompt_lib
from actor_maker.actors import ensure_manifest
from actor_maker.cli.generate import build, execute
from actor_maker.cli.params import ActorArg, JsonOpt
from actor_maker.cli.state import State
from actor_maker.demo import DEMO_ACTOR, DEMO_DESCRIPTION, DEMO_OUTFIT, demo_base_image
from actor_maker.doctor import run_checks
from actor_maker.errors import ExitCode
from actor_maker.jobs.models import DEDUPE_ALL
from actor_maker.layout import index_of, manifest_key, training_prefix
from actor_maker.legacy import import_legacy
from actor_maker.manifest import (
    Entry,
    new_manifest,
    require_manifest,
)
from actor_maker.quality import effective_verdict, is_preview
from actor_maker.store import ObjectStore, open_store

prompts_app = typer.Typer(help="The scene prompt library.", no_args_is_help=True)
manifest_app = typer.Typer(help="Actor manifests in the store.", no_args_is_help=True)


@prompts_app.command("list")
def prompts_list(
    ctx: typer.Context,
    actor_type: Annotated[
        str, typer.Argument(help="Actor type the prompts are rendered for.")
    ] = "person",
    actor_sex: Annotated[str | None, typer.Argument(help="male, female, or omitted.")] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="photoreal, bw_stylized or color_stylized.")
    ] = None,
    prompts: Annotated[
        Path | None,
        typer.Option("--prompts", help="A prompt library file instead of the built-in one."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the library's prompts, rendered for an actor type and sex."""
    state: State = ctx.obj
    templates = prompt_lib.load_library(prompts)
    if category:
        if category not in prompt_lib.CATEGORIES:
            raise typer.BadParameter(
                f"choose one of {', '.join(prompt_lib.CATEGORIES)}", param_hint="--category"
            )
        templates = [t for t in templates if t.category == category]
    rendered = prompt_lib.render_all(templates, actor_type=actor_type, actor_sex=actor_sex)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": p.id,
                        "category": p.category,
                        "face_visible": p.face_visible,
                        "prompt": p.text,
                    }
                    for p in rendered
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"{len(rendered)} prompts", title_justify="left")
    for column in ("id", "category", "prompt"):
        table.add_column(column, overflow="fold")
    for p in rendered:
        table.add_row(p.id, p.category, p.text)
    state.out.print(table)


@manifest_app.command("show")
def manifest_show(
    ctx: typer.Context,
    actor_id: ActorArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as stored.")] = False,
) -> None:
    """Show an actor's manifest: identity, base image and training entries."""
    state: State = ctx.obj
    store = open_store(state.settings)
    manifest = require_manifest(store, actor_id)
    if as_json:
        print(json.dumps(manifest.data, indent=2, ensure_ascii=False))
        return
    out = state.out
    out.print(
        f"[bold]{manifest.actor_id}[/bold] {manifest.actor_name} · {manifest.actor_type}"
        f"{' · ' + manifest.actor_sex if manifest.actor_sex else ''}"
    )
    out.print(f"manifest: {manifest_key(actor_id)} in {store.description}")
    for base in manifest.base_images:
        out.print(f"base image: {base.get('s3_url') or base.get('key') or base.get('filename')}")
    table = Table(title=f"{len(manifest.training_data)} training images", title_justify="left")
    for column in ("filename", "prompt id", "category", "status", "size", "quality"):
        table.add_column(column, overflow="fold")
    for entry in _in_index_order(manifest.training_data):
        table.add_row(
            str(entry.get("filename")),
            str(entry.get("prompt_id") or "-"),
            str(entry.get("category") or "-"),
            str(entry.get("status")),
            f"{entry.get('size_mb', '?')} MB",
            _quality(entry),
        )
    # Piped: rows at their natural width, one line each (a pipe has no width to fit).
    (out if out.is_terminal else Console(width=PIPED_WIDTH, soft_wrap=True)).print(table)


#: The width tables get when stdout is not a terminal: wide enough never to wrap a row.
PIPED_WIDTH = 10_000


def _in_index_order(entries: list[Entry]) -> list[Entry]:
    """Entries by their filename's index (``name_7.jpg`` before ``name_10.jpg``); entries
    without one keep their manifest order, after the others."""

    def position(entry: Entry) -> tuple[int, int]:
        index = index_of(str(entry.get("filename") or ""))
        return (0, index) if index is not None else (1, 0)

    return sorted(entries, key=position)


def register(app: typer.Typer) -> None:
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(manifest_app, name="manifest")

    @app.command("import-legacy")
    def import_legacy_cmd(
        ctx: typer.Context,
        manifests_dir: Annotated[
            Path, typer.Argument(help="The old system's actor_manifests directory.")
        ],
        prompt_metadata: Annotated[
            Path | None,
            typer.Option(
                "--prompt-metadata",
                help="The old data/actors directory with prompt_metadata.json files.",
            ),
        ] = None,
    ) -> None:
        """Copy the old system's manifests into the store and fold in their prompts."""
        state: State = ctx.obj
        store = open_store(state.settings)
        report = import_legacy(store, manifests_dir, prompt_metadata)
        state.out.print(
            f"{len(report.created)} manifest(s) imported, {len(report.existing)} already in "
            f"{store.description}, prompts filled in for "
            f"{sum(report.prompts_added.values())} image(s)"
        )
        for actor_id, count in sorted(report.prompts_added.items()):
            state.info(f"  {actor_id}: {count} prompt(s) added")
        for error in report.errors:
            state.err.print(f"[red]error:[/red] {error}")
        if report.errors:
            raise typer.Exit(ExitCode.FAILED)

    @app.command("doctor")
    def doctor_cmd(ctx: typer.Context) -> None:
        """Check the store, the provider token, request slots and Redis."""
        state: State = ctx.obj
        checks = run_checks(state.settings)
        for check in checks:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            state.out.print(f"{mark} {check.name}: {check.detail}")
        if not all(c.ok for c in checks):
            raise typer.Exit(ExitCode.USAGE)

    @app.command("demo")
    def demo_cmd(
        ctx: typer.Context,
        provider: Annotated[
            str,
            typer.Option("--provider", help="preview (offline, free) or replicate (spends money)."),
        ] = "preview",
        train_lora: Annotated[
            bool,
            typer.Option(
                "--train", help="Then train its LoRA with the offline preview trainer (free)."
            ),
        ] = False,
    ) -> None:
        """Create a sample actor from a bundled public-domain portrait and generate its set."""
        state: State = ctx.obj
        pipeline = build(state, provider, None)
        actor = DEMO_ACTOR
        # created first, with the texts its prompts are rendered with
        demo = new_manifest(**asdict(actor), description=DEMO_DESCRIPTION, outfit=DEMO_OUTFIT)
        ensure_manifest(pipeline.store, demo)
        plan = pipeline.plan_all(actor)
        state.info(
            f"demo actor {actor.actor_id} ({actor.actor_name}): "
            "NASA portrait of Eileen Collins, public domain"
        )
        try:
            execute(state, pipeline, plan, demo_base_image(), dedupe_key=DEDUPE_ALL)
            if train_lora:
                _demo_train(state, pipeline.store, actor.actor_id)
        finally:
            store = pipeline.store
            state.out.print(f"images:   {store.location(training_prefix(actor.actor_name))}")
            state.out.print(f"manifest: {store.location(manifest_key(actor.actor_id))}")
            state.out.print(f"try:      actor-maker manifest show {actor.actor_id}")


def _demo_train(state: State, store: ObjectStore, actor_id: str) -> None:
    """The whole loop offline: the preview trainer learns nothing and charges nothing."""
    from actor_maker.cli.train import train
    from actor_maker.training.flow import plan_training
    from actor_maker.training.params import TrainingOptions

    plan = plan_training(store, state.settings, actor_id, TrainingOptions(trainer="preview"))
    state.info(f"training {actor_id} {plan.version} with the preview trainer (offline)")
    train(state, store, plan)


def _quality(entry: dict[str, Any]) -> str:
    """The verdict, with the reasons of a rejection and who overrode the checks."""
    if is_preview(entry):
        return "preview"  # rejected: a placeholder, never training data
    verdict = effective_verdict(entry)
    if verdict is None:
        return "-"
    quality = entry["quality"]
    override = quality.get("override")
    if override:
        return f"{verdict} (by hand, {override.get('via')})"
    reasons = "; ".join(quality.get("reasons") or [])
    return f"{verdict}: {reasons}" if reasons and verdict != "accepted" else verdict
