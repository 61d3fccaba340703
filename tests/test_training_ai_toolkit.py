"""The ai-toolkit trainer, running the stand-in command that behaves like ai-toolkit's run.py."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageChops, ImageStat

from actor_maker.config import Settings
from actor_maker.errors import ConfigError, InputError, NotFoundError
from actor_maker.testing.weights import safetensors_metadata
from actor_maker.training.ai_toolkit import AiToolkitTrainer, to_yaml
from actor_maker.training.base import (
    Dataset,
    TrainingParams,
    TrainingRequest,
    TrainingState,
    TrainingStatus,
)

from .helpers import sample_image

STANDIN = [sys.executable, "-m", "actor_maker.testing.ai_toolkit_standin"]
PROMPTS = ("photo of [trigger] reading", "photo of [trigger] at the sea", "[trigger], portrait")


def export(root: Path, count: int = 10) -> Path:
    """What ``actor-maker export --format ai-toolkit`` writes: ``{out}/{actor_name}/``."""
    folder = root / "export" / "alice"
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"alice_{i}.jpg").write_bytes(sample_image((320, 320), seed=i * 11))
        (folder / f"alice_{i}.txt").write_text(f"photo of TOK woman, pose {i}")
    (folder / "ai-toolkit.yaml").write_text("# snippet\n")
    return root / "export"


def request(root: Path, steps: int = 40) -> TrainingRequest:
    path = root / "export" if (root / "export").exists() else export(root)
    return TrainingRequest(
        actor_id="0012",
        version="V2",
        trigger_word="TOK",
        dataset=Dataset(path=path, images=10, sha256="f" * 64),
        params=TrainingParams(steps=steps, rank=4, learning_rate=2e-4, resolution="512,768"),
        sample_prompts=PROMPTS,
        sample_seeds=(11, 12, 13),
    )


def trainer(tmp_path: Path, step_s: float = 0.002, **env: str) -> AiToolkitTrainer:
    toolkit = tmp_path / "ai-toolkit"
    toolkit.mkdir(exist_ok=True)
    return AiToolkitTrainer(
        toolkit_dir=toolkit,
        work_dir=tmp_path / "state" / "ai-toolkit",
        command=STANDIN,
        env={"AITK_STANDIN_STEP_S": str(step_s), **env},
    )


async def until(
    t: AiToolkitTrainer, training_id: str, done: object = None, limit: float = 30
) -> TrainingStatus:
    deadline = time.monotonic() + limit
    while True:
        status = await t.status(training_id)
        if status.state.final if done is None else status.state is done:
            return status
        assert time.monotonic() < deadline, f"still {status.state}: {status.logs_tail}"
        await asyncio.sleep(0.05)


def distance(a: bytes, b: bytes) -> float:
    def small(data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("L").resize((64, 64))

    return float(ImageStat.Stat(ImageChops.difference(small(a), small(b))).mean[0])


async def test_trains_and_picks_up_weights_and_samples(tmp_path):
    t = trainer(tmp_path)
    req = request(tmp_path)
    training_id = await t.start(req)
    status = await until(t, training_id)
    assert status.state is TrainingState.succeeded, status.error
    assert status.progress == 1.0 and "40/40" in status.logs_tail
    assert status.weights_path is not None and status.weights_path.suffix == ".safetensors"
    meta = safetensors_metadata(await t.weights(status))
    assert meta == {"name": training_id, "trigger_word": "TOK"}
    samples = await t.samples(status, req)
    assert len(samples) == 3
    training_images = [sample_image((320, 320), seed=i * 11) for i in range(10)]
    for sample in samples:
        assert min(distance(sample, img) for img in training_images) < 25


async def test_generated_config_is_ai_toolkit_yaml(tmp_path):
    t = trainer(tmp_path)
    training_id = await t.start(request(tmp_path))
    await until(t, training_id)
    config = yaml.safe_load((t.work_dir / training_id / "config.yaml").read_text())
    assert config["job"] == "extension" and config["config"]["name"] == training_id
    process = config["config"]["process"][0]
    assert process["type"] == "sd_trainer" and process["trigger_word"] == "TOK"
    assert process["network"] == {"type": "lora", "linear": 4, "linear_alpha": 4}
    assert process["train"]["steps"] == 40 and process["train"]["lr"] == 2e-4
    assert process["datasets"][0]["folder_path"] == str(tmp_path / "export" / "alice")
    assert process["datasets"][0]["resolution"] == [512, 768]
    assert process["model"]["is_flux"] is True
    assert process["sample"]["prompts"] == [
        "photo of [trigger] reading --seed 11",
        "photo of [trigger] at the sea --seed 12",
        "[trigger], portrait --seed 13",
    ]


def test_to_yaml_round_trips_through_a_yaml_parser():
    value = {
        "a": 'quote " and: colon # hash',
        "b": [1, 2.5e-4, True, None, {"c": "d", "e": [{"f": 1}]}],
        "g": {},
        "h": [],
        "i": "ünïcode",
    }
    assert yaml.safe_load(to_yaml(value)) == value


async def test_progress_is_reported_while_it_runs(tmp_path):
    t = trainer(tmp_path, step_s=0.02)
    training_id = await t.start(request(tmp_path, steps=200))
    status = await until(t, training_id, done=TrainingState.processing)
    deadline = time.monotonic() + 10
    while not status.progress and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        status = await t.status(training_id)
    assert status.state is TrainingState.processing
    assert status.progress is not None and 0 < status.progress < 1
    await t.cancel(training_id)


async def test_cancel_stops_the_process(tmp_path):
    t = trainer(tmp_path, step_s=0.05)
    training_id = await t.start(request(tmp_path, steps=400))
    await until(t, training_id, done=TrainingState.starting, limit=5)
    await t.cancel(training_id)
    status = await t.status(training_id)
    assert status.state is TrainingState.canceled and status.weights_path is None
    pid = int((t.work_dir / training_id / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()


async def test_a_crash_is_a_failed_training_with_its_reason(tmp_path):
    t = trainer(tmp_path, AITK_STANDIN_FAIL_AT="5")
    status = await until(t, await t.start(request(tmp_path)))
    assert status.state is TrainingState.failed
    assert status.error and "exited with code 1" in status.error
    assert "CUDA out of memory" in status.error and "no weights" in status.error


async def test_a_new_trainer_re_attaches_to_a_running_training(tmp_path):
    first = trainer(tmp_path, step_s=0.01)
    training_id = await first.start(request(tmp_path, steps=150))
    # A restarted server: a fresh trainer over the same work folder, no process handle.
    second = trainer(tmp_path)
    assert (await second.status(training_id)).state in (
        TrainingState.starting,
        TrainingState.processing,
    )
    status = await until(second, training_id)
    assert status.state is TrainingState.succeeded and status.weights_path is not None
    assert len(list((second.work_dir).iterdir())) == 1  # nothing started twice


async def test_bad_input_and_configuration_are_refused_before_anything_runs(tmp_path, clean_env):
    t = trainer(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = request(tmp_path)
    bad = TrainingRequest(**{**bad.__dict__, "dataset": Dataset(empty, 0, "0" * 64)})
    with pytest.raises(InputError, match="no single folder"):
        await t.start(bad)
    assert not t.work_dir.exists()
    missing = AiToolkitTrainer(
        toolkit_dir=tmp_path / "nowhere", work_dir=tmp_path / "w", command=STANDIN
    )
    with pytest.raises(ConfigError, match="AI_TOOLKIT_DIR"):
        await missing.start(request(tmp_path))
    with pytest.raises(NotFoundError):
        await t.status("../../etc")
    with pytest.raises(ConfigError, match="ACTOR_MAKER_AI_TOOLKIT_DIR"):
        AiToolkitTrainer.from_settings(Settings())


def test_settings_build_the_command(tmp_path, clean_env):
    monkeypatch = clean_env
    monkeypatch.setenv("ACTOR_MAKER_AI_TOOLKIT_DIR", str(tmp_path))
    monkeypatch.setenv("ACTOR_MAKER_AI_TOOLKIT_COMMAND", "venv/bin/python run.py --log 'a b'")
    t = AiToolkitTrainer.from_settings(Settings())
    assert t.toolkit_dir == tmp_path and t.command == ["venv/bin/python", "run.py", "--log", "a b"]
