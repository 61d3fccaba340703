"""The old frontend's routes: same paths, request bodies and response shapes.

Generating (generate.py; each request becomes a job through ``Services.start_job``):

- ``POST /api/actors/{actor_id}/training-data/generate-all-prompts`` — every library prompt
  the actor lacks; waits and answers the CLI's ``generate-all --json`` object (200, ``failed``
  counts failed items). With ``Prefer: respond-async``: 202, the job, ``Location``.
- ``POST /api/actors/{actor_id}/training-data/generate-single`` — one prompt; waits and
  answers the CLI's ``generate-single --json`` object.
- ``POST /api/actors/{actor_id}/training-data/recreate`` — a new image for an entry's prompt
  under a new filename, put in the old entry's place; the old object goes to the trash.
- ``POST /api/training-data/generate`` — images for actor ``styleId``; answers the job (201).

Images and flags (images.py):

- ``GET /api/actors/{actor_id}/training-data``
- ``POST /api/actors/{actor_id}/training-data/delete`` and ``…/delete-all`` (to the trash)
- ``POST /api/actors/{actor_id}/training-data/{filename}/toggle-good``,
  ``POST /api/actors/{actor_id}/toggle-good``, ``POST /api/training/training-data/toggle-good``

Prompts (prompts.py):

- ``GET /api/actors/{actor_id}/training-prompts`` (old category names, subject filled in)
- ``GET /api/actors/{actor_id}/prompt-usage``, ``GET /api/actors/{actor_id}/training-data/prompts``

Not part of this server (absent.py): ``POST /api/actors/{actor_id}/regenerate-poster-frame``
and ``POST /api/generate-base-image`` answer 501 problem+json with ``success: false``.

Request bodies are in bodies.py, shared helpers in _common.py, and waiting for a job in
waiting.py. Failures of the three waiting routes are problem+json with the old
``success: false`` and ``error`` added, never HTTP 200. Inputs pass the CLI's checks
(actor_maker.validation).
"""

from __future__ import annotations

from fastapi import APIRouter

from actor_maker.api.routes.compat import absent, generate, images, prompts

router = APIRouter()
for _part in (generate, images, prompts, absent):
    router.include_router(_part.router)

__all__ = ["router"]
