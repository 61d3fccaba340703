"""The old scripts' JSON result shapes, read off a job record.

``generate_all.py`` and ``generate_single.py`` printed these; the CLI's ``--json`` and the
old frontend's compat routes answer with them (plus new fields), so both read them here.
"""

from __future__ import annotations

from typing import Any

from actor_maker.jobs.models import ItemState, Job
from actor_maker.pipeline.model import JobPlan


def all_json(job: Job) -> dict[str, Any]:
    """The old generate_all script's result, plus new fields."""
    results: list[dict[str, Any]] = []
    for item in job.items:
        if item.state == ItemState.succeeded:
            results.append(
                {
                    "index": item.index,
                    "filename": item.filename,
                    "s3_url": item.s3_url,
                    "key": item.key,
                    "prompt_id": item.prompt_id,
                    "prompt_preview": item.prompt_preview,
                    "quality": item.verdict,
                }
            )
        else:
            results.append({"prompt_id": item.prompt_id, "error": item.error})
    return {
        "success": True,
        "total": job.total,
        "successful": job.succeeded,
        "failed": job.failed,
        "results": results,
        "job_id": job.id,
        "actor_id": job.actor_id,
        "skipped": list(job.already_done),
        "estimated_cost": job.estimated_cost,
        "cost": job.cost,
    }


def single_json(job: Job) -> dict[str, Any]:
    """The old generate_single script's result, plus new fields."""
    item = job.items[0]
    body: dict[str, Any] = {
        "success": item.state == ItemState.succeeded,
        "s3_url": item.s3_url,
        "filename": item.filename,
        "index": item.index,
        "prompt": item.prompt,
        "key": item.key,
        "prompt_id": item.prompt_id,
        "job_id": job.id,
        "cost": job.cost,
    }
    if item.error:
        body["error"] = item.error
    return body


def dry_run_json(plan: JobPlan) -> dict[str, Any]:
    return {
        "success": True,
        "dry_run": True,
        "actor_id": plan.actor.actor_id,
        "total": len(plan.items),
        "model": plan.model,
        "estimated_cost": plan.estimated_cost,
        "skipped": list(plan.already_done),
        "items": [
            {"prompt_id": i.prompt_id, "category": i.category, "prompt": i.prompt}
            for i in plan.items
        ],
    }
