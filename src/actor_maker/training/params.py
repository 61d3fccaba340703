"""Training parameters from the dataset size, and the user's overrides checked against ranges.

The table (docs/training.md explains the numbers):

==============  =====  ====  =============
images          steps  rank  learning rate
==============  =====  ====  =============
10–14           1000   16    4e-4
15–29           1500   16    4e-4
30 and more     2000   16    4e-4
==============  =====  ====  =============

Fewer than :data:`MIN_IMAGES` usable images are refused: a face LoRA from fewer pictures
learns the pictures, not the person.
"""

from __future__ import annotations

from dataclasses import dataclass

from actor_maker.errors import InputError
from actor_maker.training.base import TrainingParams

#: The fewest usable images a training accepts.
MIN_IMAGES = 10
#: (fewest images, steps), largest first: the first row whose count is reached wins.
STEP_TABLE: tuple[tuple[int, int], ...] = ((30, 2000), (15, 1500), (MIN_IMAGES, 1000))
DEFAULT_RANK = 16
DEFAULT_LEARNING_RATE = 4e-4

STEPS_RANGE = (100, 6000)
RANK_RANGE = (4, 128)
LEARNING_RATE_RANGE = (1e-5, 1e-2)


@dataclass(frozen=True)
class TrainingOptions:
    """What the user chose for a training (CLI flags, the API body); ``None`` everywhere it
    chose nothing: the configured trainer, the table above, ``ACTOR_MAKER_MAX_JOB_COST``."""

    trainer: str | None = None
    steps: int | None = None
    rank: int | None = None
    learning_rate: float | None = None
    #: Ceiling in USD for training + samples.
    max_cost: float | None = None


#: Nothing chosen: every value from the settings and the table.
DEFAULT_OPTIONS = TrainingOptions()


def steps_for(images: int) -> int:
    """The table's steps for ``images`` usable images (``InputError`` below the minimum)."""
    for fewest, steps in STEP_TABLE:
        if images >= fewest:
            return steps
    raise InputError(
        f"{images} usable image(s); a LoRA needs at least {MIN_IMAGES} "
        "(generate more, or approve images awaiting review)"
    )


def _check(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InputError(f"{name} {value:g} is out of range: give {low:g} to {high:g}")


def params_for(images: int, options: TrainingOptions = DEFAULT_OPTIONS) -> TrainingParams:
    """Steps, rank and learning rate for a dataset of ``images``; the overrides in ``options``
    are range-checked."""
    table_steps = steps_for(images)
    steps, rank, learning_rate = options.steps, options.rank, options.learning_rate
    if steps is not None:
        _check("--steps", steps, STEPS_RANGE)
    if rank is not None:
        _check("--rank", rank, RANK_RANGE)
    if learning_rate is not None:
        _check("--learning-rate", learning_rate, LEARNING_RATE_RANGE)
    return TrainingParams(
        steps=table_steps if steps is None else steps,
        rank=DEFAULT_RANK if rank is None else rank,
        learning_rate=DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate,
    )
