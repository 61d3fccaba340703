"""What the CLI shows: a progress bar on a terminal, a closing table, JSON results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actor_maker.jobs.models import ItemState, Job
from actor_maker.pipeline import JobPlan
from actor_maker.quality import is_preview


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """ "1 entry", "2 entries": the number and the word in its right form."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


class ProgressReporter:
    """Feeds pipeline events into a rich progress bar (stderr, terminals only)."""

    def __init__(self, console: Console, total: int, *, enabled: bool) -> None:
        self.console = console
        self.done = 0
        self.failed = 0
        #: The manifest entries stored, by prompt id (the closing table's reasons).
        self.entries: dict[str, dict[str, Any]] = {}
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

    def __call__(self, job_id: str, name: str, data: dict[str, Any]) -> None:
        if name == "item_succeeded":
            self.done += 1
            self.entries[str(data.get("prompt_id"))] = data
        elif name == "item_failed":
            self.failed += 1
            self.console.print(f"[red]✗[/red] {data.get('prompt_id')}: {data.get('error')}")
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


def result_table(job: Job, entries: dict[str, dict[str, Any]] | None = None) -> Table:
    """The items of a finished run; ``entries`` (by prompt id) give rejected ones' reasons."""
    table = Table(title=f"job {job.id} · actor {job.actor_id}", title_justify="left")
    table.add_column("prompt id")
    table.add_column("result")
    table.add_column("file / reason", overflow="fold")
    for item in job.items:
        entry = (entries or {}).get(item.prompt_id) or {}
        if item.state == ItemState.succeeded and is_preview(entry):
            table.add_row(item.prompt_id, "[yellow]preview[/yellow]", item.filename or "")
        elif item.state == ItemState.succeeded and item.verdict == "rejected":
            reasons = "; ".join((entry.get("quality") or {}).get("reasons", []))
            table.add_row(
                item.prompt_id, "[yellow]stored, rejected[/yellow]", f"{item.filename}: {reasons}"
            )
        elif item.state == ItemState.succeeded:
            note = " (needs review)" if item.verdict == "review" else ""
            table.add_row(item.prompt_id, "[green]stored[/green]", f"{item.filename or ''}{note}")
        else:
            table.add_row(item.prompt_id, f"[red]{item.state.value}[/red]", item.error or "")
    return table
