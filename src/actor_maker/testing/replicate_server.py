"""A local stand-in for Replicate's HTTP API, with injectable faults.

Tests and benchmarks must never call the real Replicate. :class:`ReplicateStandIn` is a real
HTTP server on loopback (``http.server.ThreadingHTTPServer``, one daemon thread per
connection, so dozens of blocking ``Prefer: wait`` creates can be in progress at once) that
speaks the part of Replicate's API an image-editing client needs::

    with ReplicateStandIn(faults=Faults(latency=0.2)) as replicate:
        client = httpx.Client(base_url=replicate.base_url,
                              headers={"Authorization": f"Bearer {replicate.token}"})
        r = client.post("/v1/models/black-forest-labs/flux-kontext-pro/predictions",
                        json={"input": {"prompt": "...", "input_image": "https://..."}},
                        headers={"Prefer": "wait=60"})
        assert r.json()["status"] == "succeeded"
        assert replicate.max_in_flight == 1

Endpoints (all under ``/v1`` need ``Authorization: Bearer <token>``; ``Token <token>`` is
accepted too; otherwise 401 ``{"title": "Unauthenticated", "detail": "You did not pass a valid
authentication token", "status": 401}``):

* ``POST /v1/models/{owner}/{name}/predictions`` with ``{"input": {...}}`` (and
  ``POST /v1/predictions`` with ``"version": "owner/name[:id]"``). 201 with the prediction.
  Without ``Prefer: wait`` the answer comes at once, status ``starting``. With ``Prefer: wait``
  (60 s) or ``Prefer: wait=N`` (N seconds, at most 60; fractions allowed here for fast tests)
  the request blocks until the prediction is terminal or the wait runs out. A wait that runs
  out answers status ``starting`` whatever the prediction is doing, as Replicate does.
* ``GET /v1/predictions/{id}``, ``GET /v1/predictions`` (one page, newest first),
  ``POST /v1/predictions/{id}/cancel`` (200; a finished prediction is returned unchanged).
* ``POST /v1/files`` (multipart, field ``content``; optional ``metadata`` JSON field) → 201
  file object; ``GET /v1/files``, ``GET /v1/files/{id}`` (the file object),
  ``GET /v1/files/{id}/download`` (the bytes), ``DELETE /v1/files/{id}`` (204).
* ``GET /v1/account`` → ``{"type": "user", "username": ...}``.
* ``GET /files/out/{id}.{jpg|png}``: the output image, no auth (like ``replicate.delivery``).
* Anything else: 404 problem JSON. Errors are problem details ``{"title", "detail",
  "status"}``; input validation failures are 422 ``"Input validation failed"`` with
  ``invalid_fields``, as Replicate sends them.

A prediction's life is computed from timestamps, no thread per prediction: ``starting`` at
creation, ``processing`` a short moment later, terminal ``latency`` seconds after creation.
Input is validated like ``flux-kontext-pro``'s schema: ``prompt`` (required, non-empty),
``input_image`` (an ``http(s)`` URL or a base64 ``data:`` URI; never fetched),
``aspect_ratio`` (the model's enum), ``output_format`` (``jpg``/``png``), ``seed`` (integer),
``safety_tolerance`` (0–6), ``prompt_upsampling`` (boolean). The output is one URL of an image
this server renders with Pillow (see :func:`render_placeholder_image`): deterministic per
(prompt, seed, size), different prompts give clearly different pictures.

Faults (:class:`Faults`, mutable between requests; assigning a new ``Faults`` or calling
:meth:`ReplicateStandIn.reset_counters` re-arms the "first N" faults). Create requests meet
them in this order:

* ``drop_connection_first``: the first N creates get no answer; the socket is closed (the
  client sees "server disconnected without sending a response"). No prediction is made.
* ``throttle_first``: the next N creates get 429 with ``Retry-After: <retry_after>`` (an
  integral value is sent as an integer, ``"1"``, as Replicate does; a fraction as ``"0.2"``,
  so clients must parse both) and body ``{"title": "Request was throttled", "detail":
  "Request was throttled. Expected available in 1 second.", "status": 429}``.
* ``server_errors_first``: the next N creates get 500 (problem JSON), 502 (an HTML page, as a
  proxy sends it), 503 (problem JSON), cycling. No prediction is made.
* ``slow_create``: every create answer is delayed this many seconds. The prediction is made
  *before* the delay, so a client that times out and retries makes a second one — as on the
  real service.
* ``latency``: seconds from creation to the terminal status.
* ``wait_cap``: ``Prefer: wait`` is answered after at most this many seconds even if the
  prediction is not done, which forces clients to poll.
* ``processing_with_output``: the Replicate quirk where a create that waited for a finished
  prediction answers status ``processing`` with ``output`` already set (``GET`` then says
  ``succeeded``).
* ``flag_prompts_containing``: predictions whose prompt contains this substring end
  ``failed`` with the E005 error "The input or output was flagged as sensitive. Please try
  again with different inputs. (E005)".
* ``fail_prompts_containing``: … end ``failed`` with a generic model error.
* ``output_ttl``: output URLs answer 404 this many seconds after completion, and the
  prediction then shows ``output: null, data_removed: true``.

Observations for assertions: ``creates``, ``create_attempts``, ``throttled``,
``server_errors``, ``dropped``, ``canceled``, ``in_flight``, ``max_in_flight`` (exact peak of
overlapping [created, terminal) intervals), ``predictions``, ``requests_log``, ``files``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import email.parser
import email.policy
import hashlib
import io
import json
import math
import random
import secrets
import socket
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from PIL import Image, ImageChops, ImageDraw, UnidentifiedImageError

from actor_maker.validation import ASPECT_RATIOS  # the values flux-kontext-pro accepts

__all__ = [
    "ASPECT_RATIOS",
    "E005_ERROR",
    "GENERIC_MODEL_ERROR",
    "Faults",
    "ReplicateStandIn",
    "render_placeholder_image",
    "standin_process",
]


DEFAULT_MODELS = ("black-forest-labs/flux-kontext-pro", "black-forest-labs/flux-kontext-max")
OUTPUT_FORMATS = ("jpg", "png")
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
E005_ERROR = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
GENERIC_MODEL_ERROR = "Prediction failed: the model raised an unexpected error. (E9243)"
MAX_WAIT_S = 60.0
#: How long a prediction stays ``starting`` at most before it is ``processing``.
START_DELAY_S = 0.05
FILE_TTL = timedelta(hours=24)
_IMAGE_CACHE_BYTES = 64 * 1024 * 1024
_ID_ALPHABET = string.ascii_lowercase + string.digits
_GRAIN = [142 if v >= 252 else 114 if v < 4 else 128 for v in range(256)]


@dataclass
class Faults:
    """Faults the stand-in injects; see the module docstring for what each one does."""

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


@dataclass
class _Prediction:
    id: str
    model: str
    input: dict[str, Any]
    created_mono: float
    created_wall: datetime
    start_mono: float
    end_mono: float
    outcome: str  # "succeeded" or "failed" once end_mono is reached
    error: str | None
    seed: int
    ext: str
    size: tuple[int, int]
    canceled_mono: float | None = None
    wake: threading.Event = field(default_factory=threading.Event)

    @property
    def finish_mono(self) -> float:
        """When the prediction is (or will be) terminal."""
        if self.canceled_mono is not None and self.canceled_mono < self.end_mono:
            return self.canceled_mono
        return self.end_mono

    def status(self, now: float) -> str:
        if now >= self.finish_mono and self.finish_mono < self.end_mono:
            return "canceled"
        if now >= self.end_mono:
            return self.outcome
        return "processing" if now >= self.start_mono else "starting"


@dataclass
class _File:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: dict[str, Any]
    created: datetime


class _InputError(Exception):
    """Input validation failed: carries Replicate's ``invalid_fields`` entries."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f["description"] for f in fields))
        self.fields = fields


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def _problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "detail": detail, "status": status, **extra}


