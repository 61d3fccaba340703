"""Replicate's HTTP API, spoken with our own small httpx client.

Why not the official ``replicate`` package: it does not retry a throttled
create (POST), returns plain strings for ``http:`` outputs and sends the API
token to the file host when reading outputs. The protocol we need is small:

* ``POST /v1/models/{owner}/{name}/predictions`` with ``Prefer: wait=N`` — blocks
  up to N s (``ACTOR_MAKER_CREATE_WAIT``, default 10, at most 60); a response that
  is not terminal is polled. N is kept short on purpose: if we are canceled while a
  create is on the wire we wait for its answer (so the prediction it started can be
  canceled), and Ctrl-C should not hang for a minute. A job that records its predictions
  (``on_created``) creates without ``Prefer: wait``: the answer, with the prediction's id,
  comes at once and is written to the job record before any waiting, so a process killed
  at any moment after it leaves nothing paid that a resumed run cannot find.
* ``GET /v1/predictions/{id}`` until ``succeeded``/``failed``/``canceled``/``aborted``
  (or until the output is present: a finished prediction may still say ``processing``).
  A new prediction's first poll waits three quarters of the model's typical duration
  (a moving average of what this provider saw), so a 5 s prediction costs about two
  polls, not five.
* ``POST /v1/predictions/{id}/cancel`` on deadline or when our task is cancelled.
* ``POST /v1/files`` for input images that have no fetchable URL and are over 1 MB.

Retries (exponential backoff with jitter, ``Retry-After`` honoured) cover 429,
5xx and connection failures that happened before the request was sent. A
create that timed out after it was sent is *not* retried: it may have started a
paid prediction. E005 ("flagged as sensitive") is final. That HTTP policy lives in
``replicate_http.py``, shared with the LoRA trainer (``training/replicate.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from actor_maker.errors import (
    ConfigError,
    ContentFlaggedError,
    ProviderError,
    ProviderTimeoutError,
)
from actor_maker.images import data_uri
from actor_maker.providers.base import (
    UNTRACKED,
    CreateGate,
    GeneratedImage,
    GenerationParams,
    InputImage,
    Tracking,
)
from actor_maker.providers.replicate_http import ReplicateHTTP, problem, retry_after
from actor_maker.timeutil import utc_now

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
#: Longest blocking wait Replicate honours on create.
MAX_WAIT_S = 60
DATA_URI_LIMIT = 1_000_000
MAX_OUTPUT_BYTES = 50 * 1024 * 1024
#: A new prediction's first poll waits this share of the typical duration (at most
#: ``MAX_FIRST_POLL_S``); later polls come every ``poll_interval_s``.
FIRST_POLL_SHARE = 0.75
MAX_FIRST_POLL_S = 30.0


@dataclass
class _Call:
    """One generate call's view of its prediction."""

    prediction_id: str | None = None
    #: A create request is on the wire: it may start a prediction we cannot see yet.
    sending: bool = False


