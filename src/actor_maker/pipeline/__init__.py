"""The generation pipeline, in three parts:

- ``model``: who a job is for and what it would do (``Actor``, ``JobPlan``, base image refs);
- ``planning``: validation and cost, nothing written or spent;
- ``running``: one item of a recorded job, from the claim to the manifest entry.

``base_image`` fetches and stores a job's base image; ``storing`` holds the create-only
upload's index allocator and the manifest group commit. Jobs themselves are
``jobs.models.Job``; ``jobs.executor`` runs their items.
"""

from actor_maker.pipeline.model import Actor, BaseImage, JobPlan, StoredBase, custom_prompt_id
from actor_maker.pipeline.running import EventSink, JobSession, Pipeline, PreparedBase

__all__ = [
    "Actor",
    "BaseImage",
    "EventSink",
    "JobPlan",
    "JobSession",
    "Pipeline",
    "PreparedBase",
    "StoredBase",
    "custom_prompt_id",
]