def _parse_prefer_wait(header: str | None) -> float | None:
    """Seconds to wait from a ``Prefer`` header, or ``None`` when no wait was asked for.

    ``wait`` means 60 s; ``wait=N`` means N seconds, clamped to (0, 60]. Other preferences
    are ignored, as RFC 7240 asks.
    """
    if not header:
        return None
    for token in header.split(","):
        name, _, value = token.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return MAX_WAIT_S
        try:
            seconds = float(value)
        except ValueError:
            return MAX_WAIT_S
        if not math.isfinite(seconds) or seconds <= 0:
            return MAX_WAIT_S
        return min(seconds, MAX_WAIT_S)
    return None


# --------------------------------------------------------------------------- input checks


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _field_error(name: str, kind: str, description: str) -> dict[str, str]:
    return {"type": kind, "field": f"input.{name}", "description": description}


def _image_url_error(value: str) -> str | None:
    """Why ``value`` is not an acceptable image input (URL or data URI), or ``None``."""
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            return "data URI must be base64-encoded (data:<type>;base64,<data>)"
        try:
            decoded = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return "data URI payload is not valid base64"
        return None if decoded else "data URI payload is empty"
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return "Does not match format 'uri'"


def _validate_input(payload: object) -> dict[str, Any]:
    """Check a create body's ``input`` against flux-kontext-pro's schema; return it."""
    if not isinstance(payload, dict):
        raise _InputError(
            [
                {
                    "type": "invalid_type",
                    "field": "(root)",
                    "description": "Invalid type. Expected: object",
                }
            ]
        )
    data = payload.get("input")
    if not isinstance(data, dict):
        raise _InputError(
            [
                {
                    "type": "invalid_type",
                    "field": "input",
                    "description": f"Invalid type. Expected: object, given: {_type_name(data)}",
                }
            ]
        )
    errors: list[dict[str, str]] = []
    prompt = data.get("prompt")
    if "prompt" not in data:
        errors.append({"type": "required", "field": "input", "description": "prompt is required"})
    elif not isinstance(prompt, str):
        errors.append(
            _field_error(
                "prompt",
                "invalid_type",
                f"Invalid type. Expected: string, given: {_type_name(prompt)}",
            )
        )
    elif not prompt.strip():
        errors.append(_field_error("prompt", "string_gte", "prompt must not be empty"))
    image = data.get("input_image")
    if image is not None:
        if not isinstance(image, str):
            errors.append(
                _field_error(
                    "input_image",
                    "invalid_type",
                    f"Invalid type. Expected: string, given: {_type_name(image)}",
                )
            )
        elif (why := _image_url_error(image)) is not None:
            errors.append(_field_error("input_image", "format", why))
    ratio = data.get("aspect_ratio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        errors.append(
            _field_error(
                "aspect_ratio",
                "enum",
                "aspect_ratio must be one of the following: "
                + ", ".join(f'"{r}"' for r in ASPECT_RATIOS),
            )
        )
    fmt = data.get("output_format")
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        errors.append(
            _field_error(
                "output_format", "enum", 'output_format must be one of the following: "jpg", "png"'
            )
        )
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        errors.append(
            _field_error(
                "seed",
                "invalid_type",
                f"Invalid type. Expected: integer, given: {_type_name(seed)}",
            )
        )
    tolerance = data.get("safety_tolerance")
    if tolerance is not None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, int):
            errors.append(
                _field_error(
                    "safety_tolerance",
                    "invalid_type",
                    f"Invalid type. Expected: integer, given: {_type_name(tolerance)}",
                )
            )
        elif not 0 <= tolerance <= 6:
            errors.append(
                _field_error("safety_tolerance", "number_range", "Must be between 0 and 6")
            )
    upsampling = data.get("prompt_upsampling")
    if upsampling is not None and not isinstance(upsampling, bool):
        errors.append(
            _field_error(
                "prompt_upsampling",
                "invalid_type",
                f"Invalid type. Expected: boolean, given: {_type_name(upsampling)}",
            )
        )
    if errors:
        raise _InputError(errors)
    return data


