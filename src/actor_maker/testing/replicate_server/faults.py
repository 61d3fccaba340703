"""The faults the stand-in injects, and the bookkeeping of the "first N" ones.

Create requests (predictions and trainings alike) meet them in this order: dropped
connection, 429, 5xx, then the create is accepted; ``lose_answer_first`` then drops the
answer of an accepted create (the training or prediction exists, the client never hears).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

E005_ERROR = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
GENERIC_MODEL_ERROR = "Prediction failed: the model raised an unexpected error. (E9243)"
TRAINING_ERROR = "Training failed: CUDA out of memory while training the LoRA. (E1001)"

#: The body a proxy sends with a 502.
BAD_GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)


@dataclass
class Faults:
    """Faults the stand-in injects; see the package docstring for what each one does."""

    throttle_first: int = 0
    retry_after: float = 1.0
    server_errors_first: int = 0
    latency: float = 0.0
    wait_cap: float | None = None
    processing_with_output: bool = False
    flag_prompts_containing: str | None = None
    fail_prompts_containing: str | None = None
    output_ttl: float | None = None
    slow_create: float = 0.0
    drop_connection_first: int = 0
    #: Accepted creates whose answer never arrives (the socket closes after the create).
    lose_answer_first: int = 0
    #: Seconds of (stand-in) time one training step takes: 1000 steps × 0.0005 = 0.5 s.
    training_step_s: float = 0.0005
    #: Trainings whose ``trigger_word`` contains this end ``failed``.
    fail_trainings_containing: str | None = None
    #: ``output.weights`` URLs answer 404 this many seconds after the training finished.
    weights_ttl: float | None = None


class FaultCounter:
    """Which fault answers the next create; "first N" faults are used up in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the counters and re-arm every "first N" fault."""
        with self._lock:
            self.attempts = 0
            self.dropped = 0
            self.throttled = 0
            self.server_errors = 0
            self.lost_answers = 0
            self._rearm()

    def rearm(self) -> None:
        with self._lock:
            self._rearm()

    def _rearm(self) -> None:
        self._used_drop = 0
        self._used_throttle = 0
        self._used_errors = 0
        self._used_lost = 0

    def before_create(self, faults: Faults) -> str | None:
        """Count a create attempt; ``drop``, ``throttle``, ``500``/``502``/``503`` or None."""
        with self._lock:
            self.attempts += 1
            if self._used_drop < faults.drop_connection_first:
                self._used_drop += 1
                self.dropped += 1
                return "drop"
            if self._used_throttle < faults.throttle_first:
                self._used_throttle += 1
                self.throttled += 1
                return "throttle"
            if self._used_errors < faults.server_errors_first:
                code = ("500", "502", "503")[self._used_errors % 3]
                self._used_errors += 1
                self.server_errors += 1
                return code
            return None

    def lose_answer(self, faults: Faults) -> bool:
        """Whether the answer of a create that was just accepted is lost."""
        with self._lock:
            if self._used_lost < faults.lose_answer_first:
                self._used_lost += 1
                self.lost_answers += 1
                return True
            return False
