"""Load an Actor Maker kohya export with sd-scripts' own dataset code, as FLUX training would.

Run with the trainers' Python: ``python probe_sd_scripts.py SD_SCRIPTS DATASET_TOML``, from
the working directory training would start in. It parses the command line that sd-scripts'
docs/flux_train_network.md recommends (``--cache_latents --cache_text_encoder_outputs``),
then does what ``NetworkTrainer.train`` does before it loads a model: the FLUX latents
caching strategy, ``BlueprintGenerator(ConfigSanitizer(...))`` on the dataset config,
``generate_dataset_group_by_blueprint`` (which lists the images, reads the captions and
makes the buckets), the "No data found" check, ``is_latent_cacheable`` and
``FluxNetworkTrainer.assert_extra_args`` (the ``shuffle_caption`` assertion and the bucket
steps). It then loads and resizes every image to its bucket as latent caching would.

Not run: the tokenizers (``FluxTokenizeStrategy`` downloads CLIP-L and T5 tokenizers),
the models, the accelerator, caching itself, training.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _shim import report


def main(sd_scripts: str, dataset_toml: str) -> None:
    sys.path.insert(0, sd_scripts)
    import flux_train_network
    import train_network
    from library import config_util, strategy_base, train_util

    parser = flux_train_network.setup_parser()
    argv = [
        "--pretrained_model_name_or_path=/models/flux1-dev.safetensors",
        "--clip_l=/models/clip_l.safetensors",
        "--t5xxl=/models/t5xxl_fp16.safetensors",
        "--ae=/models/ae.safetensors",
        f"--dataset_config={dataset_toml}",
        "--output_dir=output",
        "--output_name=actor_lora",
        "--save_model_as=safetensors",
        "--network_module=networks.lora_flux",
        "--network_dim=16",
        "--network_alpha=1",
        "--learning_rate=1e-4",
        "--optimizer_type=AdamW8bit",
        "--lr_scheduler=constant",
        "--sdpa",
        "--max_train_epochs=10",
        "--save_every_n_epochs=1",
        "--mixed_precision=fp16",
        "--gradient_checkpointing",
        "--guidance_scale=1.0",
        "--timestep_sampling=flux_shift",
        "--model_prediction_type=raw",
        "--blocks_to_swap=18",
        "--cache_text_encoder_outputs",
        "--cache_latents",
    ]
    print("flux_train_network.py " + " ".join(argv))
    args = parser.parse_args(argv)
    train_util.verify_command_line_training_args(args)
    args = train_util.read_config_from_file(args, parser)
    train_util.verify_training_args(args)
    train_util.prepare_dataset_args(args, True)

    trainer = flux_train_network.FluxNetworkTrainer()
    strategy_base.LatentsCachingStrategy.set_strategy(trainer.get_latents_caching_strategy(args))

    generator = config_util.BlueprintGenerator(
        config_util.ConfigSanitizer(True, True, args.masked_loss, True)
    )
    user_config = config_util.load_user_config(args.dataset_config)
    blueprint = generator.generate(user_config, args)
    group, val_group = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    if len(group) == 0:
        report({"ok": False, "why": "sd-scripts found no data (it would log 'No data found')"})
        return
    try:
        assert group.is_latent_cacheable(), "is_latent_cacheable() is false"
        trainer.assert_extra_args(args, group, val_group)  # FLUX: shuffle_caption, buckets
        train_network.NetworkTrainer().assert_extra_args(args, group, val_group)  # SD: 64
    except AssertionError as exc:
        report({"ok": False, "why": f"AssertionError: {exc}", "assertion": str(exc)})
        return

    images = []
    for dataset in group.datasets:
        for info in dataset.image_data.values():
            image = train_util.load_image(info.absolute_path)
            resized, _, _ = train_util.trim_and_resize_if_required(
                False, image, info.bucket_reso, info.resized_size
            )
            images.append(
                {
                    "file": Path(info.absolute_path).name,
                    "size": list(info.image_size),
                    "bucket": list(info.bucket_reso),
                    "repeats": info.num_repeats,
                    "caption": info.caption,
                    "pixels": [resized.shape[1], resized.shape[0]],
                }
            )
            print(f"{images[-1]['file']}: {info.image_size} -> bucket {info.bucket_reso}")
            print(f"    caption: {info.caption!r}")
        print("buckets:", dataset.bucket_manager.resos if dataset.bucket_manager else None)
    report(
        {
            "ok": True,
            "images": len(images),
            "steps_per_epoch_images": len(group),
            "shuffle_caption": [s.shuffle_caption for d in group.datasets for s in d.subsets],
            "keep_tokens": [s.keep_tokens for d in group.datasets for s in d.subsets],
            "details": images,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
