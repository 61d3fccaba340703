"""Real uvicorn servers on loopback for API tests: in a thread, or as a separate process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from actor_maker.api import create_app
from actor_maker.config import Settings
from actor_maker.runtime import Runtime


def standin_settings(tmp_path: Path, standin: Any, token: str, **extra: Any) -> Settings:
    """Settings of a test server that generates with the Replicate stand-in."""
    values: dict[str, Any] = {
        "_env_file": None,
        "replicate_api_token": token,
        "replicate_base_url": standin.base_url,
        "provider": "replicate",
        "poll_interval_s": 0.05,
        "slot_dir": tmp_path / "slots",
        "state_dir": tmp_path / "state",
        **extra,
    }
    return Settings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no server at {base_url}")


@contextmanager
def serve_in_thread(
    settings: Settings, *, bind_host: str | None = None, **runtime_kwargs: Any
) -> Iterator[str]:
    """``create_app(Runtime(settings, **runtime_kwargs))`` served by uvicorn in a thread;
    yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(Runtime(settings, **runtime_kwargs), bind_host=bind_host),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class ServerProcess:
    """``actor-maker serve`` as a real process (so a test can kill -9 it)."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actor_maker", "serve", "--port", str(self.port)],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_healthy(self.base_url)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def read_sse(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from a streaming text/event-stream response."""
    event = "message"
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
