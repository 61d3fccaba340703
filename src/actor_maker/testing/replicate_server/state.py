"""The stand-in's state: predictions, files, counters, and the objects ``GET`` shows.

Predictions live in a :class:`~.runs.RunBook` (its own lock) and their status is computed
from timestamps (no thread per prediction); the rest is guarded by the state's lock.
:class:`~actor_maker.testing.replicate_server.server.ReplicateStandIn` adds the HTTP server
on top; trainings and models live in :mod:`.trainings`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from actor_maker.testing.replicate_server.common import TERMINAL, Delegated
from actor_maker.testing.replicate_server.faults import (
    E005_ERROR,
    GENERIC_MODEL_ERROR,
    FaultCounter,
    Faults,
)
from actor_maker.testing.replicate_server.files import FileBook
from actor_maker.testing.replicate_server.images import (
    ratio_size,
    render_lora_image,
    render_placeholder_image,
)
from actor_maker.testing.replicate_server.runs import Run, RunBook
from actor_maker.testing.replicate_server.trainings import LORA_MODEL, TrainingBook

DEFAULT_MODELS = ("black-forest-labs/flux-kontext-pro", "black-forest-labs/flux-kontext-max")
_IMAGE_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(kw_only=True, eq=False)
class _Prediction(Run, collection="predictions", web="p"):
    """An image-model prediction; its output renders on the first download, then is cached."""

    seed: int
    ext: str
    size: tuple[int, int]
    #: The training whose LoRA this prediction runs (flux-dev-lora and trained versions).
    lora_training: str | None = None


class StandInState:
    """Predictions, files and the counters tests assert on."""

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
        self.port = port  # 0: a free one, chosen when the server starts
        self.image_size = image_size
        self.models = models
        self.username = username
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._stopping = threading.Event()
        self._counter = FaultCounter()
        self._predictions: RunBook[_Prediction] = RunBook()
        self.file_book = FileBook(lambda: self.base_url)
        self._images: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._image_bytes = 0
        self._base_url: str | None = None
        self.requests_log: list[tuple[str, str]] = []
        self._since = time.monotonic()
        self.book = TrainingBook(self)

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
        self._counter.rearm()

    # Counters the state's parts keep, read as the stand-in's own.
    #: Predictions accepted since the last :meth:`reset_counters`.
    creates: Delegated[int] = Delegated("_predictions.created")
    #: Predictions canceled before they ended.
    canceled: Delegated[int] = Delegated("_predictions.canceled")
    #: Create requests of predictions and trainings, answered by a fault or not.
    create_attempts: Delegated[int] = Delegated("_counter.attempts")
    throttled: Delegated[int] = Delegated("_counter.throttled")
    server_errors: Delegated[int] = Delegated("_counter.server_errors")
    dropped: Delegated[int] = Delegated("_counter.dropped")
    lost_answers: Delegated[int] = Delegated("_counter.lost_answers")
    #: Trainings accepted since the last :meth:`reset_counters`.
    trainings_created: Delegated[int] = Delegated("book.runs.created")
    models_created: Delegated[int] = Delegated("book.models_created")
    #: The ``whsec_…`` signing secret of every webhook this stand-in sends.
    webhook_secret: Delegated[str] = Delegated("book.webhooks.secret")

    def reset_counters(self) -> None:
        """Zero the observations, re-arm the "first N" faults; keeps predictions and files."""
        with self._lock:
            self.requests_log = []
            self._since = time.monotonic()
        self._predictions.reset_counters()
        self._counter.reset()
        self.book.reset_counters()

    @property
    def webhook_deliveries(self) -> list[Any]:
        """Every webhook delivery attempt (:class:`.webhooks.Delivery`), oldest first."""
        return list(self.book.webhooks.deliveries)

    @property
    def in_flight(self) -> int:
        """Predictions created and not yet terminal, now."""
        now = time.monotonic()
        return sum(1 for p in self._predictions.all() if p.created_mono <= now < p.finish_mono)

    @property
    def max_in_flight(self) -> int:
        """Peak number of predictions in flight at once since the last :meth:`reset_counters`."""
        since = self._since
        intervals = [
            (max(p.created_mono, since), p.finish_mono)
            for p in self._predictions.all()
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
        views = {}
        for p in self._predictions.all():
            view = self._view(p, now)
            view["input"] = copy.deepcopy(p.input)
            views[p.id] = view
        return views

    @property
    def files(self) -> dict[str, bytes]:
        """id → uploaded bytes (a copy of the mapping)."""
        return self.file_book.data()

    # -- used by the handler

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
        return self._counter.before_create(self._faults)

    def _lose_answer(self) -> bool:
        return self._counter.lose_answer(self._faults)

    def _model_for_version(self, version: object) -> str | None:
        if not isinstance(version, str):
            return None
        name = version.split(":", 1)[0]
        if name in self.models:
            return name
        trained = self.book.resolve_lora(version) if ":" in version or "/" not in version else None
        return trained.destination if trained is not None else None

    def _lora_for(
        self, model: str, data: dict[str, Any], version: str | None
    ) -> tuple[str | None, str | None]:
        """(training id, error) of a LoRA prediction; (None, None) for other models."""
        if model == LORA_MODEL:
            reference = data.get("lora_weights")
            if not isinstance(reference, str) or not reference:
                return None, None
        elif model in self.models:
            return None, None
        else:
            reference = version if version and ":" in version else f"{model}:{version or ''}"
        training = self.book.resolve_lora(reference)
        if training is None:
            return None, f"Failed to load LoRA weights from {reference!r}. (E8765)"
        return training.id, None

    def _accept(self, model: str, data: dict[str, Any], version: str | None = None) -> _Prediction:
        faults = self._faults
        prompt = str(data["prompt"])
        if faults.flag_prompts_containing and faults.flag_prompts_containing in prompt:
            outcome, error = "failed", E005_ERROR
        elif faults.fail_prompts_containing and faults.fail_prompts_containing in prompt:
            outcome, error = "failed", GENERIC_MODEL_ERROR
        else:
            outcome, error = "succeeded", None
        lora_training, lora_error = self._lora_for(model, data, version)
        if lora_error is not None:
            outcome, error = "failed", lora_error
        raw_seed = data.get("seed")
        seed = (
            raw_seed
            if isinstance(raw_seed, int)
            else int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
        )
        return self._predictions.add(
            _Prediction(
                model=model,
                input=copy.deepcopy(data),
                duration=faults.latency,
                outcome=outcome,
                error=error,
                seed=seed,
                ext=str(data.get("output_format") or "jpg"),
                size=self._output_size(data),
                lora_training=lora_training,
            )
        )

    def _output_size(self, data: dict[str, Any]) -> tuple[int, int]:
        """``image_size`` unless ``aspect_ratio`` asks otherwise (short side kept)."""
        ratio = data.get("aspect_ratio")
        short_side = min(self.image_size)
        if ratio is None:
            return self.image_size
        if ratio == "match_input_image":
            size = self._input_image_size(data.get("input_image"))
            return self.image_size if size is None else ratio_size(size[0] / size[1], short_side)
        width, _, height = str(ratio).partition(":")
        return ratio_size(int(width) / int(height), short_side)

    def _input_image_size(self, value: object) -> tuple[int, int] | None:
        """Size of a data-URI image or of a file uploaded here; never fetches anything."""
        if not isinstance(value, str):
            return None
        data: bytes | None = None
        if value.startswith("data:"):
            data = base64.b64decode(value.partition(",")[2])
        elif value.startswith(f"{self.base_url}/v1/files/"):
            file_id = value.rstrip("/").split("/")[-1]
            record = self.file_book.get(file_id)
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
        prediction = self._predictions.cancel(prediction_id, now)
        return None if prediction is None else self._view(prediction, now)

    def _prediction_view(self, prediction_id: str) -> dict[str, Any] | None:
        prediction = self._predictions.get(prediction_id)
        return None if prediction is None else self._view(prediction, time.monotonic())

    def _list_predictions(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [self._view(p, now) for p in self._predictions.newest()]

    def _expired(self, prediction: _Prediction, now: float) -> bool:
        ttl = self._faults.output_ttl
        return ttl is not None and now >= prediction.finish_mono + ttl

    def _view(self, prediction: _Prediction, now: float) -> dict[str, Any]:
        """The prediction object as Replicate's API shows it at monotonic time ``now``."""
        fields = prediction.api_fields(now, self.base_url)
        status = fields["status"]
        removed = status in TERMINAL and self._expired(prediction, now)
        logs = ""
        if status != "starting":
            logs = f"Using seed: {prediction.seed}\nRunning prediction...\n"
        if status == "succeeded":
            logs += "Generated image.\n"
        output: str | list[str] | None = None
        if status == "succeeded" and not removed:
            output = f"{self.base_url}/files/out/{prediction.id}.{prediction.ext}"
            if prediction.model == LORA_MODEL or prediction.model not in self.models:
                output = [output]  # flux-dev-lora and trained versions answer a list
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": "hidden",
            "input": {} if removed else copy.deepcopy(prediction.input),
            "logs": logs,
            "output": output,
            "data_removed": removed,
            **fields,
        }

    def _output_bytes(self, prediction_id: str, ext: str) -> tuple[bytes, str] | None:
        now = time.monotonic()
        prediction = self._predictions.get(prediction_id)
        if prediction is None or ext != prediction.ext:
            return None
        if prediction.status(now) != "succeeded" or self._expired(prediction, now):
            return None
        key = (
            str(prediction.input["prompt"]),
            prediction.input.get("seed"),
            ext,
            prediction.size,
            prediction.lora_training,
        )
        with self._lock:
            data = self._images.get(key)
            if data is not None:
                self._images.move_to_end(key)
        if data is None:
            data = self._render(prediction, ext)
            with self._lock:
                if key not in self._images:
                    self._images[key] = data
                    self._image_bytes += len(data)
                while self._image_bytes > _IMAGE_CACHE_BYTES and len(self._images) > 1:
                    self._image_bytes -= len(self._images.popitem(last=False)[1])
        return data, "image/png" if ext == "png" else "image/jpeg"

    def _render(self, prediction: _Prediction, ext: str) -> bytes:
        prompt, seed = str(prediction.input["prompt"]), prediction.input.get("seed")
        if prediction.lora_training is None:
            return render_placeholder_image(prompt, seed, prediction.size, ext)
        training = self.book.get(prediction.lora_training)
        images = training.images if training is not None else []
        return render_lora_image(images, prompt, seed, prediction.size, ext)
