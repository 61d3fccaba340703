"""Run inside the trainers' venv before a trainer's code is imported.

PyPI's torchvision wheels are built against the CUDA torch, and the venv has the CPU torch
(2.13.0+cpu), so torchvision's compiled ops (``_C.so``) cannot load. torchvision's Python
transforms, which the trainers' data loaders use, do not need them, but importing
torchvision registers fake kernels for ``torchvision::nms`` and ``torchvision::qnms``,
which fails when those operators were never defined. Defining their schemas (no kernels)
lets the import go through; calling them would still fail, and no loader calls them.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
import types
from typing import Any

import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations asks PyPI otherwise

_LIB = torch.library.Library("torchvision", "DEF")
_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

#: The last line a probe prints starts with this, followed by its result as JSON.
RESULT = "PROBE-RESULT "


def report(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(RESULT + json.dumps(result, ensure_ascii=False), flush=True)


def stub_torchaudio() -> None:
    """An empty ``torchaudio``: PyPI's wheel is built for the CUDA torch and cannot load next
    to the CPU torch. ai-toolkit imports it at the top of ``toolkit.config_modules``; only
    audio datasets call it."""
    audio = types.ModuleType("torchaudio")
    audio.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = audio


class _Config:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]


class FluxStandIn:
    """What ai-toolkit's data loader reads from a FLUX ``StableDiffusion``; no weights."""

    is_flux = True
    is_xl = is_v3 = is_vega = is_ssd = is_auraflow = is_audio_model = False
    latent_space_version = None
    encode_control_in_text_embeddings = False
    text_embedding_space_version = "flux1"
    te_padding_side = "right"
    adapter = None
    cache_latents_as_uint8 = False
    use_raw_control_images = has_multiple_control_images = False

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.device = "cpu"
        self.device_torch = torch.device("cpu")
        self.torch_dtype = torch.float32
        self.model_config = _Config(latent_space_version=None, is_pixart_sigma=False, arch="flux")
        self.vae = _Config(config={})
        self.unet = _Config(config={})
        self.encoded: list[tuple[int, ...]] = []

    def get_bucket_divisibility(self) -> int:
        # StableDiffusion.get_bucket_divisibility for FLUX's VAE (4 blocks): 2**3, doubled
        # for FLUX's packing, doubled again. (Importing that module needs a newer diffusers
        # than sd-scripts pins, so the value is given here.)
        return 32

    def encode_images(self, images: Any) -> Any:
        self.encoded.append(tuple(images.shape))
        b, _, h, w = images.shape
        return self.torch.zeros((b, 16, h // 8, w // 8))

    def set_device_state_preset(self, *_: Any) -> None:
        pass

    def restore_device_state(self) -> None:
        pass
