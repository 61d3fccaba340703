"""``actor-maker serve``: the HTTP API (and, later, the web UI)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from actor_maker.cli.state import State
from actor_maker.errors import ConfigError


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    ) -> None:
        """Start the HTTP API (OpenAPI docs at /docs). Needs ACTOR_MAKER_API_TOKEN off loopback."""
        state: State = ctx.obj
        settings = state.settings
        token = settings.checked_api_token()  # blank counts as unset; short is refused
        if not _loopback(host) and token is None:
            raise ConfigError(
                f"refusing to listen on {host} without ACTOR_MAKER_API_TOKEN; "
                "set a token or listen on 127.0.0.1"
            )
        import uvicorn

        from actor_maker.api import create_app
        from actor_maker.runtime import Runtime

        state.info(f"Actor Maker API on http://{host}:{port} (docs at /docs)")
        app = create_app(Runtime(settings), bind_host=host)
        uvicorn.run(app, host=host, port=port, log_level="warning")