# --------------------------------------------------------------------------- images


def render_placeholder_image(
    prompt: str, seed: int | None, size: tuple[int, int], fmt: str = "jpg"
) -> bytes:
    """A deterministic, photo-like test image for ``prompt`` and ``seed``.

    A colour gradient background, a dozen hard-edged shapes and a sprinkle of grain: not
    blank, not uniform, good contrast and sharpness. The same arguments give the same bytes;
    different prompts give images whose perceptual hashes are far apart. ``fmt`` is ``jpg``
    or ``png``. At 768×768 about 12 ms as JPEG and 28 ms as PNG (PNG encoding is most of it;
    a 16:9 PNG takes about 50 ms), which is why the server caches what it renders.
    """
    width, height = size
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{width}x{height}".encode()).digest()
    rng = random.Random(digest)

    def ramp(channel: Image.Image) -> Image.Image:
        low, high = rng.randint(0, 80), rng.randint(170, 255)
        if rng.random() < 0.5:
            low, high = high, low
        return channel.point([low + (high - low) * v // 255 for v in range(256)])

    linear = Image.linear_gradient("L")
    radial = Image.radial_gradient("L")
    turns = [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270]
    layers = [linear.transpose(rng.choice(turns)), linear.transpose(rng.choice(turns)), radial]
    rng.shuffle(layers)
    background = Image.merge("RGB", [ramp(layer) for layer in layers])
    # NEAREST: a 256-step ramp stretched by a few pixels per step looks smooth, at a quarter
    # of BILINEAR's cost.
    image = background.resize((width, height), Image.Resampling.NEAREST)

    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    for _ in range(rng.randint(9, 14)):
        colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        cx, cy = rng.randint(0, width), rng.randint(0, height)
        half = rng.randint(scale // 14, scale // 4)
        box = (cx - half, cy - rng.randint(scale // 14, scale // 4), cx + half, cy + half)
        kind = rng.randrange(4)
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=(0, 0, 0), width=rng.randint(0, 4))
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        elif kind == 2:
            points = [
                (cx + rng.randint(-half, half), cy + rng.randint(-half, half))
                for _ in range(rng.randint(3, 6))
            ]
            draw.polygon(points, fill=colour)
        else:
            draw.line(
                [(cx - half, cy), (cx + half, cy + rng.randint(-half, half))],
                fill=colour,
                width=rng.randint(3, max(4, scale // 40)),
            )

    # Grain: about 3% of the pixels a little lighter or darker. Dense noise would look more
    # like a sensor's, but makes PNG encoding several times slower.
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).point(_GRAIN)
    image = ImageChops.add(image, Image.merge("RGB", (grain, grain, grain)), 1.0, -128)

    out = io.BytesIO()
    if fmt == "png":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=88)
    return out.getvalue()


def _ratio_size(ratio: float, short_side: int) -> tuple[int, int]:
    ratio = min(max(ratio, 9 / 21), 21 / 9)
    if ratio >= 1:
        return round(short_side * ratio), short_side
    return short_side, round(short_side / ratio)


# --------------------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # benchmarks open dozens of connections at once

    def __init__(self, address: tuple[str, int], stand_in: ReplicateStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(address, _Handler)


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
        self.stand_in._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.stand_in._track_connection(self.connection, add=False)

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
        self._json(404, _problem(404, "Not found", detail))

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
                    _problem(
                        500, "Internal server error", f"stand-in error: {type(exc).__name__}: {exc}"
                    ),
                )

    def _route(self, method: str, path: str, body: bytes) -> None:
        stand_in = self.stand_in
        parts = [p for p in path.split("/") if p]
        if method == "GET" and len(parts) == 3 and parts[:2] == ["files", "out"]:
            self._output_file(parts[2])
            return
        if not parts or parts[0] != "v1":
            self._not_found()
            return
        if not stand_in._authorized(self.headers.get("Authorization")):
            self._json(
                401,
                _problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
            )
            return
        rest = parts[1:]
        if method == "POST" and len(rest) == 4 and rest[0] == "models" and rest[3] == "predictions":
            model = f"{rest[1]}/{rest[2]}"
            if model not in stand_in.models:
                self._not_found(f"Model {model} not found.")
                return
            self._create(model, body)
        elif method == "POST" and rest == ["predictions"]:
            self._create(None, body)
        elif method == "GET" and rest == ["predictions"]:
            self._json(
                200, {"next": None, "previous": None, "results": stand_in._list_predictions()}
            )
        elif method == "GET" and len(rest) == 2 and rest[0] == "predictions":
            view = stand_in._prediction_view(rest[1])
            if view is None:
                self._not_found()
            else:
                self._json(200, view)
        elif (
            method == "POST" and len(rest) == 3 and rest[0] == "predictions" and rest[2] == "cancel"
        ):
            view = stand_in._cancel(rest[1])
            if view is None:
                self._not_found()
            else:
                self._json(200, view)
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
        elif rest and rest[0] == "files":
            self._files(method, rest[1:], body)
        else:
            self._not_found()

    # -- predictions

    def _create(self, model: str | None, body: bytes) -> None:
        stand_in = self.stand_in
        fault = stand_in._create_fault()
        faults = stand_in.faults
        if fault == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "throttle":
            wait = faults.retry_after
            self._delay(faults.slow_create)
            shown = f"{wait:g} second" + ("" if wait == 1 else "s")
            self._json(
                429,
                _problem(
                    429,
                    "Request was throttled",
                    f"Request was throttled. Expected available in {shown}.",
                ),
                {"Retry-After": f"{wait:g}"},
            )
            return
        if fault in ("500", "502", "503"):
            self._delay(faults.slow_create)
            if fault == "502":
                page = (
                    b"<html><head><title>502 Bad Gateway</title></head><body>"
                    b"<h1>502 Bad Gateway</h1></body></html>"
                )
                self._send(502, page, "text/html")
            else:
                code = int(fault)
                title = "Internal server error" if code == 500 else "Service unavailable"
                self._json(code, _problem(code, title, "Please retry the request."))
            return
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            self._json(400, _problem(400, "Bad request", "The request body is not valid JSON."))
            return
        if model is None:
            version = payload.get("version") if isinstance(payload, dict) else None
            model = stand_in._model_for_version(version)
            if model is None:
                self._json(
                    422,
                    _problem(
                        422,
                        "Invalid version or not permitted",
                        f"The specified version does not exist: {version!r}",
                    ),
                )
                return
        try:
            data = _validate_input(payload)
        except _InputError as exc:
            detail = "".join(f"- {f['field']}: {f['description']}\n" for f in exc.fields)
            self._json(
                422, _problem(422, "Input validation failed", detail, invalid_fields=exc.fields)
            )
            return
        prediction = stand_in._accept(model, data)
        self._answer_create(prediction, _parse_prefer_wait(self.headers.get("Prefer")))

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
                uploaded = _parse_upload(self.headers.get("Content-Type", ""), body)
            except ValueError as exc:
                self._json(400, _problem(400, "Bad request", str(exc)))
                return
            self._json(201, stand_in._store_file(*uploaded))
        elif method == "GET" and not rest:
            self._json(200, {"next": None, "previous": None, "results": stand_in._list_files()})
        elif len(rest) in (1, 2):
            record = stand_in._file(rest[0])
            if record is None:
                self._not_found()
            elif method == "GET" and len(rest) == 1:
                self._json(200, stand_in._file_view(record))
            elif method == "GET" and rest[1:] == ["download"]:
                self._send(200, record.data, record.content_type)
            elif method == "DELETE" and len(rest) == 1:
                stand_in._delete_file(record.id)
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


def _parse_upload(content_type: str, body: bytes) -> tuple[str, str, bytes, dict[str, Any]]:
    """``(filename, content_type, data, metadata)`` from a multipart body with ``content``."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValueError("Expected a multipart/form-data body with a 'content' field.")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("Malformed multipart body.")
    found: tuple[str, str, bytes] | None = None
    metadata: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "content":
            filename = part.get_filename() or "file"
            found = (filename, part.get_content_type() or "application/octet-stream", data)
        elif name == "metadata" and data:
            try:
                loaded = json.loads(data)
            except ValueError as exc:
                raise ValueError("The 'metadata' field is not valid JSON.") from exc
            if isinstance(loaded, dict):
                metadata = loaded
    if found is None:
        raise ValueError("Missing the 'content' field.")
    return found[0], found[1], found[2], metadata


class ReplicateStandIn:
    """A local HTTP server that speaks Replicate's API; see the module docstring.

    ``faults`` may be changed between requests (fields in place, or a new :class:`Faults`,
    which re-arms the "first N" faults). Counters are protected by a lock; reading
    ``max_in_flight`` computes the exact peak of overlapping predictions since the last
    :meth:`reset_counters`.
    """

    def __init__(
        self,
        *,
        token: str = "test-token",
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        image_size: tuple[int, int] = (768, 768),
        models: tuple[str, ...] = DEFAULT_MODELS,
        username: str = "stand-in",
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.image_size = image_size
        self.models = models
        self.username = username
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._predictions: dict[str, _Prediction] = {}
        self._files: dict[str, _File] = {}
        self._images: OrderedDict[tuple[str, int | None, str, tuple[int, int]], bytes] = (
            OrderedDict()
        )
        self._image_bytes = 0
        self._base_url: str | None = None
        self.creates = 0
        self.create_attempts = 0
        self.throttled = 0
        self.server_errors = 0
        self.dropped = 0
        self.canceled = 0
        self.requests_log: list[tuple[str, str]] = []
        self._since = time.monotonic()
        self._rearm()

    # -- lifecycle

    def start(self) -> ReplicateStandIn:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._base_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"replicate-stand-in:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake blocked waits and close open connections. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        with self._lock:
            for prediction in self._predictions.values():
                prediction.wake.set()
            connections = list(self._connections)
        server.shutdown()
        server.server_close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ReplicateStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; clients append ``/v1/...``."""
        if self._base_url is None:
            raise RuntimeError("ReplicateStandIn was never started")
        return self._base_url

    # -- faults and observations

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            self._faults = value
            self._rearm()

    def _rearm(self) -> None:
        self._used_drop = 0
        self._used_throttle = 0
        self._used_errors = 0

    def reset_counters(self) -> None:
        """Zero the observations, re-arm the "first N" faults; keeps predictions and files."""
        with self._lock:
            self.creates = 0
            self.create_attempts = 0
            self.throttled = 0
            self.server_errors = 0
            self.dropped = 0
            self.canceled = 0
            self.requests_log = []
            self._since = time.monotonic()
            self._rearm()

    @property
    def in_flight(self) -> int:
        """Predictions created and not yet terminal, now."""
        now = time.monotonic()
        with self._lock:
            return sum(
                1 for p in self._predictions.values() if p.created_mono <= now < p.finish_mono
            )

    @property
    def max_in_flight(self) -> int:
        """Peak number of predictions in flight at once since the last :meth:`reset_counters`."""
        with self._lock:
            since = self._since
            intervals = [
                (max(p.created_mono, since), p.finish_mono)
                for p in self._predictions.values()
                if p.finish_mono > since
            ]
        events = sorted(
            [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
        )  # ends sort before starts
        peak = current = 0
        for _, step in events:
            current += step
            peak = max(peak, current)
        return peak

    @property
    def predictions(self) -> dict[str, dict[str, Any]]:
        """id → the prediction object as ``GET`` would show it now (a copy; input always kept)."""
        now = time.monotonic()
        with self._lock:
            records = list(self._predictions.values())
        views = {}
        for p in records:
            view = self._view(p, now)
            view["input"] = copy.deepcopy(p.input)
            views[p.id] = view
        return views

    @property
    def files(self) -> dict[str, bytes]:
        """id → uploaded bytes (a copy of the mapping)."""
        with self._lock:
            return {file_id: record.data for file_id, record in self._files.items()}

    # -- used by the handler

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _log_request(self, method: str, path: str) -> None:
        with self._lock:
            self.requests_log.append((method, path))

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() in ("bearer", "token") and secrets.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    def _create_fault(self) -> str | None:
        """Count a create attempt and decide which fault, if any, answers it."""
        with self._lock:
            self.create_attempts += 1
            f = self._faults
            if self._used_drop < f.drop_connection_first:
                self._used_drop += 1
                self.dropped += 1
                return "drop"
            if self._used_throttle < f.throttle_first:
                self._used_throttle += 1
                self.throttled += 1
                return "throttle"
            if self._used_errors < f.server_errors_first:
                code = ("500", "502", "503")[self._used_errors % 3]
                self._used_errors += 1
                self.server_errors += 1
                return code
            return None

    def _model_for_version(self, version: object) -> str | None:
        if not isinstance(version, str):
            return None
        name = version.split(":", 1)[0]
        return name if name in self.models else None

    def _accept(self, model: str, data: dict[str, Any]) -> _Prediction:
        faults = self._faults
        prompt = str(data["prompt"])
        latency = max(0.0, faults.latency)
        if faults.flag_prompts_containing and faults.flag_prompts_containing in prompt:
            outcome, error = "failed", E005_ERROR
        elif faults.fail_prompts_containing and faults.fail_prompts_containing in prompt:
            outcome, error = "failed", GENERIC_MODEL_ERROR
        else:
            outcome, error = "succeeded", None
        raw_seed = data.get("seed")
        seed = (
            raw_seed
            if isinstance(raw_seed, int)
            else int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
        )
        now = time.monotonic()
        prediction = _Prediction(
            id=_new_id(),
            model=model,
            input=copy.deepcopy(data),
            created_mono=now,
            created_wall=datetime.now(UTC),
            start_mono=now + min(START_DELAY_S, latency / 4),
            end_mono=now + latency,
            outcome=outcome,
            error=error,
            seed=seed,
            ext=str(data.get("output_format") or "jpg"),
            size=self._output_size(data),
        )
        with self._lock:
            self._predictions[prediction.id] = prediction
            self.creates += 1
        return prediction

    def _output_size(self, data: dict[str, Any]) -> tuple[int, int]:
        """``image_size`` unless ``aspect_ratio`` asks otherwise (short side kept)."""
        ratio = data.get("aspect_ratio")
        short_side = min(self.image_size)
        if ratio is None:
            return self.image_size
        if ratio == "match_input_image":
            size = self._input_image_size(data.get("input_image"))
            return self.image_size if size is None else _ratio_size(size[0] / size[1], short_side)
        width, _, height = str(ratio).partition(":")
        return _ratio_size(int(width) / int(height), short_side)

    def _input_image_size(self, value: object) -> tuple[int, int] | None:
        """Size of a data-URI image or of a file uploaded here; never fetches anything."""
        if not isinstance(value, str):
            return None
        data: bytes | None = None
        if value.startswith("data:"):
            data = base64.b64decode(value.partition(",")[2])
        elif value.startswith(f"http://{self.host}:{self.port}/v1/files/"):
            file_id = value.rstrip("/").split("/")[-1]
            with self._lock:
                record = self._files.get(file_id)
            data = record.data if record else None
        if not data:
            return None
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
            return None
        return (width, height) if width > 0 and height > 0 else None

    def _cancel(self, prediction_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                return None
            if prediction.status(now) not in TERMINAL:
                prediction.canceled_mono = now
                self.canceled += 1
                prediction.wake.set()
        return self._view(prediction, now)

    def _prediction_view(self, prediction_id: str) -> dict[str, Any] | None:
        with self._lock:
            prediction = self._predictions.get(prediction_id)
        return None if prediction is None else self._view(prediction, time.monotonic())

    def _list_predictions(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            records = sorted(self._predictions.values(), key=lambda p: -p.created_mono)
        return [self._view(p, now) for p in records[:100]]

    def _wall(self, prediction: _Prediction, mono: float) -> str:
        return _iso(prediction.created_wall + timedelta(seconds=mono - prediction.created_mono))

    def _expired(self, prediction: _Prediction, now: float) -> bool:
        ttl = self._faults.output_ttl
        return ttl is not None and now >= prediction.finish_mono + ttl

    def _view(self, prediction: _Prediction, now: float) -> dict[str, Any]:
        """The prediction object as Replicate's API shows it at monotonic time ``now``."""
        status = prediction.status(now)
        api = f"{self.base_url}/v1/predictions/{prediction.id}"
        terminal = status in TERMINAL
        removed = terminal and self._expired(prediction, now)
        logs = ""
        if status != "starting":
            logs = f"Using seed: {prediction.seed}\nRunning prediction...\n"
        if status == "succeeded":
            logs += "Generated image.\n"
        output = None
        if status == "succeeded" and not removed:
            output = f"{self.base_url}/files/out/{prediction.id}.{prediction.ext}"
        view: dict[str, Any] = {
            "id": prediction.id,
            "model": prediction.model,
            "version": "hidden",
            "input": {} if removed else copy.deepcopy(prediction.input),
            "logs": logs,
            "output": output,
            "data_removed": removed,
            "error": prediction.error if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": _iso(prediction.created_wall),
            "started_at": (
                self._wall(prediction, prediction.start_mono) if status != "starting" else None
            ),
            "completed_at": self._wall(prediction, prediction.finish_mono) if terminal else None,
            "urls": {
                "get": api,
                "cancel": f"{api}/cancel",
                "web": f"{self.base_url}/p/{prediction.id}",
            },
        }
        if terminal:
            started = min(prediction.start_mono, prediction.finish_mono)
            view["metrics"] = {"predict_time": round(prediction.finish_mono - started, 6)}
        return view

    def _output_bytes(self, prediction_id: str, ext: str) -> tuple[bytes, str] | None:
        now = time.monotonic()
        with self._lock:
            prediction = self._predictions.get(prediction_id)
        if prediction is None or ext != prediction.ext:
            return None
        if prediction.status(now) != "succeeded" or self._expired(prediction, now):
            return None
        key = (str(prediction.input["prompt"]), prediction.input.get("seed"), ext, prediction.size)
        with self._lock:
            data = self._images.get(key)
            if data is not None:
                self._images.move_to_end(key)
        if data is None:
            data = render_placeholder_image(key[0], key[1], key[3], ext)
            with self._lock:
                if key not in self._images:
                    self._images[key] = data
                    self._image_bytes += len(data)
                while self._image_bytes > _IMAGE_CACHE_BYTES and len(self._images) > 1:
                    self._image_bytes -= len(self._images.popitem(last=False)[1])
        return data, "image/png" if ext == "png" else "image/jpeg"

    def _store_file(
        self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        record = _File(
            id=_new_id(),
            name=name,
            content_type=content_type,
            data=data,
            metadata=metadata,
            created=datetime.now(UTC),
        )
        with self._lock:
            self._files[record.id] = record
        return self._file_view(record)

    def _file(self, file_id: str) -> _File | None:
        with self._lock:
            return self._files.get(file_id)

    def _delete_file(self, file_id: str) -> None:
        with self._lock:
            self._files.pop(file_id, None)

    def _list_files(self) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self._files.values())
        return [self._file_view(r) for r in reversed(records)]

    def _file_view(self, record: _File) -> dict[str, Any]:
        url = f"{self.base_url}/v1/files/{record.id}"
        return {
            "id": record.id,
            "name": record.name,
            "content_type": record.content_type,
            "size": len(record.data),
            "etag": hashlib.md5(record.data).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(record.data).hexdigest(),
                "md5": hashlib.md5(record.data).hexdigest(),
            },
            "metadata": record.metadata,
            "created_at": _iso(record.created),
            "expires_at": _iso(record.created + FILE_TTL),
            "urls": {"get": url},
        }


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
