"""Trainings the API runs in the background: one per actor per process, with its events.

A training survives the server: its id is in the actor's manifest before anything waits on
it, so after a restart ``POST /api/actors/{id}/trainings`` re-attaches (polls the running
training) instead of starting another. Events are kept in memory for the SSE stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from actor_maker.errors import ActorMakerError
from actor_maker.runtime import Runtime
from actor_maker.training.factory import make_trainer
from actor_maker.training.flow import TrainingPlan, plan_training, run_training
from actor_maker.training.params import DEFAULT_OPTIONS, TrainingOptions

log = logging.getLogger(__name__)

#: Events kept per training (progress events are many; the stream needs the recent ones).
MAX_EVENTS = 2000


@dataclass
class TrainingRun:
    actor_id: str
    plan: TrainingPlan
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    seq: int = 0
    record: dict[str, Any] | None = None
    error: str | None = None
    done: bool = False
    training_id: str | None = None
    #: The version being trained: the plan's, or an adopted earlier one's.
    version: str | None = None
    task: asyncio.Task[None] | None = None
    #: Set by a verified webhook: poll now rather than at the next interval.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, data: dict[str, Any]) -> None:
        if name in ("training_started", "training_reattached", "training_adopted"):
            self.training_id = str(data.get("training_id"))
        if name == "training_adopted":  # an earlier run's training goes on instead
            self.version = str(data.get("version"))
        self.seq += 1
        self.events.append((self.seq, name, data))
        del self.events[:-MAX_EVENTS]

    def to_json(self) -> dict[str, Any]:
        return {
            "actor_id": self.actor_id,
            "version": self.version or self.plan.version,
            "trainer": self.plan.trainer,
            "done": self.done,
            "error": self.error,
            "plan": self.plan.to_json(),
            "record": self.record,
            "events_url": f"/api/actors/{self.actor_id}/trainings/events",
        }


class Trainings:
    """The trainings this process runs; built once per application."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._runs: dict[str, TrainingRun] = {}
        self._lock = asyncio.Lock()

    def get(self, actor_id: str) -> TrainingRun | None:
        return self._runs.get(actor_id)

    async def start(
        self, actor_id: str, options: TrainingOptions = DEFAULT_OPTIONS
    ) -> tuple[TrainingRun, bool]:
        """Plan (bad input raises here, nothing paid) and run in the background.
        Returns (run, created); a running one for the actor is returned as it is."""
        async with self._lock:
            running = self._runs.get(actor_id)
            if running is not None and not running.done:
                return running, False
            settings = self.runtime.settings
            plan = await asyncio.to_thread(
                plan_training, self.runtime.store, settings, actor_id, options
            )
            chosen = make_trainer(settings, plan.trainer)
            run = TrainingRun(actor_id, plan)
            run.task = asyncio.create_task(self._run(run, chosen))
            self._runs[actor_id] = run
            return run, True

    async def _run(self, run: TrainingRun, trainer: Any) -> None:
        try:
            run.record = await run_training(
                self.runtime.store,
                self.runtime.settings,
                trainer,
                run.plan,
                on_event=run.add,
                wake=run.wake,
            )
        except ActorMakerError as exc:
            run.error = str(exc)
            run.add("training_failed", {"error": str(exc), "type": type(exc).__name__})
        except Exception as exc:  # reported on the stream; the record says what happened
            log.exception("training of %s failed", run.actor_id)
            run.error = f"internal error: {type(exc).__name__}"
            run.add("training_failed", {"error": run.error, "type": "InternalError"})
        finally:
            run.done = True
            with contextlib.suppress(Exception):
                await trainer.aclose()

    def wake(self, training_id: str) -> bool:
        """A webhook for ``training_id`` arrived: poll its run now. False when none here."""
        for run in self._runs.values():
            record = run.record or {}
            reattach = run.plan.reattach or {}
            ids = {record.get("training_id"), reattach.get("training_id"), run.training_id}
            if training_id in ids:
                run.wake.set()
                return True
        return False

    async def aclose(self) -> None:
        """Stop waiting (the trainings go on at the trainer; a new server re-attaches)."""
        for run in self._runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
