"""A local stand-in for Replicate's HTTP API, with injectable faults.

Tests and benchmarks must never call the real Replicate. :class:`ReplicateStandIn` is a real
HTTP server on loopback (``http.server.ThreadingHTTPServer``, one daemon thread per
connection, so dozens of blocking ``Prefer: wait`` creates can be in progress at once) that
speaks the part of Replicate's API an image-editing client needs::

    with ReplicateStandIn(faults=Faults(latency=0.2)) as replicate:
        client = httpx.Client(base_url=replicate.base_url,
                              headers={"Authorization": f"Bearer {replicate.token}"})
        r = client.post("/v1/models/black-forest-labs/flux-kontext-pro/predictions",
                        json={"input": {"prompt": "...", "input_image": "https://..."}},
                        headers={"Prefer": "wait=60"})
        assert r.json()["status"] == "succeeded"
        assert replicate.max_in_flight == 1

Endpoints (all under ``/v1`` need ``Authorization: Bearer <token>``; ``Token <token>`` is
accepted too; otherwise 401 ``{"title": "Unauthenticated", "detail": "You did not pass a valid
authentication token", "status": 401}``):

* ``POST /v1/models/{owner}/{name}/predictions`` with ``{"input": {...}}`` (and
  ``POST /v1/predictions`` with ``"version": "owner/name[:id]"``). 201 with the prediction.
  Without ``Prefer: wait`` the answer comes at once, status ``starting``. With ``Prefer: wait``
  (60 s) or ``Prefer: wait=N`` (N seconds, at most 60; fractions allowed here for fast tests)
  the request blocks until the prediction is terminal or the wait runs out. A wait that runs
  out answers status ``starting`` whatever the prediction is doing, as Replicate does.
* ``GET /v1/predictions/{id}``, ``GET /v1/predictions`` (one page, newest first),
  ``POST /v1/predictions/{id}/cancel`` (200; a finished prediction is returned unchanged).
* ``POST /v1/files`` (multipart, field ``content``; optional ``metadata`` JSON field) → 201
  file object; ``GET /v1/files``, ``GET /v1/files/{id}`` (the file object),
  ``GET /v1/files/{id}/download`` (the bytes), ``DELETE /v1/files/{id}`` (204).
* ``GET /v1/account`` → ``{"type": "user", "username": ...}``.
* ``GET /files/out/{id}.{jpg|png}``: the output image, no auth (like ``replicate.delivery``).
* Anything else: 404 problem JSON. Errors are problem details ``{"title", "detail",
  "status"}``; input validation failures are 422 ``"Input validation failed"`` with
  ``invalid_fields``, as Replicate sends them.

A prediction's life is computed from timestamps, no thread per prediction: ``starting`` at
creation, ``processing`` a short moment later, terminal ``latency`` seconds after creation.
Input is validated like ``flux-kontext-pro``'s schema: ``prompt`` (required, non-empty),
``input_image`` (an ``http(s)`` URL or a base64 ``data:`` URI; never fetched),
``aspect_ratio`` (the model's enum), ``output_format`` (``jpg``/``png``), ``seed`` (integer),
``safety_tolerance`` (0–6), ``prompt_upsampling`` (boolean). The output is one URL of an image
this server renders with Pillow (see :func:`render_placeholder_image`): deterministic per
(prompt, seed, size), different prompts give clearly different pictures.

Faults (:class:`Faults`, mutable between requests; assigning a new ``Faults`` or calling
:meth:`ReplicateStandIn.reset_counters` re-arms the "first N" faults). Create requests meet
them in this order:

* ``drop_connection_first``: the first N creates get no answer; the socket is closed (the
  client sees "server disconnected without sending a response"). No prediction is made.
* ``throttle_first``: the next N creates get 429 with ``Retry-After: <retry_after>`` (an
  integral value is sent as an integer, ``"1"``, as Replicate does; a fraction as ``"0.2"``,
  so clients must parse both) and body ``{"title": "Request was throttled", "detail":
  "Request was throttled. Expected available in 1 second.", "status": 429}``.
* ``server_errors_first``: the next N creates get 500 (problem JSON), 502 (an HTML page, as a
  proxy sends it), 503 (problem JSON), cycling. No prediction is made.
* ``slow_create``: every create answer is delayed this many seconds. The prediction is made
  *before* the delay, so a client that times out and retries makes a second one — as on the
  real service.
* ``latency``: seconds from creation to the terminal status.
* ``wait_cap``: ``Prefer: wait`` is answered after at most this many seconds even if the
  prediction is not done, which forces clients to poll.
* ``processing_with_output``: the Replicate quirk where a create that waited for a finished
  prediction answers status ``processing`` with ``output`` already set (``GET`` then says
  ``succeeded``).
* ``flag_prompts_containing``: predictions whose prompt contains this substring end
  ``failed`` with the E005 error "The input or output was flagged as sensitive. Please try
  again with different inputs. (E005)".
* ``fail_prompts_containing``: … end ``failed`` with a generic model error.
* ``output_ttl``: output URLs answer 404 this many seconds after completion, and the
  prediction then shows ``output: null, data_removed: true``.

* ``lose_answer_first``: the next N creates that pass the faults above are *accepted* (the
  prediction or training exists and is paid for) and then the socket closes unanswered.

Trainings and models (see :mod:`.trainings`): ``POST /v1/models/{owner}/{name}/versions/
{version}/trainings``, ``GET /v1/trainings[/{id}]``, ``POST /v1/trainings/{id}/cancel``,
``GET /v1/models/{owner}/{name}``, ``POST /v1/models``, ``GET /v1/webhooks/default/secret``;
LoRA predictions on ``black-forest-labs/flux-dev-lora`` (``lora_weights``) or on a trained
version return images derived from the training images.

Observations for assertions: ``creates``, ``create_attempts``, ``throttled``,
``server_errors``, ``dropped``, ``lost_answers``, ``canceled``, ``in_flight``,
``max_in_flight`` (exact peak of overlapping [created, terminal) intervals), ``predictions``,
``requests_log``, ``files``, ``trainings_created``, ``models_created``, ``webhook_deliveries``.

The package is split into :mod:`.common`, :mod:`.faults`, :mod:`.inputs`, :mod:`.images`,
:mod:`.state`, :mod:`.runs`, :mod:`.files`, :mod:`.trainings`, :mod:`.webhooks` and
:mod:`.server`.
"""

from __future__ import annotations

from actor_maker.testing.replicate_server.common import parse_prefer_wait as _parse_prefer_wait
from actor_maker.testing.replicate_server.faults import (
    E005_ERROR,
    GENERIC_MODEL_ERROR,
    TRAINING_ERROR,
    Faults,
)
from actor_maker.testing.replicate_server.images import render_placeholder_image
from actor_maker.testing.replicate_server.server import ReplicateStandIn, standin_process
from actor_maker.testing.replicate_server.state import DEFAULT_MODELS
from actor_maker.validation import ASPECT_RATIOS

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_MODELS",
    "E005_ERROR",
    "GENERIC_MODEL_ERROR",
    "TRAINING_ERROR",
    "Faults",
    "ReplicateStandIn",
    "_parse_prefer_wait",
    "render_placeholder_image",
    "standin_process",
]
