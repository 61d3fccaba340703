"""The HTTP API: FastAPI application, routes, Server-Sent Events."""

from actor_maker.api.app import create_app

__all__ = ["create_app"]
