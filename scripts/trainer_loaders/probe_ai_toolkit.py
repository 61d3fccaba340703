"""Load an Actor Maker ai-toolkit export with ai-toolkit's own config and data loader code.

Run with the trainers' Python: ``python probe_ai_toolkit.py AI_TOOLKIT EXPORT_YAML WORK``.
As docs/export.md says, the keys of the export's ``ai-toolkit.yaml`` are copied into
``config.process[0]`` of ai-toolkit's ``config/examples/train_lora_flux_24gb.yaml``; the
result is written to WORK and read with ai-toolkit's ``toolkit.config.get_config``. Then it
does what ``BaseSDTrainProcess`` does with ``datasets`` and ``trigger_word``
(``preprocess_dataset_raw_config``, ``DatasetConfig``, the process's trigger word given to
each dataset) and calls ``get_dataloader_from_datasets``: the folder is listed, each image's
size read, buckets made, latents cached to disk (``_latent_cache/`` beside the images), and
one epoch of the data loader yields batches with their captions.

Stand-ins, because no model may be loaded here: ``sd`` is a small object with the
attributes of a FLUX ``StableDiffusion`` that the data loader reads; its bucket divisibility
is FLUX's (32) and its ``encode_images`` returns zeros of
the FLUX latent shape (16 channels, 1/8 size) instead of running a VAE. ``torchaudio`` is
an empty module (PyPI's wheel is built for the CUDA torch and cannot load next to the CPU
torch; only audio datasets use it). ``num_workers`` is set to 0 (no worker processes).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from _shim import FluxStandIn, report, stub_torchaudio


def main(ai_toolkit: str, export_yaml: str, work: str) -> None:
    stub_torchaudio()
    sys.path.insert(0, ai_toolkit)
    import yaml
    from toolkit.config import get_config
    from toolkit.config_modules import DatasetConfig, preprocess_dataset_raw_config
    from toolkit.data_loader import get_dataloader_from_datasets

    example = Path(ai_toolkit, "config/examples/train_lora_flux_24gb.yaml")
    job = yaml.safe_load(example.read_text())
    ours = yaml.safe_load(Path(export_yaml).read_text())
    job["config"]["process"][0].update(ours)
    job_file = Path(work, "train_lora_flux_actor.yaml")
    job_file.write_text(yaml.safe_dump(job, sort_keys=False))
    print(f"job config: {job_file} (example + {sorted(ours)})")

    config = get_config(str(job_file))
    process = config["config"]["process"][0]
    trigger = process.get("trigger_word")
    raw = preprocess_dataset_raw_config(process["datasets"])
    datasets = []
    for item in raw:
        item["num_workers"] = 0
        dataset = DatasetConfig(**item)
        if dataset.trigger_word is None and trigger is not None:
            dataset.trigger_word = trigger
        datasets.append(dataset)
    sd = FluxStandIn()
    random.seed(0)
    loader = get_dataloader_from_datasets(datasets, process["train"]["batch_size"], sd)

    per_resolution = []
    for ds in loader.dataset.datasets:
        files = {Path(f.path).name for f in ds.file_list}
        buckets = {f"{b.width}x{b.height}": len(b.file_list_idx) for b in ds.buckets.values()}
        per_resolution.append(
            {"resolution": ds.dataset_config.resolution, "images": len(files), "buckets": buckets}
        )
        print(f"resolution {ds.dataset_config.resolution}: {len(files)} images, {buckets}")
    captions: dict[str, str] = {}
    batches = 0
    dropped = 0
    for batch in loader:
        batches += 1
        for item in batch.file_items:
            name = Path(item.path).name
            if item.caption == "":
                dropped += 1  # caption_dropout_rate
            else:
                captions[name] = item.caption
            assert item.is_latent_cached, f"{name}: latent not cached"
    for name in sorted(captions):
        print(f"{name}: {captions[name]!r}")
    cache = sorted(p.name for p in Path(datasets[0].folder_path, "_latent_cache").glob("*"))
    report(
        {
            "ok": bool(batches) and all(r["images"] for r in per_resolution),
            "trigger_word": trigger,
            "per_resolution": per_resolution,
            "batches": batches,
            "captions_dropped": dropped,
            "captions": captions,
            "latents_encoded": len(sd.encoded),
            "latent_cache_files": len(cache),
        }
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
