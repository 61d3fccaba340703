"""A stand-in for ostris ai-toolkit's ``run.py``, for tests and offline demos.

``python -m actor_maker.testing.ai_toolkit_standin CONFIG`` reads the job the way
ai-toolkit does (``config.name``, ``config.process[0]``: ``training_folder``,
``datasets[0].folder_path``, ``train.steps``, ``network.linear``, ``sample.prompts`` with
``--seed N`` flags), prints a tqdm-like progress bar (``\\r``-redrawn ``step/steps``), then
writes ``{training_folder}/{name}/{name}.safetensors`` (a small valid file) and one sample
per prompt as ``samples/{ms}__{steps:09d}_{i}.jpg``, derived from the dataset's images.

Environment: ``AITK_STANDIN_STEP_S`` (seconds per step, default 0.001),
``AITK_STANDIN_FAIL_AT`` (a step at which it dies with a CUDA-like error, exit 1).
It parses the config with PyYAML, as ai-toolkit does (a dev dependency here).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from actor_maker.testing.replicate_server.images import render_lora_image
from actor_maker.testing.weights import fake_lora_safetensors

_SEED = re.compile(r"\s--seed\s+(\d+)")


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise SystemExit(f"config file {path} is not a mapping")
    return loaded


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: run.py CONFIG", file=sys.stderr)
        return 2
    config = _load(Path(argv[0]))
    name = str(config["config"]["name"])
    process = config["config"]["process"][0]
    folder = Path(process["datasets"][0]["folder_path"])
    steps = int(process["train"]["steps"])
    rank = int(process["network"]["linear"])
    step_s = float(os.environ.get("AITK_STANDIN_STEP_S", "0.001"))
    fail_at = int(os.environ.get("AITK_STANDIN_FAIL_AT", "0") or 0)
    images = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        print(f"Error: no images found in {folder}", flush=True)
        return 1
    print("Running 1 job", flush=True)
    print(f"Loading Flux model {process['model']['name_or_path']}", flush=True)
    print(f"Dataset: {folder} - {len(images)} images", flush=True)
    for step in range(1, steps + 1):
        time.sleep(step_s)
        if step == fail_at:
            print("\ntorch.OutOfMemoryError: CUDA out of memory.", flush=True)
            return 1
        if step == steps or step % max(1, steps // 20) == 0:
            pct = step * 100 // steps
            sys.stdout.write(f"\r{name}: {pct:3d}%| {step}/{steps} [lr: 1.0e-04 loss: 3.1e-01]")
            sys.stdout.flush()
    print("", flush=True)
    out = Path(process["training_folder"]) / name
    (out / "samples").mkdir(parents=True, exist_ok=True)
    sources = [p.read_bytes() for p in images]
    prompts = process.get("sample", {}).get("prompts") or []
    stamp = int(time.time() * 1000)
    for index, prompt in enumerate(prompts):
        match = _SEED.search(prompt)
        seed = int(match[1]) if match else index
        text = _SEED.sub("", prompt).replace("[trigger]", str(process.get("trigger_word", "")))
        data = render_lora_image(sources, text, seed, (512, 512), "jpg")
        (out / "samples" / f"{stamp}__{steps:09d}_{index}.jpg").write_bytes(data)
    weights = fake_lora_safetensors(
        rank, {"name": name, "trigger_word": str(process.get("trigger_word", ""))}
    )
    (out / f"{name}.safetensors").write_bytes(weights)
    print(f"Saved to {out / (name + '.safetensors')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
