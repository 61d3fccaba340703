"""The HTTP side of Replicate shared by the image provider and the LoRA trainer.

One request at a time (:meth:`ReplicateHTTP.send`) maps transport failures by whether the
request may have reached Replicate: a connection that was never made is worth another try
(``RetryableProviderError``); a request that was sent and then lost its answer is not
(``ProviderTimeoutError``), because it may have started something paid for.
:meth:`ReplicateHTTP.raise_for` maps answers: 429 and 5xx are retryable (``Retry-After``
honoured), 401 is a configuration error, other 4xx are final. :meth:`ReplicateHTTP.retrying`
runs a step under that policy (exponential backoff with jitter; 429s do not use up
``max_retries``, only ``MAX_THROTTLED``).

One ``ReplicateHTTP`` is built from the settings (:meth:`ReplicateHTTP.from_settings`) and
handed to whoever talks to Replicate: the image provider, and the LoRA trainer together with
the provider it samples through, so they share one connection pool and one retry policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_exponential_jitter

from actor_maker.errors import (
    ConfigError,
    ProviderError,
    ProviderTimeoutError,
    RetryableProviderError,
)
from actor_maker.fetch import redact_url

if TYPE_CHECKING:
    from actor_maker.config import Settings

#: Consecutive 429 answers one call puts up with (each waits as told) before giving up.
MAX_THROTTLED = 50

T = TypeVar("T")


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def problem(response: httpx.Response) -> str:
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


class ReplicateHTTP:
    """An httpx client bound to Replicate's API, with the retry and error policy above."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str = "https://api.replicate.com",
        client: httpx.AsyncClient | None = None,
        max_retries: int = 5,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        request_timeout_s: float = 15.0,
    ) -> None:
        self.max_retries = max_retries
        self.request_timeout_s = request_timeout_s
        self._wait = _Wait(backoff_initial_s, backoff_max_s)
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout_s),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self.api = base_url.rstrip("/") + "/v1"
        self.headers = {"Authorization": f"Bearer {token}", "User-Agent": "actor-maker"}

    @classmethod
    def from_settings(
        cls, settings: Settings, user: str, *, client: httpx.AsyncClient | None = None
    ) -> ReplicateHTTP:
        """The client for ``settings``; ``user`` (e.g. "the replicate trainer") names who
        needs the token when it is missing."""
        if settings.replicate_api_token is None:
            raise ConfigError(f"{user} needs REPLICATE_API_TOKEN")
        return cls(
            token=settings.replicate_api_token.get_secret_value(),
            base_url=settings.replicate_base_url,
            client=client,
            max_retries=settings.max_retries,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    def _stop(self, state: RetryCallState) -> bool:
        """Failures use up ``max_retries``; 429s do not (they are bounded by the deadline
        and ``MAX_THROTTLED`` instead): a throttling storm must not lose items."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableProviderError) and exc.throttled:
            return state.attempt_number > MAX_THROTTLED
        return state.attempt_number > self.max_retries

    async def retrying(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
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

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; maps transport failures by whether the request went out."""
        try:
            return await self.client.request(method, url, **kwargs)
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

    def raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 429 or status >= 500:
            raise RetryableProviderError(
                f"{what}: {problem(response)}", retry_after(response), throttled=status == 429
            )
        if status == 401:
            raise ConfigError("Replicate rejected REPLICATE_API_TOKEN (HTTP 401)")
        raise ProviderError(f"{what}: {problem(response)}")

    async def get_json(self, path: str, what: str) -> dict[str, Any]:
        """``GET {api}{path}`` once; the JSON object it answers."""
        response = await self.send("GET", f"{self.api}{path}", headers=self.headers)
        self.raise_for(response, what)
        body = response.json()
        if not isinstance(body, dict):
            raise ProviderError(f"{what}: Replicate answered something that is not an object")
        return body

    async def upload(
        self,
        filename: str,
        data: bytes,
        content_type: str,
        what: str,
        timeout: float | None = None,
    ) -> str:
        """``POST /v1/files`` once; the URL of the uploaded file."""
        response = await self.send(
            "POST",
            f"{self.api}/files",
            headers=self.headers,
            files={"content": (filename, data, content_type)},
            timeout=timeout or self.request_timeout_s,
        )
        self.raise_for(response, what)
        url = response.json().get("urls", {}).get("get")
        if not isinstance(url, str):
            raise ProviderError("Replicate's files API returned no URL for the upload")
        return url

    async def download(
        self, url: str, what: str, max_bytes: int, timeout: float | None = None
    ) -> bytes:
        """Fetch a delivery URL once; no API token goes to the file host. A 403/404/410
        means the URL expired: ``ProviderError`` naming ``what``."""
        response = await self.send(
            "GET",
            url,
            headers={"User-Agent": "actor-maker"},
            timeout=timeout or self.request_timeout_s,
        )
        if response.status_code in (403, 404, 410):
            raise ProviderError(
                f"{what} at {redact_url(url)} is gone (HTTP {response.status_code}): "
                "Replicate's output URLs expire within the hour"
            )
        self.raise_for(response, f"downloading {redact_url(url)} failed")
        if len(response.content) > max_bytes:
            raise ProviderError(f"{what} is larger than {max_bytes // (1024 * 1024)} MB")
        return response.content
