"""LoRA training on Replicate: ``ostris/flux-dev-lora-trainer`` through the trainings API.

* ``start``: makes sure the destination model exists (``GET /v1/models/{owner}/{name}``;
  404 → ``POST /v1/models``, private), gives the dataset as ``input_images`` (its URL, or an
  upload through ``POST /v1/files``), then ``POST /v1/models/{trainer}/versions/{version}/
  trainings``. 429/5xx answers are retried (nothing was created); a create whose answer was
  lost is **never sent again**: the recent trainings are listed and the one with exactly
  our input is adopted, else a clear error says to look it up before starting another.
* ``status``: ``GET /v1/trainings/{id}`` mapped to :class:`TrainingStatus` (progress from
  the ``step/steps`` lines of the logs, ``metrics.predict_time`` as GPU seconds).
* ``weights``: downloads ``output.weights`` at once (it expires within the hour) and takes
  the ``.safetensors`` out of the ``.tar`` the trainer writes.
* ``samples``: predictions of ``black-forest-labs/flux-dev-lora`` with ``lora_weights``,
  through :class:`ReplicateProvider` (same deadline, retry, cancel and download rules).

The HTTP policy (retries, ``Retry-After``, error mapping) is :mod:`providers.replicate_http`.
"""

from __future__ import annotations

import asyncio
import io
import re
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from actor_maker.config import (
    DEFAULT_LORA_MODEL,
    DEFAULT_TRAINER_MODEL,
    DEFAULT_TRAINER_VERSION,
)
from actor_maker.errors import InputError, ProviderError, ProviderTimeoutError
from actor_maker.fetch import redact_url
from actor_maker.providers.base import UNTRACKED, Tracking
from actor_maker.providers.replicate import ReplicateProvider
from actor_maker.providers.replicate_http import ReplicateHTTP
from actor_maker.training.base import TrainingRequest, TrainingState, TrainingStatus
from actor_maker.training.webhooks import verify_webhook

if TYPE_CHECKING:
    from actor_maker.config import Settings

__all__ = ["ReplicateTrainer", "verify_webhook"]

#: Replicate's files API takes at most this much.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
MAX_WEIGHTS_BYTES = 2 * 1024 * 1024 * 1024
_OWNER_NAME = re.compile(r"^[a-z0-9_.-]+/[a-z0-9_.-]+$")
_PROGRESS = re.compile(r"(\d+)/(\d+)")
_URL = re.compile(r"https?://\S+")
_LOG_LINES = 20


def parse_progress(logs: str) -> float | None:
    """0..1 from the last ``step/steps`` in ``logs`` (tqdm lines), or None."""
    for line in reversed(logs.splitlines()):
        for done, total in reversed(_PROGRESS.findall(line)):
            if int(total) > 0 and int(done) <= int(total):
                return int(done) / int(total)
    return None


def logs_tail(logs: str, lines: int = _LOG_LINES) -> str:
    """The last ``lines`` lines of a log, URLs with their query strings removed."""
    tail = "\n".join(logs.rstrip("\n").splitlines()[-lines:])
    return _URL.sub(lambda m: redact_url(m.group(0)), tail)[-4000:]


