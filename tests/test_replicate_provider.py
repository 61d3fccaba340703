"""The Replicate provider against the local stand-in that speaks Replicate's API."""

import asyncio
import io
import os
from typing import Any

import pytest
from PIL import Image

from actor_maker.errors import (
    ConfigError,
    ContentFlaggedError,
    ProviderError,
    ProviderTimeoutError,
    RetryableProviderError,
)
from actor_maker.providers.base import GenerationParams, InputImage, Tracking
from actor_maker.providers.replicate import ReplicateProvider
from actor_maker.providers.replicate_http import ReplicateHTTP
from actor_maker.testing.replicate_server import Faults

from .conftest import STANDIN_TOKEN
from .helpers import sample_image

TOKEN = STANDIN_TOKEN
MODEL = "black-forest-labs/flux-kontext-pro"
IMAGE = InputImage(sample_image(), "image/jpeg")
PARAMS = GenerationParams(prompt="The man waits on a rainy platform", aspect_ratio="1:1", seed=42)


#: Options of the client (``ReplicateHTTP``) rather than of the provider.
HTTP_OPTIONS = {"token", "max_retries", "backoff_initial_s", "backoff_max_s", "request_timeout_s"}


def replicate(base_url, **kw):
    """A provider of ``MODEL`` at ``base_url``; ``kw`` overrides the test defaults, of the
    client or of the provider."""
    http: dict[str, Any] = dict(token=TOKEN, backoff_initial_s=0.01, backoff_max_s=0.05)
    options: dict[str, Any] = dict(model=MODEL, price=0.04, poll_interval_s=0.05, deadline_s=10)
    for name, value in kw.items():
        (http if name in HTTP_OPTIONS else options)[name] = value
    return ReplicateProvider(ReplicateHTTP(base_url=base_url, **http), **options)


def provider(standin, **kw):
    return replicate(standin.base_url, **kw)


async def generate(standin, image=IMAGE, params=PARAMS, **kw):
    p = provider(standin, **kw)
    try:
        return await p.generate(image, params)
    finally:
        await p.aclose()


def decoded(data):
    return Image.open(io.BytesIO(data)).size


async def test_happy_path_with_blocking_wait(standin):
    result = await generate(standin)
    assert decoded(result.data)[0] >= 768
    assert result.seed == 42 and result.cost == 0.04 and result.model == MODEL
    assert standin.creates == 1
    sent = standin.predictions[result.prediction_id]["input"]
    assert sent["seed"] == 42 and sent["safety_tolerance"] <= 2 and sent["aspect_ratio"] == "1:1"
    assert sent["input_image"].startswith("data:image/jpeg;base64,")
    assert not any(
        method == "GET" and "/v1/predictions/" in path for method, path in standin.requests_log
    )


async def test_polls_when_the_wait_runs_out(standin):
    standin.faults = Faults(latency=0.5, wait_cap=0.05)
    result = await generate(standin)
    assert decoded(result.data)
    assert any(
        method == "GET" and "/v1/predictions/" in path for method, path in standin.requests_log
    )


async def test_finished_prediction_reported_as_processing_with_output(standin):
    standin.faults = Faults(processing_with_output=True)
    result = await generate(standin, poll_interval_s=5)
    assert decoded(result.data)


