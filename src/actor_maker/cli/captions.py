"""captions show, generate, set, replace and trigger: the training captions of an actor."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from actor_maker import captions
from actor_maker.cli.params import ActorArg, FilenameArg, JsonOpt
from actor_maker.cli.state import State
from actor_maker.manifest import require_manifest
from actor_maker.store import open_store


def register(app: typer.Typer) -> None:
    """Add the ``captions`` group to ``app``."""
    captions_app = typer.Typer(
        help="Training captions: trigger word, class word and scene, per image.",
        no_args_is_help=True,
    )

    @captions_app.command("show")
    def show_cmd(ctx: typer.Context, actor_id: ActorArg, as_json: JsonOpt = False) -> None:
        """Show the trigger word, class word and every image's caption."""
        state: State = ctx.obj
        manifest = require_manifest(open_store(state.settings), actor_id)
        rows = [
            {"filename": str(e["filename"]), "caption": e.get("caption")}
            for e in manifest.training_data
        ]
        trigger, noun = captions.trigger_word(manifest), captions.class_word(manifest)
        if as_json:
            body = {"actor_id": actor_id, "trigger_word": trigger, "class_word": noun}
            print(json.dumps({**body, "captions": rows}, indent=2, ensure_ascii=False))
            return
        missing = sum(1 for r in rows if not r["caption"])
        table = Table(
            title=f"actor {actor_id} · trigger {trigger} · class {noun} · "
            f"{len(rows)} image(s), {missing} without a caption",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
        )
        table.add_column("filename", no_wrap=True)
        table.add_column("caption", overflow="fold")
        for row in rows:
            caption = Text(str(row["caption"])) if row["caption"] else Text("—", style="dim")
            table.add_row(Text(str(row["filename"])), caption)
        state.out.print(table)

    @captions_app.command("generate")
    def generate_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        regenerate: Annotated[
            bool, typer.Option("--regenerate", help="Rewrite every caption, edited ones too.")
        ] = False,
    ) -> None:
        """Write captions from the prompts for images that have none (or, with
        --regenerate, for all)."""
        state: State = ctx.obj
        store = open_store(state.settings)
        changed = captions.generate_captions(store, actor_id, regenerate=regenerate)
        state.out.print(f"{changed} caption(s) written")

    @captions_app.command("set")
    def set_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        filename: FilenameArg,
        text: Annotated[str, typer.Argument(help="The caption (one line).")],
    ) -> None:
        """Set one image's caption by hand."""
        state: State = ctx.obj
        warnings: list[str] = []
        store = open_store(state.settings)
        entry = captions.set_caption(store, actor_id, filename, text, warnings=warnings)
        state.out.print(f"{filename}: {entry['caption']}", markup=False)
        _warn(state, warnings)

    @captions_app.command("replace")
    def replace_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        find: Annotated[str, typer.Argument(help="Text (or with --regex, a pattern) to find.")],
        replace: Annotated[str, typer.Argument(help="Replacement (\\1 groups with --regex).")],
        regex: Annotated[
            bool,
            typer.Option(
                "--regex", help="FIND is an RE2 regular expression (no backreferences/lookaround)."
            ),
        ] = False,
    ) -> None:
        """Find and replace in every caption of the actor, in one manifest update."""
        state: State = ctx.obj
        store = open_store(state.settings)
        warnings: list[str] = []
        changed = captions.replace_in_captions(
            store, actor_id, find, replace, regex=regex, warnings=warnings
        )
        state.out.print(f"{changed} caption(s) changed")
        _warn(state, warnings)

    @captions_app.command("trigger")
    def trigger_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        word: Annotated[str, typer.Argument(help="3-32 lower-case letters and digits.")],
    ) -> None:
        """Set the actor's trigger word; captions opening with the old one get the new one."""
        state: State = ctx.obj
        stored = captions.set_trigger_word(open_store(state.settings), actor_id, word)
        state.out.print(f"trigger word: {stored}")

    app.add_typer(captions_app, name="captions")


def _warn(state: State, warnings: list[str]) -> None:
    for line in warnings:
        state.err.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
