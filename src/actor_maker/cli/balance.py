"""balance: an actor's usable images per category against a target, and --fill."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from actor_maker.balance import (
    DEFAULT_SIZE,
    DEFAULT_TARGET,
    OTHER,
    BalanceReport,
    Target,
    fill_items,
    library_prompts,
    parse_mix,
    report,
)
from actor_maker.cli.generate import build, execute
from actor_maker.cli.params import ActorArg
from actor_maker.cli.run_options import RunOptions, run_options
from actor_maker.cli.state import State
from actor_maker.errors import InputError
from actor_maker.jobs.models import DEDUPE_BALANCE, JobKind
from actor_maker.layout import base_key
from actor_maker.manifest import Manifest, require_manifest
from actor_maker.pipeline import Actor, StoredBase
from actor_maker.store.base import ObjectStore


def report_table(found: BalanceReport) -> Table:
    target = found.to_json()["target"]
    table = Table(
        title=f"actor {found.actor_id} · target {target} of {found.target.size}",
        title_justify="left",
    )
    for column in ("category", "usable", "wanted", "missing", "review", "rejected"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for row in found.rows:
        if row.category == OTHER and not (row.usable or row.review or row.rejected):
            continue
        other = row.category == OTHER
        table.add_row(
            row.category,
            str(row.usable),
            "-" if other else str(row.wanted),
            "-" if other else str(row.missing),
            str(row.review),
            str(row.rejected),
        )
    return table


def stored_base(store: ObjectStore, manifest: Manifest) -> StoredBase:
    """The actor's base image in the store, from its manifest (as the API finds it)."""
    key = base_key(store, manifest.base_images)
    if key is not None:
        return StoredBase(key)
    raise InputError(f"actor {manifest.actor_id} has no base image in the store")


def register(app: typer.Typer) -> None:
    @app.command("balance")
    @run_options("dry_run", "max_cost", "as_json", "provider")
    def balance_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        target: Annotated[
            str,
            typer.Option(
                "--target", help="Percentages photoreal/bw_stylized/color_stylized, adding to 100."
            ),
        ] = DEFAULT_TARGET,
        size: Annotated[
            int, typer.Option("--size", help="How many usable images the actor should have.")
        ] = DEFAULT_SIZE,
        fill: Annotated[
            bool, typer.Option("--fill", help="Generate what is missing (within --max-cost).")
        ] = False,
        *,
        run: RunOptions,
    ) -> None:
        """Usable images per category against a target mix; --fill generates what is missing."""
        state: State = ctx.obj
        dry_run, as_json = run.dry_run, run.as_json
        goal = Target(size=size, mix=parse_mix(target))
        pipeline = build(state, run.provider, run.model)
        manifest = require_manifest(pipeline.store, actor_id)
        found = report(manifest, goal)
        if not (fill or dry_run):
            if as_json:
                print(json.dumps(found.to_json(), indent=2))
            else:
                state.out.print(report_table(found))
                hint = " (--fill to generate them)" if found.total_missing else ""
                state.out.print(f"{found.total_usable} usable, {found.total_missing} missing{hint}")
            return

        items = fill_items(manifest, found, library_prompts(manifest, pipeline.library))
        if not as_json:
            state.out.print(report_table(found))
        short = found.total_missing - len(items)
        if short:
            planned = {i.category for i in items}
            empty = [c for c, n in found.missing.items() if n and c not in planned]
            state.err.print(
                f"[yellow]warning:[/yellow] {short} image(s) cannot be planned: the prompt "
                f"library has no {', '.join(empty)} prompt"
            )
        if not items:
            if as_json:
                print(json.dumps(found.to_json(), indent=2))
            else:
                state.out.print(f"actor {actor_id} has nothing missing; nothing to do")
            return
        plan = pipeline.plan_items(Actor(actor_id, manifest.actor_name), items, aspect_ratio="1:1")
        base = stored_base(pipeline.store, manifest)
        execute(state, pipeline, plan, base, run, kind=JobKind.custom, dedupe_key=DEDUPE_BALANCE)
