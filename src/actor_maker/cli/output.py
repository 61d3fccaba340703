"""What the CLI shows: a progress bar on a terminal, a closing table, JSON results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actor_maker.pipeline import Event, JobPlan, JobResult


class ProgressReporter:
    """Feeds pipeline events into a rich progress bar (stderr, terminals only)."""

    def __init__(self, console: Console, total: int, *, enabled: bool) -> None:
        self.console = console
        self.done = 0
        self.failed = 0
        self._progress: Progress | None = None
        self._task: Any = None
        if enabled and console.is_terminal and total:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._task = self._progress.add_task("generating", total=total, status="")

    def __enter__(self) -> ProgressReporter:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        if event.kind == "item_succeeded":
            self.done += 1
        elif event.kind == "item_failed":
            self.failed += 1
            if event.item is not None:
                self.console.print(f"[red]✗[/red] {event.item.prompt_id}: {event.item.error}")
        else:
            return
        if self._progress:
            status = f"[red]{self.failed} failed[/red]" if self.failed else ""
            self._progress.update(self._task, advance=1, status=status)


def plan_table(plan: JobPlan) -> Table:
    table = Table(
        title=f"{len(plan.items)} image(s) for {plan.actor.actor_id}", title_justify="left"
    )
    table.add_column("prompt id")
    table.add_column("category")
    table.add_column("prompt")
    for item in plan.items:
        preview = item.prompt if len(item.prompt) <= 70 else item.prompt[:70] + "…"
        table.add_row(item.prompt_id, item.category or "custom", preview)
    return table


def result_table(result: JobResult) -> Table:
    table = Table(
        title=f"job {result.job_id} · actor {result.actor.actor_id}", title_justify="left"
    )
    table.add_column("prompt id")
    table.add_column("result")
    table.add_column("file / reason", overflow="fold")
    for item in result.items:
        if item.state == "succeeded" and item.verdict == "rejected":
            reasons = "; ".join((item.entry or {}).get("quality", {}).get("reasons", []))
            table.add_row(
                item.prompt_id, "[yellow]stored, rejected[/yellow]", f"{item.filename}: {reasons}"
            )
        elif item.state == "succeeded":
            note = " (needs review)" if item.verdict == "review" else ""
            table.add_row(item.prompt_id, "[green]stored[/green]", f"{item.filename or ''}{note}")
        else:
            table.add_row(item.prompt_id, f"[red]{item.state}[/red]", item.error or "")
    return table


def all_json(result: JobResult, plan: JobPlan) -> dict[str, Any]:
    """The old generate_all script's result, plus new fields."""
    results: list[dict[str, Any]] = []
    for item in result.items:
        if item.state == "succeeded":
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
        "total": len(result.items),
        "successful": len(result.succeeded),
        "failed": len(result.failed),
        "results": results,
        "job_id": result.job_id,
        "actor_id": result.actor.actor_id,
        "skipped": list(plan.already_done),
        "estimated_cost": plan.estimated_cost,
        "cost": result.cost,
    }


def single_json(result: JobResult) -> dict[str, Any]:
    """The old generate_single script's result, plus new fields."""
    item = result.items[0]
    body: dict[str, Any] = {
        "success": item.state == "succeeded",
        "s3_url": item.s3_url,
        "filename": item.filename,
        "index": item.index,
        "prompt": item.prompt,
        "key": item.key,
        "prompt_id": item.prompt_id,
        "job_id": result.job_id,
        "cost": result.cost,
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
