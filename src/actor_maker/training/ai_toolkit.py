"""LoRA training on this machine's GPU with ostris ai-toolkit, run as a subprocess.

``start`` writes one job folder under ``work_dir`` (named by the training id) holding
``config.yaml`` (an ai-toolkit ``sd_trainer`` job: the exported dataset folder, the
parameters, the sample prompts with ``--seed`` flags), ``request.json`` and ``train.log``,
then runs ``{command} {config.yaml}`` in ``ACTOR_MAKER_AI_TOOLKIT_DIR`` (default
``python run.py``) in its own session, its output going to ``train.log``. Everything
``status`` needs is in that folder and the process table, so a restarted server re-attaches
to a training still running (its pid is in ``pid``) instead of starting another.

ai-toolkit writes ``{training_folder}/{name}/{name}.safetensors`` when it finishes and the
samples as ``samples/{time}__{step:09d}_{index}.jpg``; progress comes from the
``step/steps`` counters of its progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actor_maker.errors import ConfigError, InputError, NotFoundError, ProviderError
from actor_maker.providers.base import Tracking
from actor_maker.training.base import TrainingRequest, TrainingState, TrainingStatus
from actor_maker.training.replicate import logs_tail

if TYPE_CHECKING:
    from actor_maker.config import Settings

BASE_MODEL = "black-forest-labs/FLUX.1-dev"
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
_SAMPLE = re.compile(r"__(\d+)_(\d+)\.(?:jpg|jpeg|png|webp)$")
_STEPS = re.compile(r"(\d+)/(\d+)")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_LOG_BYTES = 64 * 1024


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (strings JSON-quoted, which YAML reads)."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False)


def dataset_folder(path: Path) -> Path:
    """The folder of images and ``.txt`` captions in an ai-toolkit export: ``path`` itself or
    its only sub-folder holding images (``export`` writes ``{out}/{actor_name}/``)."""

    def has_images(folder: Path) -> bool:
        return any(p.suffix.lower() in _IMAGE_EXTS for p in folder.iterdir() if p.is_file())

    if not path.is_dir():
        raise InputError(f"the ai-toolkit dataset {path} is not a folder (export it first)")
    if has_images(path):
        return path
    candidates = [p for p in sorted(path.iterdir()) if p.is_dir() and has_images(p)]
    if len(candidates) != 1:
        raise InputError(f"no single folder of training images in {path}")
    return candidates[0]


class AiToolkitTrainer:
    """The ``ai-toolkit`` trainer; see the module docstring."""

    name = "ai-toolkit"
    export_format = "ai-toolkit"

    def __init__(
        self,
        *,
        toolkit_dir: Path,
        work_dir: Path,
        command: Sequence[str] = ("python", "run.py"),
        base_model: str = BASE_MODEL,
        device: str = "cuda:0",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not command:
            raise ConfigError("ACTOR_MAKER_AI_TOOLKIT_COMMAND is empty")
        self.toolkit_dir = toolkit_dir
        self.work_dir = work_dir
        self.command = list(command)
        self.base_model = base_model
        self.device = device
        self.env = dict(env) if env is not None else None
        self.model = f"ostris/ai-toolkit ({base_model})"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AiToolkitTrainer:
        import shlex

        if settings.ai_toolkit_dir is None:
            raise ConfigError(
                "the ai-toolkit trainer needs ACTOR_MAKER_AI_TOOLKIT_DIR (a checkout of "
                "ostris/ai-toolkit with its requirements installed)"
            )
        return cls(
            toolkit_dir=settings.ai_toolkit_dir,
            work_dir=settings.state_dir / "ai-toolkit",
            command=shlex.split(settings.ai_toolkit_command),
        )

    # --- the seam -----------------------------------------------------------------------
    async def start(self, request: TrainingRequest) -> str:
        if not self.toolkit_dir.is_dir():
            raise ConfigError(f"ACTOR_MAKER_AI_TOOLKIT_DIR {self.toolkit_dir} is not a folder")
        folder = dataset_folder(request.dataset.path)
        label = _UNSAFE.sub("-", f"{request.actor_id}_{request.version}").strip("-")
        training_id = f"aitk_{label}_{secrets.token_hex(4)}"
        job = self.work_dir / training_id
        job.mkdir(parents=True)
        config = self.config(request, training_id, folder, job / "output")
        (job / "config.yaml").write_text(
            f"# ai-toolkit job written by actor-maker for actor {request.actor_id}\n"
            + to_yaml(config)
            + "\n",
            encoding="utf-8",
        )
        (job / "request.json").write_text(
            json.dumps({"steps": request.params.steps, "started": time.time()}),
            encoding="utf-8",
        )
        with open(job / "train.log", "wb") as log:
            try:
                process = subprocess.Popen(
                    [*self.command, str(job / "config.yaml")],
                    cwd=self.toolkit_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env} if self.env is not None else None,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot run ai-toolkit ({self.command[0]}): {exc.strerror}"
                ) from exc
        (job / "pid").write_text(str(process.pid), encoding="utf-8")
        self._processes[training_id] = process
        return training_id

    def config(
        self, request: TrainingRequest, name: str, folder: Path, output: Path
    ) -> dict[str, Any]:
        """The ai-toolkit job (keys of its config/examples/train_lora_flux_24gb.yaml)."""
        params = request.params
        resolutions = [int(r) for r in params.resolution.split(",") if r.strip().isdigit()]
        seeds = request.seeds()
        prompts = [
            f"{prompt} --seed {seed}"
            for prompt, seed in zip(request.sample_prompts, seeds, strict=True)
        ]
        sample: dict[str, Any] = {
            "sampler": "flowmatch",
            "sample_every": params.steps,
            "width": 1024,
            "height": 1024,
            "prompts": prompts,
            "neg": "",
            "seed": seeds[0] if seeds else 42,
            "walk_seed": False,
            "guidance_scale": 4,
            "sample_steps": 20,
        }
        process: dict[str, Any] = {
            "type": "sd_trainer",
            "training_folder": str(output),
            "device": self.device,
            "trigger_word": request.trigger_word,
            "network": {"type": "lora", "linear": params.rank, "linear_alpha": params.rank},
            "save": {
                "dtype": "float16",
                "save_every": params.steps,
                "max_step_saves_to_keep": 1,
                "push_to_hub": False,
            },
            "datasets": [
                {
                    "folder_path": str(folder),
                    "caption_ext": "txt",
                    "caption_dropout_rate": 0.05,
                    "shuffle_tokens": False,
                    "cache_latents_to_disk": True,
                    "resolution": resolutions or [512, 768, 1024],
                }
            ],
            "train": {
                "batch_size": params.batch_size,
                "steps": params.steps,
                "gradient_accumulation_steps": 1,
                "train_unet": True,
                "train_text_encoder": False,
                "gradient_checkpointing": True,
                "noise_scheduler": "flowmatch",
                "optimizer": "adamw8bit",
                "lr": params.learning_rate,
                "skip_first_sample": True,
                "disable_sampling": not prompts,
                "ema_config": {"use_ema": True, "ema_decay": 0.99},
                "dtype": "bf16",
            },
            "model": {"name_or_path": self.base_model, "is_flux": True, "quantize": True},
            "sample": sample,
        }
        return {
            "job": "extension",
            "config": {"name": name, "process": [process]},
            "meta": {"name": "[name]", "version": "1.0"},
        }

    async def find_started(self, request: TrainingRequest, since: datetime) -> list[str]:
        """Not looked for: a local process's folder does not say which request it serves, so
        a stale start is marked failed as before."""
        return []

    async def status(self, training_id: str) -> TrainingStatus:
        return await asyncio.to_thread(self._status, training_id)

    async def cancel(self, training_id: str) -> None:
        await asyncio.to_thread(self._cancel, training_id)

    async def weights(self, status: TrainingStatus) -> bytes:
        if status.state is not TrainingState.succeeded or status.weights_path is None:
            raise ProviderError(f"training {status.training_id} has no weights")
        return await asyncio.to_thread(status.weights_path.read_bytes)

    async def samples(
        self, status: TrainingStatus, request: TrainingRequest, tracking: Sequence[Tracking] = ()
    ) -> list[bytes]:
        """The images ai-toolkit rendered at its last sampling step, in prompt order (nothing
        is paid per sample, so ``tracking`` is not used)."""
        folder = self._output(status.training_id) / "samples"
        found: dict[int, dict[int, Path]] = {}
        if folder.is_dir():
            for path in folder.iterdir():
                match = _SAMPLE.search(path.name)
                if match:
                    found.setdefault(int(match[1]), {})[int(match[2])] = path
        wanted = len(request.sample_prompts)
        last = found[max(found)] if found else {}
        if len(last) < wanted:
            raise ProviderError(
                f"ai-toolkit wrote {len(last)} sample image(s) at its last step; expected {wanted}"
            )
        paths = [last[i] for i in sorted(last)[:wanted]]
        return [await asyncio.to_thread(p.read_bytes) for p in paths]

    async def aclose(self) -> None:
        """Trainings keep running (a later process re-attaches); nothing to close."""

    # --- steps --------------------------------------------------------------------------
    def _job(self, training_id: str) -> Path:
        job = self.work_dir / training_id
        if _UNSAFE.sub("", training_id) != training_id or not (job / "config.yaml").is_file():
            raise NotFoundError(f"no ai-toolkit training {training_id!r} in {self.work_dir}")
        return job

    def _output(self, training_id: str) -> Path:
        return self._job(training_id) / "output" / training_id

    def _exit_code(self, training_id: str, job: Path) -> int | None:
        """The exit code when the process has ended and we saw it; None otherwise."""
        process = self._processes.get(training_id)
        if process is not None and process.poll() is not None:
            (job / "exit_code").write_text(str(process.returncode), encoding="utf-8")
        with contextlib.suppress(OSError, ValueError):
            return int((job / "exit_code").read_text(encoding="utf-8"))
        return None

    def _alive(self, training_id: str, job: Path) -> bool:
        process = self._processes.get(training_id)
        if process is not None:
            return process.poll() is None
        pid = _read_pid(job)
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = None
        if cmdline is not None:  # a reused pid runs something else
            return str(job / "config.yaml").encode() in cmdline
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _status(self, training_id: str) -> TrainingStatus:
        job = self._job(training_id)
        log = _read_tail(job / "train.log")
        steps = int(json.loads((job / "request.json").read_text(encoding="utf-8"))["steps"])
        progress = _progress(log, steps)
        weights = self._output(training_id) / f"{training_id}.safetensors"
        code = self._exit_code(training_id, job)
        alive = code is None and self._alive(training_id, job)
        tail = logs_tail(log.replace("\r", "\n"))
        status = TrainingStatus(training_id, TrainingState.processing, progress, tail)
        if (job / "canceled").exists():
            status.state = TrainingState.canceled
        elif alive:
            status.state = (
                TrainingState.processing if progress is not None else TrainingState.starting
            )
        elif weights.is_file() and code in (0, None):
            status.state = TrainingState.succeeded
            status.progress, status.weights_path = 1.0, weights
        else:
            last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), "")
            status.state = TrainingState.failed
            status.error = (
                f"ai-toolkit exited with code {code if code is not None else '?'}"
                + (f": {last[:300]}" if last else "")
                + ("" if weights.is_file() else " (no weights written)")
            )
        return status

    def _cancel(self, training_id: str) -> None:
        job = self._job(training_id)
        if not self._alive(training_id, job):
            return
        (job / "canceled").write_text(str(time.time()), encoding="utf-8")
        pid = _read_pid(job)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self._alive(training_id, job) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._alive(training_id, job):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        process = self._processes.get(training_id)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def _read_pid(job: Path) -> int | None:
    try:
        return int((job / "pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _LOG_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _progress(log: str, steps: int) -> float | None:
    """0..1 from the last ``n/steps`` counter in the log (tqdm redraws with ``\\r``)."""
    for line in reversed(re.split(r"[\r\n]", log)):
        for done, total in reversed(_STEPS.findall(line)):
            if int(total) == steps and int(done) <= steps:
                return int(done) / steps
    return None
