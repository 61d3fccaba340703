"""The stand-in's HTTP side: routes, the threaded server and its lifecycle."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import urlsplit

from actor_maker.testing.loopback import LoopbackServer
from actor_maker.testing.replicate_server import training_routes
from actor_maker.testing.replicate_server.common import (
    TERMINAL,
    page,
    parse_prefer_wait,
    problem,
)
from actor_maker.testing.replicate_server.faults import BAD_GATEWAY_PAGE, Faults
from actor_maker.testing.replicate_server.inputs import (
    InputFieldsError,
    parse_upload,
    validate_input,
)
from actor_maker.testing.replicate_server.state import StandInState, _Prediction
from actor_maker.testing.replicate_server.trainings import LORA_MODEL


class _Server(ThreadingHTTPServer):
    """The HTTP server of one started stand-in, serving in a daemon thread; it tracks its open
    connections so that :meth:`close` can cut requests that are blocked waiting."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # benchmarks open dozens of connections at once

    def __init__(self, address: tuple[str, int], stand_in: ReplicateStandIn) -> None:
        self.stand_in = stand_in
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _Handler)
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"replicate-stand-in:{self.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close(self) -> None:
        """Stop serving, close the socket and every open connection, join the thread."""
        self.shutdown()
        self.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ReplicateStandIn/1.0"

    @property
    def stand_in(self) -> ReplicateStandIn:
        return cast(_Server, self.server).stand_in

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_Server, self.server).track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline().split(b";", 1)[0].strip()
                length = int(line or b"0", 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _not_found(self, detail: str = "The requested resource could not be found.") -> None:
        self._json(404, problem(404, "Not found", detail))

    def _found(self, view: dict[str, Any] | None) -> None:
        """200 with ``view``, or 404 when there is none."""
        if view is None:
            self._not_found()
        else:
            self._json(200, view)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        stand_in = self.stand_in
        stand_in._log_request(method, path)
        body = self._read_body()
        try:
            self._route(method, path, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the stand-in: answer rather than hang the client
            with contextlib.suppress(OSError):
                self._json(
                    500,
                    problem(
                        500, "Internal server error", f"stand-in error: {type(exc).__name__}: {exc}"
                    ),
                )

    def _route(self, method: str, path: str, body: bytes) -> None:
        stand_in = self.stand_in
        parts = [p for p in path.split("/") if p]
        if method == "GET" and len(parts) == 3 and parts[:2] == ["files", "out"]:
            self._output_file(parts[2])
            return
        if method == "GET" and parts[:2] == ["files", "weights"]:
            training_routes.weights_file(self, parts[2:])
            return
        if not parts or parts[0] != "v1":
            self._not_found()
            return
        if not stand_in._authorized(self.headers.get("Authorization")):
            self._json(
                401,
                problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
            )
            return
        rest = parts[1:]
        if method == "POST" and len(rest) == 4 and rest[0] == "models" and rest[3] == "predictions":
            model = f"{rest[1]}/{rest[2]}"
            if model not in stand_in.models and model != LORA_MODEL:
                self._not_found(f"Model {model} not found.")
                return
            self._create(model, body)
        elif method == "POST" and rest == ["predictions"]:
            self._create(None, body)
        elif method == "GET" and rest == ["predictions"]:
            self._json(200, page(stand_in._list_predictions()))
        elif method == "GET" and len(rest) == 2 and rest[0] == "predictions":
            self._found(stand_in._prediction_view(rest[1]))
        elif (
            method == "POST" and len(rest) == 3 and rest[0] == "predictions" and rest[2] == "cancel"
        ):
            self._found(stand_in._cancel(rest[1]))
        elif rest == ["account"] and method == "GET":
            self._json(
                200,
                {
                    "type": "user",
                    "username": stand_in.username,
                    "name": "Replicate Stand-in",
                    "github_url": None,
                },
            )
        elif training_routes.route(self, method, rest, body):
            pass
        elif rest and rest[0] == "files":
            self._files(method, rest[1:], body)
        else:
            self._not_found()

    # -- predictions

    def _create(self, model: str | None, body: bytes) -> None:
        version: str | None = None
        if self._answered_by_fault():
            return
        stand_in = self.stand_in
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            self._json(400, problem(400, "Bad request", "The request body is not valid JSON."))
            return
        if model is None:
            asked = payload.get("version") if isinstance(payload, dict) else None
            version = asked if isinstance(asked, str) else None
            model = stand_in._model_for_version(asked)
            if model is None:
                self._json(
                    422,
                    problem(
                        422,
                        "Invalid version or not permitted",
                        f"The specified version does not exist: {asked!r}",
                    ),
                )
                return
        try:
            data = validate_input(payload)
        except InputFieldsError as exc:
            detail = "".join(f"- {f['field']}: {f['description']}\n" for f in exc.fields)
            self._json(
                422, problem(422, "Input validation failed", detail, invalid_fields=exc.fields)
            )
            return
        prediction = stand_in._accept(model, data, version)
        if stand_in._lose_answer():
            self._hang_up()
            return
        self._answer_create(prediction, parse_prefer_wait(self.headers.get("Prefer")))

    def _answer_create(self, prediction: _Prediction, wait: float | None) -> None:
        stand_in = self.stand_in
        faults = stand_in.faults
        if wait is None:
            view = _as_starting(stand_in._view(prediction, prediction.created_mono))
        else:
            if faults.wait_cap is not None:
                wait = min(wait, max(0.0, faults.wait_cap))
            until = min(prediction.created_mono + wait, prediction.end_mono)
            while (now := time.monotonic()) < until and not prediction.wake.is_set():
                prediction.wake.wait(until - now)
            now = time.monotonic()
            view = stand_in._view(prediction, now)
            if view["status"] not in TERMINAL:
                # Replicate answers a wait that ran out as "starting", whatever is going on.
                view = _as_starting(view)
            elif view["status"] == "succeeded" and faults.processing_with_output:
                view["status"] = "processing"
                view["completed_at"] = None
                view.pop("metrics", None)
        self._delay(faults.slow_create)
        self._json(201, view)

    def _hang_up(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answered_by_fault(self) -> bool:
        """Meet the create faults in order; True when one of them has answered."""
        stand_in = self.stand_in
        fault = stand_in._create_fault()
        faults = stand_in.faults
        if fault is None:
            return False
        if fault == "drop":
            self._hang_up()
            return True
        self._delay(faults.slow_create)
        if fault == "throttle":
            wait = faults.retry_after
            shown = f"{wait:g} second" + ("" if wait == 1 else "s")
            self._json(
                429,
                problem(
                    429,
                    "Request was throttled",
                    f"Request was throttled. Expected available in {shown}.",
                ),
                {"Retry-After": f"{wait:g}"},
            )
        elif fault == "502":
            self._send(502, BAD_GATEWAY_PAGE, "text/html")
        else:
            code = int(fault)
            title = "Internal server error" if code == 500 else "Service unavailable"
            self._json(code, problem(code, title, "Please retry the request."))
        return True

    def _delay(self, seconds: float) -> None:
        if seconds > 0:
            self.stand_in._stopping.wait(seconds)

    def _output_file(self, name: str) -> None:
        stand_in = self.stand_in
        prediction_id, _, ext = name.partition(".")
        result = stand_in._output_bytes(prediction_id, ext)
        if result is None:
            self._not_found("The output file does not exist or has expired.")
            return
        data, content_type = result
        self._send(200, data, content_type, {"Cache-Control": "no-store"})

    # -- files

    def _files(self, method: str, rest: list[str], body: bytes) -> None:
        stand_in = self.stand_in
        if method == "POST" and not rest:
            try:
                uploaded = parse_upload(self.headers.get("Content-Type", ""), body)
            except ValueError as exc:
                self._json(400, problem(400, "Bad request", str(exc)))
                return
            self._json(201, stand_in.file_book.store(*uploaded))
        elif method == "GET" and not rest:
            self._json(200, page(stand_in.file_book.list_views()))
        elif len(rest) in (1, 2):
            record = stand_in.file_book.get(rest[0])
            if record is None:
                self._not_found()
            elif method == "GET" and len(rest) == 1:
                self._json(200, stand_in.file_book.view(record))
            elif method == "GET" and rest[1:] == ["download"]:
                self._send(200, record.data, record.content_type)
            elif method == "DELETE" and len(rest) == 1:
                stand_in.file_book.delete(record.id)
                self._send(204, b"", "application/json")
            else:
                self._not_found()
        else:
            self._not_found()


def _as_starting(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` as a just-created prediction shows it."""
    view.update(
        status="starting", output=None, error=None, logs="", started_at=None, completed_at=None
    )
    view.pop("metrics", None)
    return view


class ReplicateStandIn(StandInState, LoopbackServer):
    """A local HTTP server that speaks Replicate's API; see the package docstring.

    ``faults`` may be changed between requests (fields in place, or a new :class:`Faults`,
    which re-arms the "first N" faults). Counters are protected by a lock; reading
    ``max_in_flight`` computes the exact peak of overlapping predictions since the last
    :meth:`reset_counters`.
    """

    _server: _Server | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._base_url = f"http://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        """Stop serving, wake blocked waits and close open connections. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        self._predictions.wake_all()
        self.book.runs.wake_all()
        server.close()


def _serve_forever(latency: float, urls: Any) -> None:
    with ReplicateStandIn(token="bench-token", faults=Faults(latency=latency)) as standin:
        urls.put(standin.base_url)
        threading.Event().wait()


@contextlib.contextmanager
def standin_process(latency: float) -> Iterator[str]:
    """A stand-in in its own process (token ``bench-token``), so it does not share the
    measured process's interpreter; yields its base URL. For benchmarks."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    urls = ctx.Queue()
    proc = ctx.Process(target=_serve_forever, args=(latency, urls), daemon=True)
    proc.start()
    try:
        yield urls.get(timeout=60)
    finally:
        proc.terminate()
        proc.join()
