"""Trainings and models in the stand-in: Replicate's trainings API as the LoRA trainer uses it.

* ``POST /v1/models/{owner}/{name}/versions/{version}/trainings`` with ``destination``
  (``owner/name``, must exist), ``input`` (``ostris/flux-dev-lora-trainer``'s inputs:
  ``input_images`` required), optional ``webhook`` and ``webhook_events_filter``. 201, status
  ``starting``. Create faults (429/5xx/dropped/lost answer) apply as to predictions.
* A training lasts ``steps × Faults.training_step_s``; its ``logs`` grow with progress lines
  ``flux_train_replicate: NN%| step/steps``; it ends ``succeeded`` with ``output``
  ``{"version": "dest:<id>", "weights": <URL of a .tar holding lora.safetensors>}`` and
  ``metrics.predict_time``, or ``failed`` (``Faults.fail_trainings_containing`` matching the
  trigger word, or a zip without images), or ``canceled``.
* ``output.weights`` answers 404 ``Faults.weights_ttl`` seconds after the end.
* ``GET /v1/models/{owner}/{name}`` (404 when missing) and ``POST /v1/models`` (201; 409 when
  it exists; 403 for another owner).

The training images (read from the uploaded zip) feed LoRA predictions: the stand-in's
``black-forest-labs/flux-dev-lora`` with ``lora_weights`` = a training's weights URL or its
destination (``owner/name[:version]``), or a prediction on the trained version.
"""

from __future__ import annotations

import copy
import hashlib
import io
import secrets
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from actor_maker.testing.replicate_server.common import iso
from actor_maker.testing.replicate_server.faults import TRAINING_ERROR
from actor_maker.testing.replicate_server.runs import Run, RunBook
from actor_maker.testing.replicate_server.webhooks import WebhookSender
from actor_maker.testing.weights import fake_lora_safetensors

if TYPE_CHECKING:
    from actor_maker.testing.replicate_server.state import StandInState

TRAINER_MODEL = "ostris/flux-dev-lora-trainer"
#: One published version of the trainer (any 64-hex id works the same here).
TRAINER_VERSION = "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497"
LORA_MODEL = "black-forest-labs/flux-dev-lora"
EVENTS = ("start", "output", "logs", "completed")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
_MAX_ZIP = 200 * 1024 * 1024


@dataclass(kw_only=True, eq=False)
class _Training(Run, collection="trainings", web="t"):
    """A LoRA training into ``destination``; its images feed the LoRA predictions."""

    version: str
    destination: str
    webhook: str | None
    events: tuple[str, ...]
    steps: int
    output_version: str
    images: list[bytes]


@dataclass
class _Model:
    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    created: datetime


class InputProblem(Exception):
    """A create body Replicate would refuse: ``status`` and ``invalid_fields``."""

    def __init__(self, status: int, title: str, detail: str, fields: list[dict[str, str]]):
        super().__init__(detail)
        self.status, self.title, self.detail, self.fields = status, title, detail, fields


def _field(name: str, description: str) -> dict[str, str]:
    return {"type": "invalid", "field": f"input.{name}", "description": description}


def _check_input(data: object) -> dict[str, Any]:
    """``ostris/flux-dev-lora-trainer``'s input schema, the parts we send."""
    if not isinstance(data, dict):
        raise InputProblem(422, "Input validation failed", "input must be an object", [])
    errors: list[dict[str, str]] = []
    images = data.get("input_images")
    if not isinstance(images, str) or urlsplit(images).scheme not in ("http", "https", "data"):
        errors.append(_field("input_images", "input_images is required and must be a URI"))
    ints = {"steps": (3, 6000), "lora_rank": (1, 128), "batch_size": (1, 16)}
    for name, (low, high) in ints.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors.append(_field(name, f"{name} must be an integer from {low} to {high}"))
    rate = data.get("learning_rate")
    if rate is not None and (not isinstance(rate, int | float) or not 0 < rate < 1):
        errors.append(_field("learning_rate", "learning_rate must be a number in (0, 1)"))
    for name in ("trigger_word", "resolution"):
        if name in data and not isinstance(data[name], str):
            errors.append(_field(name, f"{name} must be a string"))
    if errors:
        detail = "".join(f"- {f['field']}: {f['description']}\n" for f in errors)
        raise InputProblem(422, "Input validation failed", detail, errors)
    return data


