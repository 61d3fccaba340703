"""Replicate's HTTP API, spoken with our own small httpx client.

Why not the official ``replicate`` package: it does not retry a throttled
create (POST), returns plain strings for ``http:`` outputs and sends the API
token to the file host when reading outputs. The protocol we need is small:

* ``POST /v1/models/{owner}/{name}/predictions`` with ``Prefer: wait=N`` — blocks
  up to N s (``ACTOR_MAKER_CREATE_WAIT``, default 10, at most 60); a response that
  is not terminal is polled. N is kept short on purpose: if we are canceled while a
  create is on the wire we wait for its answer (so the prediction it started can be
  canceled), and Ctrl-C should not hang for a minute.
* ``GET /v1/predictions/{id}`` until ``succeeded``/``failed``/``canceled``/``aborted``
  (or until the output is present: a finished prediction may still say ``processing``).
* ``POST /v1/predictions/{id}/cancel`` on deadline or when our task is cancelled.
* ``POST /v1/files`` for input images that have no fetchable URL and are over 1 MB.

Retries (exponential backoff with jitter, ``Retry-After`` honoured) cover 429,
5xx and connection failures that happened before the request was sent. A
create that timed out after it was sent is *not* retried: it may have started a
paid prediction. E005 ("flagged as sensitive") is final.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_exponential_jitter

from actor_maker.errors import (
    ConfigError,
    ContentFlaggedError,
    ProviderError,
    ProviderTimeoutError,
    RetryableProviderError,
)
from actor_maker.fetch import redact_url
from actor_maker.images import data_uri
from actor_maker.providers.base import (
    CreateGate,
    GeneratedImage,
    GenerationParams,
    InputImage,
    OnCreated,
)
from actor_maker.timeutil import utc_now

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
#: Longest blocking wait Replicate honours on create.
MAX_WAIT_S = 60
DATA_URI_LIMIT = 1_000_000
#: Consecutive 429 answers one call puts up with (each waits as told) before giving up.
MAX_THROTTLED = 50
MAX_OUTPUT_BYTES = 50 * 1024 * 1024


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _problem(response: httpx.Response) -> str:
    """A one-line reason from a problem-details body, never echoing headers."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or body.get("error")
        if detail:
            return f"HTTP {response.status_code}: {str(detail)[:300]}"
    return f"HTTP {response.status_code}"


