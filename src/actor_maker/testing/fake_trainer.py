"""The ``preview`` trainer: an offline stand-in for a LoRA trainer (tests, ``demo --train``).

It keeps each training in a folder of its own under ``state_dir`` (so another process, e.g.
a re-run after kill -9, can poll it): the dataset's images, ``training.json`` (when it
started, how long it takes, its parameters) and a ``canceled`` marker. A training is
``starting`` for the first tenth of ``duration_s``, ``processing`` until ``duration_s``
has passed, then ``succeeded`` (or ``failed`` when built with ``fail=True``). Its weights
are a small valid ``.safetensors`` whose values derive from the dataset; its "samples" are
the dataset's images mirrored and re-encoded, so the identity check has real faces to
compare. Nothing is paid and nothing is learned: the records say ``trainer: preview``.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import shutil
import time
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from actor_maker.errors import ProviderError
from actor_maker.providers.base import Tracking
from actor_maker.testing.weights import fake_lora_safetensors
from actor_maker.training.base import TrainingRequest, TrainingState, TrainingStatus

_IMAGES = (".jpg", ".jpeg", ".png", ".webp")


class FakeTrainer:
    """Implements the ``Trainer`` protocol offline; see the module docstring."""

    name = "preview"
    model = "preview (offline stand-in, learns nothing)"

    def __init__(
        self,
        state_dir: Path,
        *,
        duration_s: float = 2.0,
        fail: bool = False,
        export_format: str = "replicate-zip",
    ) -> None:
        self.state_dir = state_dir
        self.duration_s = duration_s
        self.fail = fail
        self.export_format = export_format

    # --- the seam -----------------------------------------------------------------------
    async def start(self, request: TrainingRequest) -> str:
        return await asyncio.to_thread(self._start, request)

    async def find_started(self, request: TrainingRequest, since: datetime) -> list[str]:
        """A start here never loses its answer: nothing to find."""
        return []

    async def status(self, training_id: str) -> TrainingStatus:
        return await asyncio.to_thread(self._status, training_id)

    async def cancel(self, training_id: str) -> None:
        folder = self._folder(training_id)
        await asyncio.to_thread((folder / "canceled").write_text, "canceled")

    async def weights(self, status: TrainingStatus) -> bytes:
        if status.state is not TrainingState.succeeded:
            raise ProviderError(f"training {status.training_id} has no weights")
        info = self._info(status.training_id)
        return fake_lora_safetensors(
            int(info["rank"]), {"training_id": status.training_id, "dataset": info["sha256"]}
        )

    async def samples(
        self, status: TrainingStatus, request: TrainingRequest, tracking: Sequence[Tracking] = ()
    ) -> list[bytes]:
        """The dataset's images mirrored; free, so ``tracking`` is not used."""
        images = sorted((self._folder(status.training_id) / "images").iterdir())
        if not images:
            raise ProviderError(f"training {status.training_id} has no images to sample from")
        count = len(request.sample_prompts)
        return [
            await asyncio.to_thread(_mirrored, images[i % len(images)].read_bytes())
            for i in range(count)
        ]

    async def aclose(self) -> None:
        """Nothing to close: trainings live on disk."""

    # --- for tests ----------------------------------------------------------------------
    def started(self) -> list[str]:
        """Every training id ever started under ``state_dir`` (what would have been paid)."""
        if not self.state_dir.is_dir():
            return []
        return sorted(p.name for p in self.state_dir.iterdir() if (p / "training.json").exists())

    # --- steps --------------------------------------------------------------------------
    def _folder(self, training_id: str) -> Path:
        if not training_id.startswith("pvt_") or not training_id[4:].isalnum():
            raise ProviderError(f"no training {training_id}")
        return self.state_dir / training_id

    def _info(self, training_id: str) -> dict[str, Any]:
        path = self._folder(training_id) / "training.json"
        try:
            info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ProviderError(f"no training {training_id}") from exc
        return info

    def _start(self, request: TrainingRequest) -> str:
        training_id = f"pvt_{secrets.token_hex(8)}"
        folder = self.state_dir / training_id
        images = folder / "images"
        images.mkdir(parents=True)
        _copy_images(request.dataset.path, images)
        info = {
            "started": time.time(),
            "duration_s": self.duration_s,
            "fail": self.fail,
            "steps": request.params.steps,
            "rank": request.params.rank,
            "sha256": request.dataset.sha256,
            "actor_id": request.actor_id,
        }
        part = folder / ".training.json.part"
        part.write_text(json.dumps(info), encoding="utf-8")
        part.replace(folder / "training.json")
        return training_id

    def _status(self, training_id: str) -> TrainingStatus:
        info = self._info(training_id)
        elapsed = time.time() - float(info["started"])
        duration = max(float(info["duration_s"]), 1e-6)
        done = min(1.0, elapsed / duration)
        step = int(done * int(info["steps"]))
        logs = f"flux_train_replicate: {step}/{info['steps']}"
        if (self._folder(training_id) / "canceled").exists():
            return TrainingStatus(training_id, TrainingState.canceled, done, logs, "canceled")
        if done >= 1.0:
            if info["fail"]:
                return TrainingStatus(
                    training_id, TrainingState.failed, 1.0, logs, "CUDA out of memory (preview)"
                )
            return TrainingStatus(training_id, TrainingState.succeeded, 1.0, logs, gpu_seconds=0.0)
        state = TrainingState.starting if done < 0.1 else TrainingState.processing
        return TrainingStatus(training_id, state, done, logs)


def _copy_images(source: Path, dest: Path) -> None:
    """The dataset's images: from a replicate-zip or an ai-toolkit folder."""
    if source.is_file():
        with zipfile.ZipFile(source) as archive:
            for member in archive.namelist():
                if member.lower().endswith(_IMAGES) and "/" not in member:
                    (dest / member).write_bytes(archive.read(member))
        return
    for path in source.rglob("*"):
        if path.is_file() and path.suffix.lower() in _IMAGES:
            shutil.copyfile(path, dest / path.name)


def _mirrored(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        out = ImageOps.mirror(img.convert("RGB"))
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
