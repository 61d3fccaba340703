"""Give an Actor Maker replicate-zip to Replicate's FLUX LoRA trainer's own ``train()``.

Run with the trainers' Python: ``python probe_flux_fine_tuner.py FLUX_FINE_TUNER ZIP
TRIGGER WORK``. It imports the trainer's ``train.py`` (run in WORK, which must be empty: the
trainer unpacks into ``./input_images``) and calls its ``train()`` with the zip as
``input_images``, the trigger word, and every other input at its default except
``gradient_checkpointing=True`` (otherwise ``train()`` first asks CUDA how much memory the
GPU has). Its own code then builds the ai-toolkit job config, unpacks the zip
(``extract_zip``) and asks its captioner whether every image has a ``.txt`` caption
(``Captioner.all_images_are_captioned``; if not, it would load LLaVA to write captions).
``train()`` is stopped where it starts the ai-toolkit job; the job's config is kept. The
datasets of that config then go through the data loader of the ai-toolkit version this
trainer pins (its ``ai-toolkit`` submodule) as in ai-toolkit's own probe, and the trainer's
trigger word is added to each caption as its ``BaseSDTrainProcess`` does for every batch.

Stand-ins: ``download_weights`` does nothing (it downloads FLUX.1-dev); the modules it
cannot import here are empty: the ``llava`` modules that ``caption.py`` and
``submodule_patches.py`` import (the LLaVA submodule; the trainer's own patches still run,
among them the one that makes the data loader use ``num_workers=0``), ``wandb_client``
(wandb) and the trainer classes ``SDTrainer`` and ``jobs.BaseJob`` (they load the FLUX
model); the job class is replaced by one that records its config. The ``sd`` object is the
FLUX stand-in of ``_shim.py``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import sys
import types
from pathlib import Path
from typing import Any

from _shim import FluxStandIn, report


class _Stop(Exception):
    pass


def _empty_module(name: str, **attrs: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def main(flux_fine_tuner: str, zip_path: str, trigger: str, work: str) -> None:
    root = Path(flux_fine_tuner).resolve()
    sys.path[:0] = [str(root), str(root / "ai-toolkit")]
    for name in ("llava", "llava.model", "llava.model.language_model"):
        _empty_module(name)
    _empty_module("llava.model.builder", load_pretrained_model=None)
    _empty_module(
        "llava.model.language_model.llava_llama",
        LlavaLlamaForCausalLM=type("L", (), {"forward": None}),
    )
    _empty_module("llava.constants", DEFAULT_IMAGE_TOKEN="<image>", IMAGE_TOKEN_INDEX=-200)
    _empty_module("llava.conversation", conv_templates={})
    _empty_module("llava.mm_utils", tokenizer_image_token=None)
    _empty_module("llava.utils", disable_torch_init=None)
    _empty_module("wandb_client", WeightsAndBiasesClient=object, logout_wandb=lambda: None)
    for name in ("extensions_built_in", "extensions_built_in.sd_trainer"):
        _empty_module(name)
    _empty_module("extensions_built_in.sd_trainer.SDTrainer", SDTrainer=object)
    _empty_module("jobs", BaseJob=object)

    os.chdir(work)
    import train as trainer

    jobs: list[dict[str, Any]] = []

    class RecordingJob:
        def __init__(self, config: dict[str, Any], wandb_client: Any) -> None:
            jobs.append(config)
            raise _Stop

    trainer.download_weights = lambda: None
    trainer.CustomJob = RecordingJob
    inputs = {
        name: getattr(p.default, "default", p.default)
        for name, p in inspect.signature(trainer.train).parameters.items()
    }
    inputs.update(
        input_images=trainer.Path(zip_path), trigger_word=trigger, gradient_checkpointing=True
    )
    print("train(" + ", ".join(f"{k}={v!r}" for k, v in inputs.items() if "token" not in k))
    with contextlib.suppress(_Stop):
        trainer.train(**inputs)
    if not jobs:
        report({"ok": False, "why": "train() did not reach the training job"})
        return
    from caption import Captioner

    input_dir = Path(work, "input_images")
    pairs = list(Captioner().iter_images_captions(input_dir))
    captioned = Captioner().all_images_are_captioned(input_dir)
    extracted = sorted(p.name for p in input_dir.iterdir())
    print(f"extracted: {extracted}")
    print(f"all_images_are_captioned: {captioned} (False would start LLaVA autocaptioning)")

    from toolkit.config_modules import DatasetConfig, preprocess_dataset_raw_config
    from toolkit.data_loader import get_dataloader_from_datasets
    from toolkit.prompt_utils import inject_trigger_into_prompt

    process = jobs[0]["config"]["process"][0]
    print(f"datasets: {process['datasets']}, trigger_word: {process.get('trigger_word')}")
    datasets = []
    for item in preprocess_dataset_raw_config(process["datasets"]):
        datasets.append(DatasetConfig(**item))
    random.seed(0)
    sd = FluxStandIn()
    loader = get_dataloader_from_datasets(datasets, process["train"]["batch_size"], sd)
    per_resolution = []
    for ds in loader.dataset.datasets:
        buckets = {f"{b.width}x{b.height}": len(b.file_list_idx) for b in ds.buckets.values()}
        names = sorted({Path(f.path).name for f in ds.file_list})
        per_resolution.append(
            {"resolution": ds.dataset_config.resolution, "images": len(names), "buckets": buckets}
        )
        print(f"resolution {ds.dataset_config.resolution}: {names} {buckets}")
    prompts: dict[str, str] = {}
    dropped = 0
    for batch in loader:
        for file_item in batch.file_items:
            if file_item.caption == "":
                dropped += 1
                continue
            prompts[Path(file_item.path).name] = inject_trigger_into_prompt(
                file_item.caption, trigger=process.get("trigger_word"), add_if_not_present=True
            )
    for name in sorted(prompts):
        print(f"{name}: {prompts[name]!r}")
    images = [p.name for p, _ in pairs]
    report(
        {
            "ok": captioned
            and bool(images)
            and all(r["images"] == len(images) for r in per_resolution)
            and len(prompts) == len(images),
            "extracted_files": len(extracted),
            "images": len(images),
            "all_images_are_captioned": captioned,
            "trigger_word": process.get("trigger_word"),
            "per_resolution": per_resolution,
            "captions_dropped": dropped,
            "prompts": prompts,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
