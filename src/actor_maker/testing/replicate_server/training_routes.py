"""The stand-in's routes for trainings, models and the webhook secret (see :mod:`.trainings`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from actor_maker.testing.replicate_server.common import page, problem
from actor_maker.testing.replicate_server.trainings import InputProblem

if TYPE_CHECKING:
    from actor_maker.testing.replicate_server.server import _Handler


def route(handler: _Handler, method: str, rest: list[str], body: bytes) -> bool:
    """Answer ``/v1/{rest}`` when it is a trainings/models/webhooks route; False otherwise."""
    book = handler.stand_in.book
    if (
        method == "POST"
        and len(rest) == 6
        and rest[0] == "models"
        and rest[3] == "versions"
        and rest[5] == "trainings"
    ):
        _create_training(handler, f"{rest[1]}/{rest[2]}", rest[4], body)
    elif method == "GET" and rest == ["trainings"]:
        handler._json(200, page(book.list_views()))
    elif method == "GET" and len(rest) == 2 and rest[0] == "trainings":
        training = book.get(rest[1])
        handler._found(None if training is None else book.view(training))
    elif method == "POST" and len(rest) == 3 and rest[0] == "trainings" and rest[2] == "cancel":
        handler._found(book.cancel(rest[1]))
    elif method == "GET" and len(rest) == 3 and rest[0] == "models":
        model = book.model_view(f"{rest[1]}/{rest[2]}")
        if model is None:
            handler._not_found(f"Model {rest[1]}/{rest[2]} not found.")
        else:
            handler._json(200, model)
    elif method == "POST" and rest == ["models"]:
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            payload = None
        status, answer = book.create_model(payload)
        if status >= 400:
            answer = problem(status, "Model not created", str(answer["detail"]))
        handler._json(status, answer)
    elif method == "GET" and rest == ["webhooks", "default", "secret"]:
        handler._json(200, {"key": book.webhooks.secret})
    else:
        return False
    return True


def _create_training(handler: _Handler, model: str, version: str, body: bytes) -> None:
    if handler._answered_by_fault():
        return
    book = handler.stand_in.book
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        handler._json(400, problem(400, "Bad request", "The request body is not valid JSON."))
        return
    try:
        training = book.create(model, version, payload)
    except InputProblem as exc:
        extra = {"invalid_fields": exc.fields} if exc.fields else {}
        handler._json(exc.status, problem(exc.status, exc.title, exc.detail, **extra))
        return
    if handler.stand_in._lose_answer():
        handler._hang_up()
        return
    handler._delay(handler.stand_in.faults.slow_create)
    handler._json(201, book.view(training))


def weights_file(handler: _Handler, parts: list[str]) -> None:
    """``GET /files/weights/{id}/trained_model.tar``: no auth, like replicate.delivery."""
    data = handler.stand_in.book.weights_tar(parts[0]) if len(parts) == 2 else None
    if data is None:
        handler._not_found("The output file does not exist or has expired.")
        return
    handler._send(200, data, "application/x-tar", {"Cache-Control": "no-store"})
