"""``make_trainer(settings, name)``: the one place a trainer is built from the settings."""

from __future__ import annotations

from typing import get_args

from actor_maker.config import Settings, TrainerName
from actor_maker.errors import ConfigError, InputError
from actor_maker.training.base import Trainer

TRAINERS: tuple[str, ...] = get_args(TrainerName)


def check_trainer(name: str) -> str:
    if name not in TRAINERS:
        raise InputError(f"--trainer {name}: choose one of {', '.join(TRAINERS)}")
    return name


def make_trainer(settings: Settings, name: str | None = None) -> Trainer:
    """The trainer called ``name`` (default: ``settings.trainer_name``), configured."""
    name = check_trainer(name or settings.trainer_name)
    if name == "preview":
        from actor_maker.testing.fake_trainer import FakeTrainer

        return FakeTrainer(
            settings.state_dir / "preview-trainer", duration_s=settings.preview_training_s
        )
    if name == "ai-toolkit":
        from actor_maker.training.ai_toolkit import AiToolkitTrainer

        return AiToolkitTrainer.from_settings(settings)
    if name == "replicate":
        from actor_maker.training.replicate import ReplicateTrainer

        return ReplicateTrainer.from_settings(settings)
    raise ConfigError(f"unknown trainer {name!r}")  # pragma: no cover - checked above
