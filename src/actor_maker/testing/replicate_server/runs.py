"""What predictions and trainings share: a timeline computed from timestamps, and a book of them.

A run is created with a duration. It is ``starting`` for a moment, ``processing`` until its
end, then ``succeeded`` or ``failed`` (its ``outcome``), unless it was ``canceled`` first. No
thread moves it along: its status at any moment follows from monotonic timestamps, and its
``wake`` event lets whoever waits on it (``Prefer: wait``, a webhook sender) stop early.
"""

from __future__ import annotations

import threading
import time
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from actor_maker.testing.replicate_server.common import START_DELAY_S, TERMINAL, iso, new_id

#: How many runs a ``GET`` of a collection lists (newest first, one page).
PAGE_SIZE = 100
#: How often a thread waiting for a run's end looks again at most.
_POLL_S = 0.05


@dataclass(kw_only=True, eq=False)
class Run:
    """One prediction or training of ``model`` on ``input``; subclasses add their own fields
    and name their API collection (``/v1/{collection}/{id}``) and web page (``/{web}/{id}``)::

        class _Prediction(Run, collection="predictions", web="p"): ...
    """

    collection: ClassVar[str]
    web: ClassVar[str]

    model: str
    input: dict[str, Any]
    outcome: str  # "succeeded" or "failed" once end_mono is reached
    error: str | None
    duration: InitVar[float]
    id: str = field(default_factory=new_id)
    created_mono: float = field(init=False)
    created_wall: datetime = field(init=False)
    start_mono: float = field(init=False)
    end_mono: float = field(init=False)
    canceled_mono: float | None = field(default=None, init=False)
    wake: threading.Event = field(default_factory=threading.Event, init=False)

    def __init_subclass__(cls, *, collection: str, web: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.collection, cls.web = collection, web

    def __post_init__(self, duration: float) -> None:
        duration = max(0.0, duration)
        self.created_mono = now = time.monotonic()
        self.created_wall = datetime.now(UTC)
        self.start_mono = now + min(START_DELAY_S, duration / 4)
        self.end_mono = now + duration

    @property
    def finish_mono(self) -> float:
        """When the run is (or will be) terminal."""
        if self.canceled_mono is not None and self.canceled_mono < self.end_mono:
            return self.canceled_mono
        return self.end_mono

    def status(self, now: float) -> str:
        if now >= self.finish_mono and self.finish_mono < self.end_mono:
            return "canceled"
        if now >= self.end_mono:
            return self.outcome
        return "processing" if now >= self.start_mono else "starting"

    def cancel(self, now: float) -> bool:
        """Cancel the run at ``now`` unless it is terminal; True when it was canceled."""
        if self.status(now) in TERMINAL:
            return False
        self.canceled_mono = now
        self.wake.set()
        return True

    def wait_until_final(self, stopping: threading.Event) -> bool:
        """Block until the run is terminal; False when ``stopping`` was set first."""
        while (now := time.monotonic()) < self.finish_mono:
            if stopping.is_set():
                return False
            self.wake.wait(min(_POLL_S, self.finish_mono - now))
            self.wake.clear()
        return True

    def _wall(self, mono: float) -> str:
        return iso(self.created_wall + timedelta(seconds=mono - self.created_mono))

    def api_fields(self, now: float, base_url: str) -> dict[str, Any]:
        """The fields every Replicate run object has, as they stand at monotonic ``now``:
        ``error``, ``status``, ``source``, the timestamps, ``urls`` and, once terminal,
        ``metrics``. The caller adds ``id``, ``model``, ``version``, ``input``, ``logs`` and
        ``output``."""
        status = self.status(now)
        terminal = status in TERMINAL
        api = f"{base_url}/v1/{self.collection}/{self.id}"
        fields: dict[str, Any] = {
            "error": self.error if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": iso(self.created_wall),
            "started_at": self._wall(self.start_mono) if status != "starting" else None,
            "completed_at": self._wall(self.finish_mono) if terminal else None,
            "urls": {
                "get": api,
                "cancel": f"{api}/cancel",
                "web": f"{base_url}/{self.web}/{self.id}",
            },
        }
        if terminal:
            started = min(self.start_mono, self.finish_mono)
            fields["metrics"] = {"predict_time": round(self.finish_mono - started, 6)}
        return fields


R = TypeVar("R", bound=Run)


class RunBook(Generic[R]):
    """The runs of one kind by id, behind one lock; counts those created and canceled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, R] = {}
        self.created = 0
        self.canceled = 0

    def reset_counters(self) -> None:
        with self._lock:
            self.created = 0
            self.canceled = 0

    def add(self, run: R) -> R:
        with self._lock:
            self._runs[run.id] = run
            self.created += 1
        return run

    def get(self, run_id: str) -> R | None:
        with self._lock:
            return self._runs.get(run_id)

    def all(self) -> list[R]:
        with self._lock:
            return list(self._runs.values())

    def newest(self) -> list[R]:
        """One page of runs, newest first, as ``GET /v1/{collection}`` lists them."""
        return sorted(self.all(), key=lambda run: -run.created_mono)[:PAGE_SIZE]

    def cancel(self, run_id: str, now: float) -> R | None:
        """The run, canceled at ``now`` unless it was terminal; None when there is none."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and run.cancel(now):
                self.canceled += 1
        return run

    def wake_all(self) -> None:
        """Wake everything waiting on a run (the server is stopping)."""
        for run in self.all():
            run.wake.set()