class ReplicateTrainer:
    """The ``replicate`` trainer; see the module docstring."""

    name = "replicate"
    export_format = "replicate-zip"

    def __init__(
        self,
        http: ReplicateHTTP,
        *,
        trainer_model: str = DEFAULT_TRAINER_MODEL,
        trainer_version: str = DEFAULT_TRAINER_VERSION,
        lora_model: str = DEFAULT_LORA_MODEL,
        price_per_second: float | None = None,
        transfer_timeout_s: float = 300.0,
        sample_deadline_s: float = 300.0,
        poll_interval_s: float = 1.0,
        destination_hardware: str = "gpu-t4",
    ) -> None:
        """``http``: the Replicate client, used for the trainings API and, through a
        :class:`ReplicateProvider` of ``lora_model``, for the samples; :meth:`aclose` closes
        it."""
        self._http = http
        self._sampler = ReplicateProvider(
            http, model=lora_model, deadline_s=sample_deadline_s, poll_interval_s=poll_interval_s
        )
        self._destinations: set[str] = set()
        self.model = f"{trainer_model}:{trainer_version}"
        self.trainer_model = trainer_model
        self.trainer_version = trainer_version
        self.price_per_second = price_per_second
        self.transfer_timeout_s = transfer_timeout_s
        #: Replicate asks for a hardware on create; trained FLUX versions run on their own.
        self.destination_hardware = destination_hardware

    @classmethod
    def from_settings(
        cls, settings: Settings, *, client: httpx.AsyncClient | None = None
    ) -> ReplicateTrainer:
        return cls(
            ReplicateHTTP.from_settings(settings, "the replicate trainer", client=client),
            trainer_model=settings.trainer_model,
            trainer_version=settings.trainer_version,
            lora_model=settings.lora_model,
            price_per_second=settings.training_price_per_second,
            poll_interval_s=settings.poll_interval_s,
        )

    # --- the seam -----------------------------------------------------------------------
    async def start(self, request: TrainingRequest) -> str:
        destination = request.destination
        if not destination or not _OWNER_NAME.match(destination):
            raise InputError(
                f"destination {destination!r} must be a Replicate model name, owner/name "
                "(lower case letters, digits, '-', '_' and '.')"
            )
        await self._ensure_destination(destination)
        images = request.dataset.url or await self._upload_dataset(request)
        body: dict[str, Any] = {"destination": destination, "input": self._input(request, images)}
        if request.webhook_url:
            body["webhook"] = request.webhook_url
            body["webhook_events_filter"] = ["completed"]
        return await self._create(body)

    async def find_started(self, request: TrainingRequest, since: datetime) -> list[str]:
        """Trainings in ``GET /v1/trainings`` for ``request``: this trainer, our input except
        ``input_images`` (its upload URL is not known after the fact), created at ``since``
        or later, and, once they show an output version, into ``request.destination``."""
        wanted = self._input(request, "")
        wanted.pop("input_images")
        found = []
        for training in await self._listed_since(since):
            given = training.get("input")
            if not isinstance(given, dict):
                continue
            if {k: v for k, v in given.items() if k != "input_images"} != wanted:
                continue
            output = training.get("output")
            version = output.get("version") if isinstance(output, dict) else None
            if isinstance(version, str) and not version.startswith(f"{request.destination}:"):
                continue
            found.append(str(training["id"]))
        return found

    async def status(self, training_id: str) -> TrainingStatus:
        training = await self._http.retrying(
            self._http.get_json, f"/trainings/{training_id}", f"reading training {training_id}"
        )
        return self._status(training)

    async def cancel(self, training_id: str) -> None:
        async def once() -> None:
            response = await self._http.send(
                "POST",
                f"{self._http.api}/trainings/{training_id}/cancel",
                headers=self._http.headers,
            )
            self._http.raise_for(response, f"canceling training {training_id} failed")

        await self._http.retrying(once)

    async def weights(self, status: TrainingStatus) -> bytes:
        if status.state is not TrainingState.succeeded or not status.weights_url:
            raise ProviderError(f"training {status.training_id} has no weights to download")
        data = await self._http.retrying(
            self._http.download,
            status.weights_url,
            f"the weights of training {status.training_id}",
            MAX_WEIGHTS_BYTES,
            self.transfer_timeout_s,
        )
        return _safetensors_from(data, status.training_id)

    async def samples(
        self, status: TrainingStatus, request: TrainingRequest, tracking: Sequence[Tracking] = ()
    ) -> list[bytes]:
        """One image per sample prompt, rendered with the trained LoRA (the base image is not
        sent: the LoRA alone must draw the actor). ``tracking[i]`` goes to sample ``i``'s
        prediction: its id is told before the wait, and a recorded one is polled instead of
        paying again (a new one is made only when its output expired or it was canceled)."""
        lora = status.weights_url or status.model_version
        if not lora:
            raise ProviderError(f"training {status.training_id} has no weights to sample with")
        prompts = request.sample_prompts
        seeds = request.seeds()
        limit = asyncio.Semaphore(3)

        async def one(index: int, prompt: str, seed: int) -> bytes:
            payload = {
                "prompt": prompt.replace("[trigger]", request.trigger_word),
                "lora_weights": lora,
                "lora_scale": 1.0,
                "seed": seed,
                "aspect_ratio": "1:1",
                "output_format": "jpg",
                "num_outputs": 1,
            }
            held = tracking[index] if index < len(tracking) else UNTRACKED
            async with limit:
                return (await self._sampler.predict(payload, seed, held)).data

        return list(
            await asyncio.gather(
                *(one(i, p, s) for i, (p, s) in enumerate(zip(prompts, seeds, strict=True)))
            )
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- steps --------------------------------------------------------------------------
    def _input(self, request: TrainingRequest, images: str) -> dict[str, Any]:
        params = request.params
        return {
            "input_images": images,
            "trigger_word": request.trigger_word,
            "steps": params.steps,
            "lora_rank": params.rank,
            "learning_rate": params.learning_rate,
            "batch_size": params.batch_size,
            "resolution": params.resolution,
            "autocaption": False,
        }

    async def _ensure_destination(self, destination: str) -> None:
        """Create the destination model (private) unless it exists; once per trainer."""
        if destination in self._destinations:
            return

        async def exists() -> bool:
            response = await self._http.send(
                "GET", f"{self._http.api}/models/{destination}", headers=self._http.headers
            )
            if response.status_code == 404:
                return False
            self._http.raise_for(response, f"looking up model {destination} failed")
            return True

        async def create() -> None:
            owner, name = destination.split("/")
            response = await self._http.send(
                "POST",
                f"{self._http.api}/models",
                headers=self._http.headers,
                json={
                    "owner": owner,
                    "name": name,
                    "visibility": "private",
                    "hardware": self.destination_hardware,
                    "description": "Actor LoRA trained by actor-maker",
                },
            )
            if response.status_code == 409:
                return  # made meanwhile, by another job: just as good
            self._http.raise_for(response, f"creating model {destination} failed")

        if not await self._http.retrying(exists):
            await self._http.retrying(create)
        self._destinations.add(destination)

    async def _upload_dataset(self, request: TrainingRequest) -> str:
        path = request.dataset.path
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise InputError(f"cannot read the dataset {path}: {exc.strerror}") from exc
        if len(data) > MAX_UPLOAD_BYTES:
            raise ProviderError(
                f"the dataset zip is {len(data) // (1024 * 1024)} MB; Replicate's files API "
                "takes at most 100 MB (an S3 store hands the zip over by URL instead)"
            )
        return await self._http.retrying(
            self._http.upload,
            path.name,
            data,
            "application/zip",
            "uploading the dataset to Replicate failed",
            self.transfer_timeout_s,
        )

    async def _create(self, body: dict[str, Any]) -> str:
        url = f"{self._http.api}/models/{self.trainer_model}/versions/{self.trainer_version}"
        sent_at = datetime.now(UTC)

        async def once() -> str:
            response = await self._http.send(
                "POST", f"{url}/trainings", headers=self._http.headers, json=body
            )
            self._http.raise_for(response, "creating the training failed")
            training_id = response.json().get("id")
            if not isinstance(training_id, str) or not training_id:
                raise ProviderError("Replicate answered the training create without an id")
            return training_id

        try:
            return await self._http.retrying(once)
        except ProviderTimeoutError as exc:
            found = await self._find_sent(body, sent_at)
            if found is not None:
                return found
            raise ProviderTimeoutError(
                "the training create was sent but its answer was lost, and no matching "
                "training shows in the recent list yet; it was NOT sent again. Look for it "
                "at https://replicate.com/trainings (or retry in a minute) before starting "
                "another, which would be paid for twice"
            ) from exc

    async def _find_sent(self, body: dict[str, Any], sent_at: datetime) -> str | None:
        """The training a lost create made: same trainer and input, created after we sent."""
        try:
            listed = await self._listed_since(sent_at - timedelta(minutes=2))
        except ProviderError:
            return None
        return next((str(t["id"]) for t in listed if t.get("input") == body["input"]), None)

    async def _listed_since(self, since: datetime) -> list[dict[str, Any]]:
        """The recent trainings of this trainer model created at ``since`` or later
        (``GET /v1/trainings``, its first page: newest first)."""
        page = await self._http.retrying(
            self._http.get_json, "/trainings", "listing the trainings failed"
        )
        results = page.get("results")
        listed = [t for t in results if isinstance(t, dict)] if isinstance(results, list) else []
        return [
            t
            for t in listed
            if t.get("model") in (None, self.trainer_model)
            and (created := _parse_time(t.get("created_at"))) is not None
            and created >= since
        ]

    def _status(self, training: dict[str, Any]) -> TrainingStatus:
        raw = str(training.get("status") or "starting")
        state = {"aborted": TrainingState.canceled}.get(raw)
        if state is None:
            try:
                state = TrainingState(raw)
            except ValueError:
                state = TrainingState.processing
        logs = str(training.get("logs") or "")
        output = training.get("output") if isinstance(training.get("output"), dict) else {}
        metrics = training.get("metrics") if isinstance(training.get("metrics"), dict) else {}
        seconds = metrics.get("predict_time") if isinstance(metrics, dict) else None
        gpu = float(seconds) if isinstance(seconds, int | float) else None
        extra: dict[str, object] = {
            "created_at": training.get("created_at"),
            "completed_at": training.get("completed_at"),
        }
        if gpu is not None and self.price_per_second is not None:
            extra["cost"] = round(gpu * self.price_per_second, 6)
        weights = output.get("weights") if isinstance(output, dict) else None
        version = output.get("version") if isinstance(output, dict) else None
        error = training.get("error")
        return TrainingStatus(
            training_id=str(training.get("id")),
            state=state,
            progress=1.0 if state is TrainingState.succeeded else parse_progress(logs),
            logs_tail=logs_tail(logs),
            error=str(error)[:500] if error and state is not TrainingState.succeeded else None,
            weights_url=weights if isinstance(weights, str) else None,
            model_version=version if isinstance(version, str) else None,
            gpu_seconds=gpu,
            extra=extra,
        )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _safetensors_from(data: bytes, training_id: str) -> bytes:
    """The ``.safetensors`` bytes, whether Replicate served them bare or in a ``.tar``."""
    if len(data) > 8 and data[8:9] == b"{":
        return data
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".safetensors"):
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        return extracted.read()
    except tarfile.TarError as exc:
        raise ProviderError(
            f"the weights of training {training_id} are neither .safetensors nor a .tar"
        ) from exc
    raise ProviderError(f"the weights archive of training {training_id} holds no .safetensors")
