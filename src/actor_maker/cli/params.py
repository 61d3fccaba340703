"""Arguments and options several commands share, declared once so that a flag reads the
same (name, help, type) wherever it appears; and the small steps their bodies share.

A command uses them as ``actor_id: ActorArg`` or ``as_json: JsonOpt = False``; the default
stays at the command, as Typer wants it for ``Annotated`` parameters.
"""

from __future__ import annotations

from typing import Annotated

import typer

from actor_maker.errors import InputError
from actor_maker.layout import actor_ids
from actor_maker.store import ObjectStore
from actor_maker.validation import check_actor_id

ActorArg = Annotated[str, typer.Argument(help="Actor id, e.g. 0012.")]
ActorOrAllArg = Annotated[
    str | None, typer.Argument(help="Actor id, e.g. 0012 (or --all).", show_default=False)
]
AllActorsOpt = Annotated[bool, typer.Option("--all", help="Every actor in the store.")]
FilenameArg = Annotated[str, typer.Argument(help="Training image filename.")]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
OnlyOpt = Annotated[str | None, typer.Option("--only", help="Comma-separated prompt ids.")]
ProviderOpt = Annotated[
    str | None, typer.Option("--provider", help="replicate or preview (default from settings).")
]


def prompt_ids(only: str | None) -> list[str] | None:
    """``--only a, b,`` as ``["a", "b"]``; None when the option is not given (or empty)."""
    return [p.strip() for p in only.split(",") if p.strip()] if only else None


def check_one_or_all(actor_id: str | None, all_actors: bool) -> None:
    """Refuse both an actor id and ``--all``, or neither (exit 2)."""
    if (actor_id is None) == (not all_actors):
        raise InputError("give one actor id, or --all")


def chosen_actors(store: ObjectStore, actor_id: str | None, all_actors: bool) -> list[str]:
    """The actor ids an ``ACTOR_ID | --all`` command works on: the one named (checked), or
    every actor in the store."""
    check_one_or_all(actor_id, all_actors)
    return actor_ids(store) if all_actors else [check_actor_id(str(actor_id))]
