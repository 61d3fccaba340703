"""check and review: the quality checks on demand, and a person's override."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from actor_maker.actors import delete_previews
from actor_maker.cli.params import (
    ActorArg,
    ActorOrAllArg,
    AllActorsOpt,
    FilenameArg,
    JsonOpt,
    chosen_actors,
)
from actor_maker.cli.state import State
from actor_maker.errors import InputError
from actor_maker.quality import effective_verdict
from actor_maker.quality.review import recheck, set_override, summary
from actor_maker.runtime import make_checker
from actor_maker.store import open_store


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check_cmd(ctx: typer.Context, actor_id: ActorArg, as_json: JsonOpt = False) -> None:
        """Run the quality checks again on every image of an actor (overrides stay)."""
        state: State = ctx.obj
        store = open_store(state.settings)
        checker = make_checker(state.settings.model_copy(update={"checks": True}))
        assert checker is not None
        entries = recheck(store, actor_id, checker)
        if as_json:
            print(
                json.dumps([{"filename": e["filename"], **e["quality"]} for e in entries], indent=2)
            )
            return
        table = Table(title=f"{len(entries)} image(s) checked", title_justify="left")
        for column in ("filename", "verdict", "reasons"):
            table.add_column(column, overflow="fold")
        for entry in entries:
            quality = entry["quality"]
            table.add_row(
                entry["filename"], str(effective_verdict(entry)), "; ".join(quality["reasons"])
            )
        state.out.print(table)
        counts = summary(entries)
        state.out.print(", ".join(f"{n} {k}" for k, n in counts.items() if n))
        if not checker.identity_enabled and state.settings.identity_check:
            state.err.print("note: identity not checked: pip install 'actor-maker\\[quality]'")

    @app.command("review")
    def review_cmd(
        ctx: typer.Context,
        actor_id: ActorArg,
        filename: FilenameArg,
        approve: Annotated[
            bool, typer.Option("--approve", help="Count it, whatever the checks said.")
        ] = False,
        reject: Annotated[bool, typer.Option("--reject", help="Do not count it.")] = False,
        clear: Annotated[
            bool, typer.Option("--clear", help="Back to the checks' verdict.")
        ] = False,
    ) -> None:
        """Approve or reject one image by hand (recorded with time and interface)."""
        state: State = ctx.obj
        if approve + reject + clear != 1:
            raise InputError("choose exactly one of --approve, --reject, --clear")
        verdict = "accepted" if approve else "rejected" if reject else None
        entry = set_override(open_store(state.settings), actor_id, filename, verdict, via="cli")
        state.out.print(f"{filename}: {effective_verdict(entry) or 'unchecked'}")

    @app.command("clean-previews")
    def clean_previews_cmd(
        ctx: typer.Context,
        actor_id: ActorOrAllArg = None,
        all_actors: AllActorsOpt = False,
    ) -> None:
        """Move preview placeholder images (never training data) to the trash."""
        state: State = ctx.obj
        store = open_store(state.settings)
        ids = chosen_actors(store, actor_id, all_actors)
        moved = 0
        for one in ids:
            record = delete_previews(store, one, via="cli")
            if record is None:
                state.info(f"{one}: no preview images")
                continue
            moved += len(record.entries)
            state.out.print(
                f"{one}: {len(record.entries)} preview image(s) moved to the trash "
                f"(trash id {record.trash_id})"
            )
        state.out.print(f"{moved} preview image(s) moved in all")
