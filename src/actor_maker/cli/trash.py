"""trash list, restore and purge: deleted images and actors, kept until purged."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from actor_maker.cli.output import counted
from actor_maker.cli.state import State
from actor_maker.errors import ExitCode, InputError
from actor_maker.store import open_store
from actor_maker.trash import list_trash, purge, purgeable, restore
from actor_maker.validation import check_actor_id

trash_app = typer.Typer(
    help="Deleted images and actors, kept in the store's trash until purged.",
    no_args_is_help=True,
)


def _on_terminal() -> bool:
    return sys.stdin.isatty()


@trash_app.command("list")
def trash_list(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
) -> None:
    """List what is in the trash, newest first."""
    state: State = ctx.obj
    store = open_store(state.settings)
    records = list_trash(store, actor_id=check_actor_id(actor) if actor else None)
    if as_json:
        print(json.dumps([asdict(r) for r in records], indent=2, ensure_ascii=False))
        return
    table = Table(
        title=f"{len(records)} deletion(s) in the trash",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for column in ("trash id", "actor", "reason", "via", "files", "entries"):
        table.add_column(column, no_wrap=True)
    for r in records:
        table.add_row(
            r.trash_id,
            r.actor_id,
            r.reason,
            r.via,
            str(len(r.objects)),
            str(len(r.entries)),
        )
    state.out.print(table)


@trash_app.command("restore")
def trash_restore(
    ctx: typer.Context,
    trash_id: Annotated[str, typer.Argument(help="A trash id from `trash list`.")],
) -> None:
    """Put a deletion's objects and manifest entries back."""
    state: State = ctx.obj
    store = open_store(state.settings)
    record = restore(store, trash_id)
    state.out.print(
        f"restored {counted(len(record.objects), 'object')} and "
        f"{counted(len(record.entries), 'entry', 'entries')} "
        f"of actor {record.actor_id} ({record.reason})"
    )
    for entry in record.entries:
        state.info(f"  {entry.get('filename')}")


@trash_app.command("purge")
def trash_purge(
    ctx: typer.Context,
    older_than_days: Annotated[
        float, typer.Option("--older-than-days", help="Purge deletions older than this.")
    ] = 30,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete trash older than a number of days for good."""
    state: State = ctx.obj
    if not yes and not _on_terminal():
        raise InputError("trash purge deletes for good: pass --yes when not on a terminal")
    store = open_store(state.settings)
    now = datetime.now(UTC)
    ids = purgeable(store, older_than_days=older_than_days, now=now)
    if not ids:
        state.out.print(f"nothing in the trash is older than {older_than_days:g} day(s)")
        return
    if not yes and not typer.confirm(
        f"delete {len(ids)} deletion(s) older than {older_than_days:g} day(s) for good?"
    ):
        state.out.print("nothing purged")
        raise typer.Exit(ExitCode.FAILED)
    purged = purge(store, older_than_days=older_than_days, now=now)
    state.out.print(f"purged {len(purged)} deletion(s) from the trash")
    for trash_id in purged:
        state.info(f"  {trash_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(trash_app, name="trash")