class TrainingBook:
    """Trainings, models and webhooks of one stand-in."""

    def __init__(self, state: StandInState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self.runs: RunBook[_Training] = RunBook()
        self._models: dict[str, _Model] = {}
        self.webhooks = WebhookSender()
        self.trainers: dict[str, str] = {TRAINER_MODEL: TRAINER_VERSION}
        self.models_created = 0

    def reset_counters(self) -> None:
        self.runs.reset_counters()
        with self._lock:
            self.models_created = 0

    # -- models

    def public_models(self) -> set[str]:
        return {*self._state.models, *self.trainers, LORA_MODEL}

    def model_view(self, ref: str) -> dict[str, Any] | None:
        owner, _, name = ref.partition("/")
        with self._lock:
            record = self._models.get(ref)
            latest = self._latest_version(ref)
        if record is None and ref not in self.public_models():
            return None
        created = record.created if record else datetime(2024, 8, 1, tzinfo=UTC)
        return {
            "url": f"https://replicate.com/{ref}",
            "owner": owner,
            "name": name,
            "description": record.description if record else None,
            "visibility": record.visibility if record else "public",
            "hardware": record.hardware if record else None,
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": 0,
            "cover_image_url": None,
            "default_example": None,
            "created_at": iso(created),
            "latest_version": {"id": latest} if latest else None,
        }

    def create_model(self, body: object) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return 400, {"detail": "The request body must be a JSON object."}
        owner, name = body.get("owner"), body.get("name")
        visibility, hardware = body.get("visibility"), body.get("hardware")
        if not isinstance(owner, str) or not isinstance(name, str) or not owner or not name:
            return 422, {"detail": "owner and name are required."}
        if visibility not in ("public", "private"):
            return 422, {"detail": "visibility must be public or private."}
        if not isinstance(hardware, str) or not hardware:
            return 422, {"detail": "hardware is required."}
        if owner != self._state.username:
            return 403, {"detail": f"You do not have permission to create models in {owner}."}
        ref = f"{owner}/{name}"
        with self._lock:
            if ref in self._models or ref in self.public_models():
                return 409, {"detail": f"A model named {ref} already exists."}
            description = str(body.get("description") or "")
            self._models[ref] = _Model(
                owner, name, visibility, hardware, description, datetime.now(UTC)
            )
            self.models_created += 1
        view = self.model_view(ref)
        assert view is not None
        return 201, view

    def _latest_version(self, ref: str) -> str | None:
        now = time.monotonic()
        done = [t for t in self.runs.all() if t.destination == ref and t.status(now) == "succeeded"]
        return max(done, key=lambda t: t.end_mono).output_version if done else None

    # -- trainings

    def create(self, model: str, version: str, body: object) -> _Training:
        """Validate and accept a training; raises :class:`InputProblem`."""
        if self.trainers.get(model) != version:
            raise InputProblem(404, "Not found", f"Version {model}:{version} not found.", [])
        if not isinstance(body, dict):
            raise InputProblem(400, "Bad request", "The request body must be a JSON object.", [])
        destination = body.get("destination")
        if not isinstance(destination, str) or destination.count("/") != 1:
            raise InputProblem(422, "Invalid destination", "destination must be owner/name.", [])
        with self._lock:
            exists = destination in self._models
        if not exists:
            raise InputProblem(
                404, "Not found", f"The destination model {destination} does not exist.", []
            )
        data = _check_input(body.get("input"))
        webhook = body.get("webhook")
        if webhook is not None and (
            not isinstance(webhook, str) or urlsplit(webhook).scheme not in ("http", "https")
        ):
            raise InputProblem(422, "Invalid webhook", "webhook must be an HTTP(S) URL.", [])
        events = body.get("webhook_events_filter") or list(EVENTS)
        if not isinstance(events, list) or not set(events) <= set(EVENTS):
            raise InputProblem(
                422, "Invalid webhook_events_filter", f"events must be among {EVENTS}.", []
            )
        images, error = self._training_images(str(data["input_images"]))
        faults = self._state.faults
        steps = int(data.get("steps") or 1000)
        trigger = str(data.get("trigger_word") or "")
        failing = faults.fail_trainings_containing
        if error is None and failing and failing in trigger:
            error = TRAINING_ERROR
        training = self.runs.add(
            _Training(
                model=model,
                version=version,
                destination=destination,
                input=copy.deepcopy(data),
                webhook=webhook,
                events=tuple(events),
                duration=steps * faults.training_step_s,
                steps=steps,
                outcome="failed" if error else "succeeded",
                error=error,
                output_version=secrets.token_hex(32),
                images=images,
            )
        )
        if webhook:
            threading.Thread(target=self._notify, args=(training,), daemon=True).start()
        return training

    def _training_images(self, url: str) -> tuple[list[bytes], str | None]:
        """The images inside the zip at ``url`` (an upload here, or a loopback URL)."""
        data = self._fetch(url)
        if data is None:
            return [], None  # not reachable from here: the LoRA draws placeholders
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = sorted(
                    n
                    for n in archive.namelist()
                    if n.lower().endswith(_IMAGE_EXTS) and not n.startswith("__MACOSX")
                )
                images = [archive.read(n) for n in names]
        except (zipfile.BadZipFile, OSError, ValueError):
            return [], "input_images is not a zip file"
        if not images:
            return [], "input_images: the zip holds no images"
        return images, None

    def _fetch(self, url: str) -> bytes | None:
        base = self._state.base_url
        if url.startswith(f"{base}/v1/files/"):
            file_id = url[len(f"{base}/v1/files/") :].split("/")[0]
            record = self._state.file_book.get(file_id)
            return record.data if record else None
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            return None
        try:
            response = httpx.get(url, timeout=10)
        except httpx.HTTPError:
            return None
        if response.status_code != 200 or len(response.content) > _MAX_ZIP:
            return None
        return response.content

    def get(self, training_id: str) -> _Training | None:
        return self.runs.get(training_id)

    def cancel(self, training_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        training = self.runs.cancel(training_id, now)
        return None if training is None else self.view(training, now)

    def list_views(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [self.view(t, now) for t in self.runs.newest()]

    def view(self, training: _Training, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        base = self._state.base_url
        fields = training.api_fields(now, base)
        status = fields["status"]
        output = None
        if status == "succeeded":
            output = {
                "version": f"{training.destination}:{training.output_version}",
                "weights": f"{base}/files/weights/{training.id}/trained_model.tar",
            }
        view = {
            "id": training.id,
            "model": training.model,
            "version": training.version,
            "input": copy.deepcopy(training.input),
            "logs": self._logs(training, now, status),
            "output": output,
            **fields,
        }
        view.setdefault("metrics", {})  # a training shows empty metrics before it ends
        return view

    @staticmethod
    def _logs(training: _Training, now: float, status: str) -> str:
        if status == "starting":
            return ""
        lines = [f"Extracting input_images ({len(training.images)} images)"]
        span = max(training.end_mono - training.start_mono, 1e-9)
        done = min(1.0, max(0.0, (min(now, training.finish_mono) - training.start_mono) / span))
        for tenth in range(int(done * 10) + 1):
            step = min(training.steps, training.steps * tenth // 10)
            lines.append(f"flux_train_replicate: {tenth * 10:3d}%| {step}/{training.steps}")
        if status == "failed":
            lines.append(str(training.error))
        elif status == "succeeded":
            lines.append("Saved LoRA weights to output/flux_train_replicate/lora.safetensors")
        return "\n".join(lines) + "\n"

    def weights_tar(self, training_id: str) -> bytes | None:
        """The ``trained_model.tar`` of a succeeded training, None when missing or expired."""
        training = self.get(training_id)
        now = time.monotonic()
        if training is None or training.status(now) != "succeeded":
            return None
        ttl = self._state.faults.weights_ttl
        if ttl is not None and now >= training.end_mono + ttl:
            return None
        rank = int(training.input.get("lora_rank") or 16)
        weights = fake_lora_safetensors(
            rank,
            {
                "training_id": training.id,
                "trigger_word": str(training.input.get("trigger_word") or ""),
                "images_sha256": hashlib.sha256(b"".join(training.images)).hexdigest(),
            },
        )
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("output/flux_train_replicate/lora.safetensors")
            info.size = len(weights)
            tar.addfile(info, io.BytesIO(weights))
        return out.getvalue()

    def resolve_lora(self, reference: str) -> _Training | None:
        """The training behind ``lora_weights`` or a version: a weights URL, ``owner/name``
        (its latest version), ``owner/name:version`` or a bare version id."""
        base = f"{self._state.base_url}/files/weights/"
        now = time.monotonic()
        trainings = self.runs.all()
        if reference.startswith(base):
            found = self.get(reference[len(base) :].split("/")[0])
            return found if found and found.status(now) == "succeeded" else None
        ref, _, version = reference.partition(":")
        if "/" not in ref:
            ref, version = "", ref
        done = [t for t in trainings if t.status(now) == "succeeded"]
        for training in sorted(done, key=lambda t: -t.end_mono):
            if (not ref or training.destination == ref) and (
                not version or training.output_version == version
            ):
                return training
        return None

    def _notify(self, training: _Training) -> None:
        """Send ``start`` at once and ``completed`` when the training is final."""
        url = training.webhook
        assert url is not None
        if "start" in training.events:
            self.webhooks.send(url, "start", self.view(training))
        if not training.wait_until_final(self._state._stopping):
            return
        if "completed" in training.events:
            self.webhooks.send(url, "completed", self.view(training))