async def test_429_honours_retry_after_then_succeeds(standin):
    standin.faults = Faults(throttle_first=2, retry_after=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await generate(standin)
    assert decoded(result.data)
    assert standin.throttled == 2 and standin.creates == 1
    assert loop.time() - started >= 0.4  # waited as told, not the 0.01 s backoff


async def test_5xx_is_retried(standin):
    standin.faults = Faults(server_errors_first=3)
    result = await generate(standin)
    assert decoded(result.data) and standin.server_errors == 3 and standin.creates == 1


async def test_retries_give_up(standin):
    standin.faults = Faults(server_errors_first=10)
    with pytest.raises(RetryableProviderError):
        await generate(standin, max_retries=2)
    assert standin.create_attempts == 3


async def test_a_throttling_storm_does_not_use_up_the_retries(standin):
    standin.faults = Faults(throttle_first=8, retry_after=0.01)
    result = await generate(standin, max_retries=2)
    assert decoded(result.data) and standin.throttled == 8 and standin.creates == 1


async def test_e005_is_final_and_not_retried(standin):
    standin.faults = Faults(flag_prompts_containing="rainy")
    with pytest.raises(ContentFlaggedError, match="E005"):
        await generate(standin)
    assert standin.create_attempts == 1


async def test_generic_model_failure(standin):
    standin.faults = Faults(fail_prompts_containing="rainy")
    with pytest.raises(ProviderError) as info:
        await generate(standin)
    assert not isinstance(info.value, ContentFlaggedError)


async def test_timeout_after_create_is_not_retried(standin):
    standin.faults = Faults(slow_create=3)
    with pytest.raises(ProviderTimeoutError, match="not retried"):
        await generate(standin, wait_s=1, request_timeout_s=0.3)
    assert standin.create_attempts == 1


async def test_dropped_connection_after_send_is_not_retried(standin):
    standin.faults = Faults(drop_connection_first=1)
    with pytest.raises(ProviderTimeoutError):
        await generate(standin)
    assert standin.create_attempts == 1


async def test_connection_refused_is_retried_and_reported():
    p = replicate("http://127.0.0.1:9", max_retries=2, backoff_max_s=0.02)
    try:
        with pytest.raises(RetryableProviderError, match="cannot connect"):
            await p.generate(IMAGE, PARAMS)
    finally:
        await p.aclose()


async def test_deadline_cancels_the_prediction(standin):
    standin.faults = Faults(latency=5, wait_cap=0.05)
    with pytest.raises(ProviderTimeoutError, match="deadline"):
        await generate(standin, deadline_s=0.5)
    assert standin.canceled == 1


async def test_task_cancellation_cancels_the_prediction(standin):
    standin.faults = Faults(latency=5, wait_cap=0.05)
    task = asyncio.create_task(generate(standin))
    while standin.creates == 0:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert standin.canceled == 1


async def test_output_is_downloaded_before_it_expires(standin):
    standin.faults = Faults(output_ttl=1.0)
    assert decoded((await generate(standin)).data)


async def test_expired_output_is_a_clear_failure(standin):
    standin.faults = Faults(output_ttl=0.0, latency=0.05)
    with pytest.raises(ProviderError, match="expire"):
        await generate(standin)


async def test_big_image_without_url_goes_through_the_files_api_once(standin):
    noise = Image.frombytes("RGB", (900, 900), os.urandom(900 * 900 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    big = InputImage(buf.getvalue(), "image/png")
    assert len(big.data) > 1_000_000
    uploaded_before = len(standin.files)  # the session's stand-in keeps other tests' files
    p = provider(standin)
    try:
        first = await p.generate(big, PARAMS)
        await p.generate(big, PARAMS)
    finally:
        await p.aclose()
    assert len(standin.files) == uploaded_before + 1
    sent = standin.predictions[first.prediction_id]["input"]["input_image"]
    assert sent.startswith(standin.base_url + "/v1/files/")


async def test_a_fetchable_url_is_passed_as_is(standin):
    image = InputImage(IMAGE.data, IMAGE.content_type, url="https://bucket.example/base.jpg?sig=1")
    result = await generate(standin, image=image)
    assert standin.predictions[result.prediction_id]["input"]["input_image"] == image.url


async def test_bad_token_is_a_configuration_error(standin):
    p = ReplicateProvider(ReplicateHTTP(token="wrong", base_url=standin.base_url), model=MODEL)
    try:
        with pytest.raises(ConfigError, match="REPLICATE_API_TOKEN"):
            await p.generate(IMAGE, PARAMS)
        with pytest.raises(ConfigError):
            await p.check()
    finally:
        await p.aclose()


async def test_check_reports_the_account(standin):
    p = provider(standin)
    try:
        assert "token valid" in await p.check()
    finally:
        await p.aclose()


@pytest.mark.parametrize(
    "faults",
    [
        Faults(server_errors_first=10),
        Faults(slow_create=3),
        Faults(flag_prompts_containing="rainy"),
        Faults(output_ttl=0.0),
    ],
)
async def test_the_token_never_appears_in_errors(standin, faults):
    standin.faults = faults
    with pytest.raises(ProviderError) as info:
        await generate(standin, max_retries=1, wait_s=1, request_timeout_s=0.3)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.__cause__)


def _polls(standin) -> int:
    return sum(
        1 for method, path in standin.requests_log if method == "GET" and "/v1/predictions/" in path
    )


async def test_first_poll_waits_most_of_the_typical_duration(standin):
    """A recorded job creates without waiting and then polls. Once the provider has seen how
    long the model takes, a new prediction's first poll waits most of that, so each one
    costs a couple of polls instead of one per ``poll_interval_s``."""
    standin.faults = Faults(latency=0.6)
    p = provider(standin)
    ids: list[str] = []

    async def recorded(prediction_id: str) -> None:
        ids.append(prediction_id)

    try:
        await p.generate(IMAGE, PARAMS, Tracking(on_created=recorded))
        first = _polls(standin)
        await p.generate(IMAGE, PARAMS, Tracking(on_created=recorded))
        second = _polls(standin) - first
    finally:
        await p.aclose()
    assert len(ids) == 2 and standin.creates == 2
    assert first >= 8  # 0.6 s at one poll every 0.05 s
    assert second <= 5, (first, second)
