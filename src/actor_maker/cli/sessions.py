"""``actor-maker sessions revoke``: end every browser session of the API."""

from __future__ import annotations

import typer

from actor_maker.cli.state import State
from actor_maker.store import open_store


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Browser sessions of the HTTP API.", no_args_is_help=True)
    app.add_typer(group, name="sessions")

    @group.command("revoke")
    def revoke_cmd(ctx: typer.Context) -> None:
        """Sign out every browser: rotate the session key's salt in the store. Running
        servers refuse old cookies within seconds; API tokens keep working."""
        from actor_maker.api.sessions import rotate_salt  # the API's imports only when needed

        state: State = ctx.obj
        rotate_salt(open_store(state.settings))
        state.info("Every session cookie issued so far is revoked.")
