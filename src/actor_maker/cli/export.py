"""export: an actor's usable images and captions as a LoRA trainer's dataset."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from actor_maker.cli.params import (
    ActorOrAllArg,
    AllActorsOpt,
    JsonOpt,
    check_one_or_all,
    chosen_actors,
)
from actor_maker.cli.state import State
from actor_maker.errors import ExitCode, InputError
from actor_maker.export import FORMATS, ExportReport, export
from actor_maker.store import open_store


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        ctx: typer.Context,
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
        out: Annotated[
            str,
            typer.Option("--out", "-o", help="A directory, a .zip path or s3://bucket/prefix/."),
        ],
        actor_id: ActorOrAllArg = None,
        all_actors: AllActorsOpt = False,
        include_review: Annotated[
            bool, typer.Option("--include-review", help="Also images awaiting review.")
        ] = False,
        good_only: Annotated[
            bool, typer.Option("--good-only", help="Only images marked good.")
        ] = False,
        repeats: Annotated[
            int, typer.Option("--repeats", help="kohya: times each image is seen per epoch.")
        ] = 10,
        shuffle_caption: Annotated[
            bool,
            typer.Option(
                "--shuffle-caption",
                help="kohya: shuffle caption tokens (not with --cache_text_encoder_outputs).",
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Export usable images with captions for kohya sd-scripts, ai-toolkit or Replicate."""
        state: State = ctx.obj
        check_one_or_all(actor_id, all_actors)
        if fmt not in FORMATS:
            raise InputError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
        if not out:
            raise InputError("--out: give a directory, a .zip path or s3://bucket/prefix/")
        store = open_store(state.settings)
        ids = chosen_actors(store, actor_id, all_actors)
        if not ids:
            raise InputError("no actors in the store")
        report = export(
            store,
            ids,
            fmt=fmt,
            out=out,
            settings=state.settings,
            include_review=include_review,
            good_only=good_only,
            repeats=repeats,
            skip_unreadable=all_actors,
            shuffle_caption=shuffle_caption,
        )
        if as_json:
            print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        else:
            _print(state, report)
        if report.failed:
            raise typer.Exit(ExitCode.FAILED)


def _print(state: State, report: ExportReport) -> None:
    table = Table(title=f"{report.format} export → {report.out}", title_justify="left")
    for column in ("actor", "images", "per category", "left out", "trigger word", "where"):
        table.add_column(column, overflow="fold")
    for actor in report.actors:
        table.add_row(
            actor.actor_id,
            str(actor.images),
            ", ".join(f"{k} {n}" for k, n in sorted(actor.counts.items())) or "-",
            str(len(actor.skipped)),
            actor.trigger_word,
            actor.location,
        )
    state.out.print(table)
    for actor_id, why in report.unreadable.items():
        state.err.print(f"[yellow]skipped[/yellow] {actor_id}: {why}")
    for actor in report.actors:
        for skipped in actor.skipped:
            if skipped.failed:
                state.err.print(
                    f"[red]✗[/red] {actor.actor_id} {skipped.filename}: {skipped.reason}"
                )
    state.out.print(f"{report.files_written} file(s) written")
    if report.format == "replicate-zip":
        for actor in report.actors:
            state.out.print(f"trigger_word for {actor.actor_id}: {actor.trigger_word}")
