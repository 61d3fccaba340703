"""The one executor: runs a job's open items through ``Pipeline.run_item``.

Used unchanged by the CLI and the API's in-process runner (all the items of a job, at
most ``2 × slots`` at once) and by the queue workers (one message = one item).

``Keeper`` is a thread, not an asyncio task, so a starved event loop cannot let a lease
or a claim expire under a live run: every ``interval`` it renews the job's lease (when
the run holds one) and the claims on the items in flight, and it notices a cancel
request from any process. A lost lease stops the run from starting another prediction;
the items in flight keep their (renewed) claims, so whoever takes the job over cannot
pay for them again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from actor_maker import metrics
from actor_maker.errors import ActorMakerError
from actor_maker.jobs import items as job_items
from actor_maker.jobs.models import ItemState, Job
from actor_maker.pipeline.running import JobSession, Pipeline

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Keeper:
    """Renews a session's lease and claims from a thread; cancels its tasks on request."""

    session: JobSession
    loop: asyncio.AbstractEventLoop
    _: KW_ONLY
    interval_s: float
    #: The run holds the job's lease (in-process runner, CLI) for this long per renewal.
    lease_s: float | None = None
    #: The run's tasks, cancelled when someone asks the job to stop.
    tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"keeper {self.session.job.id}", daemon=True
        )

    def __enter__(self) -> Keeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=max(5.0, self.interval_s * 2))

    def _loop(self) -> None:
        session = self.session
        while not self._done.wait(self.interval_s):
            try:
                self.tick()
            except ActorMakerError as exc:  # the records are unreachable: try again
                log.warning("job %s: renewing failed: %s", session.job.id, exc)

    def tick(self) -> None:
        session, records = self.session, self.session.records
        if self.lease_s is not None and not records.renew_lease(
            session.job.id, session.owner, self.lease_s
        ):
            log.warning("job %s: lease lost; starting nothing new", session.job.id)
            session.stop.set()
        job = job_items.renew(session) if session.held else records.get(session.job.id)
        if job is not None and job.cancel_requested and not session.canceled.is_set():
            session.canceled.set()
            session.stop.set()
            for task in list(self.tasks):
                self.loop.call_soon_threadsafe(task.cancel)


async def run_items(
    pipeline: Pipeline, session: JobSession, keeper: Keeper, prompt_ids: Iterable[str]
) -> None:
    """Run the items, at most ``2 × slots`` at once (while some store what they got, the
    others already hold the freed slots). Items another live run holds are looked at
    again until they are final or their claim lapses."""
    pending = list(prompt_ids)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for prompt_id in pending:
        queue.put_nowait(prompt_id)
    busy: list[str] = []

    async def worker() -> None:
        while not queue.empty() and not session.stop.is_set():
            prompt_id = queue.get_nowait()
            if not await pipeline.run_item(session, prompt_id):
                busy.append(prompt_id)

    async def run_all() -> None:
        width = max(1, min(2 * pipeline.slots.limit, queue.qsize()))
        # A TaskGroup, not gather: when the run is canceled it waits until every worker
        # has finished canceling (in-flight predictions canceled, paid images stored).
        async with asyncio.TaskGroup() as group:
            for _ in range(width):
                task = group.create_task(worker())
                keeper.tasks.add(task)
                task.add_done_callback(keeper.tasks.discard)

    while True:
        await run_all()
        if not busy or session.stop.is_set():
            return
        await asyncio.sleep(min(session.claim_s / 4, 5.0))
        for prompt_id in busy:
            queue.put_nowait(prompt_id)
        busy.clear()


async def close_job(session: JobSession) -> Job | None:
    """After a run: a canceled job or one stopped by a fatal error gets its open items
    canceled and is finished; otherwise what is open stays for the next run."""
    if not (session.canceled.is_set() or session.fatal is not None):
        return None
    fatal = session.fatal
    reason = f"not started: {fatal}" if fatal else "canceled"
    finished = False

    def change(job: Job) -> bool:
        nonlocal finished
        for item in job.items:
            ours = (item.claimed_by or "").startswith(f"{session.owner}:")
            if item.state == ItemState.queued or (
                item.state == ItemState.running
                and (ours or not job_items.fresh(item, session.claim_s))
            ):
                item.state, item.error = ItemState.canceled, reason
                metrics.record_canceled()
        if fatal is not None and job.error is None:
            job.error, job.error_type = str(fatal), type(fatal).__name__
        finished = job.settle()
        return True

    job = await asyncio.to_thread(session.records.modify, session.job.id, change)
    if job is not None and finished:
        await asyncio.to_thread(session.event, "job_finished", job.model_dump(mode="json"))
    return job