class ReplicateProvider:
    """FLUX Kontext (or any image model with ``prompt`` + ``input_image``) on Replicate."""

    name = "replicate"
    free = False
    placeholder = False

    def __init__(
        self,
        http: ReplicateHTTP,
        *,
        model: str,
        price: float | None = None,
        deadline_s: float = 300.0,
        poll_interval_s: float = 1.0,
        safety_tolerance: int = 2,
        wait_s: int = 10,
        gate: CreateGate | None = None,
    ) -> None:
        """``http``: the Replicate client (token, base URL, retry policy); :meth:`aclose`
        closes it."""
        if model.count("/") != 1:
            raise ConfigError(f"model {model!r} must look like owner/name")
        self.model = model
        self.price = price
        self.deadline_s = deadline_s
        self.poll_interval_s = poll_interval_s
        self.safety_tolerance = safety_tolerance
        self.wait_s = max(1, min(MAX_WAIT_S, wait_s))
        #: Shared pacing of creates (distributed mode): a global rate and 429 slow-down.
        self.gate = gate
        self._http = http
        self._uploads: dict[str, str] = {}
        self._upload_lock = asyncio.Lock()
        #: How long this model's predictions took lately (a moving average, seconds): the
        #: first poll of a new prediction waits most of that, not ``poll_interval_s``.
        self._typical_s: float | None = None

    # --- public ----------------------------------------------------------------------
    async def generate(
        self, image: InputImage, params: GenerationParams, tracking: Tracking = UNTRACKED
    ) -> GeneratedImage:
        async def payload() -> dict[str, Any]:
            return self._input(params, await self._input_image_url(image))

        return await self._run(payload, params.seed, tracking)

    async def predict(
        self, payload: dict[str, Any], seed: int, tracking: Tracking = UNTRACKED
    ) -> GeneratedImage:
        """One prediction of this provider's model with ``payload`` as its whole ``input``
        (e.g. ``flux-dev-lora`` with ``lora_weights``), under the same deadline, retry,
        cancel, resume and download rules as :meth:`generate`."""

        async def given() -> dict[str, Any]:
            return payload

        return await self._run(given, seed, tracking)

    async def _run(
        self,
        payload: Callable[[], Awaitable[dict[str, Any]]],
        seed: int,
        tracking: Tracking,
    ) -> GeneratedImage:
        started = utc_now()
        resume, on_created = tracking.resume, tracking.on_created
        call = _Call()
        try:
            async with asyncio.timeout(self.deadline_s):
                prediction = await self._resumable(resume) if resume else None
                created: float | None = None
                if prediction is not None:
                    call.prediction_id = resume
                else:
                    # A recorded job needs the id before anything can go wrong: no
                    # ``Prefer: wait`` then, so the create answers at once.
                    prediction = await self._create_cancel_safe(
                        await payload(), call, wait=on_created is None
                    )
                    created = time.monotonic()
                    if on_created is not None:
                        await on_created(str(prediction["id"]))
                prediction = await self._until_done(prediction, first_wait=created is not None)
                if created is not None:
                    self._observe(time.monotonic() - created)
                url = self._output_url(prediction)
                data = await self._http.retrying(
                    self._http.download, url, "the output", MAX_OUTPUT_BYTES
                )
        except TimeoutError as exc:
            await self._cancel_quietly(call.prediction_id)
            raise ProviderTimeoutError(
                f"no image within the {self.deadline_s:.0f} s deadline"
                + (f" (prediction {call.prediction_id} canceled)" if call.prediction_id else "")
            ) from exc
        except (asyncio.CancelledError, ProviderTimeoutError):
            await self._cancel_quietly(call.prediction_id)
            raise
        prediction_id = call.prediction_id
        return GeneratedImage(
            data=data,
            provider=self.name,
            model=self.model,
            seed=seed,
            prediction_id=prediction_id,
            started_at=started,
            finished_at=utc_now(),
            cost=self.price,
        )

    async def check(self) -> str:
        try:
            response = await self._http.client.get(
                f"{self._http.api}/account", headers=self._http.headers
            )
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"cannot reach Replicate at {self._http.api}: {type(exc).__name__}"
            ) from exc
        if response.status_code == 401:
            raise ConfigError("Replicate rejected REPLICATE_API_TOKEN (HTTP 401)")
        if response.status_code != 200:
            raise ProviderError(f"Replicate account check failed: {problem(response)}")
        username = response.json().get("username", "?")
        return f"Replicate reachable, token valid (account {username}), model {self.model}"

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- steps ----------------------------------------------------------------------
    def _input(self, params: GenerationParams, input_image: str) -> dict[str, Any]:
        return {
            "prompt": params.prompt,
            "input_image": input_image,
            "aspect_ratio": params.aspect_ratio,
            "output_format": params.output_format,
            "safety_tolerance": min(self.safety_tolerance, 2),
            "seed": params.seed,
        }

    async def _create_cancel_safe(
        self, payload: dict[str, Any], call: _Call, *, wait: bool = True
    ) -> dict[str, Any]:
        """Create (with retries); if we are canceled while a create is on the wire, wait for
        its answer (at most one blocking wait) so the prediction it started can be canceled
        instead of running on, unseen and paid for."""
        task: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(
            self._http.retrying(self._create, payload, call, wait)
        )
        try:
            prediction = await asyncio.shield(task)
        except asyncio.CancelledError:
            if call.sending:
                await asyncio.wait({task}, timeout=self.wait_s + self._http.request_timeout_s)
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                call.prediction_id = str(task.result()["id"])
            raise
        call.prediction_id = str(prediction["id"])
        return prediction

    async def _create(
        self, payload: dict[str, Any], call: _Call, blocking: bool = True
    ) -> dict[str, Any]:
        wait = max(1, min(self.wait_s, int(self.deadline_s))) if blocking else 0
        prefer = {"Prefer": f"wait={wait}"} if blocking else {}
        timeout = self._http.request_timeout_s
        if self.gate is not None:
            await self.gate.before_create()
        call.sending = True
        try:
            response = await self._http.send(
                "POST",
                f"{self._http.api}/models/{self.model}/predictions",
                json={"input": payload},
                headers={**self._http.headers, **prefer},
                timeout=httpx.Timeout(timeout, read=wait + timeout),
            )
        finally:
            call.sending = False
        if response.status_code == 429 and self.gate is not None:
            await self.gate.throttled(retry_after(response))
        self._http.raise_for(response, "creating the prediction failed")
        body: dict[str, Any] = response.json()
        return body

    async def _get(self, prediction_id: str) -> dict[str, Any]:
        return await self._http.get_json(
            f"/predictions/{prediction_id}", f"reading prediction {prediction_id} failed"
        )

    async def _until_done(
        self, prediction: dict[str, Any], *, first_wait: bool = False
    ) -> dict[str, Any]:
        """Poll until the prediction ends. With ``first_wait`` (a prediction just created)
        the first poll comes after most of the typical duration: each poll is a request, and
        at the provider's rate the polls were most of a worker's requests."""
        delay = self._first_poll_s() if first_wait else self.poll_interval_s
        while not self._finished(prediction):
            await asyncio.sleep(delay)
            delay = self.poll_interval_s
            prediction = await self._http.retrying(self._get, str(prediction["id"]))
        status = prediction.get("status")
        if status == "succeeded" or (status not in TERMINAL and prediction.get("output")):
            return prediction
        error = str(prediction.get("error") or f"prediction ended {status}")
        if "E005" in error or "flagged as sensitive" in error.lower():
            raise ContentFlaggedError(f"flagged as sensitive by the model (E005): {error[:300]}")
        raise ProviderError(f"prediction {prediction.get('id')} {status}: {error[:300]}")

    def _first_poll_s(self) -> float:
        if self._typical_s is None:
            return self.poll_interval_s
        return max(self.poll_interval_s, min(FIRST_POLL_SHARE * self._typical_s, MAX_FIRST_POLL_S))

    def _observe(self, seconds: float) -> None:
        """Fold one prediction's create-to-finish time into the typical duration."""
        typical = self._typical_s
        self._typical_s = seconds if typical is None else typical + 0.2 * (seconds - typical)

    async def _resumable(self, prediction_id: str) -> dict[str, Any] | None:
        """The prediction an earlier run started, when it can still give its image: running,
        or succeeded with its output not yet removed. ``None``: start a new one."""
        try:
            prediction: dict[str, Any] = await self._http.retrying(self._get, prediction_id)
        except ProviderError as exc:
            log.info("prediction %s cannot be resumed (%s); starting a new one", prediction_id, exc)
            return None
        status = prediction.get("status")
        # A failed one is the item's outcome (the wait below raises its error); a canceled
        # one was stopped by us, and a succeeded one whose output expired gave nothing.
        if status == "canceled" or (status == "succeeded" and not prediction.get("output")):
            log.info("prediction %s ended %s without an output to keep", prediction_id, status)
            return None
        return prediction

    @staticmethod
    def _finished(prediction: dict[str, Any]) -> bool:
        return prediction.get("status") in TERMINAL or bool(prediction.get("output"))

    @staticmethod
    def _output_url(prediction: dict[str, Any]) -> str:
        output = prediction.get("output")
        if isinstance(output, list) and output:
            output = output[0]
        if output is None and prediction.get("data_removed"):
            raise ProviderError(
                f"prediction {prediction.get('id')} succeeded but its output has expired and was "
                "removed before it could be downloaded"
            )
        if not isinstance(output, str) or not output.startswith(("http://", "https://", "data:")):
            raise ProviderError(f"prediction {prediction.get('id')} returned no image URL")
        return output

    async def _input_image_url(self, image: InputImage) -> str:
        if image.url:
            return image.url
        if len(image.data) <= DATA_URI_LIMIT:
            return data_uri(image.data, image.content_type)
        digest = hashlib.sha256(image.data).hexdigest()
        async with self._upload_lock:
            if digest not in self._uploads:
                self._uploads[digest] = await self._http.retrying(self._upload, image)
            return self._uploads[digest]

    async def _upload(self, image: InputImage) -> str:
        ext = image.content_type.rsplit("/", 1)[-1]
        return await self._http.upload(
            f"base.{ext}",
            image.data,
            image.content_type,
            "uploading the base image to Replicate failed",
        )

    async def _cancel_quietly(self, prediction_id: str | None) -> None:
        if not prediction_id:
            return
        try:
            async with asyncio.timeout(10):
                await self._http.client.post(
                    f"{self._http.api}/predictions/{prediction_id}/cancel",
                    headers=self._http.headers,
                )
        except (httpx.HTTPError, TimeoutError):
            log.warning("could not cancel prediction %s", prediction_id)
