"""What the test servers on loopback share: a start, a stop, and ``with`` for both.

:class:`~actor_maker.testing.replicate_server.ReplicateStandIn` binds when it starts;
:class:`~actor_maker.testing.s3server.MotoS3` serves from its construction. Either one
listens on ``127.0.0.1`` at a free port and is stopped when its ``with`` block ends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self


class LoopbackServer(ABC):
    """A server on a free loopback port for tests and benchmarks."""

    def start(self) -> Self:
        """Serve (if not serving yet) and return ``self``; this default suits a server that
        already serves once constructed."""
        return self

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and close open connections; calling it again does nothing."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
