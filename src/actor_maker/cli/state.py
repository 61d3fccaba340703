"""Per-invocation CLI state: settings are read once, lazily, so --help needs none."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console

from actor_maker.config import Settings


@dataclass
class State:
    verbose: int = 0
    quiet: bool = False
    err: Console = field(default_factory=lambda: Console(stderr=True))
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)