class _Wait:
    """tenacity wait: the server's Retry-After when given, else exponential with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableProviderError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))


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
        *,
        token: str,
        model: str,
        base_url: str = "https://api.replicate.com",
        client: httpx.AsyncClient | None = None,
        price: float | None = None,
        deadline_s: float = 300.0,
        max_retries: int = 5,
        poll_interval_s: float = 1.0,
        safety_tolerance: int = 2,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        wait_s: int = 10,
        request_timeout_s: float = 15.0,
        gate: CreateGate | None = None,
    ) -> None:
        if model.count("/") != 1:
            raise ConfigError(f"model {model!r} must look like owner/name")
        self.model = model
        self.price = price
        self.deadline_s = deadline_s
        self.max_retries = max_retries
        self.poll_interval_s = poll_interval_s
        self.safety_tolerance = safety_tolerance
        self._wait = _Wait(backoff_initial_s, backoff_max_s)
        self.wait_s = max(1, min(MAX_WAIT_S, wait_s))
        self.request_timeout_s = request_timeout_s
        #: Shared pacing of creates (distributed mode): a global rate and 429 slow-down.
        self.gate = gate
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout_s),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self._api = base_url.rstrip("/") + "/v1"
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "actor-maker"}
        self._uploads: dict[str, str] = {}
        self._upload_lock = asyncio.Lock()

    # --- public ----------------------------------------------------------------------
    async def generate(
        self,
        image: InputImage,
        params: GenerationParams,
        *,
        resume: str | None = None,
        on_created: OnCreated | None = None,
    ) -> GeneratedImage:
        started = utc_now()
        call = _Call()
        try:
            async with asyncio.timeout(self.deadline_s):
                prediction = await self._resumable(resume) if resume else None
                if prediction is not None:
                    call.prediction_id = resume
                else:
                    input_image = await self._input_image_url(image)
                    prediction = await self._create_cancel_safe(
                        self._input(params, input_image), call
                    )
                    if on_created is not None:
                        await on_created(str(prediction["id"]))
                prediction = await self._until_done(prediction)
                url = self._output_url(prediction)
                data = await self._retrying(self._download, url)
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
            seed=params.seed,
            prediction_id=prediction_id,
            started_at=started,
            finished_at=utc_now(),
            cost=self.price,
        )

    async def check(self) -> str:
        try:
            response = await self._client.get(f"{self._api}/account", headers=self._headers)
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"cannot reach Replicate at {self._api}: {type(exc).__name__}"
            ) from exc
        if response.status_code == 401:
            raise ConfigError("Replicate rejected REPLICATE_API_TOKEN (HTTP 401)")
        if response.status_code != 200:
            raise ProviderError(f"Replicate account check failed: {_problem(response)}")
        username = response.json().get("username", "?")
        return f"Replicate reachable, token valid (account {username}), model {self.model}"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

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

    def _stop(self, state: RetryCallState) -> bool:
        """Failures use up ``max_retries``; 429s do not (they are bounded by the deadline
        and ``MAX_THROTTLED`` instead): a throttling storm must not lose items."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableProviderError) and exc.throttled:
            return state.attempt_number > MAX_THROTTLED
        return state.attempt_number > self.max_retries

    async def _retrying(self, fn: Any, *args: Any) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryableProviderError),
            stop=self._stop,
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn(*args)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; maps transport failures by whether the request went out."""
        try:
            return await self._client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableProviderError(
                f"cannot connect to Replicate: {type(exc).__name__}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"Replicate did not answer {method} {redact_url(url)} in time; "
                "not retried because the request may have started a paid prediction"
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderTimeoutError(
                f"connection to Replicate lost during {method} {redact_url(url)} "
                f"({type(exc).__name__}); not retried because it may have started a prediction"
            ) from exc

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 429 or status >= 500:
            raise RetryableProviderError(
                f"{what}: {_problem(response)}", _retry_after(response), throttled=status == 429
            )
        if status == 401:
            raise ConfigError("Replicate rejected REPLICATE_API_TOKEN (HTTP 401)")
        raise ProviderError(f"{what}: {_problem(response)}")

    async def _create_cancel_safe(self, payload: dict[str, Any], call: _Call) -> dict[str, Any]:
        """Create (with retries); if we are canceled while a create is on the wire, wait for
        its answer (at most one blocking wait) so the prediction it started can be canceled
        instead of running on, unseen and paid for."""
        task: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(
            self._retrying(self._create, payload, call)
        )
        try:
            prediction = await asyncio.shield(task)
        except asyncio.CancelledError:
            if call.sending:
                await asyncio.wait({task}, timeout=self.wait_s + self.request_timeout_s)
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                call.prediction_id = str(task.result()["id"])
            raise
        call.prediction_id = str(prediction["id"])
        return prediction

    async def _create(self, payload: dict[str, Any], call: _Call) -> dict[str, Any]:
        wait = max(1, min(self.wait_s, int(self.deadline_s)))
        if self.gate is not None:
            await self.gate.before_create()
        call.sending = True
        try:
            response = await self._send(
                "POST",
                f"{self._api}/models/{self.model}/predictions",
                json={"input": payload},
                headers={**self._headers, "Prefer": f"wait={wait}"},
                timeout=httpx.Timeout(self.request_timeout_s, read=wait + self.request_timeout_s),
            )
        finally:
            call.sending = False
        if response.status_code == 429 and self.gate is not None:
            await self.gate.throttled(_retry_after(response))
        self._raise_for(response, "creating the prediction failed")
        body: dict[str, Any] = response.json()
        return body

    async def _get(self, prediction_id: str) -> dict[str, Any]:
        response = await self._send(
            "GET", f"{self._api}/predictions/{prediction_id}", headers=self._headers
        )
        self._raise_for(response, f"reading prediction {prediction_id} failed")
        body: dict[str, Any] = response.json()
        return body

    async def _until_done(self, prediction: dict[str, Any]) -> dict[str, Any]:
        while not self._finished(prediction):
            await asyncio.sleep(self.poll_interval_s)
            prediction = await self._retrying(self._get, str(prediction["id"]))
        status = prediction.get("status")
        if status == "succeeded" or (status not in TERMINAL and prediction.get("output")):
            return prediction
        error = str(prediction.get("error") or f"prediction ended {status}")
        if "E005" in error or "flagged as sensitive" in error.lower():
            raise ContentFlaggedError(f"flagged as sensitive by the model (E005): {error[:300]}")
        raise ProviderError(f"prediction {prediction.get('id')} {status}: {error[:300]}")

    async def _resumable(self, prediction_id: str) -> dict[str, Any] | None:
        """The prediction an earlier run started, when it can still give its image: running,
        or succeeded with its output not yet removed. ``None``: start a new one."""
        try:
            prediction: dict[str, Any] = await self._retrying(self._get, prediction_id)
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

    async def _download(self, url: str) -> bytes:
        """Fetch the output at once (its URL expires); no API token goes to the file host."""
        response = await self._send("GET", url, headers={"User-Agent": "actor-maker"})
        if response.status_code in (403, 404, 410):
            raise ProviderError(
                f"the output at {redact_url(url)} is gone (HTTP {response.status_code}): "
                "output URLs expire; the image was paid for but could not be downloaded"
            )
        self._raise_for(response, f"downloading {redact_url(url)} failed")
        if len(response.content) > MAX_OUTPUT_BYTES:
            raise ProviderError("the model's output is larger than 50 MB")
        return response.content

    async def _input_image_url(self, image: InputImage) -> str:
        if image.url:
            return image.url
        if len(image.data) <= DATA_URI_LIMIT:
            return data_uri(image.data, image.content_type)
        digest = hashlib.sha256(image.data).hexdigest()
        async with self._upload_lock:
            if digest not in self._uploads:
                self._uploads[digest] = await self._retrying(self._upload, image)
            return self._uploads[digest]

    async def _upload(self, image: InputImage) -> str:
        ext = image.content_type.rsplit("/", 1)[-1]
        response = await self._send(
            "POST",
            f"{self._api}/files",
            headers=self._headers,
            files={"content": (f"base.{ext}", image.data, image.content_type)},
        )
        self._raise_for(response, "uploading the base image to Replicate failed")
        url = response.json().get("urls", {}).get("get")
        if not isinstance(url, str):
            raise ProviderError("Replicate's files API returned no URL for the upload")
        return url

    async def _cancel_quietly(self, prediction_id: str | None) -> None:
        if not prediction_id:
            return
        try:
            async with asyncio.timeout(10):
                await self._client.post(
                    f"{self._api}/predictions/{prediction_id}/cancel", headers=self._headers
                )
        except (httpx.HTTPError, TimeoutError):
            log.warning("could not cancel prediction %s", prediction_id)
