"""Identity: is the face in a generated image the base image's face?

Optional (the ``[quality]`` extra): dlib's HOG face detector, its 5-point landmark model and
its ResNet face-embedding model (128-d, from ``face_recognition_models``). Everything runs
offline from files inside those two packages. Two faces of one person are close in that
space; the check stores the euclidean distance and rejects above a threshold.

The dlib calls are CPU-bound and blocking: call :meth:`FaceIdentity.embed`
and :meth:`FaceIdentity.check` from a thread (``asyncio.to_thread``). The models are loaded
once per process, on first use, and one lock serializes the dlib calls (a dlib network keeps
per-call buffers in the shared object, so concurrent calls on it are not safe).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from actor_maker.decoding import decode_within
from actor_maker.errors import ConfigError, InvalidImageError
from actor_maker.quality import CheckResult

#: Above this euclidean distance the face counts as someone else. dlib's documented default
#: is 0.6; calibrated on the test photographs (docs/quality.md, "Identity").
DEFAULT_THRESHOLD = 0.6

#: Images are downscaled to this long side before detection (speed; faces stay big enough).
MAX_SIDE = 1024

#: A detection at least this fraction of the largest one's area counts as "as large" (the HOG
#: detector's pyramid steps by 5/6, so one face can come out at 0.69x another's area): among
#: those the detector's most confident one wins. The astronaut photo shows why: the round
#: mission patch on her suit is detected as a face as large as hers (score 0.02-0.19 against
#: her 1.0-1.6).
_SAME_SIZE = 0.6

_MODEL_FILES = {
    "shape": "shape_predictor_5_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}

_available: bool | None = None
_available_lock = threading.Lock()


def _model_dir() -> Path | None:
    """The ``models`` folder of ``face_recognition_models``, found without importing it.

    Importing the package runs ``pkg_resources`` (setuptools), which setuptools is phasing out;
    the files are plain data, so locating the package is enough.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if all((folder / name).is_file() for name in _MODEL_FILES.values()):
            return folder
    return None


def identity_available() -> bool:
    """Whether dlib and the model files are installed; cached, never raises."""
    global _available
    with _available_lock:
        if _available is None:
            try:
                import dlib  # noqa: F401

                _available = _model_dir() is not None
            except Exception:  # a missing or broken native library: just unavailable
                _available = False
        return _available


@dataclass(frozen=True)
class _Models:
    detector: Any
    shape: Any
    embedding: Any


_models: _Models | None = None
_models_lock = threading.Lock()
#: Serializes every dlib call on the shared models.
_dlib_lock = threading.Lock()


def _load_models() -> _Models:
    global _models
    with _models_lock:
        if _models is None:
            folder = _model_dir()
            if folder is None:
                raise ConfigError("the identity check needs: pip install 'actor-maker[quality]'")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import dlib

            _models = _Models(
                detector=dlib.get_frontal_face_detector(),
                shape=dlib.shape_predictor(str(folder / _MODEL_FILES["shape"])),
                embedding=dlib.face_recognition_model_v1(str(folder / _MODEL_FILES["embedding"])),
            )
        return _models


@dataclass(frozen=True)
class _Analysis:
    descriptor: np.ndarray | None
    faces_found: int


def _decode(data: bytes) -> np.ndarray:
    """RGB pixels, EXIF-rotated, at most ``MAX_SIDE`` on the long side (decoded reduced)."""
    img = decode_within(data, box=(MAX_SIDE, MAX_SIDE)).image
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


class FaceIdentity:
    """Face embeddings and the identity check; cheap to create, models shared per process."""

    def __init__(self, cache_size: int = 64) -> None:
        self._cache: OrderedDict[str, _Analysis] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def embed(self, data: bytes) -> np.ndarray | None:
        """The 128-d descriptor of the largest face in ``data``; ``None`` when there is none.

        Raises :class:`InvalidImageError` when ``data`` does not decode.
        """
        return self._analyse(data).descriptor

    def check(
        self,
        base: np.ndarray | None,
        data: bytes,
        *,
        face_visible: bool,
        stylized: bool,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> CheckResult:
        """Compare the largest face in ``data`` with ``base`` (the base image's descriptor)."""
        if not face_visible:
            return CheckResult(scores={"identity": "skipped (face not visible)"})
        if base is None:
            return CheckResult(
                doubts=["no face in the base image to compare with"],
                scores={"identity": "skipped (no face in the base image)"},
            )
        try:
            found = self._analyse(data)
        except InvalidImageError as exc:
            return CheckResult(rejections=[f"face check: {exc}"])
        scores: dict[str, Any] = {"faces_found": found.faces_found}
        if found.descriptor is None:
            if stylized:
                return CheckResult(doubts=["no face found in a stylized image"], scores=scores)
            return CheckResult(rejections=["no face found"], scores=scores)
        distance = float(np.linalg.norm(found.descriptor - base))
        scores["face_distance"] = round(distance, 3)
        if distance > threshold:
            return CheckResult(
                rejections=[
                    f"face differs from the base image (distance {distance:.2f} > {threshold:g})"
                ],
                scores=scores,
            )
        return CheckResult(scores=scores)

    def _analyse(self, data: bytes) -> _Analysis:
        key = hashlib.sha256(data).hexdigest()
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found = _analyse_pixels(_decode(data))
        with self._cache_lock:
            self._cache[key] = found
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return found


def _analyse_pixels(pixels: np.ndarray) -> _Analysis:
    models = _load_models()
    with _dlib_lock:
        rects, scores, _ = models.detector.run(pixels, 0, 0.0)
        if len(rects) == 0:  # small faces: look again at twice the size
            rects, scores, _ = models.detector.run(pixels, 1, 0.0)
        if len(rects) == 0:
            return _Analysis(None, 0)
        faces = list(zip(rects, scores, strict=True))
        largest = max(rect.area() for rect, _ in faces)
        rect, _ = max(
            (face for face in faces if face[0].area() >= _SAME_SIZE * largest),
            key=lambda face: float(face[1]),
        )
        shape = models.shape(pixels, rect)
        descriptor = np.array(models.embedding.compute_face_descriptor(pixels, shape))
    descriptor.flags.writeable = False
    return _Analysis(descriptor, len(faces))
